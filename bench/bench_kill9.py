"""kill -9 of the whole server at random points of a run's first epochs: does the run keep every epoch?

Each try starts `kd serve` (with its CPU worker) in a process group of its own, on a fresh database and
runs directory, and queues one run (a student on synthetic data). At a random moment between the run's
first training step and the end of its third epoch, the whole group gets SIGKILL at once: the server, its
worker slot and the training child. The script then reads what was left: the epochs the run folder's checkpoint
holds and those the database recorded. It starts the server again on the same database, retries the run
if it ended failed, and waits for it to complete.

A try keeps every epoch when the run completes with epochs 1..N recorded, each epoch its checkpoint held
at the kill recorded as trained before the kill (the same `seconds`, a wall-clock figure that training
the epoch again could not repeat), and its checkpoint downloads.

Usage: python bench/bench_kill9.py [--tries 20] [--epochs 5] [--seed 1] [--code DIR]
(``--code`` runs another checkout's server, e.g. the code before a change, with this script.)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kdcore.training.checkpoint import load_checkpoint  # noqa: E402
from kdcore.training.run_files import CHECKPOINT  # noqa: E402

FINISHED = ("completed", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m app.cli serve` in its own process group (start_new_session), so one killpg reaches all."""

    def __init__(self, code: Path, root: Path, port: int, log_name: str):
        env = {**os.environ, "KD_DB_URL": f"sqlite:///{root / 'kd.sqlite'}", "KD_RUNS_DIR": str(root / "runs"),
               "KD_DATA_DIR": str(root.parent / "data"), "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(code)}
        self.log = (root / log_name).open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--gpus", ""],
                                        cwd=code, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.api.get("/api/datasets").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"the server did not start: see {root / log_name}")

    def run(self, run_id: int) -> dict:
        return self.api.get(f"/api/runs/{run_id}").json()

    def kill(self) -> None:
        """SIGKILL to the whole group, then wait until none of it is left."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.api.close()
        self.log.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self.api.close()
        self.log.close()


@dataclass
class Try:
    index: int
    kill_after_s: float  # after the run's first step was reported
    saved: list[dict]  # the checkpoint's epochs at the kill
    recorded: list[int]  # the epochs the database had recorded at the kill
    after_restart: str = ""
    retried: bool = False
    final_epochs: list[int] | None = None
    kept_saved: bool = False
    checkpoint_downloads: bool = False
    status: str = ""

    @property
    def kept_every_epoch(self) -> bool:
        return self.status == "completed" and self.kept_saved and self.checkpoint_downloads


def recorded_epochs(database: Path, run_id: int) -> list[int]:
    with sqlite3.connect(database) as connection:
        return [row[0] for row in connection.execute("SELECT epoch FROM epochs WHERE run_id = ? ORDER BY epoch",
                                                     (run_id,))]


def one_try(index: int, code: Path, root: Path, body: dict, kill_after_s: float) -> Try:
    root.mkdir(parents=True)
    port = free_port()
    server = Server(code, root, port, "server-1.log")
    try:
        run_id = server.api.post("/api/runs", json=body).json()["id"]
        wait_for_first_step(server, run_id)
        time.sleep(kill_after_s)
    finally:
        server.kill()
    checkpoint = root / "runs" / str(run_id) / CHECKPOINT
    saved = load_checkpoint(checkpoint)["metrics"] if checkpoint.is_file() else []
    result = Try(index, kill_after_s, saved, recorded_epochs(root / "kd.sqlite", run_id))

    server = Server(code, root, port, "server-2.log")
    try:
        deadline = time.monotonic() + 300
        run = server.run(run_id)
        result.after_restart = f"{run['status']}{' (resume)' if run['resume'] else ''}"
        while time.monotonic() < deadline:
            run = server.run(run_id)
            if run["status"] == "failed" and not result.retried:
                server.api.post(f"/api/runs/{run_id}/retry")
                result.retried = True
            elif run["status"] in FINISHED and (run["status"] != "failed" or result.retried):
                break
            time.sleep(0.1)
        result.status = run["status"]
        epochs = server.api.get(f"/api/runs/{run_id}/epochs").json()["items"]
        result.final_epochs = [e["epoch"] for e in epochs]
        by_epoch = {e["epoch"]: e for e in epochs}
        result.kept_saved = result.final_epochs == list(range(1, body["epochs"] + 1)) and all(
            by_epoch[m["epoch"]]["seconds"] == m["seconds"] for m in saved)
        result.checkpoint_downloads = server.api.get(f"/api/runs/{run_id}/checkpoint").status_code == 200
    finally:
        server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--subset", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1, help="seeds the kill moments")
    parser.add_argument("--window", type=float, default=None,
                        help="seconds after the first step within which the kill falls (default: measured, up to "
                        "the end of the third epoch)")
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout whose server runs (default: this one)")
    args = parser.parse_args()
    body = {"kind": "student", "dataset": "synthetic", "subset": args.subset, "epochs": args.epochs,
            "batch_size": 20, "device": "cpu"}
    draw = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="kd-kill9-") as scratch:
        scratch = Path(scratch)
        (scratch / "data").mkdir()
        window = args.window
        if window is None:
            window = measure_window(args.code, scratch / "measure", body)
            print(f"first step to the end of epoch 3 (measured): {window:.1f} s", flush=True)
        tries = []
        for index in range(1, args.tries + 1):
            result = one_try(index, args.code.resolve(), scratch / f"try{index}", body, draw.uniform(0, window))
            tries.append(result)
            print(f"try {index:2d}: killed {result.kill_after_s:5.1f} s after the first step; checkpoint held "
                  f"{len(result.saved)} epoch(s), the database {len(result.recorded)}; after the restart "
                  f"{result.after_restart}{', retried' if result.retried else ''}; ended {result.status} with "
                  f"epochs {result.final_epochs}; kept every epoch: {'yes' if result.kept_every_epoch else 'NO'}",
                  flush=True)
        kept = sum(t.kept_every_epoch for t in tries)
        behind = sum(len(t.saved) > len(t.recorded) for t in tries)
        print(json.dumps({"tries": len(tries), "kept_every_epoch": kept, "checkpoint_ahead_of_database": behind,
                          "killed_before_any_checkpoint": sum(not t.saved for t in tries),
                          "resumed_without_retry": sum("resume" in t.after_restart for t in tries)}))


def wait_for_first_step(server: Server, run_id: int) -> None:
    """Until the run reports a training step (after its process started and loaded data and model)."""
    while not ((progress := server.run(run_id)["progress"]) and progress["step"]):
        time.sleep(0.02)


def measure_window(code: Path, root: Path, body: dict) -> float:
    """Seconds from the first step to the third epoch's row, on one run trained without a kill."""
    root.mkdir(parents=True)
    server = Server(code.resolve(), root, free_port(), "server.log")
    try:
        run_id = server.api.post("/api/runs", json=body).json()["id"]
        wait_for_first_step(server, run_id)
        first_step = time.monotonic()
        while len(server.api.get(f"/api/runs/{run_id}/epochs").json()["items"]) < min(3, body["epochs"]):
            time.sleep(0.05)
        return time.monotonic() - first_step
    finally:
        server.stop()


if __name__ == "__main__":
    main()
