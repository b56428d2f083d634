"""What the home page shows: plain dictionaries built from the leaderboard (app.leaderboard.board groups
it by configuration), the queue and the latest studies. Nothing here branches on a run's kind."""

from __future__ import annotations

import threading
import weakref
from typing import Any
from urllib.parse import urlencode

from sqlmodel import Session

from app.executors.ray import capacity, names
from app.leaderboard import board as leaderboard
from app.leaderboard.completed import leaderboard_version, single_runs
from app.runs import service as services
from app.studies import service as studies
from app.web import charts
from app.web.formatting import distinguishing_params, fmt_value, varying_names
from kdcore.figures import compression
from kdcore.registry import KINDS, METHODS

LEADERBOARD_ROWS = 100
# The leaderboard's two views: configurations (replicates grouped, the default) and single runs.
BOARD_VIEWS = ("groups", "runs")
HOME_STUDIES = 5
# A configuration opened on the leaderboard lists this many of its runs, best first.
GROUP_RUNS_SHOWN = 200


def board_view(session: Session, view: str = "groups", show_all: bool = False, version: tuple | None = None) -> dict:
    """The leaderboard's rows (the best LEADERBOARD_ROWS, or all), its chart and each method's best."""
    if view == "runs":
        return _runs_board(session, show_all)
    return _groups_board(session, show_all, version)


def _groups_board(session: Session, show_all: bool, version: tuple | None) -> dict:
    board = leaderboard.ranking(session, version)
    shown = board.groups if show_all else board.groups[:LEADERBOARD_ROWS]
    keys = {g.key for g in shown}
    # One description for the rows and each method's best, so both label their settings alike.
    described = leaderboard.describe(session, board, shown + [g for g in board.best_of_kind if g.key not in keys])
    by_key = {row["key"]: row for row in described}
    for row in described:
        row["color"] = charts.kind_color(row["kind"])
        row["settings"] = _settings(row)
        # The compare page draws a configuration as its mean and band over all its runs.
        row["compare_url"] = f"/compare?group={row['key']}"
        row["launch_baseline_url"] = launch_url(row["missing_baseline"])
    rows = described[:len(shown)]
    return {"view": "groups", "show_all": show_all, "groups": rows, "total_groups": len(board.groups),
            "total_done": board.runs, "scatter": group_scatter(rows),
            "best_by_kind": [by_key[g.key] for g in board.best_of_kind]}


def launch_url(config: dict | None) -> str | None:
    """The launch page with its form filled in with ``config`` (it pre-fills from its query string):
    one click launches the baseline student a row is missing."""
    if config is None:
        return None
    query = {"kind": config["kind"]}
    for name, value in config.items():
        if name in ("kind", "params") or value is None:
            continue
        query[name] = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else \
            str(value).lower() if isinstance(value, bool) else value
    return "/launch?" + urlencode(query)


def _settings(row: dict) -> str:
    # kdcore.studies.study.group_label writes "Title (name=value, …)": the part in brackets, shown under the method.
    rest = row["label"][len(row["title"]):].strip()
    return rest[1:-1] if rest.startswith("(") and rest.endswith(")") else rest


def group_scatter(rows: list[dict]) -> dict:
    """Mean final accuracy against parameter count: a point per configuration listed, a series per kind."""
    series: dict[str, dict] = {}
    for row in rows:
        if not row["parameters"] or row["mean"] is None:
            continue
        s = series.setdefault(row["kind"], {"name": row["title"], "color": row["color"], "x": [], "y": [],
                                            "text": [], "links": []})
        spread = f" ± {100 * row['std']:.2f} pt" if row["std"] is not None else ""
        s["x"].append(row["parameters"])
        s["y"].append(row["mean"])
        s["text"].append(f"{row['label']} · n={row['n']}{spread} · {row['dataset']}")
        s["links"].append(row["compare_url"] if len(row["run_ids"]) > 1 else f"/runs/{row['run_ids'][0]}")
    ordered = [series[k] for k in KINDS if k in series] + [v for k, v in series.items() if k not in KINDS]
    return {"type": "scatter", "xTitle": "Parameters", "xLog": True, "yTitle": "Mean final test accuracy",
            "yFormat": ".1%", "series": ordered}


