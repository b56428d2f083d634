"""Worker names of runs held by the Ray executor, and what the pages say about them.

A run's ``worker`` column names its holder; every conditional write checks it (app.store.queue). The Ray
executor claims a run under a placeholder and renames it once the task reports its node, so the same
column says where the run trains: ``ray:<node ip>:<node id, 8 hex>:gpu<ids>|cpu``.
"""

from __future__ import annotations

PREFIX = "ray:"
WAITING = "waiting"


def claim_name(host: str, pid: int, seq: int) -> str:
    # Unique per claim: the placeholder holds the run until the task reports where it landed.
    return f"{PREFIX}{WAITING}:{host}-{pid}-{seq}"


def node_name(ip: str, node_id: str, gpus: list[str]) -> str:
    device = f"gpu{','.join(gpus)}" if gpus else "cpu"
    return f"{PREFIX}{ip}:{node_id[:8]}:{device}"


def is_ray_worker(worker: str | None) -> bool:
    return bool(worker) and worker.startswith(PREFIX)


def where(worker: str | None) -> str | None:
    """'Ray node 10.0.0.5 (3fa2b1c4), GPU 0' for a run on Ray; None for any other worker."""
    if not is_ray_worker(worker):
        return None
    parts = worker[len(PREFIX):].split(":")
    if parts[0] == WAITING or len(parts) != 3:
        return "Ray (waiting for a node)"
    ip, node, device = parts
    devices = f"GPU {device[3:]}" if device.startswith("gpu") else "CPU"
    return f"Ray node {ip} ({node}), {devices}"
