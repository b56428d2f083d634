"""Check kdcore/reference's published results cell by cell against the READMEs they were transcribed from.

    python bench/check_published.py [REFS_DIR]      # default /work/refs, else $KD_REFS

REFS_DIR holds clones named owner+name (HobbitLong+RepDistiller, megvii-research+mdistiller,
sunshangquan+logit-standardization-KD, Jin-Ying+Multi-Level-Logit-Distillation). Each README's CIFAR-100
result tables ("Teacher <br> Student" in the first header cell, under a CIFAR-100 heading) are parsed here,
independently of the transcription: every cell must be a row of the data with the same method, variant,
networks and value, and every data row citing that README must be a cell of it. The printed names are
read through the table below (not through the data's). ERRATA lists the columns whose printed header the
data corrects, with the reason. Exits 0 when everything agrees, 1 with every difference listed, and skips
(exit 0, saying so) when the clones are not there.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdcore.reference.results import all_results  # noqa: E402

READMES = {
    "HobbitLong/RepDistiller README.md": "HobbitLong+RepDistiller",
    "megvii-research/mdistiller README.md": "megvii-research+mdistiller",
    "sunshangquan/logit-standardization-KD README.md": "sunshangquan+logit-standardization-KD",
    "Jin-Ying/Multi-Level-Logit-Distillation README.md": "Jin-Ying+Multi-Level-Logit-Distillation",
}
# Printed network names -> this project's, after lower-casing and dropping '-' and '_'.
NETWORKS = {"wrn402": "wrn_40_2", "wrn162": "wrn_16_2", "wrn401": "wrn_40_1", "resnet56": "resnet56",
            "resnet20": "resnet20", "resnet110": "resnet110", "resnet32": "resnet32", "resnet32x4": "resnet32x4",
            "resnet8x4": "resnet8x4", "vgg13": "vgg13", "vgg8": "vgg8", "resnet50": "resnet50",
            "mobilenetv2": "mobilenetv2", "mnv2": "mobilenetv2", "shufflenetv1": "shufflev1",
            "shufflenetv2": "shufflev2", "shnv2": "shufflev2"}
# (source, printed teacher, printed student, the table's KD value) -> the pair the data reads it as.
ERRATA = {("megvii-research/mdistiller README.md", "resnet32x4", "mobilenetv2", 74.45): ("resnet32x4", "shufflev2")}
DATASET_LINE = re.compile(r"^(#+.*|On .*:)\s*$")


def network(printed: str) -> str:
    key = re.sub(r"[-_\s]", "", printed.lower())
    if key not in NETWORKS:
        raise SystemExit(f"check_published: unknown printed network {printed!r}: add it to NETWORKS")
    return NETWORKS[key]


def method(printed: str) -> tuple[str, tuple]:
    """A row label -> (method, variant): "KD+**Ours**" is KD with logit standardisation."""
    label = printed.replace("*", "").strip()
    if label.endswith("+Ours"):
        return label[:-5].lower(), (("standardize", True),)
    return label.lower(), ()


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def value(cell: str) -> str:
    cell = re.sub(r"\]\(.*?\)", "]", cell.replace("*", ""))
    return cell.strip("[] ")


def tables(text: str):
    """(header cells, body rows) of each CIFAR-100 table of a README."""
    dataset, lines, i = None, text.splitlines(), 0
    while i < len(lines):
        line = lines[i].strip()
        if DATASET_LINE.match(line):
            lowered = line.lower()
            if "cifar-100" in lowered or "cifar100" in lowered:
                dataset = "cifar100"
            elif any(word in lowered for word in ("imagenet", "coco", "tiny")):
                dataset = "other"
        if line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1].strip()) <= set("|:- "):
            header, body = cells(line), []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                body.append(cells(lines[i]))
                i += 1
            if dataset == "cifar100" and header[0].replace(" ", "").lower() == "teacher<br>student":
                yield header, body
            continue
        i += 1


def from_readme(source: str, text: str) -> set[tuple]:
    found = set()
    for header, body in tables(text):
        pairs = [tuple(network(n) for n in cell.split("<br>")) for cell in header[1:]]
        kd = next((row for row in body if method(row[0])[0] == "kd"), None)
        for column, pair in enumerate(pairs):
            if kd is not None and (source, *pair, float(value(kd[column + 1]))) in ERRATA:
                pairs[column] = ERRATA[(source, *pair, float(value(kd[column + 1])))]
        for row in body:
            if row[0].replace(" ", "").lower() == "teacher<br>student":
                for (teacher, student), cell in zip(pairs, row[1:]):
                    teacher_value, student_value = (float(v) for v in cell.split("<br>"))
                    found.add(("teacher", (), teacher, None, teacher_value))
                    found.add(("student", (), None, student, student_value))
                continue
            name, variant = method(row[0])
            for (teacher, student), cell in zip(pairs, row[1:]):
                if value(cell) != "N/A":
                    found.add((name, variant, teacher, student, float(value(cell))))
    return found


def main(refs: Path) -> int:
    if not refs.is_dir():
        print(f"check_published: skipped, no reference clones at {refs}")
        return 0
    rows = all_results()
    problems, checked = [], 0
    for source, folder in READMES.items():
        readme = refs / folder / "README.md"
        if not readme.is_file():
            print(f"check_published: skipped {source}: no {readme}")
            continue
        printed = from_readme(source, readme.read_text(encoding="utf-8"))
        data = {(r.method, tuple(sorted(r.params.items())), r.teacher, r.student, r.value)
                for r in rows if r.source == source}
        checked += len(printed)
        problems += [f"{source}: in the README, not in the data: {cell}" for cell in sorted(printed - data, key=str)]
        problems += [f"{source}: in the data, not in the README: {row}" for row in sorted(data - printed, key=str)]
        print(f"{source}: {len(printed)} CIFAR-100 cells, {len(data)} distinct data rows")
    unknown = sorted({r.source for r in rows} - set(READMES))
    problems += [f"rows cite {source}, which this script cannot check" for source in unknown]
    for (source, teacher, student, kd), read_as in ERRATA.items():
        print(f"erratum: {source} heads a column {teacher} / {student} (KD {kd}); the data reads it as "
              f"{read_as[0]} / {read_as[1]}")
    print("\n".join(problems) or f"check_published: all {checked} cells agree with the data")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("KD_REFS", "/work/refs"))))
