"""``kd sweep``: a study (kdcore.studies.study) trained here, one run after another, teachers first.

With ``pack`` above 1, runs that can share a step (kdcore.training.packing.key) and are ready (their teacher has
completed) train together through kdcore.training.packing.trainer, up to ``pack`` at a time; each keeps its own folder,
display, summary entry and failure.

Each run writes its own folder ``OUT/<index>-<method>-<seed>/``; ``OUT/summary.json`` holds every run and
every configuration's statistics across its seeds (kdcore.studies.groups.summarize_groups), rewritten after each
run, so an interrupted or crashed sweep still leaves what it finished. A run that fails (a non-finite
loss, say) is recorded as failed and the sweep goes on: one bad grid point must not cost the others.

Torch is imported only inside the functions that train or read a checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kdcore.config import RunConfig, best_teacher_weights_error
from kdcore.errors import CheckpointError, ConfigError, DatasetError, KDError
from kdcore.studies.groups import Outcome, labelled_groups
from kdcore.studies.study import (
    DEFAULT_MAX_RUNS,
    Member,
    StudySpec,
    expand,
    group_key,
    own_baselines,
    paper_table,
    parse_spec,
)
from kdcore.training.selection import best_epoch_label

SUMMARY = "summary.json"
TABLES = {"markdown": "table.md", "latex": "table.tex"}


def parse_list(text: str) -> list[str]:
    """``"a,b, c"`` → ``["a", "b", "c"]``; an empty text is an empty list (which the spec then refuses)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _value(text: str) -> Any:
    # "2" → 2, "0.5" → 0.5, "true" → True; anything else stays text for the hyperparameter to judge.
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["kd.temperature=1,2,4", …]`` → ``{"kd.temperature": [1, 2, 4], …}``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, equals, values = item.partition("=")
        if not equals or not key.strip():
            raise KDError(f"--grid {item!r}: expected method.param=value,value,… e.g. kd.temperature=1,2,4")
        if key.strip() in grid:
            raise KDError(f"--grid {key.strip()} is given twice; list all its values once")
        grid[key.strip()] = [_value(v) for v in parse_list(values)]
    return grid


def methods_with_params(methods: list[str], fixed: dict[str, Any]) -> list[str | dict[str, Any]]:
    """Study method entries with the hyperparameters given once for all (``--temperature 4``): each
    method takes those it has. A hyperparameter that no listed method has is an error."""
    from kdcore.registry import METHODS

    entries: list[str | dict[str, Any]] = []
    used: set[str] = set()
    for name in methods:
        own = METHODS[name].param_names() if name in METHODS else ()
        params = {key: value for key, value in fixed.items() if key in own}
        used.update(params)
        entries.append({"method": name, "params": params} if params else name)
    unused = [key for key in fixed if key not in used]
    if unused:
        raise KDError(f"--{unused[0].replace('_', '-')}: no method of this sweep ({', '.join(methods)}) has "
                      f"the hyperparameter {unused[0]!r}")
    return entries


@dataclass
class SweepRun:
    """One run of the sweep and, once trained, its result. ``status`` uses the dashboard's words."""

    index: int
    member: Member
    out: Path
    group: str
    baseline: str | None = None  # the group key of the baseline student it is compared with
    teacher: "SweepRun | None" = None  # the study's teacher it distils from, if any
    # The network of the teacher it distils from (the study's or a given checkpoint's): what a published
    # result names (kdcore.studies.reproduction).
    teacher_architecture: str | None = None
    status: str = "queued"  # queued, running, completed, failed, cancelled
    error: str | None = None
    final_accuracy: float | None = None
    best_epoch: int | None = None  # chosen as kdcore.training.selection says (best_epoch_label)
    test_accuracy_at_best: float | None = None
    best_val_accuracy: float | None = None
    parameters: int | None = None
    seconds: float | None = None  # the training loop's, as RunResult counts it
    wall_seconds: float | None = None  # the whole run's: data, teacher outputs, checkpoints included
    checkpoint: str | None = None

    @property
    def config(self) -> RunConfig:
        return self.member.config

    @property
    def label(self) -> str:
        return self.out.name

    def to_json_dict(self, teacher_checkpoint: str | None) -> dict[str, Any]:
        config = self.config.to_json_dict()
        teacher = self.teacher.label if self.teacher else teacher_checkpoint if self.config.method.needs_teacher else None
        return {"index": self.index, "method": self.config.kind, "role": self.member.role, "seed": self.config.seed,
                "architecture": self.config.architecture, "params": config["params"], "epochs": self.config.epochs,
                "status": self.status, "error": self.error, "final_accuracy": self.final_accuracy,
                "best_epoch": self.best_epoch, "best_epoch_label": best_epoch_label(self.config.validation),
                "test_accuracy_at_best": self.test_accuracy_at_best, "best_val_accuracy": self.best_val_accuracy,
                "parameters": self.parameters, "seconds": self.seconds, "wall_seconds": self.wall_seconds,
                "group": self.group, "baseline": self.baseline, "teacher": teacher, "out": str(self.out),
                "config": config}

    def outcome(self) -> Outcome:
        return Outcome(group=self.group, kind=self.config.kind, role=self.member.role,
                       architecture=self.config.architecture, params=self.config.to_json_dict()["params"],
                       seed=self.config.seed, status=self.status, final_accuracy=self.final_accuracy,
                       best_accuracy=self.test_accuracy_at_best, run_id=self.index, baseline=self.baseline,
                       epochs=self.config.epochs, dataset=self.config.dataset, subset=self.config.subset,
                       validation=self.config.validation, teacher_architecture=self.teacher_architecture)


