"""What each page's template shows: plain dictionaries built from app.services' results.

The leaderboard, the active runs, a run's summary and page, and the compare page. Nothing here
queries the database itself or branches on a run's kind.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlmodel import Session

from app import charts, services, studies, study_charts, study_view
from app.errors import NotFound
from app.forms import config_rows
from app.ray_executor import capacity, names
from kdcore.figures import compression
from kdcore.registry import KINDS, METHODS

LEADERBOARD_ROWS = 100
COMPARE_MAX_RUNS = 12


# ---------------------------------------------------------------- home

def leaderboard_view(rows: list[dict], show_all: bool = False) -> dict:
    params_of = {row["run_id"]: row["parameters"] for row in rows}
    acc_of = {row["run_id"]: row["final_accuracy"] for row in rows}
    for row in rows:
        row["compression"] = compression(params_of.get(row["teacher_run_id"]), row["parameters"])
        teacher_acc = acc_of.get(row["teacher_run_id"])
        row["vs_teacher"] = (row["final_accuracy"] - teacher_acc
                             if teacher_acc is not None and row["final_accuracy"] is not None else None)
        row["color"] = charts.kind_color(row["kind"])
    shown = rows if show_all else rows[:LEADERBOARD_ROWS]
    best: dict[str, dict] = {}
    for row in rows:  # ranked already: the first row of a kind is its best
        best.setdefault(row["kind"], row)
    best_by_kind = sorted(best.values(), key=lambda r: KINDS.index(r["kind"]) if r["kind"] in KINDS else len(KINDS))
    return {"rows": shown, "total_done": len(rows), "scatter": charts.accuracy_scatter(rows),
            "best_by_kind": best_by_kind}


# engine -> {show_all: (key, view)}; per engine so that apps on different databases never share an entry.
_LEADERBOARD_CACHE: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def cached_leaderboard_view(session: Session, show_all: bool = False) -> dict:
    """services.leaderboard loads every completed run (about 90 ms for 1,000): reuse the last view until
    services.leaderboard_version says the set of completed runs changed."""
    key = services.leaderboard_version(session)
    engine = session.get_bind()
    with _CACHE_LOCK:
        cached = _LEADERBOARD_CACHE.setdefault(engine, {}).get(show_all)
    if cached and cached[0] == key:
        return cached[1]
    view = leaderboard_view(services.leaderboard(session), show_all=show_all)
    with _CACHE_LOCK:
        _LEADERBOARD_CACHE[engine][show_all] = (key, view)
    return view


def active_view(session: Session) -> dict:
    running, running_total = services.list_runs(session, status="running", limit=50)
    queued, queued_total = services.list_runs(session, status="queued", limit=50)
    _, done_count = services.list_runs(session, status="completed", limit=1)
    _, all_count = services.list_runs(session, limit=1)
    as_dicts = [dict(services.run_to_dict(r), color=charts.kind_color(r.kind), where=names.where(r.worker))
                for r in [*running, *reversed(queued)]]
    settings = session.info.get("settings")
    return {"active": as_dicts, "running_total": running_total, "queued_total": queued_total,
            "done_count": done_count, "all_count": all_count,
            "cluster": capacity.current(settings.db_url) if settings else None}


# ---------------------------------------------------------------- run page

def _teacher_of(session: Session, run) -> dict | None:
    if run.teacher_run_id is None:
        return None
    try:
        return services.run_to_dict(services.get_run(session, run.teacher_run_id))
    except NotFound:
        return {"id": run.teacher_run_id, "missing": True}


def summary_view(session: Session, run, action_error: str | None = None) -> dict:
    """The run page's summary card; ``action_error`` says why a cancel or retry was refused."""
    data = services.run_to_dict(run)
    teacher = _teacher_of(session, run)
    distil_kind = next((k for k, m in METHODS.items() if m.needs_teacher), None)
    can_teach = run.status in ("completed", "queued", "running") and METHODS.get(run.kind) is not None \
        and METHODS[run.kind].teaches and distil_kind is not None
    return {"run": data, "method": METHODS.get(run.kind), "color": charts.kind_color(run.kind), "teacher": teacher,
            "compression": compression((teacher or {}).get("parameters"), data["parameters"]),
            "distil_kind": distil_kind if can_teach else None, "action_error": action_error,
            "where": names.where(run.worker)}


