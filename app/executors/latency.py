"""Latency requests (app.store.models.LatencyRequest), taken by a worker slot that has no run to train: the
networks are timed in a process of their own (``python -m kdcore.architectures.latency``; a CPU slot times
the CPU and onnxruntime, a GPU slot its GPU too), and each figure is stored under its key (device, its model,
torch and onnxruntime versions), replacing the figure measured before under the same key."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import timedelta

from sqlalchemy import Engine, and_, delete, update
from sqlmodel import select

from app.settings import Settings
from app.store.db import new_session
from app.store.models import Latency, LatencyRequest, utcnow

log = logging.getLogger("kd.worker")
# A request whose worker died while measuring is failed after this long, so that it can be asked again.
LOST_AFTER = timedelta(hours=2)
TIMEOUT_S = 3600


def claim_request(engine: Engine, settings: Settings, worker: str) -> LatencyRequest | None:
    """Atomically take the oldest queued request (a conditional UPDATE, as runs are claimed)."""
    with new_session(engine, settings) as session:
        now = utcnow()
        lost = and_(LatencyRequest.status == "running", LatencyRequest.started_at < now - LOST_AFTER)
        # Read first: an idle slot polls this every few seconds, and a write each time would contend for the lock.
        if session.exec(select(LatencyRequest.id).where(lost).limit(1)).first() is not None:
            session.execute(update(LatencyRequest).where(lost).values(status="failed", finished_at=now,
                                                                      error="worker lost"))
            session.commit()
        for request_id in session.exec(select(LatencyRequest.id).where(LatencyRequest.status == "queued")
                                       .order_by(LatencyRequest.id).limit(5)).all():
            taken = session.execute(update(LatencyRequest)
                                    .where(and_(LatencyRequest.id == request_id, LatencyRequest.status == "queued"))
                                    .values(status="running", worker=worker, started_at=utcnow()))
            session.commit()
            if taken.rowcount == 1:
                return session.get(LatencyRequest, request_id, populate_existing=True)
    return None


def measure_command(request: LatencyRequest, gpu: str | None) -> list[str]:
    return [sys.executable, "-m", "kdcore.architectures.latency", *request.networks,
            "--num-classes", str(request.num_classes), "--min-run-time", str(request.min_run_time),
            "--gpu" if gpu is not None else "--no-gpu"]


def run_request(engine: Engine, settings: Settings, request: LatencyRequest, gpu: str | None) -> None:
    """Measure ``request`` in a child process and store what it measured, or why it failed."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu if gpu is not None else ""}
    log.info("latency request %s: timing %s", request.id, ", ".join(request.networks) or "every network")
    try:
        done = subprocess.run(measure_command(request, gpu), capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip()[-2000:] or f"exited with code {done.returncode}")
        measured = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, RuntimeError, ValueError) as exc:
        finish(engine, settings, request.id, "failed", error=f"{type(exc).__name__}: {exc}"[:4000])
        return
    store(engine, settings, request, measured)
    finish(engine, settings, request.id, "completed")


def store(engine: Engine, settings: Settings, request: LatencyRequest, measured: dict) -> None:
    """Each row under its key, replacing an older figure under the same key."""
    keys = measured["keys"]
    with new_session(engine, settings) as session:
        for network, rows in measured["networks"].items():
            for row in rows:
                key = keys[row["device"]]
                figure = Latency(request_id=request.id, network=network, num_classes=request.num_classes,
                                 target=row["target"], batch=row["batch"], threads=row["threads"], device=row["device"],
                                 device_model=key["device_model"], torch_version=key["torch"],
                                 onnxruntime_version=key["onnxruntime"], median_s=row["median_s"], iqr_s=row["iqr_s"],
                                 blocks=row["blocks"], calls=row["calls"], unavailable=row["unavailable"],
                                 min_run_time=request.min_run_time)
                session.execute(delete(Latency).where(*same_key(figure)))
                session.add(figure)
        session.commit()


def same_key(figure: Latency) -> list:
    columns = (Latency.network, Latency.num_classes, Latency.target, Latency.batch, Latency.threads, Latency.device,
               Latency.device_model, Latency.torch_version, Latency.onnxruntime_version)
    return [column.is_(None) if getattr(figure, column.key) is None else column == getattr(figure, column.key)
            for column in columns]


def finish(engine: Engine, settings: Settings, request_id: int, status: str, error: str | None = None) -> None:
    with new_session(engine, settings) as session:
        session.execute(update(LatencyRequest).where(LatencyRequest.id == request_id)
                        .values(status=status, finished_at=utcnow(), error=error))
        session.commit()
