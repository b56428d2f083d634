"""The Ray task that trains one run on whichever node Ray picked, reporting through a streaming generator.

The server consumes what it yields, in order: ("started", where), ("restored", the checkpoint's epochs) when
the run resumes, then ("step", StepProgress) about
once a second, ("epoch", EpochMetrics, files) after each epoch, and last exactly one of
("completed", RunResult summary), ("failed", reason) or ("cancelled", None); all plain data. ``files``
holds the run files that changed (app.executors.ray.files), empty when the runs directory is shared; files
written after the last epoch (an imported teacher's checkpoint: its job has no epochs) come as ("files", files)
just before "completed".
The task never touches the database. torch is imported here, inside the task, never by the server.

``train_pack`` trains several runs together (kdcore.training.packing.trainer) in one task and yields the same messages
with the run's index in the pack after the kind: ("step", index, StepProgress), ("epoch", index,
EpochMetrics, files), one ending per run. The server cancels one run of a pack through a ``Cancels``
actor that the task polls; cancelling the task stops them all.
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from pathlib import Path

import ray

from app.executors.ray.files import changed_files, write_files

# The local pool's trainer loop and its message protocol, shared so that both executors train alike.
from app.executors.training import train_job as train_and_report
from app.executors.training import train_pack_job
from kdcore.training.run_files import BEST, CHECKPOINT

OUTCOMES = ("completed", "failed", "cancelled")
WAIT_S = 0.5


def _where() -> dict:
    context = ray.get_runtime_context()
    return {"ip": ray.util.get_node_ip_address(), "node_id": context.get_node_id(),
            "gpus": [str(gpu) for gpu in context.get_accelerator_ids().get("GPU", [])], "pid": os.getpid()}


def _data_root(server_data_dir: str) -> str:
    # A node may keep its datasets elsewhere than the server: its own KD_DATA_DIR (set when it joined) wins.
    return os.environ.get("KD_DATA_DIR") or server_data_dir


@ray.remote(num_returns="streaming", max_retries=0)
def train_run(job: dict, teacher_checkpoint: bytes | None, teacher_best: bytes | None,
              resume_checkpoint: bytes | None):
    """Train ``job`` (see RayRun.job) and yield its messages. Retries stay off (max_retries=0): Ray would
    restart the run from scratch and splice two runs into one curve."""
    yield ("started", _where())
    with tempfile.TemporaryDirectory(prefix=f"kd-run{job['run_id']}-") as scratch:
        scratch = Path(scratch)
        out_dir = Path(job["out_dir"]) if job["shared"] else scratch / "run"
        out_dir.mkdir(parents=True, exist_ok=True)
        teacher = job["teacher_checkpoint"]
        if teacher_checkpoint is not None:
            teacher_dir = scratch / "teacher"
            write_files(teacher_dir, {CHECKPOINT: teacher_checkpoint,
                                      **({BEST: teacher_best} if teacher_best is not None else {})})
            teacher = str(teacher_dir / CHECKPOINT)
        if resume_checkpoint is not None:
            write_files(out_dir, {CHECKPOINT: resume_checkpoint})
        spec = job.get("import")
        if spec is not None and "data" in spec:  # an imported teacher's upload, through the object store
            source = scratch / "upload" / spec["file_name"]
            source.parent.mkdir()
            source.write_bytes(ray.get(spec["data"]))
            spec = {**{k: v for k, v in spec.items() if k != "data"}, "source": str(source)}
        seen: dict[str, tuple[int, int]] = {}
        changed_files(out_dir, seen)  # the checkpoint it resumes from is the server's already

        messages: queue.Queue = queue.Queue()
        stop = threading.Event()
        trainer = threading.Thread(target=train_and_report, name="kd-train", daemon=True, args=(
            {"config": job["config"], "out_dir": str(out_dir), "data_root": _data_root(job["data_root"]),
             "teacher_checkpoint": teacher, "resume": job["resume"], "import": spec}, messages, stop))
        trainer.start()
        try:
            while True:
                try:
                    message = messages.get(timeout=WAIT_S)
                except queue.Empty:
                    if trainer.is_alive() or not messages.empty():
                        continue
                    yield ("failed", "the training thread ended without a result")
                    return
                if message[0] == "epoch":
                    # The trainer saved the epoch's checkpoint before reporting it.
                    message = ("epoch", message[1], {} if job["shared"] else changed_files(out_dir, seen))
                elif message[0] == "completed" and not job["shared"]:
                    files = changed_files(out_dir, seen)  # written after the last epoch, if anything was
                    if files:
                        yield ("files", files)
                yield message
                if message[0] in OUTCOMES:
                    return
        finally:
            # Reached on ray.cancel too (a KeyboardInterrupt here): the trainer stops at its next step.
            stop.set()
            trainer.join(timeout=job["stop_grace_s"])
            if trainer.is_alive():
                # Ray reuses worker processes: one still training must not live on beside the next task.
                os._exit(1)


@ray.remote(num_cpus=0)
class Cancels:
    """The indices of a pack's runs that the server has cancelled."""

    def __init__(self):
        self.indices: set[int] = set()

    def cancel(self, index: int) -> None:
        self.indices.add(index)

    def cancelled(self) -> list[int]:
        return sorted(self.indices)


