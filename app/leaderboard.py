"""The leaderboard by configuration: completed runs grouped by Run.group_key (the same configuration but
for the seed), ranked by mean final accuracy, each with n, mean ± std, its 95 % interval, its difference
to the baseline student (kdcore.stats.difference: paired t-test when the seeds match, else Welch) and
to its teacher's configuration. Also the queries of the single-run board that only it needs.

It stays fast with 100,000 runs: one aggregate over a covering index ranks every configuration
(count, sum and sum of squares, which kdcore.stats.summarize_moments turns into the statistics) and is
kept until services.leaderboard_version changes; per-run values are read only for the groups shown
and for their baselines. Like app.services, functions take a Session and raise app.errors.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple

from sqlalchemy import func
from sqlmodel import Session, select

from app.errors import NotFound
from app.models import Run
from app.services import IS_COMPLETED, leaderboard_version
from kdcore.figures import compression, finite_or_none
from kdcore.registry import BASELINE_KIND, KINDS, METHODS
from kdcore.stats import difference, summarize_moments
from kdcore.study import group_label, varying_params

# A completed run without a group key (its stored config no longer validates) is a group of its own.
LOOSE_PREFIX = "run-"
# Keys per IN (...) list, so that "show all" over thousands of groups stays within every database's limits.
CHUNK = 500
ACCURACY = Run.final_accuracy
# Completed runs with a result; the status as an expression so that each query walks the index it
# needs rather than every completed run (app.services.IS_COMPLETED).
COMPLETED = (IS_COMPLETED, ACCURACY.is_not(None))
RUN_COLUMNS = (Run.id, Run.group_key, Run.seed, Run.final_accuracy, Run.best_accuracy, Run.best_epoch,
               Run.parameters, Run.train_seconds, Run.teacher_run_id, Run.study_id, Run.experiment_id,
               Run.architecture, Run.dataset, Run.epochs, Run.baseline_key, Run.finished_at)


class Ranked(NamedTuple):
    """One configuration's completed runs as the database sums them (a tuple: there are thousands)."""

    key: str
    kind: str
    n: int
    total: float
    squares: float
    mean: float


def _ranked(key: str, kind: str, n: int, total: float, squares: float) -> Ranked:
    return Ranked(key, kind, n, total, squares, total / n)


@dataclass
class Ranking:
    groups: list[Ranked]  # best mean first; ties: more runs, then the key
    by_key: dict[str, Ranked]
    rank_of: dict[str, int]
    best_of_kind: list[Ranked]  # each method's best configuration, in the registry's order
    runs: int  # the completed runs ranked


# engine -> (leaderboard_version, Ranking); per engine so that apps on different databases never share one.
_RANKINGS: "weakref.WeakKeyDictionary[Any, tuple]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def ranking(session: Session, version: tuple | None = None) -> Ranking:
    """Every configuration ranked, reused until ``version`` (services.leaderboard_version) changes."""
    # The version is read before the rows: a run completing in between makes the next call recompute.
    version = version if version is not None else leaderboard_version(session)
    engine = session.get_bind()
    with _LOCK:
        cached = _RANKINGS.get(engine)
    if cached is not None and cached[0] == version:
        return cached[1]
    result = _rank(session)
    with _LOCK:
        _RANKINGS[engine] = (version, result)
    return result


def forget_rankings() -> None:
    with _LOCK:
        _RANKINGS.clear()


def _rank(session: Session) -> Ranking:
    # Grouped by kind too: ix_runs_status_kind_group_accuracy covers the whole query, and each
    # method's best configuration falls out of the same pass.
    # No condition on the accuracy (count and sum skip NULLs): the query then has nothing to look up, and
    # reads ix_runs_kind_group_status_accuracy from end to end in GROUP BY order, never a row.
    rows = session.exec(select(Run.kind, Run.group_key, func.count(ACCURACY), func.sum(ACCURACY),
                               func.sum(ACCURACY * ACCURACY))
                        .where(IS_COMPLETED).group_by(Run.kind, Run.group_key)).all()
    groups = [_ranked(key, kind, n, total, squares) for kind, key, n, total, squares in rows
              if key is not None and n]
    if any(key is None for _, key, *_ in rows):  # rare: read those runs one by one
        loose = session.exec(select(Run.id, Run.kind, ACCURACY).where(*COMPLETED, Run.group_key.is_(None))).all()
        groups += [_ranked(f"{LOOSE_PREFIX}{run_id}", kind, 1, value, value * value) for run_id, kind, value in loose]
    groups = [g for g in groups if math.isfinite(g.total) and math.isfinite(g.squares)]
    groups.sort(key=_order)
    best: dict[str, Ranked] = {}
    for group in groups:
        best.setdefault(group.kind, group)
    order = {kind: index for index, kind in enumerate(KINDS)}
    return Ranking(groups=groups, by_key={g.key: g for g in groups},
                   rank_of={g.key: rank for rank, g in enumerate(groups, start=1)},
                   best_of_kind=sorted(best.values(), key=lambda g: order.get(g.kind, len(order))),
                   runs=sum(g.n for g in groups))


