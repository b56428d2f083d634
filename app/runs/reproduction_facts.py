"""What comparing runs with published results needs beyond a run's own row (kdcore.studies.reproduction):
the network of each run's teacher, and, for a run with a validation split, its best test epoch's accuracy
(its stored best_accuracy is the test accuracy at its best validation epoch). Read only for runs on a
dataset that has published results, in one query each."""

from __future__ import annotations

import functools
from typing import Iterable

from sqlalchemy import func
from sqlmodel import Session, select

from app.store.models import Epoch, Run
from kdcore.reference import published

CHUNK = 500


@functools.lru_cache(maxsize=1)
def published_datasets() -> frozenset[str]:
    return frozenset(row.dataset for row in published(dataset=None))


def may_match(dataset: str | None) -> bool:
    """Whether runs on ``dataset`` can match a published result at all."""
    return dataset in published_datasets()


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def teacher_networks(session: Session, teacher_ids: Iterable[int]) -> dict[int, str | None]:
    """{teacher run id: its network}, of those that still exist."""
    found: dict[int, str | None] = {}
    for part in _chunks(sorted(set(teacher_ids))):
        for run_id, architecture, config in session.exec(
                select(Run.id, Run.architecture, Run.config).where(Run.id.in_(part))).all():
            found[run_id] = architecture or (config or {}).get("architecture")
    return found


def best_test_accuracies(session: Session, run_ids: Iterable[int]) -> dict[int, float]:
    """{run id: its best epoch's test accuracy}, over the epochs it recorded."""
    found: dict[int, float] = {}
    for part in _chunks(sorted(set(run_ids))):
        rows = session.exec(select(Epoch.run_id, func.max(Epoch.test_accuracy)).where(Epoch.run_id.in_(part))
                            .group_by(Epoch.run_id)).all()
        found.update({run_id: best for run_id, best in rows if best is not None})
    return found
