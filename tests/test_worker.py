"""The worker with the real trainer on synthetic data (CPU): end to end, faults, cancel, restart."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.executors.local.pool import WorkerPool
from kdcore.registry import EXPERIMENT_KINDS, METHODS
from kdcore.training.run_files import BEST, CHECKPOINT, METRICS
from tests.app_fixtures import SYNTHETIC_RUN, app, app_settings, client, wait_for  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
FINISHED = ("completed", "failed", "cancelled")
# Many short epochs, far more than any test lets it train: every test interrupts it mid-run, and on an
# idle machine 30 epochs once finished before a cancel reached it.
SLOW_RUN = {**SYNTHETIC_RUN, "kind": "student", "subset": 600, "epochs": 300, "batch_size": 20}


@pytest.fixture
def worker(app, app_settings):
    pool = WorkerPool(app_settings, gpus=[], engine=app.state.engine)
    pool.start()
    yield pool
    pool.stop()


def run_json(client, run_id):
    return client.get(f"/api/runs/{run_id}").json()


def wait_finished(client, run_id, timeout=120.0):
    return wait_for(lambda: (r := run_json(client, run_id))["status"] in FINISHED and r,
                    timeout, what=f"run {run_id} to finish")


def queue_run(client, **body):
    response = client.post("/api/runs", json={**SYNTHETIC_RUN, **body})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_experiment_end_to_end(client, worker):
    response = client.post("/api/experiments", json=SYNTHETIC_RUN)
    assert response.status_code == 201, response.text
    ids = response.json()["run_ids"]
    runs = {kind: wait_finished(client, ids[kind], timeout=240) for kind in EXPERIMENT_KINDS}

    for kind, run in runs.items():
        assert run["status"] == "completed", (kind, run["error"])
        assert run["teacher_run_id"] == (ids["teacher"] if METHODS[kind].needs_teacher else None)
        assert run["parameters"] > 0 and run["progress"]["fraction"] == 1.0
        epochs = client.get(f"/api/runs/{run['id']}/epochs").json()["items"]
        assert [e["epoch"] for e in epochs] == list(range(1, run["config"]["epochs"] + 1))
        for epoch in epochs:
            values = [epoch["train_loss"], epoch["test_loss"], epoch["test_accuracy"], *epoch["train_terms"].values()]
            assert all(v is not None and math.isfinite(v) for v in values)
            assert set(epoch["train_terms"]) == set(METHODS[kind].loss_terms)
        assert run["final_accuracy"] == epochs[-1]["test_accuracy"]
    board = client.get("/api/leaderboard").json()["items"]
    assert sorted(row["run_id"] for row in board) == sorted(ids.values())
    accuracies = [row["final_accuracy"] for row in board]
    assert accuracies == sorted(accuracies, reverse=True)
    checkpoint = client.get(f"/api/runs/{ids['kd']}/checkpoint")
    assert checkpoint.status_code == 200 and len(checkpoint.content) > 1000


def test_killed_child_fails_the_run_and_the_worker_goes_on(client, worker):
    victim = queue_run(client, **SLOW_RUN)
    no_gpu = queue_run(client, kind="student", device="cuda")
    survivor = queue_run(client, kind="student")
    wait_for(lambda: client.get(f"/api/runs/{victim}/epochs").json()["items"], 120, what="a first epoch")
    os.kill(worker.slots[0].supervisor.process.pid, signal.SIGKILL)

    killed = wait_finished(client, victim)
    assert killed["status"] == "failed" and killed["error"] == "training process killed by SIGKILL"
    epochs = client.get(f"/api/runs/{victim}/epochs").json()["items"]
    assert 1 <= len(epochs) < SLOW_RUN["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, len(epochs) + 1))
    assert killed["has_checkpoint"]  # kept, so a retry can resume

    failed = wait_finished(client, no_gpu)
    assert failed["status"] == "failed" and "no CUDA GPU is visible" in failed["error"]
    assert wait_finished(client, survivor)["status"] == "completed"


ANOTHER_RUNS = b"another run's "
# Files a trainer writes (a teacher's best weights among them), and one it never writes.
LEFT_OVER = (CHECKPOINT, BEST, METRICS, "notes.txt")


def leave_another_runs_folder(runs_dir: Path, run_id: int) -> Path:
    """The folder that the next run's id names, as a deleted run (or a database made anew beside an old
    runs directory) left it."""
    folder = runs_dir / str(run_id)
    folder.mkdir(parents=True)
    for name in LEFT_OVER:
        (folder / name).write_bytes(ANOTHER_RUNS + name.encode())
    return folder


def assert_only_its_own_files(folder: Path, run: dict) -> None:
    for name in LEFT_OVER:
        path = folder / name
        assert not path.exists() or not path.read_bytes().startswith(ANOTHER_RUNS), f"{name} is another run's"
    # What the run page offers (Checkpoint, Retry from checkpoint) is only what this run wrote.
    assert run["has_checkpoint"] == (folder / CHECKPOINT).is_file()


def test_a_fresh_run_never_takes_over_a_left_over_folder(client, worker, app_settings):
    folder = leave_another_runs_folder(app_settings.runs_dir, 1)
    run_id = queue_run(client, **SLOW_RUN)
    assert run_id == 1
    wait_for(lambda: (run_json(client, run_id)["progress"] or {}).get("step"), 120, what="training progress")
    client.post(f"/api/runs/{run_id}/cancel")
    run = wait_finished(client, run_id, timeout=30)
    assert run["status"] == "cancelled"
    assert_only_its_own_files(folder, run)


def test_cancel_stops_a_running_run_within_seconds(client, worker):
    run_id = queue_run(client, **SLOW_RUN)
    wait_for(lambda: (run_json(client, run_id)["progress"] or {}).get("step"), 120, what="training progress")
    asked = time.monotonic()
    client.post(f"/api/runs/{run_id}/cancel")
    run = wait_finished(client, run_id, timeout=30)
    assert run["status"] == "cancelled" and run["error"] == "cancelled by user"
    assert time.monotonic() - asked < 10
    progress = run["progress"]
    assert progress["epoch"] >= 1 and progress["steps"] == math.ceil(SLOW_RUN["subset"] / SLOW_RUN["batch_size"])
    epochs = client.get(f"/api/runs/{run_id}/epochs").json()["items"]
    assert len(epochs) < SLOW_RUN["epochs"]


def test_stopping_the_worker_puts_its_run_back_in_the_queue(client, app, app_settings):
    pool = WorkerPool(app_settings, gpus=[], engine=app.state.engine)
    pool.start()
    try:
        run_id = queue_run(client, **SLOW_RUN)
        wait_for(lambda: client.get(f"/api/runs/{run_id}/epochs").json()["items"], 120, what="a first epoch")
    finally:
        pool.stop()
    run = run_json(client, run_id)
    assert run["status"] == "queued" and run["resume"] is True and run["worker"] is None
    assert client.get(f"/api/runs/{run_id}/epochs").json()["items"]  # kept for the resumed run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(app_settings, port: int) -> subprocess.Popen:
    env = {**os.environ, "KD_DB_URL": app_settings.db_url, "KD_DATA_DIR": str(app_settings.data_dir),
           "KD_RUNS_DIR": str(app_settings.runs_dir), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_server_killed_and_restarted_runs_the_queue(app_settings):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = _serve(app_settings, port)
    try:
        wait_for(lambda: _get(base, "/api/runs"), 60, what="the server")
        interrupted = httpx.post(f"{base}/api/runs", json={**SLOW_RUN}).json()["id"]
        queued = httpx.post(f"{base}/api/runs", json={**SYNTHETIC_RUN, "kind": "student"}).json()["id"]
        wait_for(lambda: _get(base, f"/api/runs/{interrupted}")["status"] == "running", 60, what="a running run")
    finally:
        server.kill()
        server.wait()
    # Its training child notices that its worker died and exits instead of training on as an orphan.
    wait_for(lambda: not _trainers_of(app_settings.runs_dir), 30, what="the orphaned training process to exit")
    server = _serve(app_settings, port)
    try:
        # Failed, or queued to resume when the attempt saved a checkpoint before the kill (tests/test_lost_runs.py).
        lost = wait_for(lambda: (r := _get(base, f"/api/runs/{interrupted}")) and (r["status"] in FINISHED or r["resume"])
                        and r, 60, what="recovery")
        if lost["resume"]:
            httpx.post(f"{base}/api/runs/{interrupted}/cancel")  # it has 300 epochs to go
        else:
            assert lost["status"] == "failed" and lost["error"].startswith("worker lost")
        run = wait_for(lambda: (r := _get(base, f"/api/runs/{queued}")) and r["status"] in FINISHED and r,
                       120, what=f"run {queued}")
        assert run["status"] == "completed", run["error"]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


def _get(base: str, path: str):
    try:
        return httpx.get(base + path, timeout=5).json()
    except httpx.HTTPError:
        return None


def _trainers_of(runs_dir: Path) -> list[int]:
    """Pids of spawned processes started for this runs directory (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split(") ")[-1][:1]
        except (OSError, ValueError):
            continue
        if b"spawn_main" in cmdline and f"KD_RUNS_DIR={runs_dir}".encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found
