"""The benchmark's table as the papers lay it out: the pairs as columns, the teacher, the baseline student and the
methods as rows, our mean ± std over n seeds in each cell with the published values beside it
(kdcore.reference.matching: the same method, networks, dataset and variant), each compared the way it was
reported (kdcore.studies.reproduction: a best-epoch value with our best epoch), and whether it lies inside
our 95 % interval. ``kd benchmark`` writes it as Markdown and JSON; the dashboard's benchmark page
and API read the same JSON. Torch-free.

A published value is never compared with a run on another dataset, nor on a subset of its data: there (a
``synthetic100`` rehearsal of the benchmark on a CPU, say) the published CIFAR-100 values stand beside ours for
reference only, without a verdict, and the table's note says so.
"""

from __future__ import annotations

from typing import Any, Sequence

from kdcore.reference import published
from kdcore.reference.matching import matching
from kdcore.registry import BASELINE_KIND, METHODS, TEACHER_KINDS
from kdcore.studies.benchmark import Pair

REFERENCE_DATASET = "cifar100"  # the dataset the benchmark's published values are for
NO_DATASET = "no published value for this dataset: the published CIFAR-100 values are shown for reference, not compared"
SUBSET = "not compared: trained on a subset of the data (the published values are for the whole of it)"


def _group(groups: Sequence[dict], method: str, network: str) -> dict | None:
    return next((g for g in groups if g["method"] == method and g["architecture"] == network), None)


def _cell(group: dict | None, method: str, pair: Pair, dataset: str, subset: int | None) -> dict[str, Any]:
    """Our figures for one row and pair, and the published values beside them: compared the way each was
    reported (kdcore.studies.reproduction, once a run has completed), else listed without a comparison."""
    teacher, student = pair.networks
    network = teacher if METHODS[method].teaches else student
    ours = {name: group.get(name) for name in ("n", "mean", "std", "ci95", "best_mean", "repeats", "vs_baseline",
                                               "key", "run_ids")} if group else {"n": 0}
    shown = group.get("reproduction") if group else None
    if shown and not subset:
        rows = shown["published"]
    else:
        # Not compared (yet): no run has completed, or the runs are on another dataset or a subset of this one, which
        # a published value never matches; the values of the benchmark's dataset stand beside ours for reference.
        reference = dataset if published(dataset=dataset) else REFERENCE_DATASET
        rows = [{**row.to_json_dict(), "inside": None, "compared_on": None, "compared_label": None,
                 "difference": None} for row in matching(method, network, teacher if METHODS[method].needs_teacher
                                                         else None, reference, group["params"] if group else {})]
    return {**ours, "published": rows}


def benchmark_table(pairs: Sequence[Pair], groups_by_pair: dict[str, Sequence[dict]], methods: Sequence[str],
                    dataset: str, subset: int | None = None) -> dict[str, Any]:
    """The table's JSON. ``groups_by_pair``: by pair key, the groups of the study that trained it
    (kdcore.studies.groups.labelled_groups), the teacher's among them; ``methods``: the rows after the
    teacher and the baseline student, in order."""
    known = bool(published(dataset=dataset))
    rows = []
    for method in (TEACHER_KINDS[0], BASELINE_KIND, *(m for m in methods if m != BASELINE_KIND)):
        cells = []
        for pair in pairs:
            groups = groups_by_pair.get(pair.key, ())
            network = pair.networks[0] if METHODS[method].teaches else pair.networks[1]
            cells.append(_cell(_group(groups, method, network), method, pair, dataset, subset))
        rows.append({"method": method, "title": METHODS[method].title, "cells": cells})
    note = NO_DATASET if not known else SUBSET if subset else None
    return {"dataset": dataset, "subset": subset, "published_note": note,
            "pairs": [{"key": p.key, "label": p.label, "teacher": p.networks[0], "student": p.networks[1],
                       "lr": p.lr} for p in pairs], "rows": rows}


def ours_text(cell: dict[str, Any]) -> str:
    """Our figure in a cell: mean ± std in percent, and n; a dash before any run has completed."""
    if not cell.get("n"):
        return "–"
    std = f" ± {100 * cell['std']:.2f}" if cell.get("std") is not None else ""
    return f"{100 * cell['mean']:.2f}{std} (n={cell['n']})"


def sources(table: dict[str, Any]) -> list[str]:
    """The distinct sources the table cites, numbered by first appearance (what the cells' marks point to)."""
    found: list[str] = []
    for row in table["rows"]:
        for cell in row["cells"]:
            for result in cell["published"]:
                text = _source(result)
                if text not in found:
                    found.append(text)
    return found


def _source(result: dict[str, Any]) -> str:
    section = f", {result['section']}" if result.get("section") else ""
    return f"{result['source']}{section} ({result['how_reported']})"


def published_text(cell: dict[str, Any], table: dict[str, Any], cited: list[str]) -> str:
    """The published values beside a cell, each with its source's number and whether it lies inside our
    interval (✓ inside, ✗ outside; no mark where it is not compared: the table's note says why)."""
    if not cell["published"]:
        return "–"
    marks = {True: " ✓", False: " ✗", None: ""}
    return ", ".join(f"{r['value']:.2f} [{cited.index(_source(r)) + 1}]{marks[r['inside']]}"
                     for r in cell["published"])


def markdown(table: dict[str, Any]) -> str:
    """The table in Markdown: per pair, our column and the published one; the sources below."""
    cited = sources(table)
    header = ["Method", *(f"{p['label']} ({label})" for p in table["pairs"] for label in ("ours", "published"))]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in table["rows"]:
        cells = [text for cell in row["cells"] for text in (ours_text(cell), published_text(cell, table, cited))]
        lines.append("| " + " | ".join([row["title"], *cells]) + " |")
    lines.append("")
    lines.append(f"Top-1 test accuracy (%) on {table['dataset']} at the last epoch, mean ± std over n seeds. "
                 "Published values beside it; ✓: inside our 95 % t interval of the figure it is compared with "
                 "(a best-epoch value with our best epoch), ✗: outside it; no mark: no interval yet.")
    if table["published_note"]:
        lines.append(f"On {table['dataset']}: {table['published_note']}.")
    lines += [f"[{index}] {text}" for index, text in enumerate(cited, start=1)]
    return "\n".join(lines) + "\n"
