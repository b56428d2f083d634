"""Figures derived from a run's numbers, computed one way wherever they are shown: the CLI's summary
table, the worker's progress records and the dashboard. Torch-free, so the web process can use it."""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(value: Any) -> float | None:
    # JSON has no NaN or infinity: a diverged loss or a missing figure is reported as null.
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def compression(teacher_parameters: int | None, parameters: int | None) -> float | None:
    """How many times smaller a run is than its teacher, or None without both parameter counts."""
    return teacher_parameters / parameters if teacher_parameters and parameters else None


def fraction_done(epoch: int, epochs: int, step: int | None = None, steps: int | None = None) -> float:
    """The share of a run's training done at ``step`` of ``steps`` in (1-based) ``epoch``; without a
    step, at the end of ``epoch``."""
    if step is None:
        return epoch / max(1, epochs)
    return ((epoch - 1) + step / max(1, steps or 0)) / max(1, epochs)
