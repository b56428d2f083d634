"""Supervise one claimed run: start its training child, relay its reports to the database,
renew the heartbeat, and stop the child on cancel or shutdown."""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, update

from app.executors.checksums import verified_teacher_file
from app.executors.local.child import train_in_child
from app.executors.records import finish_run, record_epoch, record_progress, record_restored
from app.executors.run_dirs import prepare_run_dir
from app.executors.teacher_import import UPLOAD_DIR, import_spec
from app.settings import Settings
from app.store.db import new_session
from app.store.models import Run
from kdcore.training.run_files import CHECKPOINT

log = logging.getLogger("kd.worker")
# "spawn": the child starts a fresh interpreter, so torch is never imported into the web process.
SPAWN = multiprocessing.get_context("spawn")
KILL_AFTER_TERMINATE_S = 3.0


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"training process killed by {name}"
    return f"training process exited with code {exitcode} without a result"


@dataclass
class Child:
    """A training process with its own job, message and stop channels; it trains one run."""

    process: multiprocessing.Process
    jobs: Any
    messages: Any
    stop: Any

    def close(self) -> None:
        for channel in (self.jobs, self.messages):
            channel.close()


class RunSupervisor:
    """Runs one claimed run to its end. ``process`` is the training child while it lives."""

    def __init__(self, engine: Engine, settings: Settings, worker: str, gpu: str | None,
                 shutdown: threading.Event):
        self.engine, self.settings, self.worker, self.gpu, self.shutdown = engine, settings, worker, gpu, shutdown
        self.process: multiprocessing.Process | None = None
        self._spare: Child | None = None
        # Auto: on GPU slots only; on a CPU slot the import would compete with training for the same cores.
        prestart = settings.prestart_child
        self._prestart = gpu is not None if prestart is None else prestart

    def _start_child(self) -> Child:
        jobs, messages, stop = SPAWN.Queue(), SPAWN.Queue(), SPAWN.Event()
        process = SPAWN.Process(target=train_in_child, name="kd-train", daemon=True,
                                args=(os.getpid(), self.gpu, jobs, messages, stop))
        process.start()
        return Child(process, jobs, messages, stop)

    def _take_child(self) -> Child:
        child, self._spare = self._spare, None
        if child is None or not child.process.is_alive():
            child = self._start_child()
        if self._prestart and not self.shutdown.is_set():
            self._spare = self._start_child()
        return child

    def close(self) -> None:
        """Let the waiting spare child exit."""
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.jobs.put(None)
            spare.process.join(timeout=5)
            if spare.process.is_alive():
                spare.process.kill()
            spare.close()

    def _session(self):
        return new_session(self.engine, self.settings)

    def _teacher_checkpoint(self, run: Run) -> str | None:
        if run.teacher_run_id is None:
            return None
        with self._session() as session:
            teacher = session.get(Run, run.teacher_run_id)
        if teacher is None:
            raise FileNotFoundError(f"teacher run {run.teacher_run_id} has no checkpoint")
        return verified_teacher_file(teacher)

    def execute(self, run: Run) -> str:
        """Train ``run`` (already claimed by this worker) and record how it ended. Returns its final status."""
        out_dir = self.settings.runs_dir / str(run.id)
        try:
            teacher_checkpoint = self._teacher_checkpoint(run)
        except FileNotFoundError as exc:
            with self._session() as session:
                finish_run(session, run.id, self.worker, "failed", error=str(exc))
            return "failed"
        resume = prepare_run_dir(out_dir, run.resume, keep=UPLOAD_DIR if run.origin is not None else None)
        checkpoint = out_dir / CHECKPOINT
        child = self._take_child()
        self.process = child.process
        child.jobs.put({
            "config": run.config, "out_dir": str(out_dir), "data_root": str(self.settings.data_dir),
            "teacher_checkpoint": teacher_checkpoint, "resume": resume, "import": import_spec(run, out_dir),
        })
        try:
            outcome, lost, stop_reason = self._supervise(run, child.messages, child.stop)
            if lost:
                log.warning("run %s was taken from worker %s; its result is dropped", run.id, self.worker)
                return "lost"
            # Recorded before the child has finished exiting: tearing down torch can take seconds.
            return self._record_end(run, outcome, stop_reason, checkpoint)
        finally:
            self._reap(child)

    def _record_end(self, run: Run, outcome: tuple | None, stop_reason: str | None, checkpoint: Path) -> str:
        if outcome is not None:
            status, payload = outcome
        elif stop_reason == "cancel":
            status, payload = "cancelled", "cancelled by user (training stopped)"
        else:
            status, payload = "failed", _exit_reason(self.process.exitcode)
        with self._session() as session:
            if stop_reason == "shutdown" and status != "completed":
                return self._requeue(session, run, checkpoint.is_file())
            if status == "completed":
                finish_run(session, run.id, self.worker, "completed", result=payload)
            else:
                error = "cancelled by user" if status == "cancelled" and payload is None else payload
                finish_run(session, run.id, self.worker, status, error=error,
                           checkpoint=str(checkpoint) if checkpoint.is_file() else None)
        log.info("run %s %s%s", run.id, status, f": {payload}" if status == "failed" else "")
        return status

    def _supervise(self, run: Run, messages, stop) -> tuple[tuple | None, bool, str | None]:
        """Relay messages until the child reports an outcome or exits. Returns (outcome, lost, stop_reason)."""
        pending_step, stop_reason, stop_deadline, terminated_at = None, None, None, None
        next_beat, quiet_after_exit = 0.0, 0
        while True:
            try:
                kind, payload = messages.get(timeout=0.2)
            except (queue.Empty, EOFError, OSError):
                kind, payload = None, None
            if kind == "step":
                pending_step = payload
            elif kind == "restored":
                with self._session() as session:
                    record_restored(session, run.id, self.worker, payload)
            elif kind == "epoch":
                with self._session() as session:
                    record_epoch(session, run.id, self.worker, payload)
                if pending_step is not None and pending_step["epoch"] <= payload["epoch"]:
                    pending_step = None  # older than the epoch just stored: writing it would move progress back
            elif kind is not None:
                return (kind, payload), False, stop_reason
            elif not self.process.is_alive():
                # Whatever the child sent before it exited is already in the pipe; a few empty reads end it.
                quiet_after_exit += 1
                if quiet_after_exit >= 3:
                    return None, False, stop_reason
            now = time.monotonic()
            if now >= next_beat:
                with self._session() as session:
                    cancel = record_progress(session, run.id, self.worker, pending_step)
                pending_step, next_beat = None, now + self.settings.heartbeat_s
                if cancel is None:
                    stop.set()
                    return None, True, stop_reason
                if stop_reason is None and (cancel or self.shutdown.is_set()):
                    # Cooperative first: the trainer checks the flag every step.
                    stop_reason = "cancel" if cancel else "shutdown"
                    stop.set()
                    stop_deadline = now + self.settings.cancel_grace_s
            if stop_deadline is not None and now > stop_deadline and self.process.is_alive():
                if terminated_at is None:
                    log.warning("run %s ignored the stop flag for %.0f s; terminating it",
                                run.id, self.settings.cancel_grace_s)
                    self.process.terminate()
                    terminated_at = now
                elif now - terminated_at > KILL_AFTER_TERMINATE_S:
                    self.process.kill()

    def execute_pack(self, runs: list[Run]) -> dict[int, str]:
        """Train ``runs`` (claimed by this worker, compatible: app.store.queue.claim_pack_mates) in one child,
        packed. Each run keeps its own epochs, progress, heartbeat, cancel and ending. Returns each run's
        final status by id."""
        statuses: dict[int, str] = {}
        members = []
        for run in runs:
            try:
                members.append((run, self._teacher_checkpoint(run)))
            except FileNotFoundError as exc:
                with self._session() as session:
                    finish_run(session, run.id, self.worker, "failed", error=str(exc))
                statuses[run.id] = "failed"
        if not members:
            return statuses
        out_dirs = [self.settings.runs_dir / str(run.id) for run, _ in members]
        for out_dir in out_dirs:
            prepare_run_dir(out_dir, resume=False)  # a resuming run trains alone (claim_pack_mates)
        child = self._take_child()
        self.process = child.process
        child.jobs.put({
            "data_root": str(self.settings.data_dir),
            "runs": [{"config": run.config, "out_dir": str(out_dir), "teacher_checkpoint": teacher}
                     for (run, teacher), out_dir in zip(members, out_dirs)],
        })
        try:
            pack = _Pack([run for run, _ in members], [out_dir / CHECKPOINT for out_dir in out_dirs])
            self._supervise_pack(pack, child)
            statuses.update(pack.statuses)
            return statuses
        finally:
            self._reap(child)

    def _supervise_pack(self, pack: "_Pack", child: Child) -> None:
        """As _supervise, once for every run of the pack: relay each run's messages, renew each run's
        heartbeat, pass each run's cancel to the child, and record each run's end as it comes."""
        stop_deadline, terminated_at, next_beat, quiet_after_exit = None, None, 0.0, 0
        while pack.training():
            try:
                kind, index, payload = child.messages.get(timeout=0.2)
            except (queue.Empty, EOFError, OSError):
                kind, index, payload = None, None, None
            if kind is not None and index in pack.ended:
                pass  # lost to another worker, or a duplicate ending: nothing more is written for it
            elif kind == "step":
                pack.pending[index] = payload
            elif kind == "epoch":
                with self._session() as session:
                    record_epoch(session, pack.runs[index].id, self.worker, payload)
                step = pack.pending.get(index)
                if step is not None and step["epoch"] <= payload["epoch"]:
                    pack.pending[index] = None
            elif kind is not None:
                pack.end(index, self._record_end(pack.runs[index], (kind, payload), pack.stop_reasons.get(index),
                                                 pack.checkpoints[index]))
            elif not self.process.is_alive():
                quiet_after_exit += 1
                if quiet_after_exit >= 3:
                    for i in pack.unfinished():
                        pack.end(i, self._record_end(pack.runs[i], None, pack.stop_reasons.get(i),
                                                     pack.checkpoints[i]))
                    return
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.settings.heartbeat_s
                for i in pack.unfinished():
                    with self._session() as session:
                        cancel = record_progress(session, pack.runs[i].id, self.worker, pack.pending.get(i))
                    pack.pending[i] = None
                    if cancel is None:
                        log.warning("run %s was taken from worker %s; its result is dropped", pack.runs[i].id,
                                    self.worker)
                        child.jobs.put(("cancel", i))
                        pack.end(i, "lost")
                    elif cancel and i not in pack.stop_reasons:
                        pack.stop_reasons[i] = "cancel"
                        child.jobs.put(("cancel", i))  # this run only: the others train on
                        stop_deadline = stop_deadline or now + self.settings.cancel_grace_s
                if self.shutdown.is_set() and not child.stop.is_set():
                    for i in pack.unfinished():
                        pack.stop_reasons.setdefault(i, "shutdown")
                    child.stop.set()
                    stop_deadline = now + self.settings.cancel_grace_s
            stopping = [i for i in pack.unfinished() if i in pack.stop_reasons]
            if not stopping:
                stop_deadline = None
            elif len(stopping) < len(pack.unfinished()):
                pass  # a slow step (a loaded machine) must not cost the runs still training: wait for it
            elif stop_deadline is not None and now > stop_deadline and self.process.is_alive():
                if terminated_at is None:
                    log.warning("runs %s ignored the stop flag for %.0f s; terminating their pack",
                                [pack.runs[i].id for i in stopping], self.settings.cancel_grace_s)
                    self.process.terminate()
                    terminated_at = now
                elif now - terminated_at > KILL_AFTER_TERMINATE_S:
                    self.process.kill()

    def _reap(self, child: Child) -> None:
        """Wait for the child to exit (killing it if it hangs), in the background once it has reported:
        tearing down torch takes seconds that the next run need not wait for."""

        def reap() -> None:
            child.process.join(timeout=10)
            if child.process.is_alive():
                child.process.kill()
                child.process.join(timeout=5)
            child.close()

        if child.process.is_alive():
            threading.Thread(target=reap, name="kd-reap", daemon=True).start()
        else:
            reap()

    def _requeue(self, session, run: Run, has_checkpoint: bool) -> str:
        # Stopped by a worker shutdown, not by the user: the run goes back to the queue and resumes later.
        session.execute(
            update(Run).where(Run.id == run.id, Run.worker == self.worker, Run.status == "running")
            .values(status="queued", worker=None, started_at=None, heartbeat_at=None, resume=has_checkpoint,
                    cancel_requested=False, progress_at=None, eta_seconds=None)
        )
        session.commit()
        return "queued"


class _Pack:
    """The supervisor's view of a pack's runs, by their index in the pack job."""

    def __init__(self, runs: list[Run], checkpoints: list[Path]):
        self.runs, self.checkpoints = runs, checkpoints
        self.pending: dict[int, dict | None] = {}
        self.stop_reasons: dict[int, str] = {}
        self.ended: set[int] = set()
        self.statuses: dict[int, str] = {}

    def unfinished(self) -> list[int]:
        return [i for i in range(len(self.runs)) if i not in self.ended]

    def training(self) -> bool:
        return len(self.ended) < len(self.runs)

    def end(self, index: int, status: str) -> None:
        self.ended.add(index)
        self.statuses[self.runs[index].id] = status
