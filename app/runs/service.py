"""Operations on runs, shared by the REST API (app.runs.api) and the HTML pages.

Each function takes a sqlmodel Session, commits its own short transaction, and raises
app.store.errors exceptions (NotFound, InputError, Conflict, QueueFull) instead of HTTP errors.
"""

from __future__ import annotations

import csv
import io
import shutil
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import delete, func, update
from sqlmodel import Session, select

from app.runs.annotations import annotate, clean_annotations, split_annotations, store_tags, tags_of
from app.runs.filters import RunFilter
from app.runs.validation import TEACHER_STATUSES, validate_run
from app.settings import Settings
from app.store.errors import Conflict, InputError, NotFound
from app.store.migrations import teacher_key_of
from app.store.models import ACTIVE_STATUSES, Epoch, Run, StageEpoch, Tag, utcnow
from app.store.queue import admission, cancel_orphans
from kdcore.figures import finite_or_none, fraction_done
from kdcore.registry import METHODS, TEACHER_KINDS
from kdcore.studies.study import baseline_key, group_key
from kdcore.training.selection import best_epoch_label


def settings_of(session: Session) -> Settings:
    # get_session puts the app's settings on the session; a bare session falls back to the environment.
    return session.info.get("settings") or Settings.from_env()


def queue_room(session: Session, adding: int):
    """The transaction that adds ``adding`` queued runs under the KD_MAX_QUEUED cap (app.store.queue.admission)."""
    return admission(session, adding, settings_of(session).max_queued)


def list_runs(session: Session, *, status: str | None = None, experiment_id: int | None = None,
              filters: RunFilter = RunFilter(), limit: int = 50, offset: int = 0) -> tuple[list[Run], int]:
    """Runs matching the filters, newest first, and how many match in all."""
    filters = filters.conditions()
    if status is not None:
        filters.append(Run.status == status)
    if experiment_id is not None:
        filters.append(Run.experiment_id == experiment_id)
    total = session.exec(select(func.count()).select_from(Run).where(*filters)).one()
    runs = session.exec(select(Run).where(*filters).order_by(Run.id.desc()).offset(offset).limit(limit)).all()
    return list(runs), total


def get_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    return run


def get_epochs(session: Session, run_id: int, after: int = 0) -> list[Epoch]:
    """The run's epoch rows with epoch number greater than ``after``, in order."""
    get_run(session, run_id)
    return list(session.exec(
        select(Epoch).where(Epoch.run_id == run_id, Epoch.epoch > after).order_by(Epoch.epoch)
    ).all())


def get_stage_epochs(session: Session, run_id: int) -> list[StageEpoch]:
    """The epochs of the run's method's pre-stage (kdcore.methods.base.Stage), in order; empty without one."""
    return list(session.exec(select(StageEpoch).where(StageEpoch.run_id == run_id)
                             .order_by(StageEpoch.id)).all())


def create_run(session: Session, payload: dict, *, strict: bool = False) -> Run:
    """Validate ``payload`` (RunConfig fields plus ``teacher_run_id``) and queue the run.

    ``strict`` (JSON clients): every value must have its field's type; else strings are parsed (forms).
    ``tags`` and ``note`` (app.runs.annotations) may come beside them."""
    payload, given = split_annotations(payload)
    annotations, errors = clean_annotations(given)
    try:
        valid = validate_run(session, payload, settings_of(session), strict=strict)
    except InputError as exc:
        raise InputError(exc.errors + errors) from None
    if errors:
        raise InputError(errors)
    run = new_run(valid.config, teacher_key_of(session, valid.teacher_run_id), teacher_run_id=valid.teacher_run_id,
                  num_classes=valid.num_classes, **annotations)
    with queue_room(session, 1):
        session.add(run)
        if annotations.get("tags"):
            session.flush()  # its id, for the tags table
            store_tags(session, annotations["tags"], run_id=run.id)
    return run


def annotate_run(session: Session, run_id: int, payload: Any) -> Run:
    """Change a run's tags and note (app.runs.annotations.annotate)."""
    return annotate(session, get_run(session, run_id), payload)


def new_run(config, teacher_key: str | None, *, baseline: str | None = None, **fields) -> Run:
    """A queued run of ``config``; ``teacher_key`` is its teacher's group key (app.store.migrations.teacher_key_of).
    ``baseline``: the group key of the baseline student it compares with, when the experiment or study
    launching it trains its own (kdcore.studies.study.own_baselines); else the one of its own epochs."""
    # The config's fields that lists filter and show are copied to columns (a config never changes).
    return Run(kind=config.kind, config=config.to_json_dict(), dataset=config.dataset, epochs=config.epochs,
               architecture=config.architecture, seed=config.seed, group_key=group_key(config, teacher_key),
               baseline_key=baseline or baseline_key(config), **fields)


