"""The search page's charts: Optuna's own computations (optuna.visualization's info helpers, optuna.importance's
fANOVA) drawn by the dashboard's chart code (app.js's "points" and "bar" specs) in its colours, offline: Optuna's
Plotly figures are never built, and Plotly's parallel-coordinates trace is not in the vendored cartesian bundle,
so the parallel coordinates are lines across one axis per hyperparameter.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import TrialState
from optuna.visualization._optimization_history import _get_optimization_history_info_list
from optuna.visualization._parallel_coordinate import _get_parallel_coordinate_info
from optuna.visualization._slice import _get_slice_plot_info

from app.web.charts import PALETTE

TARGET = "Validation accuracy"
# Low to high objective: a parallel-coordinates line's colour (the palette's blue to its orange).
LOW, HIGH = PALETTE[0], PALETTE[1]


def _blend(fraction: float) -> str:
    channels = [int(LOW[i:i + 2], 16) + (int(HIGH[i:i + 2], 16) - int(LOW[i:i + 2], 16)) * fraction
                for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c):02x}" for c in channels)


def _completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def history_chart(study: optuna.Study) -> dict[str, Any]:
    """Each completed trial's validation accuracy against its number, and the best so far."""
    series = []
    if _completed(study):
        info = _get_optimization_history_info_list(study, None, TARGET, False)[0]
        series.append({"name": "trial", "x": info.trial_numbers, "y": info.values_info.values, "mode": "markers",
                       "color": PALETTE[0], "text": [f"trial {n}" for n in info.trial_numbers]})
        if info.best_values_info is not None:
            series.append({"name": "best so far", "x": info.trial_numbers, "y": info.best_values_info.values,
                           "mode": "lines", "color": PALETTE[1], "shape": "hv"})
    return {"id": "search-history", "type": "points", "title": "Optimisation history", "xTitle": "Trial", "xWhole": True,
            "yTitle": TARGET, "yFormat": ".1%", "yAccuracy": True, "series": series}


def _spread(dimension) -> list[float]:
    """A dimension's values placed from 0 to 1 on its own axis (log dimensions by their logarithm)."""
    low, high = dimension.range
    if dimension.is_log:
        low, high = math.log10(low), math.log10(high)
    return [0.5 if high == low else ((math.log10(v) if dimension.is_log else v) - low) / (high - low)
            for v in dimension.values]


def _tick(dimension, value: float) -> str:
    if dimension.is_cat:
        index = dimension.tickvals.index(value) if value in dimension.tickvals else None
        return dimension.ticktext[index] if index is not None else str(value)
    return f"{(10 ** value if dimension.is_log else value):.4g}"


def parallel_chart(study: optuna.Study) -> dict[str, Any]:
    """One line per completed trial across an axis per hyperparameter and the objective, coloured by it."""
    chart = {"id": "search-parallel", "type": "points", "title": "Parallel coordinates (colour: validation "
             "accuracy, blue low to orange high)", "xTitle": "", "yTitle": "Place on each axis (low to high)",
             "series": [], "legend": False}
    if not _completed(study):
        return chart
    info = _get_parallel_coordinate_info(study, None, None, TARGET)
    dimensions = [*info.dims_params, *info.dims_objectives]
    if not dimensions or not dimensions[0].values:
        return chart
    placed = [_spread(d) for d in dimensions]
    objective = info.dims_objectives[0].values
    low, high = min(objective), max(objective)
    chart["xTicks"] = {"values": list(range(len(dimensions))), "text": [d.label for d in dimensions]}
    for index in range(len(objective)):
        fraction = 0.5 if high == low else (objective[index] - low) / (high - low)
        chart["series"].append({
            "name": f"{objective[index]:.1%}", "x": list(range(len(dimensions))), "y": [p[index] for p in placed],
            "mode": "lines+markers", "color": _blend(fraction),
            "text": [f"{d.label}: {_tick(d, d.values[index])}" for d in dimensions]})
    return chart


def importance_chart(study: optuna.Study) -> dict[str, Any]:
    """fANOVA's share of the objective's variance per hyperparameter (needs two completed trials or more)."""
    chart = {"id": "search-importance", "type": "bar", "title": "Hyperparameter importance (fANOVA)",
             "yTitle": "Share of the variance", "yFormat": ".0%", "series": [], "note": None}
    if len(_completed(study)) < 2:
        chart["note"] = "Importance needs two completed trials or more."
        return chart
    # Imported here: fANOVA fits scikit-learn's forests, seconds to import, needed by this chart alone.
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    try:
        importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError) as exc:  # e.g. no hyperparameter common to every trial
        chart["note"] = f"No importance yet: {exc}"
        return chart
    names = list(importances)
    chart["series"] = [{"name": "importance", "x": names, "y": [importances[n] for n in names],
                        "colors": [PALETTE[i % len(PALETTE)] for i in range(len(names))]}]
    return chart


def slice_charts(study: optuna.Study) -> list[dict[str, Any]]:
    """One chart per hyperparameter: each completed trial's validation accuracy against its value."""
    if not _completed(study):
        return []
    charts = []
    for index, sub in enumerate(_get_slice_plot_info(study, None, None, TARGET).subplots):
        charts.append({"id": f"search-slice-{index}", "type": "points", "title": f"Slice: {sub.param_name}",
                       "xTitle": sub.param_name, "xLog": sub.is_log, "xCategory": not sub.is_numerical,
                       "yTitle": TARGET, "yFormat": ".1%", "yAccuracy": True, "legend": False,
                       "series": [{"name": sub.param_name, "x": [x if sub.is_numerical else str(x) for x in sub.x],
                                   "y": sub.y, "mode": "markers", "color": PALETTE[2],
                                   "text": [f"trial {n}" for n in sub.trial_numbers]}]})
    return charts
