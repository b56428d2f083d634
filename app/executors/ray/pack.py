"""Supervise a pack of claimed runs on Ray: one task trains them together (kdcore.training.packing.trainer),
and each run keeps its own row, epochs, files, heartbeat, cancel and ending, as app.executors.ray.run gives
a run alone.

Each run's bookkeeping is a RayRun's own (its placement, epochs and files, how it ended); only the task,
the relay and the stopping are the pack's. A cancelled run is stopped through the task's Cancels actor
and the others train on; a server shutdown cancels the task, which stops them all.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import ray
from ray import exceptions as ray_errors

from app.executors.ray.cluster import Dispatch
from app.executors.ray.run import END, FORCED_END_WAIT_S, RayRun, next_message
from app.executors.ray.task import Cancels, train_pack
from app.executors.records import finish_run, record_progress
from app.executors.run_dirs import prepare_run_dir
from app.store.models import Run

log = logging.getLogger("kd.ray")


class RayPack:
    """Runs that share a step (app.store.queue.claim_pack_mates), trained by one Ray task."""

    def __init__(self, dispatch: Dispatch, runs: list[Run], worker: str):
        self.dispatch, self.settings = dispatch, dispatch.settings
        # Their threads never start: the pack's thread does their work.
        self.members = [RayRun(dispatch, run, worker) for run in runs]
        self.placement: dict | None = None
        self.generator: Any = None
        self.cancels: Any = None
        self.statuses: dict[int, str] = {}
        self.thread = threading.Thread(target=self._main, name=f"kd-ray-pack{runs[0].id}", daemon=True)

    @property
    def run_ids(self) -> list[int]:
        return [member.run.id for member in self.members]

    def _main(self) -> None:
        try:
            self.execute()
        except Exception as exc:  # noqa: BLE001  (the runs must not stay "running" behind a dead thread)
            log.exception("pack %s: Ray executor error", self.run_ids)
            if self.generator is not None:
                ray.cancel(self.generator, force=True)
            for member in self.members:
                with member._session() as session:
                    finish_run(session, member.run.id, member.worker, "failed", error=f"Ray executor error: {exc}")
        finally:
            self.dispatch.forget(self)

    def _submit(self) -> None:
        shared = self.settings.shared_runs_dir
        ready, teachers, files = [], [], []
        for member in self.members:
            try:
                teacher = member._teacher_checkpoint()
            except FileNotFoundError as exc:
                with member._session() as session:
                    finish_run(session, member.run.id, member.worker, "failed", error=str(exc))
                self.statuses[member.run.id] = "failed"
                continue
            prepare_run_dir(member.run_dir, resume=False)  # a resuming run trains alone (claim_pack_mates)
            ready.append(member)
            teachers.append(teacher)
            files.append(self.dispatch.cluster.teacher_objects(teacher) if teacher and not shared else None)
        self.members = ready
        if not ready:
            return
        job = {
            "shared": shared, "data_root": str(self.settings.data_dir.resolve()),
            "stop_grace_s": self.settings.cancel_grace_s,
            "runs": [{"run_id": m.run.id, "config": m.run.config, "out_dir": str(m.run_dir.resolve()),
                      "teacher_checkpoint": str(t.resolve()) if t and shared else None}
                     for m, t in zip(ready, teachers)],
        }
        self.cancels = Cancels.remote()
        options = self.dispatch.cluster.resources_for(ready[0].run.config)
        self.generator = train_pack.options(**options).remote(job, files, self.cancels)

    def execute(self) -> dict[int, str]:
        """Train the pack's runs (claimed under the executor's name) and record how each ended."""
        self._submit()
        if self.members:
            self._relay()
        return self.statuses

    def _next(self) -> Any:
        return next_message(self.generator)

    def _end(self, index: int, outcome: tuple | None, stop_reason: str | None, error: BaseException | None):
        member = self.members[index]
        self.statuses[member.run.id] = member._record_end(outcome, stop_reason, error)

    def _relay(self) -> None:
        """As RayRun._relay, for every run of the pack; each run's ending is recorded as it comes."""
        count = len(self.members)
        pending: dict[int, dict | None] = {}
        stop_reasons: dict[int, str] = {}
        ended: set[int] = set()
        error, stop_deadline, forced_at, next_beat = None, None, None, 0.0
        while len(ended) < count:
            try:
                message = self._next()
            except ray_errors.RayError as exc:
                error = exc
                break
            if message is END:
                break
            if message is not None:
                kind = message[0]
                if kind == "started":
                    self.placement = message[1]
                    for member in self.members:
                        member._placed(message[1])
                elif message[1] in ended:
                    pass  # lost to another holder: nothing more is written for it
                elif kind == "step":
                    pending[message[1]] = message[2]
                elif kind == "epoch":
                    index, metrics = message[1], message[2]
                    self.members[index]._store_epoch(metrics, message[3])
                    step = pending.get(index)
                    if step is not None and step["epoch"] <= metrics["epoch"]:
                        pending[index] = None
                else:
                    ended.add(message[1])
                    self._end(message[1], (kind, message[2]), stop_reasons.get(message[1]), None)
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.settings.heartbeat_s
                for index in sorted(set(range(count)) - ended):
                    member = self.members[index]
                    with member._session() as session:
                        cancel = record_progress(session, member.run.id, member.worker, pending.get(index))
                    pending[index] = None
                    if cancel is None:
                        log.warning("run %s was taken from %s; its result is dropped", member.run.id, member.worker)
                        self.cancels.cancel.remote(index)
                        ended.add(index)
                        self.statuses[member.run.id] = "lost"
                    elif cancel and index not in stop_reasons:
                        stop_reasons[index] = "cancel"
                        self.cancels.cancel.remote(index)  # this run only: the others train on
                        stop_deadline = stop_deadline or now + self.settings.cancel_grace_s
                if self.dispatch.shutdown.is_set() and "shutdown" not in stop_reasons.values():
                    for index in set(range(count)) - ended:
                        stop_reasons.setdefault(index, "shutdown")
                    ray.cancel(self.generator)  # the task's stop flag: every run stops at its next step
                    stop_deadline = now + self.settings.cancel_grace_s
            stopping = [i for i in stop_reasons if i not in ended]
            if not stopping:
                stop_deadline = None
            elif len(stopping) < count - len(ended):
                pass  # a slow step must not cost the runs still training: the cancelled one stops at its next
            elif stop_deadline is not None and now > stop_deadline:
                if forced_at is None:
                    log.warning("runs %s ignored the cancel for %.0f s; forcing their pack",
                                [self.members[i].run.id for i in stopping], self.settings.cancel_grace_s)
                    ray.cancel(self.generator, force=True)
                    forced_at = now
                elif now - forced_at > FORCED_END_WAIT_S:
                    break
        for index in sorted(set(range(count)) - ended):
            self._end(index, None, stop_reasons.get(index), error)
