"""Worker slots: one per visible GPU (optionally several per GPU), else one on the CPU.

Each slot is a thread that claims a queued run, supervises its training child until the run
ends, and polls again. With a pack size N above 1 (``--pack``, KD_PACK; by default 8 on a GPU slot,
1 on the CPU one) it also claims up to N-1 more queued runs that can share the first's step and trains
them in one child, packed (kdcore.training.packing.trainer): each run still has its own row, progress,
cancel and ending.
The threads only do database bookkeeping, so they can live inside the web server process (``kd serve``)
or on their own (``kd worker``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time

from sqlalchemy import Engine

from app.executors.backoff import Backoff
from app.executors.latency import claim_request, run_request
from app.executors.local.runner import RunSupervisor
from app.executors.lost_runs import recover_lost_runs
from app.executors.records import finish_run
from app.settings import Settings
from app.store.db import init_db, new_session
from app.store.queue import HOST, cancel_orphans, claim_next, claim_pack_mates
from kdcore.training.packing.key import default_pack

log = logging.getLogger("kd.worker")
RECOVERY_INTERVAL_S = 10.0


def visible_gpus() -> list[str]:
    """GPU ids the workers may use, without importing torch: CUDA_VISIBLE_DEVICES, else nvidia-smi."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip() and gpu.strip() != "-1"]
    try:
        output = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in output.splitlines() if line.strip()]


class Slot:
    """One worker: a thread running one run at a time."""

    def __init__(self, pool: "WorkerPool", label: str, gpu: str | None):
        self.pool, self.gpu = pool, gpu
        configured = pool.settings.pack
        self.pack = configured if configured is not None else default_pack("cuda" if gpu is not None else "cpu")
        self.name = f"{HOST}:{os.getpid()}:{label}"
        self.supervisor = RunSupervisor(pool.engine, pool.settings, self.name, gpu, pool.shutdown)
        self.thread = threading.Thread(target=self._loop, name=f"kd-worker-{label}", daemon=True)

    def _loop(self) -> None:
        settings, shutdown = self.pool.settings, self.pool.shutdown
        backoff = Backoff(log, self.name, settings.db_url, settings.poll_s)
        while not shutdown.is_set():
            try:
                self.pool.maybe_recover()
                with new_session(self.pool.engine, settings) as session:
                    cancel_orphans(session)
                    run = claim_next(session, self.name)
                    mates = claim_pack_mates(session, self.name, run, self.pack - 1) if run and self.pack > 1 else []
                backoff.succeeded()
                if run is None:
                    # No run for this slot: time the networks someone asked for (app.executors.latency).
                    request = claim_request(self.pool.engine, settings, self.name)
                    if request is not None:
                        run_request(self.pool.engine, settings, request, self.gpu)
                    else:
                        shutdown.wait(settings.poll_s)
                    continue
                runs = [run, *mates]
                log.info("%s: run%s %s started", self.name, "s" if mates else "",
                         ", ".join(f"{r.id} ({r.kind})" for r in runs))
                try:
                    if mates:
                        self.supervisor.execute_pack(runs)
                    else:
                        self.supervisor.execute(run)
                except Exception as exc:
                    with new_session(self.pool.engine, settings) as session:
                        for held in runs:  # conditional: a run already ended keeps its state
                            finish_run(session, held.id, self.name, "failed", error=f"worker error: {exc}")
                    raise
            except Exception as exc:  # noqa: BLE001  (a database hiccup must not end the worker)
                shutdown.wait(backoff.failed(exc))


class WorkerPool:
    def __init__(self, settings: Settings, *, gpus: list[str] | None = None, runs_per_gpu: int = 1,
                 engine: Engine | None = None):
        self.settings = settings
        self.engine = engine or init_db(settings)
        self.shutdown = threading.Event()
        gpus = visible_gpus() if gpus is None else gpus
        if gpus:
            self.slots = [Slot(self, f"gpu{gpu}" + (f".{k}" if runs_per_gpu > 1 else ""), gpu)
                          for gpu in gpus for k in range(runs_per_gpu)]
        else:
            self.slots = [Slot(self, "cpu", None)]
        self._recover_lock = threading.Lock()
        self._last_recovery = float("-inf")

    def maybe_recover(self, force: bool = False) -> list[int]:
        """End runs of dead workers (at start-up, then every RECOVERY_INTERVAL_S across the slots)."""
        with self._recover_lock:
            now = time.monotonic()
            if not force and now - self._last_recovery < RECOVERY_INTERVAL_S:
                return []
            self._last_recovery = now
            return recover_lost_runs(self.engine, self.settings)

    def start(self) -> None:
        self.settings.runs_dir.mkdir(parents=True, exist_ok=True)
        self.maybe_recover(force=True)
        for slot in self.slots:
            slot.thread.start()
        log.info("worker slots: %s", ", ".join(slot.name for slot in self.slots))

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; running runs are stopped and queued again to resume later."""
        self.shutdown.set()
        timeout = timeout if timeout is not None else self.settings.cancel_grace_s + 15
        for slot in self.slots:
            if slot.thread.is_alive():
                slot.thread.join(timeout)
            slot.supervisor.close()

    def run_forever(self) -> None:
        self.start()
        try:
            while any(slot.thread.is_alive() for slot in self.slots):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