def cancel_run(session: Session, run_id: int) -> Run:
    """Cancel a queued run now, or ask the worker to stop a running one (it ends ``cancelled`` within seconds)."""
    run = get_run(session, run_id)
    if run.status == "queued":
        result = session.execute(
            update(Run).where(Run.id == run_id, Run.status == "queued")
            .values(status="cancelled", finished_at=utcnow(), error="cancelled by user")
        )
        session.commit()
        if result.rowcount == 1:
            cancel_orphans(session)
            session.refresh(run)
            return run
        session.refresh(run)  # a worker claimed it meanwhile
    if run.status == "running":
        session.execute(update(Run).where(Run.id == run_id, Run.status == "running").values(cancel_requested=True))
        session.commit()
        session.refresh(run)
        return run
    raise Conflict(f"run {run_id} is already {run.status}")


def cancel_runs(session: Session, condition, reason: str) -> None:
    """Cancel the queued runs that match ``condition`` now (their error says ``reason``) and ask the workers to
    stop the running ones; finished runs stay. The caller commits."""
    session.execute(update(Run).where(condition, Run.status == "queued")
                    .values(status="cancelled", finished_at=utcnow(), error=reason))
    session.execute(update(Run).where(condition, Run.status == "running").values(cancel_requested=True))


def retry_run(session: Session, run_id: int) -> Run:
    """Queue a failed or cancelled run again; it resumes from its last checkpoint when one exists."""
    run = get_run(session, run_id)
    if run.status not in ("failed", "cancelled"):
        raise Conflict(f"only failed or cancelled runs can be retried; run {run_id} is {run.status}")
    if run.teacher_run_id is not None:
        teacher = session.get(Run, run.teacher_run_id)
        if teacher is None or teacher.status not in TEACHER_STATUSES:
            state = "no longer exists" if teacher is None else f"is {teacher.status}"
            raise Conflict(f"its teacher run {run.teacher_run_id} {state}")
    with queue_room(session, 1):
        # Conditional, so a run deleted or retried meanwhile is not queued twice.
        requeued = session.execute(
            update(Run).where(Run.id == run_id, Run.status.in_(("failed", "cancelled")))
            .values(status="queued", error=None, finished_at=None, cancel_requested=False,
                    resume=bool(run.checkpoint))
        )
        if requeued.rowcount != 1:
            raise Conflict(f"run {run_id} changed meanwhile; only failed or cancelled runs can be retried")
    session.refresh(run)
    return run


def delete_run(session: Session, run_id: int) -> None:
    """Delete a run that is not running, with its epochs and checkpoint directory."""
    get_run(session, run_id)
    dependents = session.exec(
        select(Run.id).where(Run.teacher_run_id == run_id, Run.status.in_(ACTIVE_STATUSES))
    ).all()
    if dependents:
        raise Conflict(f"run {run_id} is the teacher of active runs {', '.join(map(str, dependents))}; cancel them first")
    # One transaction: if a worker claimed the run meanwhile, the rollback restores its epochs and tags.
    session.execute(delete(Epoch).where(Epoch.run_id == run_id))
    session.execute(delete(StageEpoch).where(StageEpoch.run_id == run_id))
    session.execute(delete(Tag).where(Tag.run_id == run_id))
    result = session.execute(delete(Run).where(Run.id == run_id, Run.status != "running"))
    if result.rowcount != 1:
        session.rollback()
        raise Conflict(f"run {run_id} is running; cancel it first")
    session.commit()
    remove_run_folders(session, [run_id])


def remove_run_folders(session: Session, run_ids: list[int]) -> None:
    """Remove deleted runs' folders (checkpoints, metrics). A folder that cannot be removed stays behind;
    its id is never given again, and a fresh run empties its folder anyway (app.executors.run_dirs)."""
    runs_dir = settings_of(session).runs_dir
    for run_id in run_ids:
        shutil.rmtree(runs_dir / str(run_id), ignore_errors=True)


def teacher_choices(session: Session) -> list[Run]:
    """Teacher runs a new KD run may distil from: completed, or still queued/running (it then waits)."""
    return list(session.exec(
        select(Run).where(Run.kind.in_(TEACHER_KINDS), Run.status.in_(TEACHER_STATUSES)).order_by(Run.id.desc())
    ).all())


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def title_of(kind: str) -> str:
    method = METHODS.get(kind)
    return method.title if method else kind


