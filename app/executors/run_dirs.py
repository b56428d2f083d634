"""A run's folder (runs directory / run id) made ready for an attempt, by the local pool and the Ray executor.

An attempt that does not resume must neither resume from nor keep files it did not write. A folder can be
there already: left by a run deleted while its folder could not be removed, or by an older database whose
ids a new one gives again (a database file deleted beside its runs directory). Its checkpoint would
otherwise be recorded as the new run's when that run fails or stops before its first epoch, and a retry
would then resume another run's weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kdcore.training.run_files import CHECKPOINT


def prepare_run_dir(run_dir: Path, resume: bool, keep: str | None = None) -> bool:
    """Make ``run_dir`` ready for an attempt; returns whether the attempt resumes (asked, and this run's
    checkpoint is there). Otherwise the folder is emptied first: the attempt starts from nothing but ``keep``,
    an entry the run's request put there (an imported teacher's upload, app.executors.teacher_import)."""
    if resume and (run_dir / CHECKPOINT).is_file():
        return True
    if run_dir.exists():
        for entry in run_dir.iterdir():
            if entry.name == keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    return False
