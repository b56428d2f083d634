"""Supervise one claimed run on Ray: submit its task, write what it yields to the database, renew the
heartbeat, stop it on cancel or shutdown (cooperatively, then forced), and record how it ended.

The server alone writes the database, with the same functions as the local pool (app.executors.records),
so the pages and the API cannot tell the executors apart.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import ray
from ray import exceptions as ray_errors

from app.executors.checksums import verified_teacher_file
from app.executors.ray.cluster import Dispatch
from app.executors.ray.files import write_files
from app.executors.ray.names import node_name, where
from app.executors.ray.records import rename_holder, requeue
from app.executors.ray.task import train_run
from app.executors.records import finish_run, record_epoch, record_progress, record_restored
from app.executors.run_dirs import prepare_run_dir
from app.executors.teacher_import import UPLOAD_DIR, import_spec
from app.store.db import new_session
from app.store.models import Run
from kdcore.training.run_files import CHECKPOINT

log = logging.getLogger("kd.ray")
WAIT_S = 0.2
# After a forced cancel, how long to wait for Ray to report the task's end before recording it anyway.
FORCED_END_WAIT_S = 10.0
END = object()
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def crash_reason(exc: BaseException, placement: dict | None) -> str:
    """Why a task ended without a result, for the run's error column."""
    place = where(node_name(placement["ip"], placement["node_id"], placement["gpus"])) if placement else "on Ray"
    if isinstance(exc, ray_errors.NodeDiedError):
        return f"the Ray node training it died ({place})"
    if isinstance(exc, ray_errors.WorkerCrashedError):
        return f"the Ray worker process training it died ({place}): killed, or out of memory"
    first = next((line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()), "")
    return f"Ray: {type(exc).__name__}" + (f": {first[:300]}" if first else "") + f" ({place})"


