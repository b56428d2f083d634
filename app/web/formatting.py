"""How the dashboard writes numbers, durations and times for people; its templates use these as filters."""

from __future__ import annotations

import json
import math
from typing import Any

from kdcore.registry import METHODS


def fmt_pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def fmt_params(value: int | None) -> str:
    if value is None:
        return "—"
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return str(value)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def fmt_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):  # milestones
        return ", ".join(fmt_value(item) for item in value) or "—"
    return str(value)


def fmt_when(iso: str | None) -> str:
    return "—" if not iso else iso[:16].replace("T", " ")


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def varying_names(params_list: list[dict[str, Any]]) -> set[str]:
    """The hyperparameters whose values differ between these runs or configurations (of one method)."""
    names = {name for params in params_list for name in params}
    return {name for name in names if len({_text(params.get(name)) for params in params_list}) > 1}


def distinguishing_params(method: str, params: dict[str, Any], varying: set[str]) -> list[str]:
    """``name=value`` for each hyperparameter that sets a run or configuration of ``method`` apart: one that
    ``varying`` names (it differs between those shown beside it), or one away from the method's default."""
    known = METHODS.get(method)
    defaults = known.params().model_dump() if known is not None else {}
    return [f"{name}={fmt_value(value)}" for name, value in params.items()
            if name in varying or (name in defaults and _text(value) != _text(defaults[name]))]
