"""An executor's database writes for a run it holds: epochs, progress, and the final state. The local pool
and the Ray executor both write through these, so the pages and the API cannot tell them apart.

Each write is one short transaction and is conditional on the run still being held by this
worker, so a run that was recovered as "worker lost" is never overwritten by a late message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, update
from sqlmodel import Session, select

from app.executors.checksums import current_sha256
from app.store.models import Epoch, Run, StageEpoch, utcnow
from app.store.queue import cancel_orphans, heartbeat
from kdcore.figures import finite_or_none, fraction_done
from kdcore.registry import TEACHER_KINDS
from kdcore.training.selection import best_of, improves, score


def _paced(run: Run | None, done: float, now: datetime) -> dict[str, Any]:
    """The ETA for a progress report at ``done`` (a fraction of the run), with the pace's starting point.

    The pace is measured from the attempt's first report (a claim clears progress_at), not from its start:
    spawning the trainer, loading the data and caching the teacher's outputs take seconds that say nothing
    about the steps left, and counted in they make a run that just began look many times longer than it
    is. So the first report has no ETA: it waits for one step timing, the next report."""
    if run is None or run.progress_at is None or run.pace_from_at is None or run.pace_from_fraction is None:
        return dict(pace_from_at=now, pace_from_fraction=done, eta_seconds=None)
    gained = done - run.pace_from_fraction
    elapsed = (now - run.pace_from_at).total_seconds()
    if gained > 0:
        return dict(eta_seconds=max(0.0, elapsed * (1 - done) / gained))
    # No step since the pace's start (a repeated report): the last estimate, as much later as this report.
    last = run.eta_seconds
    return dict(eta_seconds=None if last is None else max(0.0, last - (now - run.progress_at).total_seconds()))


def _store_epoch_row(session: Session, run_id: int, metrics: dict) -> dict:
    """Insert or replace the run's row for one epoch (EpochMetrics as a dict); returns the stored values."""
    values = dict(
        train_loss=float(metrics["train_loss"]), train_terms={k: float(v) for k, v in metrics["train_terms"].items()},
        test_loss=float(metrics["test_loss"]), test_accuracy=float(metrics["test_accuracy"]),
        seconds=float(metrics["seconds"]), images_per_sec=float(metrics["images_per_sec"]),
        val_loss=finite_or_none(metrics.get("val_loss")), val_accuracy=finite_or_none(metrics.get("val_accuracy")),
    )
    row = session.exec(select(Epoch).where(Epoch.run_id == run_id, Epoch.epoch == metrics["epoch"])).first()
    if row is None:
        row = Epoch(run_id=run_id, epoch=metrics["epoch"], **values)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    session.add(row)
    return values


def store_history(session: Session, run: Run, history: list[dict], *, drop_later: bool) -> None:
    """Make the run's epochs those of ``history`` (a checkpoint's, oldest first), and its best epoch the best
    of its rows. ``drop_later``: also delete rows after the history's last epoch (that checkpoint is where
    the run continues from, so they are no longer its past). Does not commit."""
    for metrics in history:
        _store_epoch_row(session, run.id, metrics)
    if drop_later:
        session.execute(delete(Epoch).where(Epoch.run_id == run.id, Epoch.epoch > len(history)))
    session.flush()
    best = best_of(session.exec(select(Epoch).where(Epoch.run_id == run.id).order_by(Epoch.epoch)).all())
    run.best_accuracy = best.test_accuracy if best else None
    run.best_val_accuracy = best.val_accuracy if best else None
    run.best_epoch = best.epoch if best else None
    session.add(run)


def record_restored(session: Session, run_id: int, worker: str, history: list[dict]) -> None:
    """A resumed run's checkpoint holds ``history``: its epochs replace the database's record, which may lack
    the last (a server killed between the checkpoint and the epoch's row) or hold later ones."""
    run = session.get(Run, run_id, populate_existing=True)
    if run is None or run.status != "running" or run.worker != worker:
        return
    store_history(session, run, history, drop_later=True)
    session.commit()


def _store_stage_epoch(session: Session, run: Run, metrics: dict) -> None:
    """An epoch of the method's pre-stage: its own row (replacing the one a resumed run may repeat), and the
    progress to go on from; the run's best epoch is its main stage's alone."""
    values = dict(epochs=int(metrics["epochs"]), train_loss=float(metrics["train_loss"]),
                  train_terms={k: float(v) for k, v in metrics["train_terms"].items()},
                  test_loss=float(metrics["test_loss"]), test_accuracy=float(metrics["test_accuracy"]),
                  seconds=float(metrics["seconds"]), images_per_sec=float(metrics["images_per_sec"]))
    row = session.exec(select(StageEpoch).where(StageEpoch.run_id == run.id, StageEpoch.stage == metrics["stage"],
                                                StageEpoch.epoch == metrics["epoch"])).first()
    if row is None:
        row = StageEpoch(run_id=run.id, stage=metrics["stage"], epoch=metrics["epoch"], **values)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    session.add(row)
    run.progress_stage, run.progress_epoch, run.progress_epochs = metrics["stage"], metrics["epoch"], metrics["epochs"]
    run.progress_step = run.progress_steps = None
    run.heartbeat_at = run.progress_at = utcnow()
    session.add(run)
    session.commit()


