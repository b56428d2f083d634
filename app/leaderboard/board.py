"""The leaderboard by configuration: completed runs grouped by Run.group_key (the same configuration but
for the seed), ranked by the mean of its seeds' values, each described by kdcore.studies.groups.group_figures
(n distinct seeds, mean ± std, its 95 % interval, the difference to the baseline student its runs name:
paired t-test when the seeds match, else Welch) as the study pages are, and compared with its teacher's
configuration. Also the queries of the single-run board that only it needs.

It stays fast with 100,000 runs: one aggregate over a covering index ranks every configuration (its runs
and distinct seeds counted, its values summed; a configuration with a repeated seed is summed again over
its seeds' means), kept until app.leaderboard.completed.leaderboard_version changes and then moved on by the
groups of the runs completed since (a deletion sums again); per-run values are read only for the groups
shown, their baselines and teachers, and kept while their counts hold. Like app.runs.service, functions
take a Session and raise app.store.errors.
"""

from __future__ import annotations

import math
import threading
import weakref
from bisect import bisect_left, insort
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Iterable, NamedTuple

from sqlalchemy import func
from sqlmodel import Session, select

from app.leaderboard.completed import IS_COMPLETED, leaderboard_version
from app.runs.costs import network_cost
from app.runs.filters import RunFilter
from app.store.errors import NotFound
from app.store.models import Run
from kdcore.figures import compression, finite_or_none
from kdcore.registry import BASELINE_KIND, KINDS, METHODS
from kdcore.studies.groups import Outcome, Seeds, group_figures, per_seed
from kdcore.studies.study import baseline_config, group_key, group_label, varying_params

# A completed run without a group key (its stored config no longer validates) is a group of its own.
LOOSE_PREFIX = "run-"
# Keys per IN (...) list, so that a query over thousands of groups stays within every database's limits.
CHUNK = 500
# Describing up to this many groups at once keeps what it read for the next time (Memo).
MEMO_GROUPS = 1000
ACCURACY = Run.final_accuracy
# Completed runs with a result; the status as an expression so that each query walks the index it
# needs rather than every completed run (app.leaderboard.completed.IS_COMPLETED).
COMPLETED = (IS_COMPLETED, ACCURACY.is_not(None))
RUN_COLUMNS = (Run.id, Run.group_key, Run.seed, Run.final_accuracy, Run.best_accuracy, Run.best_epoch,
               Run.parameters, Run.train_seconds, Run.teacher_run_id, Run.study_id, Run.experiment_id,
               Run.architecture, Run.dataset, Run.epochs, Run.baseline_key, Run.num_classes)


class Ranked(NamedTuple):
    """One configuration as the database sums it (a tuple: there are thousands): ``n`` distinct seeds,
    the sum and sum of squares of their values (each seed's mean over its repeats), and its ``runs``."""

    key: str
    kind: str
    n: int
    total: float
    squares: float
    mean: float
    runs: int


def _ranked(key: str, kind: str, n: int, total: float, squares: float, runs: int) -> Ranked:
    return Ranked(key, kind, n, total, squares, total / n, int(runs))


@dataclass
class Memo:
    """What describe read for a ranking, kept while it holds: a group's runs (while their count is the
    same) and its configuration (for good). A completion then costs the queries of the groups it touched."""

    runs: dict[str, tuple[int, list]] = field(default_factory=dict)
    configs: dict[str, dict] = field(default_factory=dict)
    # Teacher runs by id: their group key and size (a student completes only after its teacher did).
    teachers: dict[int, Any] = field(default_factory=dict)
    # What filters ask of a group (app.leaderboard.filters.group_facts): for good, as its configuration.
    facts: dict[str, tuple] = field(default_factory=dict)

    def carried(self) -> "Memo":
        return Memo(dict(self.runs), dict(self.configs), dict(self.teachers), dict(self.facts))