@dataclass
class Sweep:
    """A validated study, expanded into the runs it will train."""

    spec: StudySpec
    runs: list[SweepRun]
    out_dir: Path
    teacher_checkpoint: str | None = None
    notes: list[str] = field(default_factory=list)


def prepare(payload: dict[str, Any], out_dir: str | os.PathLike, *, teacher_checkpoint: str | os.PathLike | None = None,
            max_runs: int = DEFAULT_MAX_RUNS, data_root: str | os.PathLike | None = None) -> Sweep:
    """Check everything a sweep needs before it trains anything: the request (kdcore.studies.study), the dataset
    and the subset, and a given teacher checkpoint. Raises KDError (StudyInputError for the request)."""
    spec = parse_spec(payload)
    plan = expand(spec, external_teacher=teacher_checkpoint is not None, max_runs=max_runs)
    num_classes = _check_dataset(spec, plan, data_root)
    external_key = external_network = None
    if teacher_checkpoint is not None:
        teacher_config = _teacher_config(teacher_checkpoint, num_classes)
        external_network = teacher_config.architecture
        best_error = best_teacher_weights_error(teacher_config.validation)
        if best_error and any(m.config.teacher_weights == "best" for m in plan.students
                              if m.config.method.needs_teacher):
            raise ConfigError(f"--teacher {teacher_checkpoint}: {best_error}")
        external_key = group_key(teacher_config)
        teacher_checkpoint = str(teacher_checkpoint)
    out_dir = Path(out_dir)
    width = len(str(len(plan.members)))
    runs: list[SweepRun] = []
    teachers: dict[int, SweepRun] = {}
    baselines = own_baselines([member.config for member in plan.members])
    for index, (member, baseline) in enumerate(zip(plan.members, baselines), start=1):
        config = member.config
        teacher = teachers.get(member.teacher_seed) if member.teacher_seed is not None else None
        if member.role == "teacher":
            key = group_key(config)
        elif config.method.needs_teacher:
            key = group_key(config, teacher.group if teacher else external_key)
        else:
            key = group_key(config)
        out = out_dir / f"{index:0{width}d}-{config.kind}-{config.seed}"
        network = None
        if config.method.needs_teacher:
            network = teacher.config.architecture if teacher else external_network
        run = SweepRun(index, member, out, key, baseline, teacher, teacher_architecture=network)
        if member.role == "teacher":
            teachers[config.seed] = run
        runs.append(run)
    return Sweep(spec, runs, out_dir, teacher_checkpoint)


def _check_dataset(spec: StudySpec, plan, data_root) -> int:
    from kdcore.data.catalog import find_dataset, validation_error

    info = find_dataset(spec.dataset, data_root)  # DatasetError names the ones there are
    if spec.subset is not None and info.train_size is not None:
        if spec.subset > info.train_size:
            raise DatasetError(f"subset must be at most {info.train_size}: dataset {info.name!r} has "
                               f"{info.train_size} training images")
        if spec.subset < info.num_classes:
            raise DatasetError(f"subset must be at least {info.num_classes}: one training image for each class "
                               f"of dataset {info.name!r}")
    validation = next((m.config.validation for m in plan.members), 0.0)  # a recipe field: every run's
    problem = validation_error(info, spec.subset, validation)
    if problem:
        raise DatasetError(problem)
    return info.num_classes


