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