class RayRun:
    """One run on the cluster. ``placement`` is what its task reported: ip, node_id, gpus, pid."""

    def __init__(self, dispatch: Dispatch, run: Run, worker: str):
        self.dispatch, self.run, self.worker = dispatch, run, worker
        self.settings = dispatch.settings
        self.run_dir = self.settings.runs_dir / str(run.id)
        self.placement: dict | None = None
        self.generator: Any = None
        # Epochs whose checkpoint reached the server in this attempt: a crash after one resumes from it.
        self.epochs_back = 0
        self.status: str | None = None
        self.thread = threading.Thread(target=self._main, name=f"kd-ray-run{run.id}", daemon=True)

    @property
    def run_ids(self) -> list[int]:
        return [self.run.id]

    def _session(self):
        return new_session(self.dispatch.engine, self.settings)

    def _main(self) -> None:
        try:
            self.status = self.execute()
        except Exception as exc:  # noqa: BLE001  (the run must not stay "running" behind a dead thread)
            log.exception("run %s: Ray executor error", self.run.id)
            if self.generator is not None:
                ray.cancel(self.generator, force=True)
            with self._session() as session:
                finish_run(session, self.run.id, self.worker, "failed", error=f"Ray executor error: {exc}")
            self.status = "failed"
        finally:
            self.dispatch.forget(self)

    # ------------------------------------------------------------------ submit

    def _teacher_checkpoint(self) -> Path | None:
        if self.run.teacher_run_id is None:
            return None
        with self._session() as session:
            teacher = session.get(Run, self.run.teacher_run_id)
        if teacher is None:
            raise FileNotFoundError(f"teacher run {self.run.teacher_run_id} has no checkpoint")
        return Path(verified_teacher_file(teacher))

    def _submit(self) -> None:
        shared = self.settings.shared_runs_dir
        teacher = self._teacher_checkpoint()
        checkpoint = self.run_dir / CHECKPOINT
        imported = self.run.origin is not None
        resume = prepare_run_dir(self.run_dir, self.run.resume, keep=UPLOAD_DIR if imported else None)
        teacher_files = self.dispatch.cluster.teacher_objects(teacher) if teacher and not shared else (None, None)
        resume_file = ray.put(checkpoint.read_bytes()) if resume and not shared else None
        spec = import_spec(self.run, self.run_dir.resolve())
        if spec is not None and not shared:  # the upload travels as the teacher's weights do
            spec["data"] = ray.put(Path(spec["source"]).read_bytes())
        job = {
            "run_id": self.run.id, "config": self.run.config, "resume": resume, "shared": shared,
            "out_dir": str(self.run_dir.resolve()), "data_root": str(self.settings.data_dir.resolve()),
            "teacher_checkpoint": str(teacher.resolve()) if teacher and shared else None,
            "stop_grace_s": self.settings.cancel_grace_s, "import": spec,
        }
        options = self.dispatch.cluster.resources_for(self.run.config)
        self.generator = train_run.options(**options).remote(job, *teacher_files, resume_file)

    # ------------------------------------------------------------------ relay

    def execute(self) -> str:
        """Train the run (already claimed under ``self.worker``) and record how it ended. Returns its status."""
        try:
            self._submit()
        except FileNotFoundError as exc:
            with self._session() as session:
                finish_run(session, self.run.id, self.worker, "failed", error=str(exc))
            return "failed"
        outcome, stop_reason, error, lost = self._relay()
        if lost:
            log.warning("run %s was taken from %s; its result is dropped", self.run.id, self.worker)
            return "lost"
        return self._record_end(outcome, stop_reason, error)

    def _next(self) -> Any:
        return next_message(self.generator)

    def _relay(self) -> tuple[tuple | None, str | None, BaseException | None, bool]:
        """Write messages until the task reports an outcome or ends. Returns (outcome, stop_reason, error, lost)."""
        pending_step, stop_reason, stop_deadline, forced_at, next_beat = None, None, None, None, 0.0
        while True:
            try:
                message = self._next()
            except ray_errors.RayError as exc:
                return None, stop_reason, exc, False
            if message is END:
                return None, stop_reason, None, False
            if message is not None:
                kind = message[0]
                if kind == "started":
                    self._placed(message[1])
                elif kind == "step":
                    pending_step = message[1]
                elif kind == "restored":
                    with self._session() as session:
                        record_restored(session, self.run.id, self.worker, message[1])
                elif kind == "files":  # written after the last epoch (an imported teacher's checkpoint)
                    write_files(self.run_dir, message[1])
                elif kind == "epoch":
                    self._store_epoch(message[1], message[2])
                    if pending_step is not None and pending_step["epoch"] <= message[1]["epoch"]:
                        pending_step = None  # older than the epoch just stored: it would move progress back
                else:
                    return (kind, message[1]), stop_reason, None, False
            now = time.monotonic()
            if now >= next_beat:
                with self._session() as session:
                    cancel = record_progress(session, self.run.id, self.worker, pending_step)
                pending_step, next_beat = None, now + self.settings.heartbeat_s
                if cancel is None:
                    ray.cancel(self.generator, force=True)
                    return None, stop_reason, None, True
                if stop_reason is None and (cancel or self.dispatch.shutdown.is_set()):
                    # Cooperative first: the task sets the trainer's stop flag, checked every step.
                    stop_reason = "cancel" if cancel else "shutdown"
                    ray.cancel(self.generator)
                    stop_deadline = now + self.settings.cancel_grace_s
            if stop_deadline is not None and now > stop_deadline:
                if forced_at is None:
                    log.warning("run %s ignored the cancel for %.0f s; forcing it", self.run.id,
                                self.settings.cancel_grace_s)
                    ray.cancel(self.generator, force=True)
                    forced_at = now
                elif now - forced_at > FORCED_END_WAIT_S:
                    return None, stop_reason, None, False

    def _placed(self, placement: dict) -> None:
        self.placement = placement
        name = node_name(placement["ip"], placement["node_id"], placement["gpus"])
        with self._session() as session:
            if rename_holder(session, self.run.id, self.worker, name):
                self.worker = name
        log.info("run %s trains on %s (pid %s)", self.run.id, where(self.worker), placement["pid"])

    def _store_epoch(self, metrics: dict, files: dict[str, bytes]) -> None:
        # The epoch row first, its checkpoint second: after a crash between the two, the resumed run
        # trains that epoch again and replaces the row, where the other order would lose the epoch.
        with self._session() as session:
            record_epoch(session, self.run.id, self.worker, metrics)
        if files:
            write_files(self.run_dir, files)
        self.epochs_back += 1

    # ------------------------------------------------------------------ end

    def _record_end(self, outcome: tuple | None, stop_reason: str | None, error: BaseException | None) -> str:
        checkpoint = self.run_dir / CHECKPOINT
        kept = str(checkpoint) if checkpoint.is_file() else None
        run_id, worker = self.run.id, self.worker
        with self._session() as session:
            if outcome is not None and outcome[0] == "completed":
                finish_run(session, run_id, worker, "completed", result={**outcome[1], "checkpoint": kept})
                status = "completed"
                shutil.rmtree(self.run_dir / UPLOAD_DIR, ignore_errors=True)  # an import's: the node used a copy
            elif stop_reason == "shutdown":
                # Stopped by the server's shutdown, not by the user: back to the queue, to resume later.
                requeue(session, run_id, worker, resume=kept is not None)
                status = "queued"
            elif outcome is not None:
                status, payload = outcome
                reason = "cancelled by user" if status == "cancelled" else payload
                finish_run(session, run_id, worker, status, error=reason, checkpoint=kept)
            elif stop_reason == "cancel":
                status = "cancelled"
                finish_run(session, run_id, worker, status, error="cancelled by user (training stopped)",
                           checkpoint=kept)
            elif error is not None and self.epochs_back and kept:
                # Lost with its node or worker after an epoch came back: resume from that epoch. An attempt
                # that brought no epoch back fails instead, so a run that kills its worker cannot loop.
                log.warning("run %s: %s; queued to resume from the last epoch it returned", run_id,
                            crash_reason(error, self.placement))
                requeue(session, run_id, worker, resume=True)
                status = "queued"
            else:
                status = "failed"
                reason = crash_reason(error, self.placement) if error is not None else \
                    "the Ray task ended without a result"
                finish_run(session, run_id, worker, status, error=reason, checkpoint=kept)
        log.info("run %s %s", run_id, status)
        return status


def next_message(generator) -> Any:
    """A task's next message, None if none is ready yet, END once it has ended; raises Ray's error."""
    ready, _ = ray.wait([generator], timeout=WAIT_S)
    if not ready:
        return None
    try:
        ref = next(generator)
    except StopIteration:
        return END
    return ray.get(ref)
