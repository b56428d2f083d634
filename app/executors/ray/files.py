"""A run's files on their way between the server's runs directory and a Ray node's scratch folder.

Without shared storage, the node sends back what the trainer wrote after each epoch (the checkpoint
to resume from, a teacher's best weights, metrics.json), and the server sends a teacher's weights
and a checkpoint to resume from as bytes through Ray's object store.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kdcore.training.run_files import BEST, CHECKPOINT, METRICS

RETURNED = (CHECKPOINT, BEST, METRICS)


def changed_files(folder: Path, seen: dict[str, tuple[int, int]]) -> dict[str, bytes]:
    """The run files in ``folder`` that changed since the last call (``seen`` remembers), as bytes."""
    changed = {}
    for name in RETURNED:
        path = folder / name
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        stamp = (stat.st_mtime_ns, stat.st_size)
        if seen.get(name) != stamp:
            changed[name] = path.read_bytes()
            seen[name] = stamp
    return changed


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write each file atomically: a reader (a download, a resumed run) never sees half of one."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if name not in RETURNED:
            raise ValueError(f"unexpected run file {name!r}")
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
