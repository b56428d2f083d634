"""Accuracy against cost on the leaderboard: each configuration's mean final accuracy with its 95 % interval
against its parameters, its network's forward FLOPs or its measured latency (the axis chosen on the page), the
Pareto front of those means drawn, and the configurations on it marked.

The front is that of the means: a configuration is on it when no cheaper (or equally cheap) configuration has
a higher mean. Its bars say how far that ranking can be trusted: a point below the front whose interval
reaches it is not shown to be worse.
"""

from __future__ import annotations

from typing import Any

from app.studies.charts import clip
from app.web import charts
from kdcore.registry import KINDS

# axis -> (the chart's x title, the hover's unit). Latency's title names what was timed and where.
AXES = {"parameters": ("Parameters", "params"), "flops": ("Forward FLOPs, one 32×32 image", "FLOPs"),
        "latency": ("CPU latency, batch 1, one thread (s)", "s")}
DEFAULT_AXIS = "parameters"


def front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of ``points`` ((cost, accuracy)) on the Pareto front, cheapest first: each more accurate than
    every point at most as costly."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    chosen, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            chosen.append(i)
            best = points[i][1]
    return chosen


def _latency_of(row: dict, latencies: dict[tuple[str, int], dict]) -> dict | None:
    return latencies.get((row.get("architecture"), row.get("num_classes") or 10))


def _latency_key(latencies: dict[tuple[str, int], dict]) -> dict | None:
    """The key of the newest figure: one chart mixes no figures from different devices or versions."""
    newest = max(latencies.values(), key=lambda f: f["measured_at"] or "", default=None)
    return newest["key"] if newest else None


def pareto_chart(rows: list[dict], latencies: dict[tuple[str, int], dict]) -> dict[str, Any]:
    """The chart spec app.js draws: a series per method with, per axis, each point's x (None: unknown there)
    and whether it is on that axis's front; the front's line per axis; the intervals as error bars."""
    key = _latency_key(latencies)
    usable = {k: f for k, f in latencies.items() if f["key"] == key}
    points = []
    for row in rows:
        if row["mean"] is None:
            continue
        figure = _latency_of(row, usable)
        points.append((row, {"parameters": row["parameters"] or None, "flops": row.get("flops"),
                             "latency": figure["median_s"] if figure else None}))
    fronts, on_front = {}, {axis: set() for axis in AXES}
    for axis in AXES:
        placed = [(i, x[axis], row["mean"]) for i, (row, x) in enumerate(points) if x[axis]]
        chosen = [placed[j] for j in front([(cost, mean) for _, cost, mean in placed])]
        on_front[axis] = {i for i, _, _ in chosen}
        fronts[axis] = {"x": [cost for _, cost, _ in chosen], "y": [mean for _, _, mean in chosen],
                        "names": [points[i][0]["label"] for i, _, _ in chosen]}
    series: dict[str, dict] = {}
    for i, (row, x) in enumerate(points):
        s = series.setdefault(row["kind"], {"name": row["title"], "color": row["color"], "xs": {a: [] for a in AXES},
                                            "front": {a: [] for a in AXES}, "y": [], "errorPlus": [],
                                            "errorMinus": [], "text": [], "links": []})
        # Drawn inside [0, 100] %, as every accuracy interval is: two seeds' interval can span ±12.7 std.
        low, high = (clip(bound) for bound in row["ci95"] or (None, None))
        for axis in AXES:
            s["xs"][axis].append(x[axis])
            s["front"][axis].append(i in on_front[axis])
        s["y"].append(row["mean"])
        s["errorPlus"].append(high - row["mean"] if high is not None else None)
        s["errorMinus"].append(row["mean"] - low if low is not None else None)
        spread = f" ± {100 * row['std']:.2f} pt" if row["std"] is not None else ""
        s["text"].append(f"{row['label']} · n={row['n']}{spread} · {row['architecture']} · {row['dataset']}")
        s["links"].append(row["compare_url"] if len(row["run_ids"]) > 1 else f"/runs/{row['run_ids'][0]}")
    ordered = [series[k] for k in KINDS if k in series] + [v for k, v in series.items() if k not in KINDS]
    axes = {axis: {"title": title, "unit": unit, "points": sum(1 for _, x in points if x[axis])}
            for axis, (title, unit) in AXES.items()}
    if key:
        axes["latency"]["title"] += f" · {key['device_model']}, torch {key['torch']}"
    for s in ordered:
        s["x"] = s["xs"][DEFAULT_AXIS]
    return {"type": "scatter", "pareto": True, "axis": DEFAULT_AXIS, "axes": axes, "fronts": fronts,
            "xTitle": AXES[DEFAULT_AXIS][0], "xLog": True, "yTitle": "Mean final test accuracy", "yFormat": ".1%",
            "series": ordered, "frontColor": charts.PALETTE[-1]}