def record_epoch(session: Session, run_id: int, worker: str, metrics: dict) -> None:
    """Store one epoch (EpochMetrics as a dict), replacing the row a resumed run may repeat."""
    run = session.get(Run, run_id, populate_existing=True)
    if run is None or run.status != "running" or run.worker != worker:
        return
    if metrics.get("stage"):
        _store_stage_epoch(session, run, metrics)
        return
    values = _store_epoch_row(session, run_id, metrics)
    # The best epoch so far, as the run's result will name it (kdcore.training.selection).
    accuracy = finite_or_none(metrics["test_accuracy"])
    if improves(score(values["val_accuracy"], accuracy), score(run.best_val_accuracy, run.best_accuracy)):
        run.best_accuracy, run.best_val_accuracy, run.best_epoch = accuracy, values["val_accuracy"], metrics["epoch"]
    now = utcnow()
    epoch, epochs = metrics["epoch"], metrics["epochs"]
    if epoch < epochs and run.progress_steps:
        # The next epoch starts right away: step 0 of it is the same point of the run as "epoch done",
        # and keeps the page's within-epoch bar instead of dropping it until the next step report.
        run.progress_epoch, run.progress_step = epoch + 1, 0
    else:
        run.progress_epoch, run.progress_step, run.progress_steps = epoch, None, None
    run.progress_epochs, run.progress_stage = epochs, None
    # A fresh estimate: keeping the last step's ETA with a new progress_at would make it jump back up.
    for name, value in _paced(run, fraction_done(epoch, epochs), now).items():
        setattr(run, name, value)
    run.heartbeat_at = run.progress_at = now
    session.add(run)
    session.commit()


def record_progress(session: Session, run_id: int, worker: str, progress: dict | None = None) -> bool | None:
    """Renew the heartbeat, storing ``progress`` (StepProgress as a dict) and an ETA when given.

    Returns whether a cancel was requested, or None if this worker no longer holds the run.
    """
    fields: dict[str, Any] = {}
    if progress:
        now = utcnow()
        run = session.get(Run, run_id, populate_existing=True)
        done = fraction_done(progress["epoch"], progress["epochs"], progress["step"], progress["steps"])
        stage = progress.get("stage")
        # The fraction is of the stage under way (a method's pre-stage, or the main one): a new stage's pace
        # starts afresh, as an attempt's does.
        paced = _paced(run if run is None or run.progress_stage == stage else None, done, now)
        fields = dict(progress_stage=stage, progress_epoch=progress["epoch"], progress_epochs=progress["epochs"],
                      progress_step=progress["step"], progress_steps=progress["steps"], progress_at=now, **paced)
    return heartbeat(session, run_id, worker, **fields)


def finish_run(session: Session, run_id: int, worker: str, status: str, *, error: str | None = None,
               result: dict | None = None, checkpoint: str | None = None) -> bool:
    """End the run held by ``worker`` as completed, failed or cancelled. Returns whether it was still held.

    A run stopped because its search's pruner asked (Run.prune_requested) ends ``pruned`` rather than
    ``cancelled``: every executor stops it as it stops a cancelled run, and this one write says why."""
    values: dict[str, Any] = dict(status=status, finished_at=utcnow(), error=error, resume=False)
    if status == "cancelled":
        values["status"] = case((Run.prune_requested.is_(True), "pruned"), else_="cancelled")
        values["error"] = case((Run.prune_requested.is_(True), None), else_=error)
    if checkpoint:
        values["checkpoint"] = checkpoint
    if result is not None:
        values.update(
            checkpoint=result.get("checkpoint") or checkpoint,
            parameters=result.get("parameters"),
            final_accuracy=finite_or_none(result.get("final_accuracy")),
            best_accuracy=finite_or_none(result.get("test_accuracy_at_best")),
            best_val_accuracy=finite_or_none(result.get("best_val_accuracy")),
            best_epoch=result.get("best_epoch"),
            train_seconds=finite_or_none(result.get("seconds")),
            notes=[str(note) for note in result.get("notes") or ()] or None,
        )
        values["checkpoint_sha256"] = _teacher_sha256(session, run_id, values["checkpoint"])
    outcome = session.execute(
        update(Run).where(Run.id == run_id, Run.worker == worker, Run.status == "running").values(**values)
    )
    session.commit()
    if status != "completed":
        cancel_orphans(session)
    return outcome.rowcount == 1


def _teacher_sha256(session: Session, run_id: int, checkpoint: str | None) -> str | None:
    """A completed teacher's entry in the registry (app.executors.checksums): its checkpoint file's sha256 as
    the run ends, what every later use of the teacher is checked against. None for other runs."""
    if not checkpoint or session.exec(select(Run.kind).where(Run.id == run_id)).first() not in TEACHER_KINDS:
        return None
    return current_sha256(checkpoint)
