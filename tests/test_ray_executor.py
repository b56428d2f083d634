"""The Ray executor on a real local Ray cluster (CPU, synthetic data): an experiment over REST, cancel, a
killed Ray worker, a server restart, a removed node; and that nothing imports Ray without it."""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

from app.executors.ray.executor import RayExecutor  # noqa: E402
from app.executors.ray.records import settle_left_runs  # noqa: E402
from app.store.db import new_session  # noqa: E402
from app.store.models import Epoch, Run  # noqa: E402
from kdcore.registry import EXPERIMENT_KINDS, METHODS  # noqa: E402
from kdcore.training.run_files import BEST, CHECKPOINT  # noqa: E402
from tests.app_fixtures import SYNTHETIC_RUN, app, app_settings, client, session, wait_for  # noqa: E402,F401
from tests.test_worker import (  # noqa: E402
    FINISHED,
    assert_only_its_own_files,
    leave_another_runs_folder,
    queue_run,
    run_json,
    wait_finished,
)

REPO = Path(__file__).resolve().parents[1]
OBJECT_STORE = 80 * 1024 * 1024
# Seconds an epoch (the teacher's network, small batches): what interrupts it does so in its first epoch.
SLOW_RUN = {**SYNTHETIC_RUN, "kind": "teacher", "subset": 1000, "epochs": 50, "batch_size": 8}
# Well under a second an epoch, for many epochs: time to interrupt it after some came back.
EPOCHS_RUN = {**SYNTHETIC_RUN, "kind": "student", "epochs": 30}