@dataclass
class Ranking:
    groups: list[Ranked]  # best mean first; ties: more runs, then the key (_sort_key)
    by_key: dict[str, Ranked]
    best_of_kind: list[Ranked]  # each method's best configuration, in the registry's order
    runs: int  # the completed runs ranked
    memo: Memo = field(default_factory=Memo)
    # What is worked out from this ranking once and kept with it (app.leaderboard.filters: the filters' choices).
    derived: dict[str, Any] = field(default_factory=dict)

    def rank(self, key: str) -> int | None:
        group = self.by_key.get(key)
        return None if group is None else bisect_left(self.groups, _sort_key(group), key=_sort_key) + 1


def _sort_key(group: Ranked) -> tuple:
    return -group.mean, -group.n, group.key


def _configurations(session: Session, *conditions) -> list[Ranked]:
    """The configurations with completed runs among those ``conditions`` select, summed over their seeds'
    values. One pass counts and sums the runs and counts their distinct seeds (grouped by kind too, so that
    each method's best configuration falls out of it): where every run has its own seed, those are the
    seeds' values already. Only the configurations with a repeated seed are summed again in two levels,
    each seed's mean first, which costs a pass per seed over every configuration if done for all."""
    # Through the connection: 18,000 rows of plain numbers need none of the ORM's row handling (50 ms).
    rows = session.connection().execute(
        select(Run.kind, Run.group_key, func.count(ACCURACY), func.count(Run.seed.distinct()), func.sum(ACCURACY),
               func.sum(ACCURACY * ACCURACY)).where(IS_COMPLETED, *conditions).group_by(Run.kind, Run.group_key)).all()
    groups = [_ranked(key, kind, runs, total, squares, runs) for kind, key, runs, seeds, total, squares in rows
              if key is not None and runs and runs == seeds]
    repeated = [key for _, key, runs, seeds, *_ in rows if key is not None and runs and runs != seeds]
    for part in chunks(repeated):
        values = (select(Run.kind, Run.group_key, func.avg(ACCURACY).label("value"), func.count(ACCURACY).label("runs"))
                  .where(IS_COMPLETED, Run.group_key.in_(part)).group_by(Run.kind, Run.group_key, Run.seed).subquery())
        summed = session.connection().execute(select(values.c.kind, values.c.group_key, func.count(values.c.value),
                                     func.sum(values.c.value), func.sum(values.c.value * values.c.value),
                                     func.sum(values.c.runs)).group_by(values.c.kind, values.c.group_key)).all()
        groups += [_ranked(key, kind, n, total, squares, runs) for kind, key, n, total, squares, runs in summed if n]
    return groups


# engine -> (leaderboard_version, Ranking); per engine so that apps on different databases never share one.
_RANKINGS: "weakref.WeakKeyDictionary[Any, tuple]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def ranking(session: Session, version: tuple | None = None) -> Ranking:
    """Every configuration ranked, reused until ``version`` (completed.leaderboard_version) changes; when
    runs only completed since, the ranking moves on by those runs rather than being summed again."""
    # The version is read before the rows: a run completing in between makes the next call recompute.
    version = version if version is not None else leaderboard_version(session)
    engine = session.get_bind()
    with _LOCK:
        cached = _RANKINGS.get(engine)
    if cached is not None and cached[0] == version:
        return cached[1]
    result = _advance(session, cached, version) if cached is not None else None
    if result is None:
        result = _rank(session)
    with _LOCK:
        _RANKINGS[engine] = (version, result)
    return result


def forget_rankings() -> None:
    with _LOCK:
        _RANKINGS.clear()


def _rank(session: Session) -> Ranking:
    # No condition on the accuracy (count and sum skip NULLs): the first query then has nothing to look up,
    # and reads ix_runs_kind_group_seed_status_accuracy from end to end in GROUP BY order, never a row.
    groups = _configurations(session)
    # Rare: runs without a group key, read one by one (a query that finds none walks ix_runs_group_key).
    return _ranking(groups + _loose(session, Run.group_key.is_(None)))


