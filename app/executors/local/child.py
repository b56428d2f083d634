"""The local pool's training child: a spawned process, the only one of the worker's that imports torch.

It trains one job (app.executors.training) and reports back to the supervising worker through a
multiprocessing queue, never touching the database.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback

from app.executors.training import describe_failure, train_job, train_pack_job

# Training yields the CPU to the web server and the worker's bookkeeping on a shared machine.
CHILD_NICENESS = 10


def _exit_with_parent(parent_pid: int) -> None:
    # A worker killed with SIGKILL cannot stop its child; without this the orphan would keep training
    # (and holding GPU memory) for a run that is already marked "worker lost".
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(3)


def train_in_child(worker_pid: int, gpu: str | None, jobs, messages, stop) -> None:
    """Import the trainer, wait for one job from ``jobs`` (None: exit), train it, report, exit.

    A worker starts the child before it has a run for it, so the seconds spent importing torch
    overlap with the previous run; each process still trains exactly one run.
    """
    # The pid comes from the worker: it may already have died while this process was starting.
    threading.Thread(target=_exit_with_parent, args=(worker_pid,), daemon=True).start()
    if gpu is not None:
        # Before torch is imported, so that this process sees only its own GPU as cuda:0.
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    try:
        os.nice(CHILD_NICENESS)
    except OSError:
        pass
    try:
        from kdcore.training import engine  # noqa: F401  (the slow import, done before a job arrives)
    except BaseException as exc:  # noqa: BLE001
        traceback.print_exc(file=sys.stderr)
        failure = describe_failure(exc)
    else:
        failure = None
    job = jobs.get()
    if job is None:
        return
    if failure is not None:
        messages.put(("failed", f"cannot load the trainer: {failure}"))
        return
    if "runs" in job:
        train_pack_job(job, messages, stop, jobs)
    else:
        train_job(job, messages, stop)
