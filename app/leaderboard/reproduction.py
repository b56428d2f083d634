"""The reproduction view: every configuration on the board that reproduces a published result
(kdcore.reference), each beside the results it matches, from the board's own descriptions
(app.leaderboard.board.describe) so that its figures are the board's and the study pages'."""

from __future__ import annotations

import functools

from sqlmodel import Session

from app.leaderboard.board import describe, ranking
from app.leaderboard.filters import group_facts, matching
from app.runs.filters import RunFilter
from app.runs.reproduction_facts import may_match
from kdcore.reference import published
from kdcore.studies.reproduction import reproduction_rows

# Configurations described at most: each is its runs read; past this the view says it is cut.
MAX_GROUPS = 1000


@functools.lru_cache(maxsize=1)
def published_methods() -> frozenset[str]:
    return frozenset(row.method for row in published(dataset=None))


def reproduced(session: Session, filters: RunFilter = RunFilter()) -> dict:
    """The configurations ``filters`` match that reproduce a published result, best mean first, and their
    rows (kdcore.studies.reproduction.reproduction_rows); ``truncated`` when more than MAX_GROUPS could."""
    board = ranking(session)
    candidates = [g for g in matching(session, board, filters) if g.kind in published_methods()]
    if candidates:
        facts = group_facts(session, board)
        candidates = [g for g in candidates if may_match((facts.get(g.key) or (None,))[0])]
    described = describe(session, board, candidates[:MAX_GROUPS])
    groups = [entry for entry in described if entry["reproduction"]]
    return {"groups": groups, "rows": reproduction_rows(groups), "truncated": len(candidates) > MAX_GROUPS}
