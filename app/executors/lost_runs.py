"""Runs whose worker died, settled with their run folders: nothing a killed server had saved is lost.

A worker (or the whole server) killed with SIGKILL leaves its runs "running". Between writing an epoch's
checkpoint and recording the epoch it may also leave the folder one epoch ahead of the database, and a run
ended without its checkpoint on record would retry from scratch and empty that folder. So a lost run's
folder wins over its record: its checkpoint is recorded, the epochs of its metrics.json are stored, and a
run whose worker is known dead and that saved a checkpoint during the attempt is queued to resume from it
(the resumed trainer then reports the checkpoint's whole history: app.executors.records.record_restored).
A run that saved nothing new ends failed, as before, so a run that kills its worker cannot loop; its
retry resumes from the recorded checkpoint. A run only silent (a stale heartbeat, its worker perhaps still
alive) ends failed too, with its checkpoint on record. Only the runs of this host's workers are settled
with this runs directory: a `kd worker` on another machine writes its own. (The Ray executor settles the
runs a previous server left on Ray at its start: app.executors.ray.records.)
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from sqlmodel import Session

from app.executors.records import store_history
from app.store.models import Run, utcnow
from app.store.queue import HOST, cancel_orphans, end_lost, lost_ending, lost_runs
from kdcore.training.run_files import CHECKPOINT, METRICS

log = logging.getLogger("kd.worker")


def saved_history(run_dir: Path) -> list[dict]:
    """The epochs of the run folder's metrics.json: written after each checkpoint, so every epoch in it
    is in the checkpoint beside it (which may hold one more). Empty when absent or unreadable."""
    try:
        history = json.loads((run_dir / METRICS).read_text())
    except (OSError, ValueError):
        return []
    return history if isinstance(history, list) and all(isinstance(m, dict) for m in history) else []


def _trained_here(worker: str | None) -> bool:
    """Whether the attempt wrote this runs directory: its worker ("host:pid:slot") was of this host."""
    return (worker or "").partition(":")[0] == HOST


def _saved_since(path: Path, moment: datetime | None) -> bool:
    if moment is None:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return path.stat().st_mtime >= moment.timestamp()


def settle(session: Session, run: Run, dead: bool, runs_dir: Path, now: datetime) -> dict:
    """The new values of a lost run, after storing what its folder holds. Does not commit."""
    values = lost_ending(run, now)
    run_dir = runs_dir / str(run.id)
    checkpoint = run_dir / CHECKPOINT
    if not _trained_here(run.worker) or not checkpoint.is_file():
        return values
    values["checkpoint"] = str(checkpoint)
    history = saved_history(run_dir)
    if history:
        store_history(session, run, history, drop_later=False)
    if dead and not run.cancel_requested and _saved_since(checkpoint, run.started_at):
        values.update(status="queued", resume=True, finished_at=None, error=None, worker=None, started_at=None,
                      heartbeat_at=None, progress_at=None, eta_seconds=None)
    return values


def recover_lost_runs(engine, settings) -> list[int]:
    """Settle the runs of workers that died (see above), saying so in the log. Returns their ids."""
    from app.store.db import new_session  # app.store.db imports app.store.queue: import here, not at the top

    now = utcnow()
    outcomes: dict[int, str] = {}
    with new_session(engine, settings) as session:
        for run, dead in lost_runs(session, settings.stale_after_s, now):
            values = settle(session, run, dead, settings.runs_dir, now)
            if end_lost(session, run, values):
                outcomes[run.id] = values["status"] + (" to resume from its checkpoint" if values.get("resume") else "")
        session.commit()
        if outcomes:
            cancel_orphans(session)
    if outcomes:
        log.warning("runs left running by a lost worker: %s", ", ".join(f"{i} {o}" for i, o in outcomes.items()))
    return list(outcomes)