def _order(group: Ranked) -> tuple:
    return -group.mean, -group.n, group.key


def group_page(session: Session, limit: int | None, offset: int = 0,
               version: tuple | None = None) -> tuple[list[dict], int, Ranking]:
    """Configurations ranked ``offset`` to ``offset + limit`` (all with no limit), described; how many there are."""
    board = ranking(session, version)
    shown = board.groups[offset:offset + limit] if limit is not None else board.groups[offset:]
    return describe(session, board, shown), len(board.groups), board


def group_runs(session: Session, key: str) -> tuple[dict, list[dict]]:
    """One configuration, described, and its completed runs, best first."""
    board = ranking(session)
    group = board.by_key.get(key)
    if group is None:
        raise NotFound(f"no completed runs share the configuration {key!r}")
    runs = _runs_of(session, [key]).get(key, [])
    rows = [{"run_id": r.id, "seed": r.seed, "final_accuracy": finite_or_none(r.final_accuracy),
             "best_accuracy": finite_or_none(r.best_accuracy), "best_epoch": r.best_epoch,
             "train_seconds": finite_or_none(r.train_seconds), "teacher_run_id": r.teacher_run_id,
             "study_id": r.study_id, "experiment_id": r.experiment_id, "finished_at": r.finished_at}
            for r in runs]
    rows.sort(key=lambda r: (-(r["final_accuracy"] or 0.0), r["run_id"]))
    return describe(session, board, [group], runs_of={key: runs})[0], rows


def _role(kind: str) -> str:
    method = METHODS.get(kind)
    if method is not None and method.teaches:
        return "teacher"
    return "baseline" if kind == BASELINE_KIND else "method"


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _runs_of(session: Session, keys: Iterable[str]) -> dict[str, list]:
    """The completed runs of each group (column rows, not Run objects: no config is loaded)."""
    keys = list(dict.fromkeys(keys))
    loose = {int(k[len(LOOSE_PREFIX):]): k for k in keys if k.startswith(LOOSE_PREFIX)}
    grouped = [k for k in keys if not k.startswith(LOOSE_PREFIX)]
    found: dict[str, list] = {key: [] for key in keys}
    for part in _chunks(grouped):
        for row in session.exec(select(*RUN_COLUMNS).where(*COMPLETED, Run.group_key.in_(part))).all():
            found[row.group_key].append(row)
    for part in _chunks(list(loose)):
        for row in session.exec(select(*RUN_COLUMNS).where(*COMPLETED, Run.id.in_(part))).all():
            found[loose[row.id]].append(row)
    for rows in found.values():
        rows.sort(key=lambda r: r.id)
    return found


def _configs(session: Session, run_ids: list[int]) -> dict[int, dict]:
    found = {}
    for part in _chunks(run_ids):
        found.update(session.exec(select(Run.id, Run.config).where(Run.id.in_(part))).all())
    return found


def _baselines(session: Session, board: Ranking, baseline_keys: set[str]) -> dict[str, str]:
    """baseline_key -> the baseline student's group: of kind BASELINE_KIND with that key, the one with
    the most completed runs (ties: the better mean, then the key)."""
    if BASELINE_KIND is None or not baseline_keys:
        return {}
    candidates: dict[str, set[str]] = {}
    for part in _chunks(sorted(baseline_keys)):
        rows = session.exec(select(Run.baseline_key, Run.group_key)
                            .where(*COMPLETED, Run.kind == BASELINE_KIND, Run.baseline_key.in_(part),
                                   Run.group_key.is_not(None)).distinct()).all()
        for baseline_key, key in rows:
            if key in board.by_key:
                candidates.setdefault(baseline_key, set()).add(key)
    return {b: min(keys, key=lambda k: (-board.by_key[k].n, -board.by_key[k].mean, k))
            for b, keys in candidates.items()}


def _teachers(session: Session, run_ids: set[int]) -> dict[int, Any]:
    found = {}
    for part in _chunks(sorted(run_ids)):
        for row in session.exec(select(Run.id, Run.group_key, Run.parameters).where(Run.id.in_(part))).all():
            found[row.id] = row
    return found


def _by_seed(runs: list) -> dict:
    """{seed: accuracy} when every run has its own seed (so that a baseline with the same seeds pairs
    with it); else {("run", id): accuracy}, which never pairs: repeats of one seed are compared by Welch."""
    seeds = [r.seed for r in runs]
    if None not in seeds and len(set(seeds)) == len(seeds):
        return {r.seed: r.final_accuracy for r in runs}
    return {("run", r.id): r.final_accuracy for r in runs}


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return math.fsum(values) / len(values) if values else None


