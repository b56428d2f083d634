"""What training took here: the epoch times of recently completed runs, by what sets a step's cost (method,
network, batch, precision, data size) and the kind of device they trained on; and the kind of device the
next run will train on. app.launch.estimates turns these into the launch forms' expected times."""

from __future__ import annotations

import statistics
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from app.store.models import Epoch, Run

# How many of the latest finished runs are read: recent enough to be this hardware, enough for each network.
RECENT_RUNS = 400
DEVICES = {"cpu": "CPU", "cuda": "GPU"}
# engine -> (the latest finish and the data sizes it was read with, the paces): per engine, so that apps on
# different databases never share one.
_cache: "weakref.WeakKeyDictionary[Any, tuple[tuple, list]]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


@dataclass(frozen=True)
class Measured:
    """One completed run's pace: the median of its epochs' seconds (the first, with its warm-up, weighs no more
    than any other), with what that pace depends on."""

    kind: str
    architecture: str | None
    batch_size: int
    precision: str
    device: str  # "cpu" or "cuda"
    images: int | None  # its data, before any validation split: the subset, else the dataset's training split
    epoch_seconds: float


def device_kind(worker: str | None, configured: Any = None) -> str | None:
    """The kind of device a run trains on: the one its config names, else its worker slot's (local slots and
    Ray tasks end their names in ``cpu`` or ``gpuN``); None when neither says."""
    if configured in DEVICES:
        return configured
    slot = (worker or "").rsplit(":", 1)[-1]
    return "cuda" if slot.startswith("gpu") else "cpu" if slot.startswith("cpu") else None


def worker_device(session: Session, pool: Any = None) -> tuple[str | None, str]:
    """The kind of device this server's next run trains on, and how that is known: its own worker slots when it
    has some, else the workers that took the latest runs; (None, why) when nothing says."""
    slots = getattr(pool, "slots", None)
    if slots:
        kinds = {"cuda" if getattr(slot, "gpu", None) is not None else "cpu" for slot in slots}
        return ("cuda" if "cuda" in kinds else "cpu"), "this server's workers"
    # The newest runs only (along the primary key): a database of runs no worker took is not read through.
    latest = session.exec(select(Run.worker).order_by(Run.id.desc()).limit(200)).all()
    for worker in latest:
        if (kind := device_kind(worker)) is not None:
            return kind, "the workers that took the latest runs"
    return None, "no worker has taken a run yet"


def measured_runs(session: Session, train_sizes: dict[str, int | None]) -> list[Measured]:
    """The latest completed runs' paces (``train_sizes``: each dataset's training split, by name), read again
    only once another run has finished: the launch page and its forms' every change ask for them."""
    latest = session.exec(select(Run.finished_at).where(Run.finished_at.is_not(None))
                          .order_by(Run.finished_at.desc()).limit(1)).first()
    key = (latest, tuple(sorted(train_sizes.items())))
    engine = session.get_bind()
    with _lock:
        cached = _cache.get(engine)
    if cached is not None and cached[0] == key:
        return cached[1]
    found = _read(session, train_sizes)
    with _lock:
        _cache[engine] = (key, found)
    return found


def _read(session: Session, train_sizes: dict[str, int | None]) -> list[Measured]:
    # Newest first along ix_runs_finished_at; failed and cancelled runs are skipped here rather than in SQL,
    # where a status test could lure SQLite onto the status index and a sort of every completed run.
    rows = session.exec(select(Run.id, Run.status, Run.kind, Run.architecture, Run.worker, Run.dataset,
                               Run.config["batch_size"], Run.config["precision"], Run.config["device"],
                               Run.config["subset"])
                        .where(Run.finished_at.is_not(None)).order_by(Run.finished_at.desc())
                        .limit(RECENT_RUNS)).all()
    rows = [row for row in rows if row[1] == "completed"]
    seconds: dict[int, list[float]] = {}
    if rows:
        for run_id, value in session.exec(select(Epoch.run_id, Epoch.seconds)
                                          .where(Epoch.run_id.in_([row[0] for row in rows]))).all():
            seconds.setdefault(run_id, []).append(value)
    found = []
    for run_id, _, kind, architecture, worker, dataset, batch_size, precision, configured, subset in rows:
        device = device_kind(worker, configured)
        if device is None or not seconds.get(run_id):
            continue
        found.append(Measured(kind, architecture, int(batch_size or 32), precision or "float32", device,
                              subset or train_sizes.get(dataset or ""), statistics.median(seconds[run_id])))
    return found