@ray.remote(num_returns="streaming", max_retries=0)
def train_pack(job: dict, teachers: list, cancels):
    """Train the pack ``job`` (see RayPack.job) and yield its runs' messages. ``teachers[i]``: run i's
    teacher checkpoint and best weights as object refs (None when the runs directory is shared or the
    run has no teacher)."""
    yield ("started", _where())
    runs = job["runs"]
    with tempfile.TemporaryDirectory(prefix=f"kd-pack{runs[0]['run_id']}-") as scratch:
        scratch = Path(scratch)
        out_dirs, trained = [], []
        for i, (run, refs) in enumerate(zip(runs, teachers)):
            out_dir = Path(run["out_dir"]) if job["shared"] else scratch / f"run{i}"
            out_dir.mkdir(parents=True, exist_ok=True)
            teacher = run["teacher_checkpoint"]
            if refs is not None and refs[0] is not None:
                checkpoint, best = ray.get(refs[0]), ray.get(refs[1]) if refs[1] is not None else None
                write_files(scratch / f"teacher{i}", {CHECKPOINT: checkpoint, **({BEST: best} if best else {})})
                teacher = str(scratch / f"teacher{i}" / CHECKPOINT)
            out_dirs.append(out_dir)
            trained.append({"config": run["config"], "out_dir": str(out_dir), "teacher_checkpoint": teacher})
        seen: list[dict] = [{} for _ in runs]
        messages: queue.Queue = queue.Queue()
        jobs: queue.Queue = queue.Queue()
        stop = threading.Event()
        trainer = threading.Thread(target=train_pack_job, name="kd-train-pack", daemon=True, args=(
            {"data_root": _data_root(job["data_root"]), "runs": trained}, messages, stop, jobs))
        trainer.start()
        ended: set[int] = set()
        passed_on: set[int] = set()
        try:
            while len(ended) < len(runs):
                for index in set(ray.get(cancels.cancelled.remote())) - passed_on:
                    jobs.put(("cancel", index))
                    passed_on.add(index)
                try:
                    message = messages.get(timeout=WAIT_S)
                except queue.Empty:
                    if trainer.is_alive() or not messages.empty():
                        continue
                    for index in set(range(len(runs))) - ended:
                        yield ("failed", index, "the training thread ended without a result")
                    return
                kind, index = message[0], message[1]
                if kind == "epoch":
                    files = {} if job["shared"] else changed_files(out_dirs[index], seen[index])
                    message = ("epoch", index, message[2], files)
                yield message
                if kind in OUTCOMES:
                    ended.add(index)
        finally:
            stop.set()
            jobs.put(None)
            trainer.join(timeout=job["stop_grace_s"])
            if trainer.is_alive():
                os._exit(1)  # as train_run: a trainer still running must not live on beside the next task