def describe(session: Session, board: Ranking, shown: list[Ranked],
             runs_of: dict[str, list] | None = None) -> list[dict]:
    """Each group of ``shown`` as the leaderboard shows it (see app.api_responses.GroupRowOut)."""
    if not shown:
        return []
    runs_of = runs_of if runs_of is not None else _runs_of(session, [g.key for g in shown])
    first = {key: rows[0] for key, rows in runs_of.items() if rows}
    configs = _configs(session, [row.id for row in first.values()])
    wanted = {first[g.key].baseline_key for g in shown
              if g.kind != BASELINE_KIND and g.key in first and first[g.key].baseline_key}
    baseline_of = _baselines(session, board, wanted)
    missing = [key for key in set(baseline_of.values()) if key not in runs_of]
    runs_of = {**runs_of, **_runs_of(session, missing)}
    teachers = _teachers(session, {r.teacher_run_id for g in shown for r in runs_of.get(g.key, [])
                                   if r.teacher_run_id is not None})
    entries = []
    for group in shown:
        runs = runs_of.get(group.key, [])
        head = first.get(group.key)
        config = configs.get(head.id, {}) if head else {}
        summary = summarize_moments(group.n, group.total, group.squares)
        entry: dict[str, Any] = {
            "rank": board.rank_of.get(group.key), "key": group.key, "kind": group.kind,
            "title": METHODS[group.kind].title if group.kind in METHODS else group.kind, "label": None,
            "role": _role(group.kind), "architecture": head.architecture if head else None,
            "dataset": head.dataset if head else None, "subset": config.get("subset"),
            "epochs": head.epochs if head else None, "params": dict(config.get("params") or {}),
            **summary.to_json_dict(),
            "best_mean": _mean([r.best_accuracy for r in runs]),
            "parameters": max((r.parameters for r in runs if r.parameters), default=None),
            "train_seconds": _mean([r.train_seconds for r in runs]),
            "run_ids": [r.id for r in runs], "seeds": sorted({r.seed for r in runs if r.seed is not None}),
            "study_ids": sorted({r.study_id for r in runs if r.study_id is not None}),
            "teacher_key": None, "teacher_mean": None, "vs_teacher": None, "compression": None,
            "baseline_key": None, "baseline_n": None, "baseline_mean": None, "vs_baseline": None,
        }
        _add_teacher(entry, runs, teachers, board)
        baseline = baseline_of.get(head.baseline_key) if head and group.kind != BASELINE_KIND else None
        if baseline is not None and baseline != group.key:
            theirs = runs_of.get(baseline, [])
            diff = difference(_by_seed(runs), _by_seed(theirs)) if runs and theirs else None
            entry.update(baseline_key=baseline, baseline_n=board.by_key[baseline].n,
                         baseline_mean=board.by_key[baseline].mean,
                         vs_baseline=diff.to_json_dict() if diff else None)
        entries.append(entry)
    varying = varying_params([{"method": e["kind"], "params": e["params"]} for e in entries])
    for entry in entries:
        entry["label"] = group_label({**entry, "method": entry["kind"]}, varying)
    return entries


def _add_teacher(entry: dict, runs: list, teachers: dict[int, Any], board: Ranking) -> None:
    """The teacher's configuration (its runs' group, whatever seeds they had) and its mean."""
    known = [teachers[r.teacher_run_id] for r in runs if r.teacher_run_id in teachers]
    keys = Counter(t.group_key for t in known if t.group_key)
    if not keys:
        return
    key = keys.most_common(1)[0][0]
    entry["teacher_key"] = key
    entry["compression"] = compression(max((t.parameters for t in known if t.parameters), default=None),
                                       entry["parameters"])
    teacher = board.by_key.get(key)
    if teacher is not None and entry["mean"] is not None:
        entry["teacher_mean"] = teacher.mean
        entry["vs_teacher"] = entry["mean"] - teacher.mean


# ---------------------------------------------------------------- the single-run board

def completed_count(session: Session) -> int:
    """Completed runs with a final accuracy: the single-run board's length."""
    return session.exec(select(func.count(ACCURACY)).where(Run.status == "completed")).one()


def best_run_ids(session: Session) -> list[int]:
    """Each kind's best completed run (ties: the earlier run), in the registry's order."""
    order = {kind: index for index, kind in enumerate(KINDS)}
    best = dict(session.exec(select(Run.kind, func.max(ACCURACY)).where(IS_COMPLETED).group_by(Run.kind)).all())
    best = {kind: accuracy for kind, accuracy in best.items() if accuracy is not None}
    if not best:
        return []
    # One lookup of those accuracies on ix_runs_final_accuracy, rather than one query per kind.
    rows = session.exec(select(Run.id, Run.kind, ACCURACY).where(ACCURACY.in_(set(best.values())), IS_COMPLETED)).all()
    first: dict[str, int] = {}
    for run_id, kind, accuracy in sorted(rows):
        if best.get(kind) == accuracy:
            first.setdefault(kind, run_id)
    return [first[kind] for kind in sorted(first, key=lambda k: order.get(k, len(order)))]


def teacher_results(session: Session, run_ids: set[int]) -> dict[int, tuple[float | None, int | None]]:
    """{run id: (final accuracy, parameters)} of the completed ones among ``run_ids``."""
    found = {}
    for part in _chunks(sorted(run_ids)):
        rows = session.exec(select(Run.id, ACCURACY, Run.parameters).where(*COMPLETED, Run.id.in_(part))).all()
        found.update({run_id: (finite_or_none(accuracy), parameters) for run_id, accuracy, parameters in rows})
    return found