def _loose(session: Session, *conditions) -> list[Ranked]:
    """Completed runs without a group key: each a configuration of its own."""
    rows = session.exec(select(Run.id, Run.kind, ACCURACY).where(*COMPLETED, *conditions)).all()
    return [_ranked(f"{LOOSE_PREFIX}{run_id}", kind, 1, value, value * value, 1) for run_id, kind, value in rows]


def _advance(session: Session, cached: tuple, version: tuple) -> Ranking | None:
    """The cached ranking moved on by the runs completed since it was made, or None when more changed.

    A completed run never changes, so when the runs that finished after the cached latest finish account
    for the whole rise in the count, nothing was deleted and only their groups move. Anything else (a
    deletion, a clock that went back) leaves it to a full recount."""
    (count, latest), board = cached
    new_count, new_latest = version
    if latest is None or new_latest is None or new_count <= count:
        return None
    rows = session.exec(select(Run.id, Run.group_key)
                        .where(IS_COMPLETED, Run.finished_at > latest)).all()
    if len(rows) != new_count - count:
        return None
    # The groups those runs joined, summed again (a seed's value moves when it repeats), and any loose runs.
    touched = sorted({key for _, key in rows if key is not None})
    moved: list[Ranked] = []
    for part in chunks(touched):
        moved += _configurations(session, Run.group_key.in_(part))
    loose = [run_id for run_id, key in rows if key is None]
    for part in chunks(loose):
        moved += _loose(session, Run.id.in_(part))
    groups, by_key, runs = list(board.groups), dict(board.by_key), board.runs
    for group in moved:
        if not (math.isfinite(group.total) and math.isfinite(group.squares)):
            return None  # a non-finite sum: left to the full count, which drops it
        old = by_key.get(group.key)
        if old is not None:
            del groups[bisect_left(groups, _sort_key(old), key=_sort_key)]
            runs -= old.runs
        by_key[group.key] = group
        runs += group.runs
        insort(groups, group, key=_sort_key)
    return Ranking(groups=groups, by_key=by_key, best_of_kind=best_of_kind(groups), runs=runs,
                   memo=board.memo.carried())


def _ranking(groups: list[Ranked]) -> Ranking:
    groups = [g for g in groups if math.isfinite(g.total) and math.isfinite(g.squares)]
    # The order of _sort_key in three stable sorts on C-level keys: thousands of groups in milliseconds.
    groups.sort(key=attrgetter("key"))
    groups.sort(key=attrgetter("n"), reverse=True)
    groups.sort(key=attrgetter("mean"), reverse=True)
    return Ranking(groups=groups, by_key={g.key: g for g in groups}, best_of_kind=best_of_kind(groups),
                   runs=sum(g.runs for g in groups))


def best_of_kind(groups: list[Ranked]) -> list[Ranked]:
    """Each method's first group of ``groups`` (ranked best first), in the registry's order of methods."""
    best: dict[str, Ranked] = {}
    for group in groups:
        best.setdefault(group.kind, group)
    order = {kind: index for index, kind in enumerate(KINDS)}
    return sorted(best.values(), key=lambda g: order.get(g.kind, len(order)))


def group_runs(session: Session, key: str) -> tuple[dict, list[dict]]:
    """One configuration, described, and its completed runs, best first."""
    board = ranking(session)
    group = board.by_key.get(key)
    if group is None:
        raise NotFound(f"no completed runs share the configuration {key!r}")
    runs = _known_runs(session, board, board.memo, [key])[key]
    rows = [{"run_id": r.id, "seed": r.seed, "final_accuracy": finite_or_none(r.final_accuracy),
             "best_accuracy": finite_or_none(r.best_accuracy), "best_epoch": r.best_epoch,
             "train_seconds": finite_or_none(r.train_seconds), "teacher_run_id": r.teacher_run_id,
             "study_id": r.study_id, "experiment_id": r.experiment_id}
            for r in runs]
    rows.sort(key=lambda r: (-(r["final_accuracy"] or 0.0), r["run_id"]))
    return describe(session, board, [group], runs_of={key: runs})[0], rows


