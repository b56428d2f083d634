"""Overhead per run of the Ray executor against the local pool, side by side in one process.

The same small runs (student, synthetic data, CPU) go through three executors in turn, one run at a time:
the local pool (one CPU slot: a spawned training process per run; then with that process started
during the previous run, KD_PRESTART_CHILD=1), the Ray executor on a local
one-CPU Ray (checkpoints come back through the object store), and the same with a shared runs
directory (nothing travels but metrics). Both executors train with one thread (Ray gives a one-CPU
task OMP_NUM_THREADS=1; the local child gets the same here), so the training itself is alike and the
differences are the executors'. A thread watches the database every 20 ms and times, per run:

- start-up: claim to the first epoch's row, less that epoch's training (EpochMetrics.seconds): process
  or task start, imports, data, model, and the first epoch's checkpoint and report;
- per epoch: the gap between two epoch rows less the later epoch's training: saving the checkpoint,
  reporting it, and (Ray without shared storage) bringing the checkpoint back;
- finish: the last epoch's row to the run's end; next claim: a run's end to the next run's claim.

Usage: python bench/bench_ray.py [--runs 4] [--epochs 5] [--subset 500]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["OMP_NUM_THREADS"] = "1"  # before torch could be imported anywhere, children included

from sqlmodel import select  # noqa: E402

from app.runs.service import create_run  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.store.db import init_db, new_session  # noqa: E402
from app.store.models import Epoch, Run  # noqa: E402

POLL_S = 0.02


@dataclass
class Timeline:
    claimed: float | None = None
    epochs: dict[int, float] = field(default_factory=dict)
    finished: float | None = None


def watch(engine, settings, run_ids: list[int], stop: threading.Event) -> dict[int, Timeline]:
    """Poll the database and note when each run was claimed, each epoch row appeared, and the run ended."""
    timelines = {run_id: Timeline() for run_id in run_ids}

    def loop() -> None:
        while not stop.is_set():
            now = time.perf_counter()
            with new_session(engine, settings) as session:
                for run in session.exec(select(Run).where(Run.id.in_(run_ids))).all():
                    line = timelines[run.id]
                    if line.claimed is None and run.status != "queued":
                        line.claimed = now
                    if line.finished is None and run.status in ("completed", "failed", "cancelled"):
                        line.finished = now
                for row in session.exec(select(Epoch.run_id, Epoch.epoch).where(Epoch.run_id.in_(run_ids))).all():
                    timelines[row[0]].epochs.setdefault(row[1], now)
            stop.wait(POLL_S)

    threading.Thread(target=loop, daemon=True).start()
    return timelines


def measure(name: str, settings: Settings, make_executor, args) -> dict:
    engine = init_db(settings)
    body = {"kind": "student", "dataset": "synthetic", "subset": args.subset, "epochs": args.epochs,
            "batch_size": 50, "device": "cpu"}
    with new_session(engine, settings) as session:
        run_ids = [create_run(session, dict(body)).id for _ in range(args.runs)]
    stop = threading.Event()
    timelines = watch(engine, settings, run_ids, stop)
    started = time.perf_counter()
    executor = make_executor(settings, engine)
    executor.start()
    ready = time.perf_counter() - started
    try:
        deadline = time.monotonic() + 600
        while not all(t.finished for t in timelines.values()):
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: runs did not finish within 600 s")
            time.sleep(0.1)
    finally:
        executor.stop()
        stop.set()
    with new_session(engine, settings) as session:
        runs = {run.id: run for run in session.exec(select(Run).where(Run.id.in_(run_ids))).all()}
        seconds = {(e.run_id, e.epoch): e.seconds for e in session.exec(select(Epoch).where(Epoch.run_id.in_(run_ids)))}
    failed = [f"{run.id}: {run.error}" for run in runs.values() if run.status != "completed"]
    if failed:
        raise SystemExit(f"{name}: runs did not complete: {failed}")
    per_run = []
    for index, run_id in enumerate(run_ids):
        line = timelines[run_id]
        epochs = sorted(line.epochs)
        gaps = [line.epochs[k] - line.epochs[k - 1] - seconds[(run_id, k)] for k in epochs[1:]]
        next_claim = timelines[run_ids[index + 1]].claimed - line.finished if index + 1 < len(run_ids) else None
        per_run.append({
            "startup": line.epochs[epochs[0]] - line.claimed - seconds[(run_id, epochs[0])],
            "per_epoch": statistics.mean(gaps) if gaps else 0.0,
            "finish": line.finished - line.epochs[epochs[-1]],
            "next_claim": next_claim,
            "wall": line.finished - line.claimed,
            "training": sum(seconds[(run_id, k)] for k in epochs),
        })
    return {"name": name, "ready": ready, "runs": per_run}


def median(rows: list[dict], key: str) -> float | None:
    values = [row[key] for row in rows if row[key] is not None]
    return statistics.median(values) if values else None


def ray_version() -> str:
    import ray

    return ray.__version__


def report(results: list[dict], args) -> None:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{platform.node()}, {os.cpu_count()} CPUs (load average {load}), Python {platform.python_version()}, "
          f"Ray {ray_version()}; {args.runs} runs of "
          f"student × {args.epochs} epochs on {args.subset} synthetic images, batch 50, one at a time\n")
    print("executor                      ready s  | first run: start-up s | later runs (median): start-up s  "
          "per-epoch s  finish s  next claim s  overhead/run s  training/run s")
    for result in results:
        first, later = result["runs"][0], result["runs"][1:] or result["runs"]
        overhead = [r["wall"] - r["training"] for r in later]
        print(f"{result['name']:<29} {result['ready']:7.2f}  | {first['startup']:20.2f}  | "
              f"{median(later, 'startup'):22.2f}  {median(later, 'per_epoch'):11.3f}  {median(later, 'finish'):8.3f}  "
              f"{(median(later, 'next_claim') or 0):12.3f}  {statistics.median(overhead):14.2f}  "
              f"{median(later, 'training'):14.2f}")
    print("\nready: the executor's start() (the first Ray row includes ray.init of a local one-CPU Ray; the second "
          "reuses it). start-up includes the first epoch's checkpoint and report; per-epoch: one epoch's "
          "checkpoint, report and transfer. The local pool starts a training process per run (at niceness 10); "
          "Ray reuses an idle worker process for CPU tasks (not for GPU tasks: Ray's max_calls=1 default).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--subset", type=int, default=500)
    args = parser.parse_args()

    import ray

    from app.executors.local.pool import WorkerPool
    from app.executors.ray.executor import RayExecutor

    root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    os.environ["KD_DATA_DIR"] = str(root / "data")
    # Generate the data and the architecture catalog once, so that no executor's first run pays for them.
    subprocess.run([sys.executable, "-m", "kdcore.cli", "train", "student", "--dataset", "synthetic", "--subset",
                    "100", "--epochs", "1", "--device", "cpu", "--out", str(root / "warm-up")],
                   cwd=REPO, check=True, capture_output=True)

    def settings_for(name: str, **changes) -> Settings:
        return replace(Settings(db_url=f"sqlite:///{root / name / 'kd.sqlite'}", data_dir=root / "data",
                                runs_dir=root / name / "runs", heartbeat_s=1.0, poll_s=0.2), **changes)

    def ray_executor(settings, engine):
        if not ray.is_initialized():
            ray.init(num_cpus=1, include_dashboard=False, object_store_memory=200 * 1024 * 1024)
        return RayExecutor(settings, engine=engine)

    results = [
        measure("local pool (1 CPU slot)", settings_for("local"),
                lambda settings, engine: WorkerPool(settings, gpus=[], engine=engine), args),
        measure("local pool, child prestarted", settings_for("local-prestart", prestart_child=True),
                lambda settings, engine: WorkerPool(settings, gpus=[], engine=engine), args),
        measure("Ray, checkpoints returned", settings_for("ray", executor="ray"), ray_executor, args),
        measure("Ray, shared runs directory", settings_for("ray-shared", executor="ray", shared_runs_dir=True),
                ray_executor, args),
    ]
    ray.shutdown()
    report(results, args)


if __name__ == "__main__":
    main()