@pytest.fixture(scope="session")
def ray_session():
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def local_ray(ray_session) -> str:
    """One small local Ray for the session (the node-removal test replaces it by a cluster of its own)."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=OBJECT_STORE)
    return ray.get_runtime_context().gcs_address


@pytest.fixture
def executor(local_ray, app, app_settings):
    ray_executor = RayExecutor(replace(app_settings, executor="ray"), engine=app.state.engine)
    ray_executor.start()
    yield ray_executor
    ray_executor.stop()


def epochs_of(client, run_id):
    return client.get(f"/api/runs/{run_id}/epochs").json()["items"]


def placed(executor, run_id, timeout=90.0) -> dict:
    return wait_for(lambda: executor.placement(run_id), timeout, what=f"run {run_id} to start on a node")


# ---------------------------------------------------------------- on a local Ray

def test_the_seed_experiment_completes_on_ray_with_every_epoch_and_checkpoint(client, executor, app_settings):
    # With a validation split, so that the teacher keeps its best weights (best.pt) and they come back too.
    response = client.post("/api/experiments", json={**SYNTHETIC_RUN, "validation": 0.1})
    assert response.status_code == 201, response.text
    ids = response.json()["run_ids"]
    runs = {kind: wait_finished(client, ids[kind], timeout=150) for kind in EXPERIMENT_KINDS}

    node = ray.get_runtime_context().get_node_id()[:8]
    for kind, run in runs.items():
        assert run["status"] == "completed", (kind, run["error"])
        assert run["worker"].startswith("ray:") and run["worker"].endswith(f":{node}:cpu")
        epochs = epochs_of(client, run["id"])
        assert [e["epoch"] for e in epochs] == list(range(1, run["config"]["epochs"] + 1))
        for epoch in epochs:
            assert all(math.isfinite(v) for v in [epoch["train_loss"], epoch["test_loss"], epoch["test_accuracy"]])
            assert set(epoch["train_terms"]) == set(METHODS[kind].loss_terms)
        assert run["final_accuracy"] == epochs[-1]["test_accuracy"]
        # The checkpoint came back from the node's scratch folder into the server's runs directory.
        assert (app_settings.runs_dir / str(run["id"]) / CHECKPOINT).is_file()
    assert (app_settings.runs_dir / str(ids["teacher"]) / BEST).is_file()  # what "teacher_weights: best" reads
    download = client.get(f"/api/runs/{ids['kd']}/checkpoint")
    assert download.status_code == 200 and len(download.content) > 1000
    page = client.get(f"/runs/{ids['kd']}").text
    assert "trained on Ray node" in page and f"({node}), CPU" in page
    card = client.get("/fragments/active").text
    assert "cluster-capacity" in card and "Ray, 1 node:" in card and "of 2 CPUs free" in card


def test_cancel_stops_a_run_on_ray(client, executor):
    run_id = queue_run(client, **SLOW_RUN)
    wait_for(lambda: (run_json(client, run_id)["progress"] or {}).get("step"), 90, what="training progress")
    card = client.get("/fragments/active").text
    assert "run-where" in card and "Ray node" in card  # the queue shows where it trains
    asked = time.monotonic()
    assert client.post(f"/api/runs/{run_id}/cancel").status_code == 200
    run = wait_finished(client, run_id, timeout=30)
    assert run["status"] == "cancelled" and run["error"].startswith("cancelled by user")
    assert time.monotonic() - asked < 10
    wait_for(lambda: executor.placement(run_id) is None, 10, what="the executor to let the run go")


@pytest.mark.parametrize("shared", [False, True], ids=["returned", "shared"])
def test_a_fresh_run_never_takes_over_a_left_over_folder_on_ray(local_ray, app, app_settings, client, shared):
    ray_executor = RayExecutor(replace(app_settings, executor="ray", shared_runs_dir=shared), engine=app.state.engine)
    folder = leave_another_runs_folder(app_settings.runs_dir, 1)
    ray_executor.start()
    try:
        run_id = queue_run(client, **SLOW_RUN)
        assert run_id == 1
        wait_for(lambda: (run_json(client, run_id)["progress"] or {}).get("step"), 90, what="training progress")
        client.post(f"/api/runs/{run_id}/cancel")
        run = wait_finished(client, run_id, timeout=30)
    finally:
        ray_executor.stop()
    assert run["status"] == "cancelled"
    assert_only_its_own_files(folder, run)


def test_with_a_shared_runs_directory_nodes_read_and_write_it_in_place(local_ray, app, app_settings, client):
    shared = RayExecutor(replace(app_settings, executor="ray", shared_runs_dir=True), engine=app.state.engine)
    shared.start()
    try:
        teacher = queue_run(client, kind="teacher", validation=0.1)  # its best weights are chosen on validation
        student = queue_run(client, kind="kd", teacher_run_id=teacher, teacher_weights="best")
        for run_id in (teacher, student):
            run = wait_finished(client, run_id)
            assert run["status"] == "completed", run["error"]
            assert run["has_checkpoint"] and len(epochs_of(client, run_id)) == 1
        assert (app_settings.runs_dir / str(teacher) / BEST).is_file()
    finally:
        shared.stop()


def test_stopping_the_server_puts_its_run_on_ray_back_in_the_queue(local_ray, app, app_settings, client):
    stopping = RayExecutor(replace(app_settings, executor="ray"), engine=app.state.engine)
    stopping.start()
    try:
        run_id = queue_run(client, **SLOW_RUN)
        wait_for(lambda: (run_json(client, run_id)["progress"] or {}).get("step"), 90, what="training progress")
    finally:
        stopping.stop()
    run = run_json(client, run_id)
    assert run["status"] == "queued" and run["worker"] is None
    assert run["resume"] is bool(epochs_of(client, run_id))  # from the last epoch that came back, if any


def test_a_killed_ray_worker_fails_its_run_or_resumes_it_and_the_queue_goes_on(client, executor):
    # Killed in its first epoch: nothing came back, so the run fails with the reason.
    first = queue_run(client, **SLOW_RUN)
    pid = placed(executor, first)["pid"]
    wait_for(lambda: (run_json(client, first)["progress"] or {}).get("step"), 90, what="training progress")
    os.kill(pid, signal.SIGKILL)
    killed = wait_finished(client, first, timeout=60)
    assert killed["status"] == "failed" and "Ray worker process training it died" in killed["error"]

    # Killed after an epoch came back: queued again, resumed from that epoch's checkpoint, completed.
    resumed = queue_run(client, **EPOCHS_RUN)
    after = queue_run(client, kind="student")
    pid = placed(executor, resumed)["pid"]
    wait_for(lambda: epochs_of(client, resumed), 90, what="a first epoch")
    first_rows = {e["epoch"]: e for e in epochs_of(client, resumed)}
    os.kill(pid, signal.SIGKILL)
    # Claimed again and placed on a new worker process, since the killed one is gone.
    wait_for(lambda: (executor.placement(resumed) or {}).get("pid") not in (None, pid), 90, what="the resumed run")
    done = wait_finished(client, resumed, timeout=150)
    assert done["status"] == "completed", done["error"]
    epochs = epochs_of(client, resumed)
    assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS_RUN["epochs"] + 1))
    assert epochs[0]["test_loss"] == first_rows[1]["test_loss"]  # kept, not trained again
    assert wait_finished(client, after)["status"] == "completed"


def test_runs_left_on_ray_by_a_previous_server_are_settled(session, app_settings):
    def left(**fields) -> int:
        run = Run(kind="student", config={**SYNTHETIC_RUN, "kind": "student"}, status="running",
                  **{"worker": "ray:10.0.0.5:3fa2b1c4:gpu0", **fields})
        session.add(run)
        session.commit()
        return run.id

    with_checkpoint, without, cancelled = left(), left(), left(cancel_requested=True)
    local = left(worker="otherhost:123:cpu")
    (app_settings.runs_dir / str(with_checkpoint)).mkdir(parents=True)
    (app_settings.runs_dir / str(with_checkpoint) / CHECKPOINT).write_bytes(b"weights")

    settled = settle_left_runs(session, app_settings.runs_dir)
    assert settled == {with_checkpoint: "queued", without: "failed", cancelled: "cancelled"}
    runs = {run_id: session.get(Run, run_id, populate_existing=True) for run_id in settled | {local: None}}
    assert runs[with_checkpoint].resume and runs[with_checkpoint].worker is None
    assert runs[without].error == "the server restarted while the run trained (Ray node 10.0.0.5 (3fa2b1c4), GPU 0)"
    assert runs[local].status == "running"  # not the Ray executor's


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(root: Path, address: str) -> tuple[subprocess.Popen, httpx.Client]:
    port = _free_port()
    env = {**os.environ, "KD_DB_URL": f"sqlite:///{root / 'kd.sqlite'}", "KD_RUNS_DIR": str(root / "runs"),
           "KD_EXECUTOR": "ray", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("KD_API_TOKEN", None)
    log = (root / f"server-{port}.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--ray-address",
                                address], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def up():
        assert process.poll() is None, (root / f"server-{port}.log").read_text()[-3000:]
        try:
            return api.get("/api/datasets").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 90, what="the server to start")
    return process, api


def test_a_server_restart_mid_run_resumes_the_run_from_its_returned_checkpoint(local_ray, tmp_path):
    process, api = _serve(tmp_path, local_ray)
    try:
        response = api.post("/api/runs", json=EPOCHS_RUN)
        assert response.status_code == 201, response.text
        run_id = response.json()["id"]
        wait_for(lambda: api.get(f"/api/runs/{run_id}/epochs").json()["items"], 120, what="a first epoch")
        # Written just after the epoch's row.
        wait_for((tmp_path / "runs" / str(run_id) / CHECKPOINT).is_file, 10, what="its checkpoint back")
        assert api.get(f"/api/runs/{run_id}").json()["worker"].startswith("ray:")
    finally:
        process.kill()  # no shutdown of any kind: Ray ends the tasks of the driver that died
        process.wait(20)
        api.close()
    with sqlite3.connect(tmp_path / "kd.sqlite") as db:
        assert db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0] == "running"
    process, api = _serve(tmp_path, local_ray)
    try:
        run = wait_for(lambda: (r := api.get(f"/api/runs/{run_id}").json())["status"] in FINISHED and r, 150,
                       what="the run to finish after the restart")
        assert run["status"] == "completed", run["error"]
        epochs = api.get(f"/api/runs/{run_id}/epochs").json()["items"]
        assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS_RUN["epochs"] + 1))
    finally:
        process.terminate()
        process.wait(30)
        api.close()


# ---------------------------------------------------------------- without Ray in the web process

def test_the_local_executor_never_imports_ray(tmp_path):
    code = (
        "import sys\n"
        "from app.main import create_app\n"
        "from app.settings import Settings\n"
        "import app.cli, app.executors.local.pool, app.runs.service, app.runs.views, app.runs.pages\n"
        f"create_app(Settings(db_url='sqlite:///{tmp_path}/kd.sqlite', runs_dir='{tmp_path}/runs'))\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _serve_args(monkeypatch, tmp_path, *argv, env=None):
    import uvicorn

    import app.main
    from app import cli

    made = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    monkeypatch.setattr(app.main, "create_app", lambda settings, worker_pool=None: made.append(worker_pool))
    monkeypatch.setenv("KD_DB_URL", f"sqlite:///{tmp_path / 'kd.sqlite'}")
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser()
    cli.register_serve(parser.add_subparsers())
    args = parser.parse_args(["serve", *argv])
    assert args.func(args) == 0
    return made[0]


def test_serve_chooses_the_executor_from_flags_or_environment(monkeypatch, tmp_path):
    from app.executors.local.pool import WorkerPool

    assert isinstance(_serve_args(monkeypatch, tmp_path, "--gpus", ""), WorkerPool)
    chosen = _serve_args(monkeypatch, tmp_path, "--executor", "ray", "--ray-address", "head:6379",
                         "--runs-per-gpu", "4")
    assert isinstance(chosen, RayExecutor) and chosen.settings.ray_address == "head:6379"
    assert chosen.runs_per_gpu == 4 and not chosen.settings.shared_runs_dir
    from_env = _serve_args(monkeypatch, tmp_path, env={"KD_EXECUTOR": "ray", "KD_RAY_ADDRESS": "10.0.0.1:6379",
                                                       "KD_SHARED_RUNS_DIR": "1"})
    assert isinstance(from_env, RayExecutor) and from_env.settings.ray_address == "10.0.0.1:6379"
    assert from_env.settings.shared_runs_dir
    with pytest.raises(SystemExit, match="Ray assigns them"):
        _serve_args(monkeypatch, tmp_path, "--executor", "ray", "--gpus", "0")
    with pytest.raises(SystemExit, match="KD_EXECUTOR='slurm' must be one of: local, ray"):
        _serve_args(monkeypatch, tmp_path, env={"KD_EXECUTOR": "slurm"})


# ---------------------------------------------------------------- a cluster of two nodes (last: it replaces
# the session's local Ray)

def test_a_removed_node_fails_its_run_and_the_next_node_trains_the_queue(ray_session, app, app_settings, client):
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    # The head offers no CPU, so every run lands on a worker node, which the test can take away.
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": OBJECT_STORE, "include_dashboard": False})
    ray_executor = None
    try:
        node = cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
        ray.init(address=cluster.address)
        ray_executor = RayExecutor(replace(app_settings, executor="ray"), engine=app.state.engine)
        ray_executor.start()
        assert ray_executor.capacity.nodes == 2 and ray_executor.capacity.slots == 1

        victim = queue_run(client, **SLOW_RUN)
        assert placed(ray_executor, victim)["node_id"] == node.node_id
        wait_for(lambda: (run_json(client, victim)["progress"] or {}).get("step"), 90, what="training progress")
        cluster.remove_node(node, allow_graceful=False)
        lost = wait_finished(client, victim, timeout=90)
        assert lost["status"] == "failed", lost["error"]
        place = f"Ray node {node.node_ip_address} ({node.node_id[:8]}), CPU"
        assert lost["error"] == f"the Ray node training it died ({place})"

        next_run = queue_run(client, kind="student")
        replacement = cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
        assert wait_finished(client, next_run, timeout=120)["status"] == "completed"
        assert replacement.node_id[:8] in run_json(client, next_run)["worker"]
        with new_session(app.state.engine, app_settings) as db:
            assert len(db.exec(select(Epoch).where(Epoch.run_id == next_run)).all()) == 1
    finally:
        if ray_executor is not None:
            ray_executor.stop()
        ray.shutdown()
        cluster.shutdown()
