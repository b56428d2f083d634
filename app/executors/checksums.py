"""The teacher registry's checksums: the sha256 of a teacher's checkpoint file, recorded when the run completes,
and whether the file on disk still matches it.

A KD run reads its teacher's weights from that file. A file replaced or damaged since (a copy from elsewhere,
a half-written restore, another import under the same path) would make every student distil from weights
nobody recorded, so the web process refuses such a teacher (app.runs.validation) and the worker checks again
before it trains (app.executors.local.runner, app.executors.ray.run). Hashing a checkpoint of 100 MB takes
a tenth of a second; each file's digest is kept for as long as its size and modification time stay the same,
so the teacher pickers and validation do not read every file on every request.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from kdcore.data.catalog import file_sha256

class TeacherFileChanged(FileNotFoundError):
    """The teacher's recorded checkpoint is not on disk as recorded: the run that asked for it fails, as for a
    missing file (the executors catch FileNotFoundError)."""


_known: dict[str, tuple[tuple[int, int], str]] = {}
_lock = threading.Lock()


def current_sha256(path: str | os.PathLike) -> str | None:
    """The file's sha256 now, or None when it is not there."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    stamp, key = (stat.st_size, stat.st_mtime_ns), os.path.abspath(path)
    with _lock:
        found = _known.get(key)
    if found is not None and found[0] == stamp:
        return found[1]
    try:
        digest = file_sha256(path)
    except OSError:
        return None
    with _lock:
        _known[key] = (stamp, digest)
    return digest


def checksum_problem(run) -> str | None:
    """Why a completed teacher run's checkpoint may not be used (None: it may): its file is gone, or its
    content is no longer what the worker recorded. A run with no recorded checksum has nothing to compare."""
    if run.status != "completed" or not run.checkpoint_sha256:
        return None
    if not run.checkpoint or not Path(run.checkpoint).is_file():
        return f"teacher run {run.id}'s checkpoint file is missing ({run.checkpoint})"
    now = current_sha256(run.checkpoint)
    if now != run.checkpoint_sha256:
        return (f"teacher run {run.id}'s checkpoint file no longer matches its recorded sha256 "
                f"({run.checkpoint_sha256[:12]}…, now {str(now)[:12]}…): it was changed or replaced since the "
                "run completed; it is not used")
    return None


def verified_teacher_file(run) -> str:
    """The teacher run's checkpoint path, after checking it is there and still matches its recorded sha256;
    raises FileNotFoundError (TeacherFileChanged) saying why not."""
    if run is None or not run.checkpoint or not Path(run.checkpoint).is_file():
        raise FileNotFoundError(f"teacher run {getattr(run, 'id', '?')} has no checkpoint")
    problem = checksum_problem(run)
    if problem:
        raise TeacherFileChanged(problem)
    return run.checkpoint
