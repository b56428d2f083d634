"""Chart specs for groups of replicate runs: mean curves with a ±std band, the mean final accuracy over
a swept hyperparameter (a line for one, a heatmap for two), and group bars beside single runs.

Same spec format as app.web.charts (app.js draws them): a series with ``upper`` and ``lower`` is drawn as a
mean line inside a shaded band; a ``heatmap`` spec has one series with a ``z`` matrix and per-cell links.
"""

from __future__ import annotations

import json
import math
from typing import Any

from app.web.formatting import distinguishing_params, fmt_pct, varying_names

# The metrics a group's curves show: (chart title, y title, epoch key, y format, log-able, the values' range).
# A band is drawn inside the range its metric can take: an accuracy's ±std never past 100 % or below 0.
GROUP_METRICS = (("Test accuracy", "Accuracy", "test_accuracy", ".1%", False, (0.0, 1.0)),
                 ("Train loss (weighted)", "Loss", "train_loss", None, True, (0.0, None)),
                 ("Test loss", "Loss", "test_loss", None, True, (0.0, None)))
ACCURACY = (0.0, 1.0)


def clip(value: float | None, bounds: tuple[float | None, float | None] = ACCURACY) -> float | None:
    """``value`` inside ``bounds`` (either may be None: no bound there)."""
    low, high = bounds
    if value is None:
        return None
    if low is not None and value < low:
        return low
    return high if high is not None and value > high else value


def _at(epoch: dict, key: str) -> Any:
    value: Any = epoch
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def band_series(name: str, color: str, key: str, runs: list[list[dict]], samples: list[Any] | None = None,
                dash: str = "solid", bounds: tuple[float | None, float | None] = (None, None)) -> dict:
    """The mean of ``key`` at each epoch over the samples that reached it, with mean ± sample std as the band
    (no band where fewer than two have a value), clipped to ``bounds``. ``samples`` names each run's sample
    (its seed): runs of one seed are averaged into its value first, as the tables count them; without it each
    run is a sample. ``n`` says how many samples each point averages, ``spread`` the std before clipping."""
    by_epoch: dict[int, dict[Any, list[float]]] = {}
    for index, epochs in enumerate(runs):
        sample = samples[index] if samples is not None and samples[index] is not None else ("run", index)
        for epoch in epochs:
            value = _at(epoch, key)
            if value is not None and math.isfinite(value):
                by_epoch.setdefault(epoch["epoch"], {}).setdefault(sample, []).append(value)
    x, y, upper, lower, n, spread = [], [], [], [], [], []
    for number in sorted(by_epoch):
        values = [math.fsum(v) / len(v) for v in by_epoch[number].values()]
        mean = math.fsum(values) / len(values)
        # The sample std (n − 1), as the table's; statistics.stdev is exact but far slower per point.
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
        x.append(number)
        y.append(mean)
        upper.append(clip(mean + std, bounds) if std is not None else None)
        lower.append(clip(mean - std, bounds) if std is not None else None)
        n.append(len(values))
        spread.append(std)
    return {"name": name, "color": color, "dash": dash, "key": key, "x": x, "y": y, "upper": upper, "lower": lower,
            "n": n, "spread": spread, "band": "± 1 std"}


def legend_name(group: dict, drawn: list[dict], count: int) -> str:
    """A group's name in a chart's legend, e.g. "kd temperature=4 (mean of 3)": its method, the hyperparameters
    that set it apart (from the other groups of its method drawn with it, or from the method's defaults), its
    network where those drawn differ, and how many seeds its line averages."""
    shown = distinguishing_params(group["method"], group["params"],
                                  varying_names([g["params"] for g in drawn if g["method"] == group["method"]]))
    if len({g["architecture"] for g in drawn if g["role"] != "teacher"}) > 1 and group["architecture"]:
        shown.insert(0, group["architecture"])
    counted = f"mean of {count}" if count != 1 else "1 seed"
    return " ".join([group["method"], *shown, f"({counted})"])


def _samples(group: dict) -> dict[int, Any]:
    """Each member run's sample (its seed), from the group's ``members``."""
    return {member["id"]: member["seed"] for member in group.get("members", [])}


