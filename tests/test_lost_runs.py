"""Runs left running by a worker or server that died, settled with their run folders (app.executors.lost_runs),
and a resumed run whose epochs become its checkpoint's (the trainer's "restored" report)."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta

import pytest

from app.executors.local.pool import WorkerPool
from app.executors.lost_runs import recover_lost_runs
from app.store.models import utcnow
from app.store.queue import HOST
from kdcore.config import RunConfig
from kdcore.errors import RunCancelled
from kdcore.training.checkpoint import load_checkpoint
from kdcore.training.engine import train
from kdcore.training.run_files import CHECKPOINT, METRICS
from tests.app_fixtures import (SYNTHETIC_RUN, add_epochs, app, app_settings, client, session,  # noqa: F401
                                set_run, wait_for)

# A pid that surely does not exist on this host: the worker that held the run is dead.
DEAD_WORKER = f"{HOST}:{2**22 + 17}:cpu"


def _epoch(n: int, seconds: float) -> dict:
    return {"epoch": n, "epochs": 4, "train_loss": 2.0 / n, "train_terms": {"ce": 2.0 / n}, "test_loss": 2.1 / n,
            "test_accuracy": 0.1 * n, "seconds": seconds, "images_per_sec": 100.0, "val_loss": None,
            "val_accuracy": None}


def _lost_run(client, session, *, recorded: int, saved: int, checkpoint_age_s: float, worker: str = DEAD_WORKER,
              runs_dir) -> int:
    """A run that a dead worker held for 60 s, with ``recorded`` epochs in the database and a folder whose
    checkpoint (written ``checkpoint_age_s`` ago) and metrics.json hold ``saved``."""
    run_id = client.post("/api/runs", json={**SYNTHETIC_RUN, "kind": "student", "epochs": 4}).json()["id"]
    started = utcnow() - timedelta(seconds=60)
    set_run(session, run_id, status="running", worker=worker, started_at=started, heartbeat_at=utcnow())
    add_epochs(session, run_id, recorded, worker=worker, epochs=4)
    folder = runs_dir / str(run_id)
    folder.mkdir(parents=True)
    (folder / CHECKPOINT).write_bytes(b"weights")  # the reconciliation only looks at its presence and age
    (folder / METRICS).write_text(json.dumps([_epoch(n, 10.0 + n) for n in range(1, saved + 1)]))
    moment = time.time() - checkpoint_age_s
    os.utime(folder / CHECKPOINT, (moment, moment))
    return run_id


def test_a_checkpoint_saved_before_the_server_died_resumes_the_run(client, session, app, app_settings):
    # The server was killed after saving epoch 2's checkpoint and before recording epoch 2.
    run_id = _lost_run(client, session, recorded=1, saved=2, checkpoint_age_s=5, runs_dir=app_settings.runs_dir)

    assert recover_lost_runs(app.state.engine, app_settings) == [run_id]

    run = client.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "queued" and run["resume"] is True and run["error"] is None
    assert run["has_checkpoint"]
    epochs = client.get(f"/api/runs/{run_id}/epochs").json()["items"]
    assert [e["epoch"] for e in epochs] == [1, 2] and epochs[1]["seconds"] == 12.0
    assert run["best_epoch"] == 2


def test_a_run_that_saved_nothing_in_its_attempt_fails_with_its_checkpoint_on_record(client, session, app,
                                                                                      app_settings):
    # Its checkpoint is older than the attempt: requeueing could loop on a run that kills its worker.
    run_id = _lost_run(client, session, recorded=2, saved=2, checkpoint_age_s=600, runs_dir=app_settings.runs_dir)

    recover_lost_runs(app.state.engine, app_settings)

    run = client.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "failed" and run["error"] == f"worker lost ({DEAD_WORKER})"
    assert run["has_checkpoint"] and client.get(f"/api/runs/{run_id}/checkpoint").status_code == 200
    retried = client.post(f"/api/runs/{run_id}/retry").json()
    assert retried["status"] == "queued" and retried["resume"] is True


def test_a_silent_worker_s_run_fails_with_its_checkpoint_on_record(client, session, app, app_settings):
    # A stale heartbeat: its worker (of this host, its process alive) may only be stuck; it is not queued again.
    run_id = _lost_run(client, session, recorded=1, saved=2, checkpoint_age_s=5, worker=f"{HOST}:{os.getpid()}:cpu",
                       runs_dir=app_settings.runs_dir)
    set_run(session, run_id, heartbeat_at=utcnow() - timedelta(minutes=5))

    recover_lost_runs(app.state.engine, app_settings)

    run = client.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "failed" and run["has_checkpoint"]
    assert [e["epoch"] for e in client.get(f"/api/runs/{run_id}/epochs").json()["items"]] == [1, 2]


def test_another_machine_s_run_is_not_settled_with_this_one_s_folder(client, session, app, app_settings):
    # A kd worker elsewhere writes its own runs directory: a folder here is an older attempt's, not its.
    run_id = _lost_run(client, session, recorded=1, saved=2, checkpoint_age_s=5, worker="elsewhere:1:gpu0",
                       runs_dir=app_settings.runs_dir)
    set_run(session, run_id, heartbeat_at=utcnow() - timedelta(minutes=5))

    recover_lost_runs(app.state.engine, app_settings)

    run = client.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "failed" and not run["has_checkpoint"]
    assert [e["epoch"] for e in client.get(f"/api/runs/{run_id}/epochs").json()["items"]] == [1]


def test_a_resumed_run_s_epochs_are_its_checkpoint_s(client, session, app, app_settings):
    """The database lacks the checkpoint's last epoch and holds one after it (an older attempt's): the
    resumed run reports its checkpoint's history, and its epochs end up 1..4 with 1 and 2 as saved."""
    body = {**SYNTHETIC_RUN, "kind": "student", "epochs": 4}
    run_id = client.post("/api/runs", json=body).json()["id"]
    folder = app_settings.runs_dir / str(run_id)
    config = RunConfig.model_validate(client.get(f"/api/runs/{run_id}").json()["config"])
    saved = []

    def stop_after_two(metrics) -> None:
        saved.append(metrics)

    try:
        train(config, out_dir=folder, data_root=app_settings.data_dir, on_epoch=stop_after_two,
              should_stop=lambda: len(saved) >= 2)
    except RunCancelled:
        pass
    assert load_checkpoint(folder / CHECKPOINT)["epoch"] == 2
    set_run(session, run_id, status="running", worker=DEAD_WORKER)
    add_epochs(session, run_id, 3, worker=DEAD_WORKER, epochs=4)  # epochs 2 and 3 are not the checkpoint's
    set_run(session, run_id, status="queued", worker=None, resume=True, checkpoint=str(folder / CHECKPOINT))

    pool = WorkerPool(app_settings, gpus=[], engine=app.state.engine)
    pool.start()
    try:
        wait_for(lambda: client.get(f"/api/runs/{run_id}").json()["status"] == "completed", 120,
                 what="the resumed run to complete")
    finally:
        pool.stop()
    epochs = client.get(f"/api/runs/{run_id}/epochs").json()["items"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert [e["seconds"] for e in epochs[:2]] == [m.seconds for m in saved]
    assert [e["test_accuracy"] for e in epochs[:2]] == [m.test_accuracy for m in saved]
    assert epochs[2]["test_accuracy"] != pytest.approx(0.3)  # the older attempt's epoch 3 was trained again
