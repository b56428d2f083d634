"""Live progress around an epoch's end: the test evaluation, the stored epoch, and the ETA through both."""

from __future__ import annotations

import queue
import threading
import types
from dataclasses import dataclass
from datetime import timedelta

import pytest

from app.executors.local.runner import RunSupervisor
from app.executors.records import record_epoch, record_progress
from app.executors.training import step_reporter
from app.store.queue import claim_next
from tests.app_fixtures import app, app_settings, client, session, set_run  # noqa: F401


@dataclass
class Step:  # the shape of kdcore.training.engine.StepProgress, without importing torch
    epoch: int
    epochs: int
    step: int
    steps: int


def metrics(epoch: int, epochs: int) -> dict:
    return {"epoch": epoch, "epochs": epochs, "train_loss": 1.0, "train_terms": {"ce": 1.0}, "test_loss": 1.1,
            "test_accuracy": 0.5, "seconds": 1.0, "images_per_sec": 100.0}


def claimed_run(client, session, started_ago_s: float = 30) -> int:
    """A run claimed ``started_ago_s`` ago whose first step report (where its pace is measured from) came
    right then, at the start of its training."""
    run_id = client.post("/api/runs", json={"kind": "student", "dataset": "synthetic"}).json()["id"]
    run = claim_next(session, "w")
    then = run.started_at - timedelta(seconds=started_ago_s)
    set_run(session, run_id, started_at=then, progress_at=then, pace_from_at=then, pace_from_fraction=0.0)
    return run_id


def progress(client, run_id: int) -> dict:
    return client.get(f"/api/runs/{run_id}").json()["progress"]


def test_progress_never_goes_back_through_the_evaluation_and_the_eta_stays_sane(client, session):
    run_id = claimed_run(client, session)
    record_progress(session, run_id, "w", {"epoch": 2, "epochs": 4, "step": 9, "steps": 10})
    before = progress(client, run_id)
    # The last step of epoch 2: training is done and the test evaluation runs.
    record_progress(session, run_id, "w", {"epoch": 2, "epochs": 4, "step": 10, "steps": 10})
    evaluating = progress(client, run_id)
    assert evaluating["phase"] == "evaluating" and evaluating["fraction"] == pytest.approx(0.5)
    assert evaluating["fraction"] > before["fraction"]
    assert evaluating["eta_seconds"] == pytest.approx(30, abs=3)  # 30 s for half of the run
    # The epoch is stored: the bar stays where it was, now at step 0 of the next epoch.
    record_epoch(session, run_id, "w", metrics(2, 4))
    stored = progress(client, run_id)
    assert (stored["epoch"], stored["step"], stored["steps"], stored["phase"]) == (3, 0, 10, "training")
    assert stored["fraction"] == pytest.approx(0.5)
    assert stored["eta_seconds"] == pytest.approx(30, abs=3)  # recomputed, not the last step's plus its age
    record_epoch(session, run_id, "w", metrics(4, 4))
    last = progress(client, run_id)
    assert last["fraction"] == pytest.approx(1.0) and last["eta_seconds"] == pytest.approx(0, abs=0.5)


def test_run_page_shows_the_evaluation_phase(client, session):
    run_id = claimed_run(client, session)
    record_progress(session, run_id, "w", {"epoch": 1, "epochs": 2, "step": 10, "steps": 10})
    assert "evaluating epoch 1 on the test split" in client.get(f"/runs/{run_id}").text
    assert "epoch 1/2 · evaluating" in client.get("/fragments/active").text


def test_the_last_step_of_an_epoch_is_always_reported():
    messages = queue.Queue()
    on_step = step_reporter(messages, interval_s=3600)
    for step in range(1, 11):
        on_step(Step(1, 2, step, 10))
    sent = [messages.get_nowait()[1]["step"] for _ in range(messages.qsize())]
    assert sent == [1, 10]  # the first (throttle open), then the last: the evaluation starts now


def test_a_step_older_than_a_stored_epoch_is_not_written_after_it(client, session, app, app_settings):
    run_id = claimed_run(client, session)
    supervisor = RunSupervisor(app.state.engine, app_settings, "w", None, threading.Event())
    supervisor.process = types.SimpleNamespace(is_alive=lambda: True, exitcode=None)
    messages = queue.Queue()
    messages.put(("step", {"epoch": 2, "epochs": 4, "step": 1, "steps": 10}))  # written by the first heartbeat
    messages.put(("step", {"epoch": 2, "epochs": 4, "step": 5, "steps": 10}))  # waits for the next one
    messages.put(("epoch", metrics(2, 4)))
    # The outcome comes after the next heartbeat, which would write the waiting step.
    threading.Timer(app_settings.heartbeat_s * 2.5, messages.put, (("completed", {}),)).start()
    outcome, lost, _ = supervisor._supervise(types.SimpleNamespace(id=run_id), messages, threading.Event())
    assert outcome == ("completed", {}) and not lost
    after = progress(client, run_id)
    assert after["fraction"] == pytest.approx(0.5) and after["epoch"] == 3