def _drawn_seeds(group: dict, epochs_by_run: dict[int, list[dict]]) -> int:
    samples = _samples(group)
    return len({samples.get(i, ("run", i)) for i in group["run_ids"] if epochs_by_run.get(i)})


def _group_bands(groups: list[dict], epochs_by_run: dict[int, list[dict]], key: str,
                 bounds: tuple[float | None, float | None], tagged: bool = False) -> list[dict]:
    series = []
    for group in groups:
        samples = _samples(group)
        name = legend_name(group, groups, _drawn_seeds(group, epochs_by_run))
        series.append(band_series(f"{group['tag']} {name}" if tagged else name, group["color"], key,
                                  [epochs_by_run.get(i, []) for i in group["run_ids"]],
                                  [samples.get(i) for i in group["run_ids"]], group.get("dash", "solid"), bounds))
    return [s for s in series if s["x"]]


def group_curves(groups: list[dict], epochs_by_run: dict[int, list[dict]], prefix: str = "curve") -> list[dict]:
    """One chart per metric, a mean line and ±std band per group (``key``, ``method``, ``params``, ``color``,
    ``dash``, ``run_ids`` and its ``members`` with their seeds)."""
    charts = []
    for index, (title, y_title, key, y_format, log, bounds) in enumerate(GROUP_METRICS):
        series = _group_bands(groups, epochs_by_run, key, bounds)
        if series:
            # The page draws one legend for all three charts: long labels would crowd each plot.
            charts.append({"id": f"{prefix}-{index}", "type": "line", "title": f"{title} · mean ± std",
                           "xTitle": "Epoch", "yTitle": y_title, "yFormat": y_format, "log": log,
                           "legend": False, "series": series})
    return charts


def curve_legend(groups: list[dict], epochs_by_run: dict[int, list[dict]]) -> list[dict]:
    """The legend a page draws once for its group_curves charts: each group's colour, dash and legend name."""
    return [{"key": g["key"], "color": g["color"], "dash": g.get("dash", "solid"),
             "name": legend_name(g, groups, _drawn_seeds(g, epochs_by_run))} for g in groups]


def with_group_bands(run_charts: list[dict], groups: list[dict], epochs_by_run: dict[int, list[dict]]) -> list[dict]:
    """The compare page's per-metric charts with each group's mean and band added beside the runs' lines;
    a metric that only groups have gets its own chart."""
    if not groups:
        return run_charts
    charts = [dict(c, series=list(c["series"])) for c in run_charts]
    for index, (title, y_title, key, y_format, log, bounds) in enumerate(GROUP_METRICS):
        series = _group_bands(groups, epochs_by_run, key, bounds, tagged=True)
        if not series:
            continue
        chart = next((c for c in charts if any(s.get("key") == key for s in c["series"])), None)
        if chart is None:
            chart = {"id": f"compare-group-{index}", "type": "line", "title": title, "xTitle": "Epoch",
                     "yTitle": y_title, "yFormat": y_format, "log": log, "series": []}
            charts.append(chart)
        chart["series"] += series
    return charts


def finals_with_groups(finals: dict, groups: list[dict]) -> dict:
    """The compare page's final-accuracy bars, and a bar per group at its mean with its 95 % interval (drawn
    inside [0, 100] %). Groups are named by their tag on the axis (legend names are long) and in full on hover."""
    if not groups:
        return finals
    bars = finals["series"][0]
    shown = [g for g in groups if g["mean"] is not None]
    intervals = [(clip(g["ci95"][0]), clip(g["ci95"][1])) if g["ci95"] else None for g in shown]
    series = {**bars, "x": [*bars["x"], *(g["tag"] for g in shown)],
              "names": [*bars["x"], *(f"{g['tag']} {legend_name(g, groups, g['n'])}" for g in shown)],
              "y": [*bars["y"], *(g["mean"] for g in shown)],
              "colors": [*bars["colors"], *(g["color"] for g in shown)],
              "links": [*bars["links"], *(None for _ in shown)],
              "errorPlus": [None] * len(bars["x"]) + [ci[1] - g["mean"] if ci else None for g, ci in zip(shown, intervals)],
              "errorMinus": [None] * len(bars["x"]) + [g["mean"] - ci[0] if ci else None
                                                       for g, ci in zip(shown, intervals)]}
    return {**finals, "series": [series], "note": "groups: mean with its 95 % confidence interval"}


