"""The board by configuration, filtered (app.runs.filters.RunFilter) and paged, without summing anything again.

The ranking (app.leaderboard.board) holds every configuration; a filter keeps those it matches, in their
order. The method is in the ranking already; dataset, network and epochs are facts of a configuration
(its group key includes them, so its runs share them), read once per configuration from its first run and
kept with the ranking (Memo.facts). A study or a tag chooses the configurations with a completed run in
that study or so tagged (the tags table's index finds them); their figures stay those of all their runs.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from app.leaderboard.board import COMPLETED, LOOSE_PREFIX, Ranked, Ranking, best_of_kind, chunks, describe, ranking
from app.runs.filters import RunFilter
from app.store.models import Run
from kdcore.registry import KINDS

# Past this many configurations without facts, one query reads them all rather than a query per CHUNK keys.
WHOLE = 2000


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
    return groups


def _fits(facts: tuple | None, wanted: tuple) -> bool:
    return facts is not None and all(want is None or want == have for want, have in zip(wanted, facts))


def group_page(session: Session, filters: RunFilter, limit: int, offset: int = 0,
               version: tuple | None = None) -> dict:
    """Configurations ``offset`` to ``offset + limit`` of those ``filters`` match, described and numbered
    among them; how many match and their completed runs; and each method's best among them."""
    board = ranking(session, version)
    groups = matching(session, board, filters)
    shown = groups[offset:offset + limit]
    best = best_of_kind(groups) if filters.active else board.best_of_kind
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
    """Every ranked configuration's (dataset, architecture, epochs), from its first run."""
    facts = board.memo.facts
    missing = [g.key for g in board.groups if g.key not in facts]
    loose = [int(key[len(LOOSE_PREFIX):]) for key in missing if key.startswith(LOOSE_PREFIX)]
    grouped = [key for key in missing if not key.startswith(LOOSE_PREFIX)]
    columns = (Run.group_key, Run.dataset, Run.architecture, Run.epochs)
    if len(grouped) > WHOLE:
        # Each group's first run: min(id) per key from ix_runs_group_key alone, then those rows by id.
        firsts = select(func.min(Run.id)).where(Run.group_key.is_not(None)).group_by(Run.group_key)
        parts = [select(*columns).where(Run.id.in_(firsts))]
    else:
        parts = [select(*columns).where(Run.id.in_(select(func.min(Run.id)).where(Run.group_key.in_(part))
                                                   .group_by(Run.group_key))) for part in chunks(grouped)]
    for query in parts:
        for key, *fact in session.connection().execute(query).all():
            facts[key] = tuple(fact)
    for part in chunks(loose):
        rows = session.connection().execute(select(Run.id, *columns[1:]).where(Run.id.in_(part))).all()
        facts.update({f"{LOOSE_PREFIX}{run_id}": tuple(fact) for run_id, *fact in rows})
    return facts


def member_keys(session: Session, filters: RunFilter) -> set[str]:
    """The configurations with a completed run that ``filters`` match (a study's, a tag's)."""
    rows = session.connection().execute(select(Run.id, Run.group_key).where(*COMPLETED, *filters.conditions())).all()
    return {key if key is not None else f"{LOOSE_PREFIX}{run_id}" for run_id, key in rows}


def choices(session: Session, board: Ranking) -> dict[str, list]:
    """The values the board's filters offer: each method, dataset, network and epoch count of a ranked
    configuration."""
    facts = group_facts(session, board)
    known = [facts[g.key] for g in board.groups if g.key in facts]
    order = {kind: index for index, kind in enumerate(KINDS)}
    return {"kinds": sorted({g.kind for g in board.groups}, key=lambda k: (order.get(k, len(order)), k)),
            "datasets": sorted({f[0] for f in known if f[0] is not None}),
            "architectures": sorted({f[1] for f in known if f[1] is not None}),
            "epochs": sorted({f[2] for f in known if f[2] is not None})}