def _teacher_config(path: str | os.PathLike, num_classes: int) -> RunConfig:
    """The configuration that trained a given teacher. Its group key is what the students' keys say of it, as
    the dashboard keys a student by its teacher run's configuration."""
    from kdcore.training.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    config = RunConfig.model_validate(payload["config"])
    if not config.method.teaches:
        raise CheckpointError(f"checkpoint {path} holds a {config.kind!r} run, not a teacher")
    if payload["num_classes"] != num_classes:
        raise CheckpointError(f"teacher checkpoint {path} has {payload['num_classes']} classes but the dataset "
                              f"has {num_classes}")
    return config


def run_sweep(sweep: Sweep, *, data_root: str | os.PathLike | None = None,
              progress: Callable[..., Any] | None = None,
              on_note: Callable[[str], None] | None = None, pack: int | None = None) -> dict[str, Any]:
    """Train every run of the sweep, teachers first; returns the summary it wrote to OUT/summary.json.

    ``progress(run, total, position)`` makes a display for one run (on_step, on_epoch, close); ``position``
    is its line among the runs training at once. ``pack``: at most this many compatible runs train
    together (None: kdcore.training.packing.key.default_pack for the device; 1: one run after another through
    engine.train). On KeyboardInterrupt the summary is written with the unfinished runs cancelled, and
    the interrupt goes on to the caller.
    """
    if pack is not None and pack < 1:
        raise KDError(f"--pack must be at least 1, got {pack}")
    note = on_note or (lambda text: None)
    sweep.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    state = {"device": None}
    _write(sweep, "running", 0.0, None)
    try:
        for run in sweep.runs:
            if run.status != "queued":
                continue  # trained in an earlier run's pack
            if run.teacher is not None and run.teacher.status != "completed":
                run.status, run.error = "failed", f"its teacher {run.teacher.label} did not complete"
                note(f"{run.label}: skipped, {run.error}")
                continue
            size = pack if pack is not None else _default_pack(run.config)
            members = [run, *_pack_mates(sweep, run, size - 1)] if size > 1 else [run]
            if len(members) == 1:
                _train_alone(sweep, run, data_root, progress, note, state)
            else:
                _train_together(sweep, members, data_root, progress, note, state)
            _write(sweep, "running", time.perf_counter() - started, state["device"])
    except KeyboardInterrupt:
        for run in sweep.runs:
            if run.status in ("queued", "running"):
                run.status, run.error = "cancelled", "interrupted"
        _write(sweep, "interrupted", time.perf_counter() - started, state["device"])
        raise
    return _write(sweep, "completed", time.perf_counter() - started, state["device"])


def _default_pack(config: RunConfig) -> int:
    from kdcore.errors import ConfigError
    from kdcore.training.engine import resolve_device
    from kdcore.training.packing.key import default_pack

    try:
        return default_pack(resolve_device(config.device).type)
    except ConfigError:
        return 1  # no such device here: the run trains alone, and fails with the engine's clear error


def _pack_mates(sweep: Sweep, run: SweepRun, wanted: int) -> list[SweepRun]:
    """Up to ``wanted`` later queued runs that can share ``run``'s step and are ready to train."""
    from kdcore.training.packing.key import pack_key

    key, mates = pack_key(run.config), []
    for other in sweep.runs[run.index:]:  # indices start at 1: these are the runs after this one
        if len(mates) == wanted:
            break
        ready = other.teacher is None or other.teacher.status == "completed"
        if other.status == "queued" and ready and pack_key(other.config) == key:
            mates.append(other)
    return mates


def _teacher_of(sweep: Sweep, run: SweepRun) -> str | None:
    if not run.config.method.needs_teacher:
        return None
    return run.teacher.checkpoint if run.teacher else sweep.teacher_checkpoint


def _train_alone(sweep: Sweep, run: SweepRun, data_root, progress, note, state: dict) -> None:
    from kdcore.training import engine  # looked up at call time, so that tests can replace engine.train

    bar = progress(run, len(sweep.runs), 0) if progress else None
    run.status = "running"
    run_started = time.perf_counter()
    try:
        result = engine.train(run.config, out_dir=run.out, data_root=data_root,
                              teacher_checkpoint=_teacher_of(sweep, run),
                              on_step=bar.on_step if bar else None, on_epoch=bar.on_epoch if bar else None)
    except KeyboardInterrupt:
        run.status, run.error = "cancelled", "interrupted"
        raise
    except Exception as exc:  # noqa: BLE001  (recorded, and the other runs still train)
        result = exc
    finally:
        run.wall_seconds = time.perf_counter() - run_started
        if bar:
            bar.close()
    _record(sweep, run, result, note, state)


