"""Training one job and reporting it as messages: what a local pool's child process runs, and a Ray task.

It reports through a queue-like ``messages`` and never touches the database. Messages: ("restored", the
checkpoint's epochs) first when it resumes, ("step", StepProgress), ("epoch", EpochMetrics), then exactly
one of ("completed", RunResult), ("failed", message) or ("cancelled", None); all as plain dicts.

A pack job (several runs trained together by kdcore.training.packing.trainer) reports the same messages
with the run's index in the job between kind and payload: ("step", index, StepProgress), ..., one ending
per run. The worker cancels one run of a pack by sending ("cancel", index) on the jobs queue; the stop
event still stops them all (a worker shutdown).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from dataclasses import asdict

from app.executors.teacher_import import import_job
from kdcore.training.run_files import CHECKPOINT

STEP_REPORT_INTERVAL_S = 1.0


def describe_failure(exc: BaseException, out_dir: str | None = None) -> str:
    """A one-line, readable reason for the run's error column. ``out_dir``: the run's folder, named when a
    device filled up under a write that did not say which file it was."""
    from kdcore.errors import KDError, out_of_space

    first_line = (str(exc).strip().splitlines() or [""])[0][:500]
    if isinstance(exc, KDError):
        return first_line or type(exc).__name__
    full = out_of_space(exc)
    if full is not None:
        where = os.path.dirname(os.path.abspath(full.filename)) if full.filename else out_dir
        return f"no space left on device: {os.path.abspath(where)}" if where else "no space left on device"
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in first_line.lower():
        return f"CUDA out of memory: lower batch_size or the runs per GPU ({first_line})"
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {os.path.basename(frame.filename)}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {first_line}{where}"


def step_reporter(messages, interval_s: float = STEP_REPORT_INTERVAL_S, index: int | None = None):
    """An on_step callback that sends about one step a second, and always an epoch's last step: the test
    evaluation starts then, and the page shows that phase instead of a step from a second earlier.
    ``index``: the run's place in a pack job, sent with each message."""
    last_report = -float("inf")

    def on_step(progress) -> None:
        nonlocal last_report
        now = time.monotonic()
        if now - last_report >= interval_s or progress.step >= progress.steps:
            last_report = now
            messages.put(("step", asdict(progress)) if index is None else ("step", index, asdict(progress)))

    return on_step


def train_job(job: dict, messages, stop) -> None:
    on_step = step_reporter(messages)

    def on_epoch(metrics) -> None:
        messages.put(("epoch", asdict(metrics)))

    try:
        if job.get("import"):  # an imported teacher (app.executors.teacher_import): nothing to train
            messages.put(("completed", import_job(job)))
            return
        from kdcore.config import RunConfig
        from kdcore.errors import RunCancelled
        from kdcore.training import engine
        from kdcore.training.checkpoint import load_checkpoint

        if job["resume"]:
            # The checkpoint is where the run continues from: its epochs are the run's past, whatever the
            # database recorded (a server killed between a checkpoint and its epoch's row: app.executors.lost_runs).
            checkpoint = os.path.join(job["out_dir"], CHECKPOINT)
            messages.put(("restored", load_checkpoint(checkpoint)["metrics"]))
        try:
            result = engine.train(
                RunConfig.model_validate(job["config"]), out_dir=job["out_dir"], data_root=job["data_root"],
                teacher_checkpoint=job["teacher_checkpoint"], resume=job["resume"],
                on_step=on_step, on_epoch=on_epoch, should_stop=stop.is_set,
            )
        except RunCancelled:
            messages.put(("cancelled", None))
            return
        summary = {k: v for k, v in asdict(result).items() if k != "epochs"}
        messages.put(("completed", summary))
    except BaseException as exc:  # noqa: BLE001  (every failure must reach the worker as a message)
        traceback.print_exc(file=sys.stderr)
        messages.put(("failed", describe_failure(exc, job["out_dir"])))


def _listen_for_cancels(jobs, cancelled: set) -> None:
    # After its job the jobs queue carries ("cancel", index) for the pack's runs; None or a closed queue ends it.
    while True:
        try:
            item = jobs.get()
        except (EOFError, OSError, ValueError):
            return
        if item is None:
            return
        if item[0] == "cancel":
            cancelled.add(item[1])


def train_pack_job(job: dict, messages, stop, jobs) -> None:
    """Train a pack job's runs together (kdcore.training.packing.trainer.train_packed); each run reports and
    ends on its own."""
    runs = job["runs"]
    cancelled: set[int] = set()
    threading.Thread(target=_listen_for_cancels, args=(jobs, cancelled), name="kd-cancels", daemon=True).start()
    reporters = [step_reporter(messages, index=i) for i in range(len(runs))]

    def on_step(index, progress) -> None:
        reporters[index](progress)

    def on_epoch(index, metrics) -> None:
        messages.put(("epoch", index, asdict(metrics)))

    def should_stop(index) -> bool:
        return stop.is_set() or index in cancelled

    try:
        from kdcore.config import RunConfig
        from kdcore.errors import RunCancelled
        from kdcore.training.packing.trainer import train_packed

        try:
            results = train_packed(
                [RunConfig.model_validate(run["config"]) for run in runs], out_dirs=[run["out_dir"] for run in runs],
                data_root=job["data_root"], teacher_checkpoints=[run["teacher_checkpoint"] for run in runs],
                on_step=on_step, on_epoch=on_epoch, should_stop=should_stop, max_pack=len(runs),
            )
        except Exception as exc:  # noqa: BLE001  (a problem the whole pack shares: each run fails with it)
            traceback.print_exc(file=sys.stderr)
            results = [exc] * len(runs)
        for index, result in enumerate(results):
            if isinstance(result, RunCancelled):
                messages.put(("cancelled", index, None))
            elif isinstance(result, BaseException):
                messages.put(("failed", index, describe_failure(result, runs[index]["out_dir"])))
            else:
                messages.put(("completed", index, {k: v for k, v in asdict(result).items() if k != "epochs"}))
    except BaseException as exc:  # noqa: BLE001  (every failure must reach the worker as a message)
        traceback.print_exc(file=sys.stderr)
        for index in range(len(runs)):
            messages.put(("failed", index, describe_failure(exc, runs[index]["out_dir"])))
