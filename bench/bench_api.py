"""API latency benchmark (a script, not a timed test).

1. With 1,000 runs and 50,000 epoch rows stored: p50/p99 of GET /api/runs and GET /api/leaderboard
   (targets: p50 under 50 ms).
2. While a run trains on the same machine (the server's embedded worker), same database: p50/p99 of
   the calls a dashboard polls (target: p99 under 100 ms).

Each phase runs `python -m app.cli serve` on a free port against a temporary database, and measures
over HTTP from this process. Usage: python bench/bench_api.py [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.settings import Settings  # noqa: E402
from app.store.db import init_db  # noqa: E402
from app.store.models import Epoch, Run, utcnow  # noqa: E402
from kdcore.config import seed_config  # noqa: E402
from kdcore.registry import EXPERIMENT_KINDS, METHODS  # noqa: E402

RUNS, EPOCHS_PER_RUN = 1_000, 50


def fill(settings: Settings) -> None:
    engine = init_db(settings)
    rng = random.Random(0)
    now = utcnow()
    runs = []
    for i in range(1, RUNS + 1):
        kind = EXPERIMENT_KINDS[(i - 1) % len(EXPERIMENT_KINDS)]
        status = "completed" if i <= RUNS * 0.9 else rng.choice(["failed", "cancelled"])
        accuracy = rng.uniform(0.3, 0.9) if status == "completed" else None
        config = seed_config(kind, dataset="synthetic")
        runs.append(dict(
            id=i, kind=kind, status=status, config=config.to_json_dict(), dataset=config.dataset, epochs=config.epochs,
            teacher_run_id=(i - (i - 1) % len(EXPERIMENT_KINDS)) if METHODS[kind].needs_teacher else None,
            num_classes=10, created_at=now - timedelta(minutes=RUNS - i), started_at=now, finished_at=now,
            cancel_requested=False, resume=False, parameters=rng.randint(200_000, 1_200_000),
            final_accuracy=accuracy, best_accuracy=accuracy, best_epoch=EPOCHS_PER_RUN, train_seconds=60.0,
            checkpoint=None,
        ))
    epochs = [dict(run_id=r, epoch=e, train_loss=1.0, train_terms={"ce": 1.0}, test_loss=1.1,
                   test_accuracy=0.5, seconds=1.0, images_per_sec=5000.0)
              for r in range(1, RUNS + 1) for e in range(1, EPOCHS_PER_RUN + 1)]
    with engine.begin() as connection:
        connection.execute(insert(Run), runs)
        connection.execute(insert(Epoch), epochs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(settings: Settings, *extra: str, repo: Path = REPO) -> tuple[subprocess.Popen, str]:
    """``kd serve`` from the checkout ``repo`` (another one gives a before/after figure) on a free loopback port."""
    port = free_port()
    env = {**os.environ, "KD_DB_URL": settings.db_url, "KD_DATA_DIR": str(settings.data_dir),
           "KD_RUNS_DIR": str(settings.runs_dir), "PYTHONPATH": str(repo)}
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), *extra],
                              cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(base + "/api/datasets", timeout=2)
            return server, base
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start")


def measure(client: httpx.Client, path: str, count: int) -> list[float]:
    client.get(path)  # warm
    times = []
    for _ in range(count):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return times


def report(label: str, times: list[float]) -> dict:
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"  {label:<38} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   (n={len(times)})")
    return {"p50": p50, "p99": p99}


def stored_data_phase(root: Path, count: int) -> None:
    settings = Settings(db_url=f"sqlite:///{root / 'filled.sqlite'}", data_dir=root / "data", runs_dir=root / "runs")
    started = time.perf_counter()
    fill(settings)
    print(f"stored {RUNS} runs and {RUNS * EPOCHS_PER_RUN} epoch rows in {time.perf_counter() - started:.1f} s")
    server, base = start_server(settings, "--no-worker")
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            for path in ("/api/runs", "/api/runs?status=completed&kind=kd", "/api/leaderboard",
                         "/api/runs/500/epochs", "/api/runs/500"):
                report(f"GET {path}", measure(client, path, count))
    finally:
        server.terminate()
        server.wait(timeout=30)


def start_training(client: httpx.Client, run: dict) -> dict:
    """Launch ``run`` and return it once the server's worker reports its first training steps."""
    run = client.post("/api/runs", json=run).json()
    deadline = time.monotonic() + 120
    while client.get(f"/api/runs/{run['id']}").json()["progress"] is None:
        if time.monotonic() > deadline:
            raise SystemExit("the run did not start training")
        time.sleep(0.5)
    return run


def training_phase(root: Path, count: int) -> None:
    # The same 1,000 stored runs; none is queued, so the worker trains only the run queued here.
    settings = Settings(db_url=f"sqlite:///{root / 'filled.sqlite'}", data_dir=root / "data", runs_dir=root / "runs")
    server, base = start_server(settings)
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            run = start_training(client, {"kind": "teacher", "dataset": "synthetic", "epochs": 30, "device": "cpu"})
            print(f"while run {run['id']} trains (teacher, synthetic, CPU worker in the server):")
            times: list[float] = []
            for path in (f"/api/runs/{run['id']}", f"/api/runs/{run['id']}/epochs?after=0", "/api/runs",
                         "/api/leaderboard"):
                part = measure(client, path, count)
                report(f"GET {path}", part)
                times += part
            report("all of the above", times)
            status = client.get(f"/api/runs/{run['id']}").json()["status"]
            assert status == "running", f"the run stopped training during the measurement ({status})"
            client.post(f"/api/runs/{run['id']}/cancel")
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests per endpoint")
    args = parser.parse_args()
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        stored_data_phase(Path(tmp), args.requests)
        training_phase(Path(tmp), args.requests)


if __name__ == "__main__":
    main()
