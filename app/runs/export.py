"""Deployable exports of a completed run (kdcore.deploy), for the API's download and the run page's card.

The export runs in a short-lived subprocess (``python -m kdcore.deploy``), not in a worker: the web process never
imports torch, and an export is seconds of work a person waits for, which must not queue behind hours of training
in the worker's slots. It reads the checkpoint where the checkpoint download reads it, and writes into the run's
folder (``export/FORMAT/``: the model file and card.json, deleted with the run). A later request for the same
checkpoint is answered from there; a changed checkpoint (a run retried and trained on) is exported again.
Concurrent requests for one export share one subprocess; exports of different runs take turns, so that a row of
clicks cannot start a dozen exporters at once on the server's cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

from sqlmodel import Session

from app.store.errors import Conflict, NotFound, ServiceError
from app.store.models import Run
from kdcore.data.catalog import file_sha256
from kdcore.deploy.files import CARD, FILE_NAMES
from kdcore.flights import SingleFlight

EXPORT_DIR = "export"
TIMEOUT_S = 900  # the largest zoo network's ONNX export and its check on 10,000 test images take about a minute
_exporting = SingleFlight()
_one_at_a_time = threading.Lock()


class ExportUnavailable(ServiceError):
    """This server cannot make the format: its optional packages (the ``deploy`` extra) are not installed."""

    status_code = 503


class ExportRefused(ServiceError):
    """The exported file did not compute what the network computes (the parity check), or the run's data is not
    here to check it on."""

    status_code = 422


def export_folder(run: Run) -> Path:
    if run.status != "completed":
        raise Conflict(f"run {run.id} is {run.status}: only a completed run can be exported")
    checkpoint = Path(run.checkpoint) if run.checkpoint else None
    if checkpoint is None or not checkpoint.is_file():
        raise NotFound(f"run {run.id} has no checkpoint")
    return checkpoint.parent / EXPORT_DIR


def cached_card(run: Run, format: str) -> dict | None:
    """The card of the run's ``format`` export, if one was made from its current checkpoint."""
    card_file = export_folder(run) / format / CARD
    try:
        card = json.loads(card_file.read_text())
    except (OSError, ValueError):
        return None
    current = file_sha256(run.checkpoint)
    return card if card.get("run", {}).get("checkpoint", {}).get("sha256") == current else None


def export_run(session: Session, run: Run, format: str, data_dir: Path) -> dict:
    """The card of the run's ``format`` export, made now unless it exists for the run's current checkpoint."""
    teacher = session.get(Run, run.teacher_run_id) if run.teacher_run_id is not None else None
    folder = export_folder(run) / format
    card = cached_card(run, format)
    if card is not None:
        return card

    def make() -> dict:
        with _one_at_a_time:
            return cached_card(run, format) or _run_exporter(run, format, folder, data_dir, teacher)
    return _exporting.run((run.id, format), make)


def _run_exporter(run: Run, format: str, folder: Path, data_dir: Path, teacher: Run | None) -> dict:
    about = {"run_id": run.id, "teacher": {"run_id": teacher.id, "architecture": teacher.architecture}
             if teacher is not None else None}
    # On the CPU: the GPUs are the training workers'. The card's figures are CPU float32 figures either way.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    try:
        done = subprocess.run([sys.executable, "-m", "kdcore.deploy", str(run.checkpoint), format, str(folder),
                               str(data_dir), json.dumps(about)], capture_output=True, text=True, env=env,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ExportRefused(f"the {format} export of run {run.id} took more than {TIMEOUT_S} s and was stopped") from None
    if done.returncode == 0:
        return json.loads((folder / CARD).read_text())
    refusal = _refusal(done.stdout)
    if refusal is None:
        raise RuntimeError(f"exporting run {run.id} as {format} failed: {done.stderr.strip()[-2000:]}")
    if refusal["kind"] == "ExtraMissing":
        raise ExportUnavailable(refusal["error"])
    raise ExportRefused(refusal["error"])


def _refusal(stdout: str) -> dict | None:
    lines = stdout.strip().splitlines()
    try:
        refusal = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return refusal if isinstance(refusal, dict) and "error" in refusal else None


def export_zip(run: Run, format: str) -> Path:
    """One zip of the export's model file and card (made once per export)."""
    folder = export_folder(run) / format
    archive = folder.parent / f"run-{run.id}-{format}.zip"
    card_file = folder / CARD
    if not archive.is_file() or archive.stat().st_mtime_ns < card_file.stat().st_mtime_ns:
        partial = archive.with_name(f".{archive.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for name in (FILE_NAMES[format], CARD):
                bundle.write(folder / name, f"run-{run.id}-{format}/{name}")
        partial.replace(archive)
    return archive
