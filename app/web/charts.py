"""Chart specs for app.js to draw with Plotly: plain dictionaries, one per chart.

Charts follow each method's ``loss_terms`` rather than branching on a run's kind.
"""

from __future__ import annotations

from typing import Any

from kdcore.registry import KINDS, METHODS

# Colour-blind-friendly Tableau 10; the same list is app.js's fallback.
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2",
           "#eeca3b", "#9d755d", "#ff9da6", "#79706e")


# How the second, third, … series of one method drawn together differ from its first: a dash of their own.
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def kind_color(kind: str) -> str:
    """A method's colour, the same on every page (board, run, compare, study)."""
    return PALETTE[KINDS.index(kind) % len(PALETTE)] if kind in KINDS else PALETTE[-1]


def nth_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def shade(color: str, step: int) -> str:
    """``color`` itself at step 0, then alternately darker and lighter, further each time: one method's
    several series stay in its colour, yet apart."""
    if step == 0:
        return color
    amount = min(0.7, 0.3 + 0.15 * ((step - 1) // 2))
    target = 0 if step % 2 else 255  # odd steps towards black, even ones towards white
    channels = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (target - c) * amount):02x}" for c in channels)


def method_styles(kinds: list[str]) -> list[dict[str, str]]:
    """The colour and dash of each of several series drawn together, by their methods in order: a method's
    first series has its own colour (kind_color), its next ones shades of it with dashes of their own."""
    seen: dict[str, int] = {}
    styles = []
    for kind in kinds:
        step = seen[kind] = seen.get(kind, -1) + 1
        styles.append({"color": shade(kind_color(kind), step), "dash": DASHES[step % len(DASHES)]})
    return styles


def _pick(data: dict, key: str) -> Any:
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _with_points(series: dict, epochs: list[dict]) -> dict:
    # ``key`` stays in the spec: app.js appends live epochs to the series by it.
    points = [(e["epoch"], _pick(e, series["key"])) for e in epochs]
    series["x"] = [x for x, y in points if y is not None]
    series["y"] = [y for x, y in points if y is not None]
    return series


def line_chart(title: str, y_title: str, series: list[dict], epochs: list[dict], y_format: str | None = None,
               log: bool = True) -> dict:
    """A metric per epoch; each series names its metric by ``key`` (a dotted path into an epoch)."""
    return {"type": "line", "title": title, "xTitle": "Epoch", "yTitle": y_title, "yFormat": y_format,
            "log": log, "series": [_with_points(s, epochs) for s in series]}


def loss_series(terms: tuple[str, ...] | list[str], validation: bool = False) -> list[dict]:
    series = [{"name": "train loss (weighted)", "key": "train_loss", "color": PALETTE[0]}]
    series += [{"name": f"train {term}", "key": f"train_terms.{term}", "color": nth_color(i + 1), "dash": "dot"}
               for i, term in enumerate(terms)]
    series.append({"name": "test loss", "key": "test_loss", "color": PALETTE[3]})
    if validation:
        series.append({"name": "validation loss", "key": "val_loss", "color": PALETTE[3], "dash": "dash"})
    return series


def reported_chart(names: tuple[str, ...] | list[str], epochs: list[dict]) -> dict:
    """The values a method reports beside its losses (Method.reported: a learnt temperature), each epoch's mean
    over its steps, on a linear scale of their own."""
    labels = [name.replace("_", " ") for name in names]
    # Titled by what it shows: a single series has no legend to name it.
    title = f"{', '.join(labels).capitalize()} (epoch mean{'s' if len(labels) > 1 else ''})"
    return line_chart(title, "Value", [{"name": label, "key": f"train_terms.{name}", "color": nth_color(i + 4)}
                                       for i, (name, label) in enumerate(zip(names, labels))], epochs, log=False)


def loss_chart(terms: tuple[str, ...] | list[str], epochs: list[dict], validation: bool = False) -> dict:
    """``validation``: the run holds out a validation split, whose curve is drawn beside the test set's."""
    return line_chart("Losses", "Loss", loss_series(terms, validation), epochs)


