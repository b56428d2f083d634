"""What the home page shows: plain dictionaries built from the leaderboard (app.leaderboard.board groups
it by configuration), the queue and the latest studies. Nothing here branches on a run's kind."""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any
from urllib.parse import urlencode

from sqlmodel import Session

from app.executors.ray import capacity, names
from app.leaderboard import board as leaderboard
from app.leaderboard import filters
from app.leaderboard.completed import leaderboard_version, single_runs
from app.leaderboard.filters import group_page
from app.latency.service import pareto_latencies
from app.leaderboard.paging import PAGE_SIZES, BoardPage
from app.leaderboard.pareto import pareto_chart
from app.runs import service as services
from app.runs.annotations import known_tags, tags_version
from app.studies import service as studies
from app.web import charts
from app.web.formatting import distinguishing_params, fmt_value, varying_names
from kdcore.figures import compression
from kdcore.registry import KINDS, METHODS

HOME_STUDIES = 5
# A configuration opened on the leaderboard lists this many of its runs, best first.
GROUP_RUNS_SHOWN = 200
# Board pages kept rendered per database (each view, filter and page its own), the least recently used dropped.
CACHED_PAGES = 32


def board_view(session: Session, page: BoardPage = BoardPage(), version: tuple | None = None) -> dict:
    """One page of the leaderboard (a slice of its rows, filtered), its chart, each method's best, the
    filters' choices and the pager."""
    if page.view == "runs":
        view = _runs_board(session, page)
        board = leaderboard.ranking(session, version)
    else:
        view = _groups_board(session, page, version)
        board = view.pop("ranking")
    chosen = page.filters
    return {**view, "page": page, "filters": chosen, "pager": page.pager(view["total_rows"]), "page_sizes": PAGE_SIZES,
            "filtered": chosen.active, "choices": _choices(session, board, chosen),
            "query": page.query(), "clear_query": BoardPage(view=page.view, limit=page.limit).query()}


def _groups_board(session: Session, page: BoardPage, version: tuple | None) -> dict:
    found = group_page(session, page.filters, page.limit, page.offset, version, with_best=True)
    rows, best = found["items"], found["best_of_kind"]
    for row in [*rows, *best]:
        row["color"] = charts.kind_color(row["kind"])
        row["settings"] = _settings(row)
        # The compare page draws a configuration as its mean and band over all its runs.
        row["compare_url"] = f"/compare?group={row['key']}"
        row["launch_baseline_url"] = launch_url(row["missing_baseline"])
    board = found["ranking"]
    return {"view": "groups", "groups": rows, "total_rows": found["total"], "total_groups": found["total"],
            "total_done": found["runs"], "all_groups": len(board.groups), "all_done": board.runs,
            "scatter": pareto_chart(rows, pareto_latencies(session)), "best_by_kind": best, "ranking": board}


def _choices(session: Session, board, chosen) -> dict[str, list[tuple]]:
    """What each filter offers, as (value, text); a value the address gives but no run has is offered too,
    so that the controls show the filter the page applies."""
    names = dict(studies.recent_studies(session))
    found = {**filters.choices(session, board), "tags": known_tags(session), "studies": list(names)}
    given = {"kinds": chosen.kind, "datasets": chosen.dataset, "architectures": chosen.architecture,
             "epochs": chosen.epochs, "studies": chosen.study_id, "tags": chosen.tag}
    for name, value in given.items():
        if value is not None and value not in found[name]:
            found[name] = [*found[name], value]
    text = {"kinds": lambda kind: METHODS[kind].title if kind in METHODS else kind,
            "studies": lambda study_id: f"#{study_id} {names.get(study_id) or ''}".strip()}
    return {name: [(value, text.get(name, str)(value)) for value in values] for name, values in found.items()}


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


def _runs_board(session: Session, page: BoardPage) -> dict:
    chosen = page.filters
    rows = single_runs(session, page.limit, page.offset, filters=chosen)
    order = {kind: index for index, kind in enumerate(KINDS)}
    best = sorted(single_runs(session, run_ids=leaderboard.best_run_ids(session, chosen)),
                  key=lambda r: order.get(r["kind"], len(order)))
    teachers = leaderboard.teacher_results(session, {r["teacher_run_id"] for r in [*rows, *best]
                                                     if r["teacher_run_id"] is not None})
    study_tags = studies.study_tags(session, {r["study_id"] for r in rows if r["study_id"] is not None})
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
        # Its study's tags beside its own: a tag filter matches either.
        row["study_tags"] = [t for t in study_tags.get(row["study_id"], []) if t not in row["tags"]]
    total = leaderboard.completed_count(session, chosen)
    return {"view": "runs", "rows": rows, "total_rows": total, "total_done": total,
            "all_done": leaderboard.completed_count(session) if chosen.active else total,
            "scatter": charts.accuracy_scatter(rows), "best_by_kind": best}


# engine -> {BoardPage: (version, view)}, least recently used first; per engine so that apps on different
# databases never share one.
_LEADERBOARD_CACHE: "weakref.WeakKeyDictionary[Any, OrderedDict]" = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def cached_leaderboard_view(session: Session, page: BoardPage = BoardPage(), version: tuple | None = None) -> dict:
    """board_view, reused until leaderboard_version says the set of completed runs changed (``version``:
    that key, when the caller has it already) or a tag was edited (a tag filter, the tags shown)."""
    version = (version if version is not None else leaderboard_version(session), tags_version(session))
    engine = session.get_bind()
    with _CACHE_LOCK:
        pages = _LEADERBOARD_CACHE.setdefault(engine, OrderedDict())
        cached = pages.get(page)
        if cached is not None:
            pages.move_to_end(page)
    if cached and cached[0] == version:
        return cached[1]
    result = board_view(session, page, version[0])
    with _CACHE_LOCK:
        pages[page] = (version, result)
        pages.move_to_end(page)
        while len(pages) > CACHED_PAGES:
            pages.popitem(last=False)
    return result


def forget_leaderboards() -> None:
    """Empty every leaderboard cache (the benchmarks' cold case; a run completing does it by itself)."""
    with _CACHE_LOCK:
        _LEADERBOARD_CACHE.clear()
    leaderboard.forget_rankings()


def home_view(session: Session, page: BoardPage = BoardPage()) -> tuple[dict, dict]:
    """The leaderboard (the cached dictionary itself) and the queue, from one count of the completed runs."""
    version = leaderboard_version(session)
    return cached_leaderboard_view(session, page, version), active_view(session, version[0])


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
