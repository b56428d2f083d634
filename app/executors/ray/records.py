"""The Ray executor's own database writes, beside the ones it shares with the local pool (app.executors.records).

Each is one short transaction, conditional on the run still being held by the given worker.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import update
from sqlmodel import Session, select

from app.executors.ray.names import PREFIX, where
from app.store.models import Run, utcnow
from app.store.queue import cancel_orphans
from kdcore.training.run_files import CHECKPOINT

log = logging.getLogger("kd.ray")


def rename_holder(session: Session, run_id: int, worker: str, new_worker: str) -> bool:
    """Hand the run from its claim's placeholder name to the name that says where it trains."""
    moved = session.execute(
        update(Run).where(Run.id == run_id, Run.worker == worker, Run.status == "running")
        .values(worker=new_worker, heartbeat_at=utcnow())
    )
    session.commit()
    return moved.rowcount == 1


def requeue(session: Session, run_id: int, worker: str, resume: bool) -> bool:
    """Put a held run back in the queue (its epochs stay); with ``resume`` it continues from its checkpoint."""
    moved = session.execute(
        update(Run).where(Run.id == run_id, Run.worker == worker, Run.status == "running")
        .values(status="queued", worker=None, started_at=None, heartbeat_at=None, resume=resume,
                cancel_requested=False, progress_at=None, eta_seconds=None)
    )
    session.commit()
    return moved.rowcount == 1


def settle_left_runs(session: Session, runs_dir: Path) -> dict[int, str]:
    """Runs that a previous server left running on Ray: their tasks ended with it (Ray stops the tasks of
    a driver that exits). A run whose checkpoint came back is queued to resume from it; the others end
    ``failed`` (``cancelled`` if a cancel was asked), keeping their epochs. Returns {run id: new status}."""
    left = session.exec(select(Run).where(Run.status == "running", Run.worker.startswith(PREFIX))).all()
    settled: dict[int, str] = {}
    for run in left:
        place = where(run.worker)
        checkpoint = runs_dir / str(run.id) / CHECKPOINT
        if run.prune_requested:  # its search's pruner had stopped it
            status, values = "pruned", {}
        elif run.cancel_requested:
            status, values = "cancelled", dict(error="cancelled by user (server restarted)")
        elif checkpoint.is_file():
            status, values = "queued", dict(worker=None, started_at=None, heartbeat_at=None, resume=True,
                                            progress_at=None, eta_seconds=None)
        else:
            status, values = "failed", dict(error=f"the server restarted while the run trained ({place})")
        if status != "queued":
            values.update(finished_at=utcnow(), resume=False)
        moved = session.execute(
            update(Run).where(Run.id == run.id, Run.worker == run.worker, Run.status == "running")
            .values(status=status, **values)
        )
        if moved.rowcount == 1:
            settled[run.id] = status
    session.commit()
    if settled:
        log.warning("runs left on Ray by a previous server: %s", settled)
        cancel_orphans(session)
    return settled