# ---------------------------------------------------------------- sweeps

def value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)


def _value_key(value: Any) -> Any:
    # Grid values as the request gave them against a run's params: numbers by their float value (2 and 2.0
    # are the same temperature), anything else by its JSON.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return json.dumps(value, sort_keys=True, default=str)


def _cells(groups: list[dict], names: tuple[str, ...]) -> dict[tuple, dict]:
    """The groups by their values of ``names`` (the first group of each), so that each cell is one lookup."""
    cells: dict[tuple, dict] = {}
    for group in groups:
        if all(name in group["params"] for name in names):
            cells.setdefault(tuple(_value_key(group["params"][name]) for name in names), group)
    return cells


def _hover(group: dict) -> str:
    lines = [group["label"], f"mean {fmt_pct(group['mean'])}" + (f" ± {group['std'] * 100:.1f} pt"
                                                                 if group["std"] is not None else ""),
             f"n = {group['n']}"]
    if group["ci95"]:
        lines.append(f"95 % CI {fmt_pct(clip(group['ci95'][0]))} – {fmt_pct(clip(group['ci95'][1]))}")
    diff = group.get("vs_baseline")
    if diff:
        p = "untested" if diff["p_value"] is None else f"p = {diff['p_value']:.3f}"
        lines.append(f"Δ vs student {diff['mean'] * 100:+.1f} pt ({p}{'' if diff['significant'] else ', n.s.'})")
    return "<br>".join(lines)


def grid_heatmap(title: str, x_name: str, x_values: list, y_name: str, y_values: list, groups: list[dict],
                 link: Any) -> dict:
    """Mean final accuracy of each (x, y) configuration; each cell names its mean and n, and links to
    ``link(group)``. Cells without a finished run stay empty."""
    z, text, hover, links = [], [], [], []
    cells = _cells(groups, (x_name, y_name))
    for y in y_values:
        z_row, text_row, hover_row, link_row = [], [], [], []
        for x in x_values:
            group = cells.get((_value_key(x), _value_key(y)))
            has_mean = group is not None and group["mean"] is not None
            z_row.append(group["mean"] if has_mean else None)
            text_row.append(f"{fmt_pct(group['mean'])}<br>n={group['n']}" if has_mean else
                            "" if group is None else f"n={group['n']}")
            hover_row.append(_hover(group) if group is not None else "no runs")
            link_row.append(link(group) if group is not None else None)
        z.append(z_row)
        text.append(text_row)
        hover.append(hover_row)
        links.append(link_row)
    return {"type": "heatmap", "title": title, "xTitle": x_name, "yTitle": y_name, "zFormat": ".1%",
            "series": [{"x": [value_text(v) for v in x_values], "y": [value_text(v) for v in y_values], "z": z,
                        "text": text, "hover": hover, "links": links}]}


def sweep_line(title: str, name: str, values: list, groups: list[dict], color: str,
               baseline: dict | None = None) -> dict:
    """Mean final accuracy against one swept hyperparameter, its 95 % interval as the band, and the
    baseline student's mean as a dashed reference."""
    cells = _cells(groups, (name,))
    points = [(v, cells.get((_value_key(v),))) for v in values]
    points = [(v, g) for v, g in points if g is not None and g["mean"] is not None]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v, _ in points)
    x = [v if numeric else value_text(v) for v, _ in points]
    series = [{"name": "mean final accuracy (95 % CI)", "color": color, "x": x, "y": [g["mean"] for _, g in points],
               "upper": [clip(g["ci95"][1]) if g["ci95"] else None for _, g in points],
               "lower": [clip(g["ci95"][0]) if g["ci95"] else None for _, g in points],
               "spread": [g["ci95"][1] - g["mean"] if g["ci95"] else None for _, g in points],
               "n": [g["n"] for _, g in points], "band": "95 % CI"}]
    if baseline is not None and baseline["mean"] is not None and x:
        series.append({"name": f"{baseline['label']} (mean)", "color": baseline["color"], "dash": "dash", "x": x,
                       "y": [baseline["mean"]] * len(x)})
    return {"type": "line", "title": title, "xTitle": name, "yTitle": "Final test accuracy", "yFormat": ".1%",
            "log": False, "smoothable": False, "series": series}