def stage_chart(stage: str, terms: tuple[str, ...] | list[str], epochs: list[dict]) -> dict:
    """The losses of a method's pre-stage (kdcore.methods.base.Stage) over its own epochs 1..n, drawn apart from
    the main stage's curves, whose epochs start again at 1 after it."""
    series = [{"name": f"{stage} {term}", "key": f"train_terms.{term}", "color": nth_color(i + 4)}
              for i, term in enumerate(terms)]
    return line_chart(f"Stage “{stage}”, before epoch 1: {', '.join(terms)} loss", "Loss", series, epochs)


def accuracy_chart(epochs: list[dict], validation: bool = False, color: str = PALETTE[2]) -> dict:
    """``color``: the run's method's (kind_color), as its accuracy is drawn on every page."""
    series = [{"name": "test accuracy", "key": "test_accuracy", "color": color}]
    if validation:
        series.append({"name": "validation accuracy", "key": "val_accuracy", "color": color, "dash": "dash"})
    return line_chart("Accuracy" if validation else "Test accuracy", "Accuracy", series, epochs, ".1%", log=False)


def accuracy_scatter(rows: list[dict]) -> dict:
    """Final accuracy against parameter count for the leaderboard's rows: a series per kind, in the
    registry's order, each point linking to its run."""
    series: dict[str, dict] = {}
    for row in rows:
        if row["parameters"] and row["final_accuracy"] is not None:
            s = series.setdefault(row["kind"], {"name": row["title"], "color": kind_color(row["kind"]),
                                                "x": [], "y": [], "text": [], "links": []})
            s["x"].append(row["parameters"])
            s["y"].append(row["final_accuracy"])
            s["text"].append(f"run {row['run_id']} · {row['dataset']}")
            s["links"].append(f"/runs/{row['run_id']}")
    ordered = [series[k] for k in KINDS if k in series] + [v for k, v in series.items() if k not in KINDS]
    return {"type": "scatter", "xTitle": "Parameters", "xLog": True, "yTitle": "Final test accuracy",
            "yFormat": ".1%", "series": ordered}


def compare_charts(runs: list[dict], history: dict[int, list[dict]]) -> list[dict]:
    """One chart per metric, a series per run in the run's colour; metrics no run has yet are left out.
    ``history`` maps each run's id to its epochs."""
    terms = list(dict.fromkeys(t for r in runs if r["kind"] in METHODS for t in METHODS[r["kind"]].loss_terms))
    reported = {t for r in runs if r["kind"] in METHODS for t in METHODS[r["kind"]].reported}
    metrics = [("Test accuracy", "Accuracy", "test_accuracy", ".1%", False), ("Train loss (weighted)", "Loss",
               "train_loss", None, True), ("Test loss", "Loss", "test_loss", None, True),
               ("Validation accuracy", "Accuracy", "val_accuracy", ".1%", False)]
    metrics += [(f"Train {t}", "Loss", f"train_terms.{t}", None, True) for t in terms if t not in reported]
    metrics += [(f"{t.replace('_', ' ').capitalize()} (epoch mean)", "Value", f"train_terms.{t}", None, False)
                for t in terms if t in reported]
    charts = []
    for index, (title, y_title, key, y_format, log) in enumerate(metrics):
        series = [_with_points({"name": f"#{run['id']} {run['kind']}", "key": key, "color": run["color"],
                                "dash": run.get("dash", "solid")}, history[run["id"]]) for run in runs]
        series = [s for s in series if s["x"]]
        if series:
            charts.append({"id": f"compare-{index}", "type": "line", "title": title, "xTitle": "Epoch",
                           "yTitle": y_title, "yFormat": y_format, "log": log, "series": series})
    return charts


def finals_chart(runs: list[dict]) -> dict:
    """A bar per run: its final accuracy, or its latest while it trains (``shown_accuracy``)."""
    return {"type": "bar", "yTitle": "Final test accuracy", "yFormat": ".1%", "series": [
        {"name": "final accuracy", "x": [f"#{r['id']} {r['kind']}" for r in runs],
         "y": [r["shown_accuracy"] for r in runs], "colors": [r["color"] for r in runs],
         "links": [f"/runs/{r['id']}" for r in runs]}]}
