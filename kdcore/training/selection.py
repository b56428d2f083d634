"""Which epoch is a run's best, and what that choice may be called.

With a validation split (RunConfig.validation) the best epoch is the one of highest validation accuracy, and
the test accuracy at that epoch is an honest estimate. Without one the only figure left to choose on is the
test accuracy itself: the best epoch is then the best test epoch, an optimistic figure, and every page,
export and API description says so. Ties go to the earliest epoch.

Torch-free: the engine, the packed trainer, the worker's database records and the pages share it.
"""

from __future__ import annotations

from typing import Any, Iterable

BY_VALIDATION = "best validation epoch"
OPTIMISTIC = "best test epoch (optimistic)"


def best_epoch_label(validation: float | None) -> str:
    """What a run's best epoch is, for a run trained with this validation fraction (0 or None: none)."""
    return BY_VALIDATION if validation else OPTIMISTIC


def score(val_accuracy: float | None, test_accuracy: float | None) -> float | None:
    """The accuracy an epoch is ranked by: its validation accuracy when it has one, else its test accuracy."""
    return val_accuracy if val_accuracy is not None else test_accuracy


def improves(candidate: float | None, best_so_far: float | None) -> bool:
    """Whether an epoch scoring ``candidate`` replaces the best so far (the earliest wins a tie)."""
    return candidate is not None and (best_so_far is None or candidate > best_so_far)


def best_of(history: Iterable[Any]) -> Any:
    """The best of epochs with ``val_accuracy`` and ``test_accuracy`` attributes (EpochMetrics), or None."""
    best, best_score = None, None
    for metrics in history:
        candidate = score(metrics.val_accuracy, metrics.test_accuracy)
        if improves(candidate, best_score):
            best, best_score = metrics, candidate
    return best
