"""What the Ray cluster has free, as the executor last saw it, for the queue card.

The executor publishes a snapshot every few seconds under its database URL; the pages read it for
their own database, so apps on different databases (tests) never see each other's cluster.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterCapacity:
    nodes: int
    gpus_total: float
    gpus_free: float
    cpus_total: float
    cpus_free: float
    # How many runs the executor keeps on the cluster at once (GPUs × runs per GPU, else CPUs).
    slots: int


_published: dict[str, ClusterCapacity] = {}
_lock = threading.Lock()


def publish(db_url: str, capacity: ClusterCapacity) -> None:
    with _lock:
        _published[db_url] = capacity


def withdraw(db_url: str) -> None:
    with _lock:
        _published.pop(db_url, None)


def current(db_url: str) -> ClusterCapacity | None:
    with _lock:
        return _published.get(db_url)
