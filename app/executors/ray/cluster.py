"""What a Ray run or pack needs from the executor that claimed it, in one place both import.

``Cluster`` is the cluster as the executor last saw it: its free capacity (published for the queue
card), the resources a run's task asks for, and teachers' weights kept in the object store for the KD
runs that follow them. ``Dispatch`` is the rest a supervised run needs: settings, database, the
shutdown event, and the executor's ``forget`` for when it ends.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ray
from sqlalchemy import Engine

from app.executors.ray import capacity
from app.executors.ray.capacity import ClusterCapacity
from app.settings import Settings
from kdcore.training.run_files import BEST

# Teachers whose weights stay in the object store for the KD runs that follow them (a study's students).
TEACHERS_KEPT = 4


class Cluster:
    def __init__(self, runs_per_gpu: int = 1):
        self.runs_per_gpu = runs_per_gpu
        self.capacity: ClusterCapacity | None = None
        self._teachers: dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    def refresh(self, db_url: str) -> ClusterCapacity:
        """Read the live nodes and free resources, and publish them for the pages on ``db_url``."""
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        free = ray.available_resources()

        def total(key: str) -> float:
            return sum(node.get("Resources", {}).get(key, 0.0) for node in nodes)

        gpus, cpus = total("GPU"), total("CPU")
        slots = int(gpus * self.runs_per_gpu) if gpus else int(cpus)
        self.capacity = ClusterCapacity(nodes=len(nodes), gpus_total=gpus, gpus_free=free.get("GPU", 0.0),
                                        cpus_total=cpus, cpus_free=free.get("CPU", 0.0), slots=slots)
        capacity.publish(db_url, self.capacity)
        return self.capacity

    def resources_for(self, config: dict) -> dict:
        """A run on a GPU cluster asks for its share of a GPU (and no CPU: a CPU apiece would cap the runs
        per GPU at the node's core count); a CPU run, or any run on a cluster without GPUs, one CPU."""
        options: dict = {"max_retries": 0}
        if self.capacity is not None and self.capacity.gpus_total > 0 and config.get("device") != "cpu":
            return {**options, "num_gpus": 1 / self.runs_per_gpu, "num_cpus": 0}
        return {**options, "num_cpus": 1, "num_gpus": 0}

    def teacher_objects(self, checkpoint: Path) -> tuple:
        """A teacher's checkpoint and best weights in the object store, put once for all its students."""
        stat = checkpoint.stat()
        key = (str(checkpoint), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            found = self._teachers.get(key)
        if found is None:
            best = checkpoint.with_name(BEST)
            found = (ray.put(checkpoint.read_bytes()), ray.put(best.read_bytes()) if best.is_file() else None)
            with self._lock:
                self._teachers[key] = found
                while len(self._teachers) > TEACHERS_KEPT:
                    self._teachers.pop(next(iter(self._teachers)))
        return found

    def forget_teachers(self) -> None:
        with self._lock:
            self._teachers.clear()


@dataclass(frozen=True)
class Dispatch:
    settings: Settings
    engine: Engine
    shutdown: threading.Event
    cluster: Cluster
    # Called once by a run or pack when it has ended, with itself.
    forget: Callable[[object], None]
