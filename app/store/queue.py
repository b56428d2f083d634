"""The run queue in the database: admission under the queue cap, atomic claims, heartbeats, and
clean-up of runs that can never run.

Every function does one short transaction. Claims use a conditional UPDATE (``WHERE status =
'queued'``) so that any number of workers, on one machine or several, never claim a run twice.
Admissions take the admission lock row first, so concurrent requests never exceed the cap.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from app.store.errors import QueueFull
from app.store.models import Lock, Run, utcnow

HOST = socket.gethostname()
LOST_REASON = "worker lost"
ADMISSION_LOCK = "admission"


@contextmanager
def admission(session: Session, adding: int, limit: int) -> Iterator[None]:
    """One transaction that adds ``adding`` queued runs (the caller's writes inside the block) if the
    queue keeps at most ``limit`` queued runs; else QueueFull and nothing is written. Commits.

    The lock row's UPDATE is the transaction's first write, so admissions run one at a time and each
    counts the queue after the previous one committed. On SQLite that UPDATE takes the database's
    write lock (pysqlite sends BEGIN only before a write, and a transaction that starts by writing
    waits out busy_timeout for the lock and then reads the newest data; a transaction that read first
    could not upgrade). On PostgreSQL it locks the row until commit, and READ COMMITTED lets the
    next admission's count, a new statement, see the rows the previous one committed.
    """
    try:
        taken = session.execute(update(Lock).where(Lock.name == ADMISSION_LOCK).values(taken_at=utcnow()))
        if taken.rowcount != 1:
            raise RuntimeError(f"the {ADMISSION_LOCK!r} lock row is missing; app.store.db.init_db creates it")
        queued = session.exec(select(func.count()).select_from(Run).where(Run.status == "queued")).one()
        if queued + adding > limit:
            raise QueueFull(f"the queue holds {queued} runs and its limit is {limit}; wait for some to finish")
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise


def cancel_orphans(session: Session) -> list[int]:
    """Cancel queued runs whose teacher failed, was cancelled or no longer exists. Commits."""
    teacher = aliased(Run)
    rows = session.exec(
        select(Run, teacher.status)
        .join(teacher, Run.teacher_run_id == teacher.id, isouter=True)
        .where(Run.status == "queued", Run.teacher_run_id.is_not(None))
        .where(or_(teacher.id.is_(None), teacher.status.in_(("failed", "cancelled"))))
    ).all()
    now = utcnow()
    for run, teacher_status in rows:
        state = "no longer exists" if teacher_status is None else f"was {teacher_status}"
        # Conditional, so a run claimed or changed meanwhile keeps its new state.
        session.execute(
            update(Run)
            .where(Run.id == run.id, Run.status == "queued")
            .values(status="cancelled", finished_at=now, error=f"teacher run {run.teacher_run_id} {state}")
        )
    session.commit()
    return [run.id for run, _ in rows]


def claim_next(session: Session, worker: str) -> Run | None:
    """Atomically take the oldest queued run that can start now (its teacher, if any, is completed)."""
    teacher = aliased(Run)
    ready = (
        select(Run.id)
        .join(teacher, Run.teacher_run_id == teacher.id, isouter=True)
        .where(Run.status == "queued")
        .where(or_(Run.teacher_run_id.is_(None), teacher.status == "completed"))
        .order_by(Run.id)
        .limit(5)
    )
    for run_id in session.exec(ready).all():
        now = utcnow()
        result = session.execute(
            update(Run)
            .where(and_(Run.id == run_id, Run.status == "queued"))
            .values(status="running", worker=worker, started_at=now, heartbeat_at=now, finished_at=None,
                    error=None, cancel_requested=False, progress_at=None, eta_seconds=None)
        )
        session.commit()
        if result.rowcount == 1:
            run = session.get(Run, run_id, populate_existing=True)
            return run
    return None


# How many ready queued runs claim_pack_mates reads to find a pack's mates: packs form from the front of
# the queue; a compatible run further back waits for its own turn.
PACK_SCAN = 200


def pack_key_of(run: Run):
    """The run's kdcore.training.packing.key.pack_key, or None when its stored configuration no longer validates
    or it trains nothing (an imported teacher, app.teachers: its job maps and evaluates a file)."""
    from pydantic import ValidationError

    from kdcore.config import RunConfig
    from kdcore.training.packing.key import pack_key

    if run.origin is not None:
        return None
    try:
        return pack_key(RunConfig.model_validate(run.config))
    except (ValidationError, ValueError, TypeError):
        return None


def claim_pack_mates(session: Session, worker: str, first: Run, limit: int) -> list[Run]:
    """Atomically take up to ``limit`` more queued runs that can train in one pack with ``first`` (already
    claimed by ``worker``): the same kdcore.training.packing.key, ready (their teacher completed), and not resuming
    (a resumed run continues alone, from its checkpoint)."""
    key = pack_key_of(first)
    if limit < 1 or key is None or first.resume:
        return []
    teacher = aliased(Run)
    query = (
        select(Run)
        .join(teacher, Run.teacher_run_id == teacher.id, isouter=True)
        .where(Run.status == "queued", Run.resume.is_not(True))
        .where(or_(Run.teacher_run_id.is_(None), teacher.status == "completed"))
    )
    if first.architecture is not None:  # the indexed copy narrows the scan; the pack key decides
        query = query.where(Run.architecture == first.architecture)
    candidates = session.exec(query.order_by(Run.id).limit(PACK_SCAN)).all()
    mates = []
    for run in candidates:
        if len(mates) == limit:
            break
        if pack_key_of(run) != key:
            continue
        now = utcnow()
        result = session.execute(
            update(Run)
            .where(and_(Run.id == run.id, Run.status == "queued"))
            .values(status="running", worker=worker, started_at=now, heartbeat_at=now, finished_at=None,
                    error=None, cancel_requested=False, progress_at=None, eta_seconds=None)
        )
        session.commit()
        if result.rowcount == 1:
            mates.append(session.get(Run, run.id, populate_existing=True))
    return mates


def heartbeat(session: Session, run_id: int, worker: str, **progress) -> bool | None:
    """Renew the run's heartbeat (and store ``progress`` fields). Returns whether a cancel was requested,
    or None if the run is no longer held by this worker."""
    session.execute(
        update(Run).where(Run.id == run_id, Run.worker == worker, Run.status == "running")
        .values(heartbeat_at=utcnow(), **progress)
    )
    session.commit()
    row = session.exec(select(Run.status, Run.worker, Run.cancel_requested).where(Run.id == run_id)).first()
    if row is None or row[0] != "running" or row[1] != worker:
        return None
    return bool(row[2])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_local_worker(worker: str | None) -> bool:
    # Worker names are "host:pid:slot"; on this host a vanished pid means the worker died.
    host, _, rest = (worker or "").partition(":")
    pid = rest.partition(":")[0]
    return host == HOST and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid))


def lost_runs(session: Session, stale_after_s: float, now: datetime | None = None) -> list[tuple[Run, bool]]:
    """Runs held by workers that died: a stale heartbeat, or a dead process on this host. Each comes with
    whether its worker is known dead (its process is gone) rather than only silent."""
    now = now or utcnow()
    stale_before = now - timedelta(seconds=stale_after_s)
    running = session.exec(select(Run).where(Run.status == "running")).all()
    found = []
    for run in running:
        dead = _dead_local_worker(run.worker)
        if dead or run.heartbeat_at is None or run.heartbeat_at < stale_before:
            found.append((run, dead))
    return found


def lost_ending(run: Run, now: datetime) -> dict:
    """How a lost run ends by default: ``pruned`` if its search pruned it, ``cancelled`` if a cancel was asked, else ``failed`` with "worker lost"."""
    if run.prune_requested:
        return dict(status="pruned", finished_at=now)
    if run.cancel_requested:
        return dict(status="cancelled", finished_at=now, error="cancelled by user (worker lost)")
    return dict(status="failed", finished_at=now, error=f"{LOST_REASON} ({run.worker})")


def end_lost(session: Session, run: Run, values: dict) -> bool:
    """Write ``values`` to a lost run, only if nobody renewed its heartbeat since it was found. Does not commit."""
    same_beat = Run.heartbeat_at.is_(None) if run.heartbeat_at is None else Run.heartbeat_at == run.heartbeat_at
    result = session.execute(update(Run).where(Run.id == run.id, Run.status == "running", same_beat).values(**values))
    return result.rowcount == 1