def run_view(session: Session, run, epochs: list) -> dict:
    rows = [services.epoch_to_dict(e) for e in epochs]
    method = METHODS.get(run.kind)
    terms = method.loss_terms if method else sorted({t for r in rows for t in r["train_terms"]})
    config = [{"name": name, "label": label, "value": value, "help": help_text}
              for name, label, value, help_text in config_rows(run.kind, run.config)]
    return {**summary_view(session, run), "config": config, "loss_chart": charts.loss_chart(terms, rows),
            "accuracy_chart": charts.accuracy_chart(rows), "epochs": rows, "after": rows[-1]["epoch"] if rows else 0}


# ---------------------------------------------------------------- compare

def compare_view(session: Session, run_ids: list[int], experiment_id: int | None,
                 group_keys: list[str] | None = None, study_id: int | None = None) -> dict:
    """Single runs (picked, or an experiment's) and groups of replicates (``group_keys``, or a study's
    configurations): runs as lines, groups as a mean line in a ±std band, and a bar each."""
    experiments, _ = services.list_experiments(session, limit=50)
    recent, _ = services.list_runs(session, limit=100)
    listed, _ = studies.list_studies(session, limit=50)
    missing: list[int] = []
    if experiment_id is not None:
        try:
            services.get_experiment(session, experiment_id)
            runs = services.experiment_runs(session, experiment_id)
        except NotFound:
            runs, missing = [], []
            experiment_id = None
    else:
        runs = []
        for run_id in run_ids:
            try:
                runs.append(services.get_run(session, run_id))
            except NotFound:
                missing.append(run_id)
    # Oldest first, whatever order the ids came in: teachers before the students distilled from them.
    runs = sorted(runs, key=lambda r: r.id)[:COMPARE_MAX_RUNS]
    picked = [dict(services.run_to_dict(r), color=charts.nth_color(i)) for i, r in enumerate(runs)]
    history = {r.id: [services.epoch_to_dict(e) for e in services.get_epochs(session, r.id)] for r in runs}
    for run in picked:
        last = history[run["id"]][-1]["test_accuracy"] if history[run["id"]] else None
        run["shown_accuracy"] = run["final_accuracy"] if run["final_accuracy"] is not None else last
    grouped = study_view.compare_groups(session, group_keys or [], study_id, len(picked))
    groups = grouped["groups"]
    return {"runs": picked, "groups": groups,
            "charts": study_charts.with_group_bands(charts.compare_charts(picked, history), groups,
                                                    grouped["group_history"]),
            "finals": study_charts.finals_with_groups(charts.finals_chart(picked), groups),
            "diff": _config_diff(picked), "experiments": experiments, "recent": recent,
            "studies": [study for study, _ in listed], "study_id": grouped["study"]["id"] if grouped["study"] else None,
            "experiment_id": experiment_id, "missing": missing, "missing_groups": grouped["missing_groups"],
            "missing_study": grouped["missing_study"], "groups_truncated": grouped["groups_truncated"],
            "any_active": grouped["groups_active"] or any(r["status"] in ("queued", "running") for r in picked),
            "selected": {r["id"] for r in picked}, "truncated": len(run_ids) > COMPARE_MAX_RUNS}


def _config_diff(runs: list[dict]) -> dict:
    rows = [{"label": "kind", "values": [r["kind"] for r in runs]},
            {"label": "teacher run", "values": [r["teacher_run_id"] for r in runs]}]
    by_run = [{name: (label, value) for name, label, value, _ in config_rows(r["kind"], r["config"])} for r in runs]
    names = list(dict.fromkeys(name for fields in by_run for name in fields))
    rows += [{"label": next(fields[n][0] for fields in by_run if n in fields),
              "values": [fields[n][1] if n in fields else None for fields in by_run]} for n in names]
    for row in rows:
        row["differs"] = len({repr(v) for v in row["values"]}) > 1
    return {"differing": [r for r in rows if r["differs"]], "same": [r for r in rows if not r["differs"]]}
