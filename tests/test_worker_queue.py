"""The queue without training: atomic claims across processes, teacher ordering, crash recovery."""

from __future__ import annotations

import multiprocessing
import os
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from app.executors.local.pool import visible_gpus
from app.executors.lost_runs import recover_lost_runs
from app.executors.local.runner import _exit_reason
from app.executors.records import finish_run, record_progress
from app.executors.training import describe_failure
from app.settings import Settings
from app.store.db import init_db, new_session
from app.store.models import Run, utcnow
from app.store.queue import HOST, cancel_orphans, claim_next
from kdcore.errors import NonFiniteLoss
from tests.app_fixtures import app, app_settings, client, session, set_run  # noqa: F401

CLAIMERS = 3
RUNS = 60


def queue(client, **body) -> int:
    response = client.post("/api/runs", json={"dataset": "synthetic", **body})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _claim_all(db_url: str, name: str, ready, start, results) -> None:
    engine = init_db(Settings(db_url=db_url))
    claimed = []
    ready.release()
    start.wait(timeout=60)  # all claimers poll at once
    with new_session(engine) as session:
        while (run := claim_next(session, name)) is not None:
            claimed.append(run.id)
            # A real worker goes off to train after a claim; without this pause, on a loaded 2-core
            # machine one process could drain the queue before the others are scheduled at all.
            time.sleep(0.01)
    results.put((name, claimed))


def test_concurrent_workers_never_claim_a_run_twice(app_settings, session):
    for _ in range(RUNS):
        session.add(Run(kind="student", config={"kind": "student"}))
    session.commit()
    context = multiprocessing.get_context("spawn")
    results, ready, start = context.Queue(), context.Semaphore(0), context.Event()
    workers = [context.Process(target=_claim_all, args=(app_settings.db_url, f"w{i}", ready, start, results))
               for i in range(CLAIMERS)]
    for process in workers:
        process.start()
    for _ in workers:
        assert ready.acquire(timeout=120)
    start.set()
    claims = dict(results.get(timeout=120) for _ in workers)
    for process in workers:
        process.join(timeout=30)
    every_claim = [run_id for ids in claims.values() for run_id in ids]
    assert sorted(every_claim) == list(range(1, RUNS + 1))  # each run exactly once
    assert sum(1 for ids in claims.values() if ids) >= 2, claims  # the claimers did compete
    holders = {run.id: run.worker for run in session.exec(select(Run)).all()}
    assert all(holders[run_id] == name for name, ids in claims.items() for run_id in ids)


def test_runs_wait_for_their_teacher(client, session):
    teacher = queue(client, kind="teacher")
    kd = queue(client, kind="kd", teacher_run_id=teacher)
    student = queue(client, kind="student")
    assert claim_next(session, "w").id == teacher
    assert claim_next(session, "w").id == student  # kd is skipped while its teacher trains
    assert claim_next(session, "w") is None
    finish_run(session, teacher, "w", "completed", result={"final_accuracy": 0.5, "checkpoint": "/x"})
    assert claim_next(session, "w").id == kd


def test_a_failed_teacher_cancels_its_waiting_runs(client, session):
    teacher = queue(client, kind="teacher")
    waiting = [queue(client, kind=kind, teacher_run_id=teacher) for kind in ("kd", "cosine")]
    claim_next(session, "w")
    finish_run(session, teacher, "w", "failed", error="boom")
    for run_id in waiting:
        run = session.get(Run, run_id, populate_existing=True)
        assert run.status == "cancelled" and run.error == f"teacher run {teacher} was failed"
    assert cancel_orphans(session) == []


def test_lost_workers_runs_fail_and_live_ones_stay(client, session, app, app_settings):
    now = utcnow()
    stale, dead_pid, alive, stopping = (queue(client, kind="student") for _ in range(4))
    set_run(session, stale, status="running", worker="elsewhere:1:gpu0", heartbeat_at=now - timedelta(minutes=5))
    # A pid that surely does not exist on this host.
    set_run(session, dead_pid, status="running", worker=f"{HOST}:{2**22 + 17}:cpu", heartbeat_at=now)
    set_run(session, alive, status="running", worker=f"{HOST}:{os.getpid()}:cpu", heartbeat_at=now)
    set_run(session, stopping, status="running", worker="elsewhere:1:gpu1", cancel_requested=True,
            heartbeat_at=now - timedelta(minutes=5))

    assert sorted(recover_lost_runs(app.state.engine, app_settings)) == sorted([stale, dead_pid, stopping])
    runs = {run_id: session.get(Run, run_id, populate_existing=True) for run_id in (stale, dead_pid, alive, stopping)}
    assert runs[stale].status == "failed" and runs[stale].error == "worker lost (elsewhere:1:gpu0)"
    assert runs[dead_pid].status == "failed" and runs[dead_pid].error.startswith("worker lost")
    assert runs[alive].status == "running"
    assert runs[stopping].status == "cancelled"
    # The lost worker's late reports change nothing.
    assert record_progress(session, stale, "elsewhere:1:gpu0") is None
    assert not finish_run(session, stale, "elsewhere:1:gpu0", "completed", result={})
    assert session.get(Run, stale, populate_existing=True).status == "failed"


def test_progress_heartbeat_and_eta(client, session):
    run_id = queue(client, kind="student")
    run = claim_next(session, "w")
    set_run(session, run_id, started_at=run.started_at - timedelta(seconds=30))
    assert record_progress(session, run_id, "w", {"epoch": 1, "epochs": 4, "step": 5, "steps": 10}) is False
    # The first report: no step timing yet (the 30 s since the claim were start-up; tests/test_study_eta.py).
    assert client.get(f"/api/runs/{run_id}").json()["progress"]["eta_seconds"] is None
    set_run(session, run_id, pace_from_at=utcnow() - timedelta(seconds=10))  # 10 s ago, at 1/8 of the run
    assert record_progress(session, run_id, "w", {"epoch": 2, "epochs": 4, "step": 5, "steps": 10}) is False
    progress = client.get(f"/api/runs/{run_id}").json()["progress"]
    assert progress["fraction"] == pytest.approx(0.375)
    assert progress["eta_seconds"] == pytest.approx(25, abs=3)  # 10 s for 1/4 of the work, 5/8 left
    client.post(f"/api/runs/{run_id}/cancel")
    assert record_progress(session, run_id, "w") is True


def test_failure_messages_are_readable():
    class OutOfMemoryError(RuntimeError):
        pass

    assert describe_failure(NonFiniteLoss("training loss became non-finite in epoch 3 (nan)")) == \
        "training loss became non-finite in epoch 3 (nan)"
    assert describe_failure(OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")).startswith(
        "CUDA out of memory: lower batch_size")
    try:
        {}["missing"]
    except KeyError as exc:
        message = describe_failure(exc)
    assert message.startswith("KeyError: 'missing' (at test_worker_queue.py:")
    assert _exit_reason(-9) == "training process killed by SIGKILL"
    assert _exit_reason(1) == "training process exited with code 1 without a result"


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