def progress_of(run: Run, now: datetime | None = None) -> dict | None:
    if run.status == "completed":
        epochs = run.config.get("epochs")
        return {"epoch": epochs, "epochs": epochs, "step": None, "steps": None, "phase": "done", "fraction": 1.0,
                "eta_seconds": 0.0, "updated_at": iso(run.finished_at)}
    if run.progress_epoch is None or not run.progress_epochs:
        return None
    fraction = fraction_done(run.progress_epoch, run.progress_epochs, run.progress_step, run.progress_steps)
    eta = None
    if run.status == "running" and run.eta_seconds is not None and run.progress_at is not None:
        eta = max(0.0, run.eta_seconds - ((now or utcnow()) - run.progress_at).total_seconds())
    # An epoch's last step is reported as training ends; the test evaluation runs until its epoch is stored.
    evaluating = run.progress_step is not None and bool(run.progress_steps) and run.progress_step >= run.progress_steps
    return {"stage": run.progress_stage, "epoch": run.progress_epoch, "epochs": run.progress_epochs,
            "step": run.progress_step,
            "steps": run.progress_steps, "phase": "evaluating" if evaluating else "training",
            "fraction": min(1.0, max(0.0, fraction)), "eta_seconds": finite_or_none(eta),
            "updated_at": iso(run.progress_at)}


def run_to_dict(run: Run) -> dict[str, Any]:
    """The run as the API returns it, including live progress."""
    return {
        "id": run.id, "kind": run.kind, "title": title_of(run.kind), "status": run.status,
        "dataset": run.dataset or run.config.get("dataset"),
        "architecture": run.architecture or run.config.get("architecture"), "config": run.config,
        "teacher_run_id": run.teacher_run_id, "experiment_id": run.experiment_id, "study_id": run.study_id,
        "search_id": run.search_id, "trial_number": run.trial_number, "num_classes": run.num_classes,
        "created_at": iso(run.created_at), "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
        "worker": run.worker, "heartbeat_at": iso(run.heartbeat_at), "cancel_requested": run.cancel_requested,
        "resume": run.resume, "error": run.error,
        "has_checkpoint": bool(run.checkpoint),
        "checkpoint_url": f"/api/runs/{run.id}/checkpoint" if run.checkpoint else None,
        "parameters": run.parameters, "final_accuracy": finite_or_none(run.final_accuracy),
        **best_epoch_fields(run),
        "train_seconds": finite_or_none(run.train_seconds), "progress": progress_of(run),
        "tags": tags_of(run), "note": run.note, "notes": run.notes or [],
        "checkpoint_sha256": run.checkpoint_sha256, "origin": run.origin,
    }


def best_epoch_fields(run: Run) -> dict[str, Any]:
    """The run's best epoch and its figures (app.runs.responses.BestEpochOut). The best_accuracy column holds the
    test accuracy at the best epoch, under its former name too."""
    return {"best_epoch": run.best_epoch, "best_epoch_label": best_epoch_label(run.config.get("validation")),
            "test_accuracy_at_best": finite_or_none(run.best_accuracy),
            "best_val_accuracy": finite_or_none(run.best_val_accuracy), "best_accuracy": finite_or_none(run.best_accuracy)}


def epoch_to_dict(epoch: Epoch) -> dict[str, Any]:
    return {
        "epoch": epoch.epoch, "train_loss": finite_or_none(epoch.train_loss),
        "train_terms": {name: finite_or_none(value) for name, value in (epoch.train_terms or {}).items()},
        "test_loss": finite_or_none(epoch.test_loss), "test_accuracy": finite_or_none(epoch.test_accuracy),
        "seconds": finite_or_none(epoch.seconds), "images_per_sec": finite_or_none(epoch.images_per_sec),
        "val_loss": finite_or_none(epoch.val_loss), "val_accuracy": finite_or_none(epoch.val_accuracy),
    }


def epochs_csv(run: Run, epochs: list[Epoch], stage_epochs: list[StageEpoch] = ()) -> str:
    """One row per epoch: a method's pre-stage's first, each numbered within its stage (the ``stage`` column
    names it; "main" for the main stage's), then the main stage's."""
    method = METHODS.get(run.kind)
    terms = list(method.loss_terms) if method else sorted({t for e in epochs for t in (e.train_terms or {})})
    terms += sorted({t for e in stage_epochs for t in (e.train_terms or {})} - set(terms))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    # The validation columns are empty for a run without a validation split, and for a pre-stage's epochs.
    writer.writerow(["stage", "epoch", "train_loss", *(f"train_{term}" for term in terms),
                     "test_loss", "test_accuracy", "seconds", "images_per_sec", "val_loss", "val_accuracy"])
    for epoch in [*stage_epochs, *epochs]:
        validation = (getattr(epoch, "val_loss", None), getattr(epoch, "val_accuracy", None))
        writer.writerow([getattr(epoch, "stage", "main"), epoch.epoch, epoch.train_loss,
                         *((epoch.train_terms or {}).get(t, "") for t in terms),
                         epoch.test_loss, epoch.test_accuracy, epoch.seconds, epoch.images_per_sec,
                         *("" if v is None else v for v in validation)])
    return out.getvalue()
