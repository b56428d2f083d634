"""Published top-1 results as data: every ``*.csv`` file beside this module, one row a result with its
source, read once. Adding a row, or a file, needs no code change.

A row names the method and the teacher and student networks as this project's registries do (a reference
framework's own name such as ``MobileNetV2`` reads as the network it is an alias of). ``teacher`` rows are a
teacher trained alone (``student`` empty), ``student`` rows a student trained alone (``teacher`` empty). A
method this project lacks stays in the data, shown but never matched to a run. ``params`` names the
hyperparameters that set a variant apart (``standardize=true`` is logit standardisation); ``value`` is the
accuracy in percent as printed; ``reported_as`` is the epoch each run was read at (``best epoch``, ``last
epoch`` or ``unstated``) and ``runs`` how many runs the value averages, blank where the source does not
say. Torch-free.
"""

from __future__ import annotations

import csv
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdcore.architectures import canonical
from kdcore.errors import KDError

DATA_DIR = Path(__file__).resolve().parent
REPORTED_AS = ("best epoch", "last epoch", "unstated")
COLUMNS = ("method", "teacher", "student", "dataset", "value", "reported_as", "runs", "params", "source",
           "section", "note")


class PublishedDataError(KDError):
    """A row of the published-results data that cannot be read; the message names its file and line."""


@dataclass(frozen=True)
class PublishedResult:
    method: str
    teacher: str | None
    student: str | None
    dataset: str
    value: float
    reported_as: str
    runs: int | None
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    source: str = ""
    section: str = ""
    note: str = ""

    @property
    def accuracy(self) -> float:
        """The value as a fraction, as this project stores accuracies."""
        return self.value / 100

    @property
    def how_reported(self) -> str:
        """In words: what the value is, e.g. "best epoch, mean of 5 runs"."""
        runs = f"mean of {self.runs} runs" if self.runs and self.runs > 1 else \
            "one run" if self.runs == 1 else "runs not stated"
        return f"{self.reported_as}, {runs}"

    def to_json_dict(self) -> dict[str, Any]:
        return {"method": self.method, "teacher": self.teacher, "student": self.student, "dataset": self.dataset,
                "value": self.value, "reported_as": self.reported_as, "runs": self.runs,
                "how_reported": self.how_reported, "params": dict(self.params), "source": self.source,
                "section": self.section, "note": self.note}


def _params(text: str) -> dict[str, Any]:
    """``name=value;name=value``, each value JSON (true, 4, 0.5) or else a plain string."""
    found: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"params {text!r}: expected name=value")
        try:
            found[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            found[name.strip()] = value.strip()
    return found


def _row(record: dict[str, str]) -> PublishedResult:
    missing = [c for c in COLUMNS if record.get(c) is None]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    text = {c: record[c].strip() for c in COLUMNS}
    if not text["method"] or not text["dataset"] or not text["source"]:
        raise ValueError("method, dataset and source are required")
    if not text["teacher"] and not text["student"]:
        raise ValueError("a row names a teacher, a student or both")
    value = float(text["value"])
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise ValueError(f"value {text['value']!r} is not a percentage")
    if text["reported_as"] not in REPORTED_AS:
        raise ValueError(f"reported_as {text['reported_as']!r}: one of {', '.join(REPORTED_AS)}")
    runs = int(text["runs"]) if text["runs"] else None
    if runs is not None and runs < 1:
        raise ValueError(f"runs {runs}: at least 1")
    return PublishedResult(method=text["method"].lower(), teacher=canonical(text["teacher"]) or None,
                           student=canonical(text["student"]) or None, dataset=text["dataset"], value=value,
                           reported_as=text["reported_as"], runs=runs, params=_params(text["params"]),
                           source=text["source"], section=text["section"], note=text["note"])


def read_file(path: Path) -> list[PublishedResult]:
    """One data file's rows; a bad row raises PublishedDataError naming the file and line."""
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for record in reader:
            try:
                rows.append(_row(record))
            except ValueError as error:
                raise PublishedDataError(f"{path.name}, line {reader.line_num}: {error}") from None
    return rows


@functools.lru_cache(maxsize=1)
def all_results() -> tuple[PublishedResult, ...]:
    """Every row of every data file, files by name, rows in file order."""
    return tuple(row for path in sorted(DATA_DIR.glob("*.csv")) for row in read_file(path))


def published(method: str | None = None, teacher: str | None = None, student: str | None = None,
              dataset: str | None = "cifar100") -> list[PublishedResult]:
    """The published rows for a method, a teacher network, a student network and a dataset; None matches
    any. Network names may be a reference framework's (``ResNet50``); a method name is case-insensitive."""
    teacher = canonical(teacher) if teacher is not None else None
    student = canonical(student) if student is not None else None
    method = method.lower() if method is not None else None
    return [row for row in all_results()
            if (method is None or row.method == method) and (teacher is None or row.teacher == teacher)
            and (student is None or row.student == student) and (dataset is None or row.dataset == dataset)]
