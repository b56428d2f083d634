"""The Ray executor: a thread in the server that claims queued runs while the cluster has room and
trains each as one Ray task (app.executors.ray.run supervises it). With a pack size above 1
(``--pack``, KD_PACK; by default 8 on a cluster with GPUs, 1 without) it claims compatible queued runs
with each and trains them together as one task (app.executors.ray.pack), in one slot.

It offers the local pool's interface (start, stop, maybe_recover), so ``create_app(worker_pool=...)``
runs either. One server per database runs it: at start-up it settles every run left on Ray.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time

import ray
from sqlalchemy import Engine

from app.executors.backoff import Backoff
from app.executors.ray import capacity
from app.executors.ray.capacity import ClusterCapacity
from app.executors.ray.cluster import Cluster, Dispatch
from app.executors.ray.connection import connect
from app.executors.ray.names import claim_name
from app.executors.ray.pack import RayPack
from app.executors.ray.records import settle_left_runs
from app.executors.ray.run import RayRun
from app.executors.lost_runs import recover_lost_runs
from app.settings import Settings
from app.store.db import init_db, new_session
from app.store.queue import HOST, cancel_orphans, claim_next, claim_pack_mates
from kdcore.training.packing.key import default_pack

log = logging.getLogger("kd.ray")
RECOVERY_INTERVAL_S = 10.0
CAPACITY_INTERVAL_S = 2.0


class RayExecutor:
    def __init__(self, settings: Settings, *, runs_per_gpu: int = 1, engine: Engine | None = None):
        self.settings, self.runs_per_gpu = settings, runs_per_gpu
        self.engine = engine or init_db(settings)
        self.shutdown = threading.Event()
        self.active: dict[int, RayRun | RayPack] = {}  # by run id: a pack is there once per run
        self.cluster = Cluster(runs_per_gpu)
        self.dispatch = Dispatch(settings, self.engine, self.shutdown, self.cluster, self.forget)
        self._lock = threading.Lock()
        self._claims = itertools.count(1)
        self._connected = self._joined = False
        self._last_recovery = float("-inf")
        self._thread = threading.Thread(target=self._loop, name="kd-ray-executor", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def connect(self) -> None:
        """Join the cluster (once); ClusterUnreachable says in one line why it cannot be joined. ``kd serve``
        calls it before the server starts, so that a refusal ends it at once."""
        if not self._joined:
            self._connected = connect(self.settings.ray_address)
            self._joined = True

    def start(self) -> None:
        self.connect()
        self.settings.runs_dir.mkdir(parents=True, exist_ok=True)
        with new_session(self.engine, self.settings) as session:
            settle_left_runs(session, self.settings.runs_dir)
        self.maybe_recover(force=True)
        self.refresh_capacity()
        self._thread.start()
        log.info("Ray executor: %s", self.capacity)

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; running runs are stopped and queued again to resume later."""
        self.shutdown.set()
        timeout = timeout if timeout is not None else self.settings.cancel_grace_s + 15
        if self._thread.is_alive():
            self._thread.join(timeout)
        for unit in set(self.active.values()):
            unit.thread.join(timeout)
        capacity.withdraw(self.settings.db_url)
        self.cluster.forget_teachers()
        if self._connected:
            ray.shutdown()
        self._connected = self._joined = False

    @property
    def capacity(self) -> ClusterCapacity | None:
        return self.cluster.capacity

    def forget(self, unit: RayRun | RayPack) -> None:
        with self._lock:
            for run_id in unit.run_ids:
                self.active.pop(run_id, None)

    # ------------------------------------------------------------------ dispatch

    def _loop(self) -> None:
        next_refresh = 0.0
        backoff = Backoff(log, "Ray executor", self.settings.db_url, self.settings.poll_s)
        while not self.shutdown.is_set():
            wait = self.settings.poll_s
            try:
                if time.monotonic() >= next_refresh:
                    self.refresh_capacity()
                    next_refresh = time.monotonic() + CAPACITY_INTERVAL_S
                self.maybe_recover()
                claimed = self._has_room() and self._claim_one()
                backoff.succeeded()
                if claimed:
                    continue
            except Exception as exc:  # noqa: BLE001  (a database or cluster hiccup must not end the executor)
                wait = backoff.failed(exc)
            self.shutdown.wait(wait)

    def _has_room(self) -> bool:
        with self._lock:
            running = len(set(self.active.values()))  # a pack trains in one slot
        return self.capacity is not None and running < self.capacity.slots

    def pack_size(self) -> int:
        if self.settings.pack is not None:
            return self.settings.pack
        return default_pack("cuda" if self.capacity is not None and self.capacity.gpus_total > 0 else "cpu")

    def _claim_one(self) -> bool:
        name = claim_name(HOST, os.getpid(), next(self._claims))
        with new_session(self.engine, self.settings) as session:
            cancel_orphans(session)
            run = claim_next(session, name)
            size = self.pack_size()
            mates = claim_pack_mates(session, name, run, size - 1) if run is not None and size > 1 else []
        if run is None:
            return False
        unit = RayPack(self.dispatch, [run, *mates], name) if mates else RayRun(self.dispatch, run, name)
        with self._lock:
            for run_id in unit.run_ids:
                self.active[run_id] = unit
        log.info("run%s %s claimed for Ray", "s" if mates else "",
                 ", ".join(f"{r.id} ({r.kind})" for r in [run, *mates]))
        unit.thread.start()
        return True

    def maybe_recover(self, force: bool = False) -> list[int]:
        """End runs of dead workers (stale heartbeats), as the local pool does."""
        now = time.monotonic()
        if not force and now - self._last_recovery < RECOVERY_INTERVAL_S:
            return []
        self._last_recovery = now
        return recover_lost_runs(self.engine, self.settings)

    # ------------------------------------------------------------------ the cluster

    def refresh_capacity(self) -> ClusterCapacity:
        return self.cluster.refresh(self.settings.db_url)

    def placement(self, run_id: int) -> dict | None:
        """Where a run of this executor trains (ip, node_id, gpus, pid), once its task has started."""
        with self._lock:
            run = self.active.get(run_id)
        return run.placement if run else None