def _train_together(sweep: Sweep, runs: list[SweepRun], data_root, progress, note, state: dict) -> None:
    from kdcore.training.packing import (
        trainer as packed,  # looked up at call time, so that tests can replace packed.train_packed
    )

    bars = [progress(run, len(sweep.runs), position) if progress else None for position, run in enumerate(runs)]

    def on_step(index, step):
        if bars[index]:
            bars[index].on_step(step)

    def on_epoch(index, metrics):
        if bars[index]:
            bars[index].on_epoch(metrics)

    for run in runs:
        run.status = "running"
    pack_started = time.perf_counter()
    try:
        results = packed.train_packed([run.config for run in runs], out_dirs=[run.out for run in runs],
                                      data_root=data_root, teacher_checkpoints=[_teacher_of(sweep, r) for r in runs],
                                      on_step=on_step, on_epoch=on_epoch)
    except KeyboardInterrupt:
        for run in runs:
            run.status, run.error = "cancelled", "interrupted"
        raise
    except Exception as exc:  # noqa: BLE001  (a problem the whole pack shares: each of its runs fails with it)
        results = [exc] * len(runs)
    finally:
        for run, bar in zip(runs, bars):
            # The pack's runs shared every second of it.
            run.wall_seconds = time.perf_counter() - pack_started
            if bar:
                bar.close()
    for run, result in zip(runs, results):
        _record(sweep, run, result, note, state)


def _record(sweep: Sweep, run: SweepRun, result, note, state: dict) -> None:
    """Store how one run ended: its RunResult, or the exception that ended it (the others still train)."""
    if isinstance(result, BaseException):
        run.status = "failed"
        run.error = str(result) if isinstance(result, KDError) else f"{type(result).__name__}: {result}"
        note(f"{run.label}: failed: {run.error}")
        return
    run.status = "completed"
    run.final_accuracy, run.best_epoch = _finite(result.final_accuracy), result.best_epoch
    run.test_accuracy_at_best = _finite(result.test_accuracy_at_best)
    run.best_val_accuracy = _finite(result.best_val_accuracy)
    run.parameters, run.seconds = result.parameters, result.seconds
    run.checkpoint, state["device"] = result.checkpoint, result.device
    sweep.notes.extend(n for n in result.notes if n not in sweep.notes)


def _finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def summary(sweep: Sweep, status: str, seconds: float, device: str | None) -> dict[str, Any]:
    groups = labelled_groups([run.outcome() for run in sweep.runs])
    counts = {s: sum(run.status == s for run in sweep.runs) for s in ("completed", "failed", "cancelled")}
    return {"status": status, "study": sweep.spec.model_dump(mode="json", exclude_defaults=True),
            "teacher_checkpoint": sweep.teacher_checkpoint, "device": device, "seconds": seconds,
            "total": len(sweep.runs), **counts, "notes": sweep.notes,
            "runs": [run.to_json_dict(sweep.teacher_checkpoint) for run in sweep.runs], "groups": groups,
            "tables": {fmt: paper_table(groups, fmt) for fmt in TABLES}}


def _write(sweep: Sweep, status: str, seconds: float, device: str | None) -> dict[str, Any]:
    data = summary(sweep, status, seconds, device)
    _atomic_write(sweep.out_dir / SUMMARY, json.dumps(data, indent=1))
    for fmt, name in TABLES.items():
        _atomic_write(sweep.out_dir / name, data["tables"][fmt])
    return data


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def significance_notes(groups: list[dict[str, Any]]) -> list[str]:
    """One line per compared configuration whose difference to the baseline is inside the noise."""
    lines = []
    for group in groups:
        diff = group["vs_baseline"]
        if group["role"] == "teacher" or not group["n"] or diff is None or diff["significant"]:
            continue
        why = f"p = {diff['p_value']:.3f}" if diff["p_value"] is not None else "too few seeds for a test"
        lines.append(f"not significant at 5 %: {group['label']} vs the student ({100 * diff['mean']:+.2f} pt, {why})")
    return lines
