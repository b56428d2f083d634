"""The board by configuration, filtered (app.runs.filters.RunFilter) and paged, without summing anything again.

The ranking (app.leaderboard.board) holds every configuration; a filter keeps those it matches, in their
order. The method is in the ranking already; dataset, network and epochs are facts of a configuration
(its group key includes them, so its runs share them), read for every configuration from one index
(ix_runs_group_facts) the first time a filter asks, and kept with the ranking (Memo.facts). A study or a tag chooses the configurations with a completed run in
that study or so tagged (the tags table's index finds them); their figures stay those of all their runs.
"""

from __future__ import annotations

from sqlmodel import Session, select

from app.leaderboard.board import COMPLETED, LOOSE_PREFIX, Ranked, Ranking, best_of_kind, chunks, describe, ranking
from app.runs.filters import RunFilter
from app.store.models import Run

# Past this many configurations without facts, one query reads them all rather than a query per CHUNK keys.
WHOLE = 2000
FACTS = (Run.dataset, Run.architecture, Run.epochs)


def matching(session: Session, board: Ranking, filters: RunFilter) -> list[Ranked]:
    """The ranked configurations ``filters`` match, best first (all of them without a filter)."""
    groups = board.groups
    if filters.kind is not None:
        groups = [g for g in groups if g.kind == filters.kind]
    wanted = (filters.dataset, filters.architecture, filters.epochs)
    if any(value is not None for value in wanted):
        facts = group_facts(session, board)
        groups = [g for g in groups if _fits(facts.get(g.key), wanted)]
    if filters.by_membership and groups:
        keys = member_keys(session, RunFilter(study_id=filters.study_id, tag=filters.tag))
        groups = [g for g in groups if g.key in keys]
    if filters.max_flops is not None and groups:
        # A configuration's runs share its network and class count: those of its runs under the limit are all.
        keys = member_keys(session, RunFilter(max_flops=filters.max_flops, class_counts=filters.class_counts))
        groups = [g for g in groups if g.key in keys]
    return groups


def _fits(facts: tuple | None, wanted: tuple) -> bool:
    return facts is not None and all(want is None or want == have for want, have in zip(wanted, facts))


def group_page(session: Session, filters: RunFilter, limit: int, offset: int = 0,
               version: tuple | None = None, with_best: bool = False) -> dict:
    """Configurations ``offset`` to ``offset + limit`` of those ``filters`` match, described and numbered
    among them; how many match and their completed runs; and ``with_best``, each method's best among them."""
    board = ranking(session, version)
    groups = matching(session, board, filters)
    shown = groups[offset:offset + limit]
    best = (best_of_kind(groups) if filters.active else board.best_of_kind) if with_best else []
    keys = {g.key for g in shown}
    # One description for the rows and each method's best, so both label their settings alike.
    described = describe(session, board, shown + [g for g in best if g.key not in keys])
    by_key = {row["key"]: row for row in described}
    items = described[:len(shown)]
    for position, item in enumerate(items, start=offset + 1):
        item["rank"] = position
    return {"items": items, "total": len(groups), "runs": sum(g.runs for g in groups) if filters.active else board.runs,
            "best_of_kind": [by_key[g.key] for g in best], "ranking": board}


def group_facts(session: Session, board: Ranking) -> dict[str, tuple]:
    """Every ranked configuration's (dataset, architecture, epochs), which all its runs share."""
    facts = board.memo.facts
    if "facts" in board.derived:
        return facts
    missing = [key for key in board.by_key if key not in facts]
    loose = [int(key[len(LOOSE_PREFIX):]) for key in missing if key.startswith(LOOSE_PREFIX)]
    grouped = [key for key in missing if not key.startswith(LOOSE_PREFIX)]
    # DISTINCT over ix_runs_group_facts, which holds these columns: no run is read.
    query = select(Run.group_key, Run.dataset, Run.architecture, Run.epochs).distinct()
    parts = [query.where(Run.group_key.is_not(None))] if len(grouped) > WHOLE else \
        [query.where(Run.group_key.in_(part)) for part in chunks(grouped)]
    for part in parts:
        for key, *fact in session.connection().execute(part).all():
            facts[key] = tuple(fact)
    for part in chunks(loose):
        rows = session.connection().execute(select(Run.id, *FACTS).where(Run.id.in_(part))).all()
        facts.update({f"{LOOSE_PREFIX}{run_id}": tuple(fact) for run_id, *fact in rows})
    board.derived["facts"] = True
    return facts


def member_keys(session: Session, filters: RunFilter) -> set[str]:
    """The configurations with a completed run that ``filters`` match (a study's, a tag's)."""
    rows = session.connection().execute(select(Run.id, Run.group_key).where(*COMPLETED, *filters.conditions())).all()
    return {key if key is not None else f"{LOOSE_PREFIX}{run_id}" for run_id, key in rows}


def choices(session: Session, board: Ranking) -> dict[str, list]:
    """The values the board's filters offer: each method with a ranked configuration, and each dataset,
    network and epoch count of a stored run (worked out once per ranking)."""
    if "choices" not in board.derived:
        # One pass over ix_runs_group_facts, a few rows back: cheaper than every configuration's facts,
        # which a page without a filter on them does not need. A value whose runs have not completed yet
        # is offered too, and matches nothing until one does.
        rows = session.connection().execute(select(*FACTS).distinct()).all()
        columns = [sorted(set(column) - {None}) for column in zip(*rows)] if rows else [[], [], []]
        # Each method present has a best configuration: the methods, without a pass over every group.
        board.derived["choices"] = {"kinds": [g.kind for g in board.best_of_kind], "datasets": columns[0],
                                    "architectures": columns[1], "epochs": columns[2]}
    return {name: list(values) for name, values in board.derived["choices"].items()}
