"""An uploaded checkpoint, copied from the request to the runs directory while its sha256 is computed.

The request's size is bounded before it is read (app.access.body_limit, KD_MAX_UPLOAD for the paths here). The
copy goes to a staging file beside the run folders (the same file system, so moving it into the run's folder is
a rename) and only moves in once the run exists: a refused request stores nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

# The import routes, whose bodies may be KD_MAX_UPLOAD bytes instead of KD_MAX_BODY (app.main).
API_PATH = "/api/teachers/import"
PAGE_PATH = "/launch/teacher"
UPLOAD_PATHS = (API_PATH, PAGE_PATH)
STAGING = ".uploads"
CHUNK = 1 << 20


def file_name(raw: str | None) -> str:
    """The client's file name as the registry shows it: its last path part, printable, at most 200 characters."""
    base = re.split(r"[\\/]", raw or "")[-1]
    cleaned = re.sub(r"[^\w.+@()\[\] -]", "_", base).strip().lstrip(".")[:200]
    return cleaned or "upload"


def stage(source: BinaryIO, runs_dir: Path) -> tuple[Path, int, str]:
    """Copy ``source`` to a new staging file; returns its path, size and sha256."""
    folder = runs_dir / STAGING
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="teacher-", suffix=".part", dir=folder)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            for block in iter(lambda: source.read(CHUNK), b""):
                digest.update(block)
                size += len(block)
                out.write(block)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), size, digest.hexdigest()


def move_into(staged: Path, target: Path) -> None:
    """Move the staged file to ``target`` (the run's upload), in a folder emptied of anything older."""
    if target.parent.exists():
        shutil.rmtree(target.parent)
    target.parent.mkdir(parents=True)
    os.replace(staged, target)