def _role(kind: str) -> str:
    method = METHODS.get(kind)
    if method is not None and method.teaches:
        return "teacher"
    return "baseline" if kind == BASELINE_KIND else "method"


def chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _runs_of(session: Session, keys: Iterable[str]) -> dict[str, list]:
    """The completed runs of each group (column rows, not Run objects: no config is loaded)."""
    keys = list(dict.fromkeys(keys))
    loose = {int(k[len(LOOSE_PREFIX):]): k for k in keys if k.startswith(LOOSE_PREFIX)}
    grouped = [k for k in keys if not k.startswith(LOOSE_PREFIX)]
    found: dict[str, list] = {key: [] for key in keys}
    for part in chunks(grouped):
        for row in session.exec(select(*RUN_COLUMNS).where(*COMPLETED, Run.group_key.in_(part))).all():
            found[row.group_key].append(row)
    for part in chunks(list(loose)):
        for row in session.exec(select(*RUN_COLUMNS).where(*COMPLETED, Run.id.in_(part))).all():
            found[loose[row.id]].append(row)
    for rows in found.values():
        rows.sort(key=lambda r: r.id)
    return found


def _known_runs(session: Session, board: Ranking, memo: Memo, keys: Iterable[str]) -> dict[str, list]:
    """_runs_of, reading only the groups whose runs ``memo`` does not hold at their current count."""
    keys = list(dict.fromkeys(keys))
    found = {key: memo.runs[key][1] for key in keys
             if key in memo.runs and key in board.by_key and memo.runs[key][0] == board.by_key[key].runs}
    fetched = _runs_of(session, [key for key in keys if key not in found])
    for key, rows in fetched.items():
        if key in board.by_key and len(rows) == board.by_key[key].runs:
            memo.runs[key] = (len(rows), rows)
    return {**found, **fetched}


def _configs(session: Session, memo: Memo, first: dict[str, Any]) -> dict[str, dict]:
    """Each group's configuration (from its first run: replicates share it)."""
    missing = {row.id: key for key, row in first.items() if key not in memo.configs}
    for part in chunks(list(missing)):
        for run_id, config in session.exec(select(Run.id, Run.config).where(Run.id.in_(part))).all():
            memo.configs[missing[run_id]] = config
    return {key: memo.configs.get(key, {}) for key in first}


def _teachers(session: Session, memo: Memo, run_ids: set[int]) -> dict[int, Any]:
    for part in chunks(sorted(i for i in run_ids if i not in memo.teachers)):
        for row in session.exec(select(Run.id, Run.group_key, Run.parameters).where(Run.id.in_(part))).all():
            memo.teachers[row.id] = row
    return {i: memo.teachers[i] for i in run_ids if i in memo.teachers}


def _outcomes(runs: list, kind: str, config: dict) -> list[Outcome]:
    """A group's completed runs as kdcore.studies.groups counts them (oldest first, as _runs_of keeps them)."""
    params = dict(config.get("params") or {})
    return [Outcome(group=r.group_key or f"{LOOSE_PREFIX}{r.id}", kind=kind, role=_role(kind),
                    architecture=r.architecture, params=params, seed=r.seed, final_accuracy=r.final_accuracy,
                    best_accuracy=r.best_accuracy, run_id=r.id, baseline=r.baseline_key, epochs=r.epochs)
            for r in runs]


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return math.fsum(values) / len(values) if values else None


def missing_baseline(session: Session, config: dict, wanted: str | None) -> dict | None:
    """The baseline student to launch for a group whose runs name ``wanted`` but no such student has a
    result: that group's configuration (as its other runs, failed or queued, have it; else the baseline of
    the group's own epochs), with the group's first seed. None when no configuration gives that key."""
    baseline = baseline_config(config)
    if baseline is None or wanted is None:
        return None
    if group_key(baseline) != wanted:
        epochs = session.exec(select(Run.epochs).where(Run.group_key == wanted).limit(1)).first()
        baseline = baseline_config({**config, "epochs": epochs}) if epochs else None
        if baseline is None or group_key(baseline) != wanted:
            return None
    return baseline.to_json_dict()


