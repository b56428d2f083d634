"""An imported teacher's job (app.teachers queues it): map the uploaded checkpoint onto the project's network
(kdcore.training.teacher_import), evaluate it on the dataset's test split, and report it as a run's ending.

It runs where a training job runs (the local pool's child process, a Ray task) and reports through the same
messages (app.executors.training), so its run ends ``completed`` with the test accuracy as its final accuracy,
or ``failed`` with the first key or shape that does not fit. A failed import leaves no checkpoint behind: a
teacher that half-loaded must not be distilled from. The upload stays for a retry; a completed import no
longer needs it (the project checkpoint holds the weights, the run's origin the file's name and sha256).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from kdcore.training.run_files import CHECKPOINT

UPLOAD_DIR = "upload"  # the run folder's subfolder that holds the uploaded file until the import completes


def upload_path(run_dir: str | os.PathLike, file_name: str) -> Path:
    """Where the web process stores the upload: under its own (cleaned) name, which the checkpoint's origin
    then names too."""
    return Path(run_dir) / UPLOAD_DIR / file_name


def import_spec(run, run_dir: str | os.PathLike) -> dict | None:
    """What an imported teacher run's job needs besides a training job's (None: the run trains): its upload,
    where the web process stored it, and the request's choices."""
    if run.origin is None:
        return None
    return {"source": str(upload_path(run_dir, run.origin["file"])), "file_name": run.origin["file"],
            "format": run.origin.get("format"), "architecture": run.architecture or run.config.get("architecture"),
            "num_classes": run.num_classes, "dataset": run.dataset or run.config.get("dataset")}


def import_job(job: dict) -> dict:
    """``job["import"]``: source (the uploaded file), file_name, format, architecture, num_classes, dataset.
    Returns the run's result (as a training job's, app.executors.training); raises what went wrong, with no
    checkpoint left in the run's folder."""
    out_dir, spec = Path(job["out_dir"]), job["import"]
    checkpoint = out_dir / CHECKPOINT
    started = time.perf_counter()
    try:
        from kdcore.training.checkpoint import load_checkpoint
        from kdcore.training.teacher_import import import_teacher

        written = Path(import_teacher(spec["source"], spec["architecture"], spec["num_classes"], spec["format"],
                                      out_dir, dataset=spec["dataset"], data_root=job["data_root"]))
        if written.resolve() != checkpoint.resolve():
            os.replace(written, checkpoint)
        payload = load_checkpoint(checkpoint)
    except BaseException:
        checkpoint.unlink(missing_ok=True)
        raise
    shutil.rmtree(out_dir / UPLOAD_DIR, ignore_errors=True)
    seconds = time.perf_counter() - started
    # No seconds: the timings that estimate training (app.launch.timings) must not read an import as a run.
    return {
        "final_accuracy": payload["test_accuracy"], "test_accuracy_at_best": None, "best_val_accuracy": None,
        "best_epoch": None, "parameters": payload["parameters"], "seconds": None, "checkpoint": str(checkpoint),
        "notes": [f"imported from {spec['file_name']} ({spec['format']} format), mapped and evaluated on the test "
                  f"split of {spec['dataset']} here in {seconds:.1f} s: not trained here"],
    }
