"""Reported vs reproduced: a configuration beside the published results it reproduces
(kdcore.reference.matching), compared the way each was reported.

Our figures are over seeds (a seed is one sample however often it ran): the last epoch's test accuracy
(``last``), the test accuracy at the run's best epoch (``best``: the best validation epoch when the runs
held out a validation split, else the best test epoch, which is optimistic: chosen on the test set), and,
with a validation split, the best test epoch beside it (``best_test``) when the epochs were read. A
published value reported at the best epoch is compared with our best test epoch (that is what the papers'
code reports) or, without it, with the validation-selected one, saying so; one reported at the last epoch,
or without saying, with our last epoch. ``inside``: whether the published value lies in our 95 % t
interval; None at n = 1, where there is no interval. A run trained on a subset of the data never matches
a result of the whole data set. Torch-free.
"""

from __future__ import annotations

from typing import Any, Hashable, Mapping

from kdcore.reference.matching import matching
from kdcore.studies.stats import summarize

BEST_TEST = "best test epoch (optimistic)"
BEST_VALIDATION = "best validation epoch"
LAST = "last epoch"


def _figures(values: Mapping[Hashable, float], label: str) -> dict[str, Any] | None:
    if not values:
        return None
    return {**summarize(list(values.values())).to_json_dict(), "label": label}


def _compared(row_reported_as: str, ours: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    if row_reported_as == "best epoch":
        for name in ("best_test", "best"):
            if ours.get(name) is not None and ours[name]["label"] == BEST_TEST:
                return name, ours[name]
        return "best", ours.get("best")
    return "last", ours.get("last")


def reproduction(method: str, network: str | None, teacher: str | None, dataset: str | None,
                 params: Mapping[str, Any] | None, seeds: Any, *, subset: int | None = None,
                 validation: float | None = None) -> dict[str, Any] | None:
    """The published rows this configuration reproduces with our figures beside each; None when no
    published row matches (another dataset, a subset, a method or pair nobody published). ``seeds``: the
    configuration's kdcore.studies.groups.Seeds (its values by seed)."""
    if dataset is None or subset:
        return None
    rows = matching(method, network, teacher, dataset, params)
    if not rows:
        return None
    validated = bool(validation)
    ours = {"last": _figures(seeds.finals, LAST),
            "best": _figures(seeds.bests, BEST_VALIDATION if validated else BEST_TEST),
            "best_test": _figures(seeds.best_tests, BEST_TEST) if validated else None}
    published = []
    for row in rows:
        name, figures = _compared(row.reported_as, ours)
        interval = figures["ci95"] if figures else None
        mean = figures["mean"] if figures else None
        published.append({**row.to_json_dict(), "accuracy": row.accuracy, "compared_on": name,
                          "compared_label": figures["label"] if figures else None,
                          "difference": mean - row.accuracy if mean is not None else None,
                          "inside": interval[0] <= row.accuracy <= interval[1] if interval else None})
    return {"n": len(seeds.finals), "validation": validated, **ours, "published": published}


CSV_COLUMNS = ("group", "label", "method", "teacher", "student", "dataset", "n", "published", "reported_as",
               "published_runs", "source", "section", "compared_on", "our_mean", "our_std", "our_ci95_low",
               "our_ci95_high", "inside", "difference", "last_mean", "last_std", "best_mean", "best_std",
               "best_label", "best_test_mean", "best_test_std", "params", "note")


def reproduction_rows(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (configuration, published result it matches), flat, for tables and CSV: the published
    value (percent) and how it was reported, and our figure it is compared with (fractions) beside our
    last- and best-epoch figures. ``groups``: summaries with ``key``, ``label`` and ``reproduction``."""
    rows = []
    for group in groups:
        shown = group.get("reproduction")
        if not shown:
            continue
        for row in shown["published"]:
            compared = shown.get(row["compared_on"]) or {}
            interval = compared.get("ci95") or (None, None)
            last, best, best_test = shown.get("last") or {}, shown.get("best") or {}, shown.get("best_test") or {}
            rows.append({
                "group": group["key"], "label": group.get("label"), "method": row["method"],
                "teacher": row["teacher"], "student": row["student"], "dataset": row["dataset"], "n": shown["n"],
                "published": row["value"], "reported_as": row["how_reported"], "published_runs": row["runs"],
                "source": row["source"], "section": row["section"], "compared_on": row["compared_label"],
                "our_mean": compared.get("mean"), "our_std": compared.get("std"), "our_ci95_low": interval[0],
                "our_ci95_high": interval[1], "inside": row["inside"], "difference": row["difference"],
                "last_mean": last.get("mean"), "last_std": last.get("std"), "best_mean": best.get("mean"),
                "best_std": best.get("std"), "best_label": best.get("label"), "best_test_mean": best_test.get("mean"),
                "best_test_std": best_test.get("std"), "params": row["params"], "note": row["note"]})
    return rows