def describe(session: Session, board: Ranking, shown: list[Ranked],
             runs_of: dict[str, list] | None = None) -> list[dict]:
    """Each group of ``shown`` as the leaderboard shows it (app.leaderboard.responses.LeaderboardGroupOut):
    its figures and its difference to the baseline student its runs name, from the same function as a
    study page's (kdcore.studies.groups.group_figures)."""
    if not shown:
        return []
    # Thousands of groups at once read afresh rather than keeping every run in memory.
    memo = board.memo if len(shown) <= MEMO_GROUPS else Memo()
    runs_of = {**(runs_of or {})}
    runs_of.update(_known_runs(session, board, memo, [g.key for g in shown if g.key not in runs_of]))
    first = {g.key: runs_of[g.key][0] for g in shown if runs_of.get(g.key)}
    # A group's baseline: the baseline student group its first run names, when that group has results.
    baseline_of = {g.key: first[g.key].baseline_key for g in shown
                   if g.kind != BASELINE_KIND and g.key in first and first[g.key].baseline_key}
    found = {key: b for key, b in baseline_of.items()
             if b != key and b in board.by_key and board.by_key[b].kind == BASELINE_KIND}
    runs_of.update(_known_runs(session, board, memo, [b for b in set(found.values()) if b not in runs_of]))
    configs = _configs(session, memo, {**first, **{b: runs_of[b][0] for b in found.values() if runs_of.get(b)}})
    teachers = _teachers(session, memo, {r.teacher_run_id for g in shown for r in runs_of.get(g.key, [])
                                   if r.teacher_run_id is not None})
    seeds: dict[str, Seeds] = {}  # once per group: many groups share a baseline or a teacher

    def seeds_of(key: str) -> Seeds:
        if key not in seeds:
            seeds[key] = per_seed(_outcomes(runs_of.get(key, []), board.by_key[key].kind, configs.get(key, {})))
        return seeds[key]

    entries = []
    for group in shown:
        runs = runs_of.get(group.key, [])
        head = first.get(group.key)
        config = configs.get(group.key, {})
        baseline = found.get(group.key)
        figures = group_figures(seeds_of(group.key), seeds_of(baseline) if baseline else ())
        entry: dict[str, Any] = {
            "rank": board.rank(group.key), "key": group.key, "kind": group.kind,
            "title": METHODS[group.kind].title if group.kind in METHODS else group.kind, "label": None,
            "role": _role(group.kind), "architecture": head.architecture if head else None,
            "dataset": head.dataset if head else None, "num_classes": head.num_classes if head else None,
            "subset": config.get("subset"),
            "epochs": head.epochs if head else None, "params": dict(config.get("params") or {}),
            **figures,
            "parameters": max((r.parameters for r in runs if r.parameters), default=None),
            **_forward_cost(head),
            "train_seconds": _mean([r.train_seconds for r in runs]),
            "run_ids": [r.id for r in runs], "seeds": sorted({r.seed for r in runs if r.seed is not None}),
            "study_ids": sorted({r.study_id for r in runs if r.study_id is not None}),
            "teacher_key": None, "teacher_mean": None, "vs_teacher": None, "compression": None,
            "baseline_key": None, "baseline_n": None, "baseline_mean": None, "baseline_epochs": None,
            "missing_baseline": None,
        }
        _add_teacher(entry, runs, teachers)
        if baseline is not None:
            theirs = group_figures(seeds_of(baseline))
            entry.update(baseline_key=baseline, baseline_n=theirs["n"], baseline_mean=theirs["mean"],
                         baseline_epochs=runs_of[baseline][0].epochs)
        elif entry["role"] == "method" and head is not None:
            entry["missing_baseline"] = missing_baseline(session, config, baseline_of.get(group.key))
        entries.append(entry)
    # Against the teacher configuration's mean, from its runs as every shown mean is.
    teacher_keys = {e["teacher_key"] for e in entries if e["teacher_key"] in board.by_key}
    runs_of.update(_known_runs(session, board, memo, [k for k in teacher_keys if k not in runs_of]))
    for entry in entries:
        if entry["teacher_key"] in teacher_keys and entry["mean"] is not None:
            entry["teacher_mean"] = group_figures(seeds_of(entry["teacher_key"]))["mean"]
            entry["vs_teacher"] = entry["mean"] - entry["teacher_mean"]
    varying = varying_params([{"method": e["kind"], "params": e["params"]} for e in entries])
    for entry in entries:
        entry["label"] = group_label({**entry, "method": entry["kind"]}, varying)
    return entries