def _runs_board(session: Session, show_all: bool) -> dict:
    rows = single_runs(session, None if show_all else LEADERBOARD_ROWS)
    order = {kind: index for index, kind in enumerate(KINDS)}
    best = sorted(single_runs(session, run_ids=leaderboard.best_run_ids(session)),
                  key=lambda r: order.get(r["kind"], len(order)))
    teachers = leaderboard.teacher_results(session, {r["teacher_run_id"] for r in [*rows, *best]
                                                     if r["teacher_run_id"] is not None})
    # Each run's hyperparameters that differ from its method's other runs listed, or from the defaults.
    varying = {kind: varying_names([r["params"] for r in rows if r["kind"] == kind]) for kind in {r["kind"] for r in rows}}
    for row in rows:
        row["settings"] = ", ".join(distinguishing_params(row["kind"], row["params"], varying[row["kind"]]))
    for row in [*rows, *best]:
        teacher_acc, teacher_params = teachers.get(row["teacher_run_id"], (None, None))
        row["compression"] = compression(teacher_params, row["parameters"])
        row["vs_teacher"] = (row["final_accuracy"] - teacher_acc
                             if teacher_acc is not None and row["final_accuracy"] is not None else None)
        row["color"] = charts.kind_color(row["kind"])
    return {"view": "runs", "show_all": show_all, "rows": rows, "total_done": leaderboard.completed_count(session),
            "scatter": charts.accuracy_scatter(rows), "best_by_kind": best}


# engine -> {(view, show_all): (version, view)}; per engine so that apps on different databases never share one.
_LEADERBOARD_CACHE: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def cached_leaderboard_view(session: Session, show_all: bool = False, view: str = "groups",
                            version: tuple | None = None) -> dict:
    """board_view, reused until leaderboard_version says the set of completed runs changed
    (``version``: that key, when the caller has it already)."""
    view = view if view in BOARD_VIEWS else BOARD_VIEWS[0]
    version = version if version is not None else leaderboard_version(session)
    engine = session.get_bind()
    with _CACHE_LOCK:
        cached = _LEADERBOARD_CACHE.setdefault(engine, {}).get((view, show_all))
    if cached and cached[0] == version:
        return cached[1]
    result = board_view(session, view, show_all, version)
    with _CACHE_LOCK:
        _LEADERBOARD_CACHE[engine][(view, show_all)] = (version, result)
    return result


def forget_leaderboards() -> None:
    """Empty every leaderboard cache (the benchmarks' cold case; a run completing does it by itself)."""
    with _CACHE_LOCK:
        _LEADERBOARD_CACHE.clear()
    leaderboard.forget_rankings()


def home_view(session: Session, view: str = "groups", show_all: bool = False) -> tuple[dict, dict]:
    """The leaderboard (the cached dictionary itself) and the queue, from one count of the completed runs."""
    version = leaderboard_version(session)
    return cached_leaderboard_view(session, show_all, view, version), active_view(session, version[0])


def group_runs_view(session: Session, key: str) -> dict:
    """One configuration of the leaderboard opened to its runs. Raises NotFound."""
    group, runs = leaderboard.group_runs(session, key)
    group["color"] = charts.kind_color(group["kind"])
    group["launch_baseline_url"] = launch_url(group["missing_baseline"])
    group["settings"] = ", ".join(f"{name}={fmt_value(value)}" for name, value in sorted(group["params"].items()))
    return {"group": group, "runs": runs[:GROUP_RUNS_SHOWN], "more_runs": max(0, len(runs) - GROUP_RUNS_SHOWN),
            "compare_url": f"/compare?group={key}"}


def active_view(session: Session, done_count: int | None = None) -> dict:
    """The queue (running runs, then the queued ones next in line) and the latest studies' progress.
    ``done_count``: the completed runs, when the caller has counted them already."""
    running, running_total = services.list_runs(session, status="running", limit=50)
    queued, queued_total = services.list_runs(session, status="queued", limit=50)
    if done_count is None:
        done_count = leaderboard_version(session)[0]
    _, all_count = services.list_runs(session, limit=1)
    as_dicts = [dict(services.run_to_dict(r), color=charts.kind_color(r.kind), where=names.where(r.worker))
                for r in [*running, *reversed(queued)]]
    settings = session.info.get("settings")
    recent, studies_total = studies.list_studies(session, limit=HOME_STUDIES)
    return {"active": as_dicts, "running_total": running_total, "queued_total": queued_total,
            "done_count": done_count, "all_count": all_count,
            "cluster": capacity.current(settings.db_url) if settings else None,
            "studies": [_study_row(study, counts) for study, counts in recent], "studies_total": studies_total}


def _study_row(study, counts) -> dict:
    row = studies.study_summary(study, counts)
    row["method_titles"] = [METHODS[m].title if m in METHODS else m for m in row["methods"] if m]
    row["fraction"] = row["done"] / row["total"] if row["total"] else 1.0
    return row
