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
from pathlib import Path

from kdcore.training.run_files import CHECKPOINT

UPLOAD_DIR = "upload"  # the run folder's subfolder that holds the uploaded file until the import completes
UPLOAD_FILE = "source.pth"


def upload_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / UPLOAD_DIR / UPLOAD_FILE


def import_spec(run, run_dir: str | os.PathLike) -> dict | None:
    """What an imported teacher run's job needs besides a training job's (None: the run trains): its upload,
    where the web process stored it, and the request's choices."""
    if run.origin is None:
        return None
    return {"source": str(upload_path(run_dir)), "file_name": run.origin.get("file"),
            "format": run.origin.get("format"), "architecture": run.architecture or run.config.get("architecture"),
            "num_classes": run.num_classes, "dataset": run.dataset or run.config.get("dataset")}


def import_job(job: dict) -> dict:
    """``job["import"]``: source (the uploaded file), file_name, format, architecture, num_classes, dataset.
    Returns the run's result (as a training job's, app.executors.training); raises what went wrong, with no
    checkpoint left in the run's folder."""
    out_dir, spec = Path(job["out_dir"]), job["import"]
    checkpoint = out_dir / CHECKPOINT
    try:
        from kdcore.training.teacher_evaluation import evaluate_teacher
        from kdcore.training.teacher_import import import_teacher

        written = Path(import_teacher(spec["source"], spec["architecture"], spec["num_classes"], spec["format"],
                                      out_dir, dataset=spec["dataset"]))
        if written.resolve() != checkpoint.resolve():
            os.replace(written, checkpoint)
        found = evaluate_teacher(checkpoint, spec["dataset"], job["data_root"])
    except BaseException:
        checkpoint.unlink(missing_ok=True)
        raise
    shutil.rmtree(out_dir / UPLOAD_DIR, ignore_errors=True)
    # No seconds: the timings that estimate training (app.launch.timings) must not read an import as a run.
    return {
        "final_accuracy": found.test_accuracy, "test_accuracy_at_best": None, "best_val_accuracy": None,
        "best_epoch": None, "parameters": found.parameters, "seconds": None, "checkpoint": str(checkpoint),
        "device": found.device,
        "notes": [f"imported from {spec['file_name']} ({spec['format']} format) and evaluated on the test split of "
                  f"{spec['dataset']} here, in {found.seconds:.1f} s on {found.device}: not trained here"],
    }