def _forward_cost(head) -> dict:
    """The network's forward FLOPs and MACs at batch 1 (the same for every run of a configuration)."""
    cost = network_cost(head.architecture, head.num_classes) if head is not None else None
    return {"flops": cost["flops"] if cost else None, "macs": cost["macs"] if cost else None}


def _add_teacher(entry: dict, runs: list, teachers: dict[int, Any]) -> None:
    """The teacher's configuration (its runs' group, whatever seeds they had) and its size."""
    known = [teachers[r.teacher_run_id] for r in runs if r.teacher_run_id in teachers]
    keys = Counter(t.group_key for t in known if t.group_key)
    if not keys:
        return
    entry["teacher_key"] = keys.most_common(1)[0][0]
    entry["compression"] = compression(max((t.parameters for t in known if t.parameters), default=None),
                                       entry["parameters"])


# ---------------------------------------------------------------- the single-run board

def completed_count(session: Session, filters: RunFilter = RunFilter()) -> int:
    """Completed runs with a final accuracy (that match ``filters``): the single-run board's length."""
    if not filters.active:  # through ix_runs_status, never a row
        return session.exec(select(func.count(ACCURACY)).where(Run.status == "completed")).one()
    return session.exec(select(func.count(ACCURACY)).where(IS_COMPLETED, *filters.conditions())).one()


def best_run_ids(session: Session, filters: RunFilter = RunFilter()) -> list[int]:
    """Each kind's best completed run (that matches ``filters``; ties: the earlier run), in the registry's order."""
    order = {kind: index for index, kind in enumerate(KINDS)}
    conditions = filters.conditions()
    best = dict(session.exec(select(Run.kind, func.max(ACCURACY)).where(IS_COMPLETED, *conditions)
                             .group_by(Run.kind)).all())
    best = {kind: accuracy for kind, accuracy in best.items() if accuracy is not None}
    if not best:
        return []
    # One lookup of those accuracies on ix_runs_final_accuracy, rather than one query per kind.
    rows = session.exec(select(Run.id, Run.kind, ACCURACY).where(ACCURACY.in_(set(best.values())), IS_COMPLETED,
                                                                 *conditions)).all()
    first: dict[str, int] = {}
    for run_id, kind, accuracy in sorted(rows):
        if best.get(kind) == accuracy:
            first.setdefault(kind, run_id)
    return [first[kind] for kind in sorted(first, key=lambda k: order.get(k, len(order)))]


def teacher_results(session: Session, run_ids: set[int]) -> dict[int, tuple[float | None, int | None]]:
    """{run id: (final accuracy, parameters)} of the completed ones among ``run_ids``."""
    found = {}
    for part in chunks(sorted(run_ids)):
        rows = session.exec(select(Run.id, ACCURACY, Run.parameters).where(*COMPLETED, Run.id.in_(part))).all()
        found.update({run_id: (finite_or_none(accuracy), parameters) for run_id, accuracy, parameters in rows})
    return found

