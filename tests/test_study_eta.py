"""The ETA a user reads (GET /api/runs/{id}, GET /api/studies/{id}, which the pages show) while workers take a
study's runs, on a simulated clock: a run's first ETA waits for a step timing, and the study's ETA counts
down with the clock instead of jumping when a run starts or ends."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import app.executors.records as records
import app.runs.service as run_service
import app.store.queue as queue
import app.studies.service as study_service
from app.executors.records import finish_run, record_progress
from app.store.queue import claim_next
from tests.app_fixtures import app, app_settings, client, session  # noqa: F401
from tests.study_fixtures import submit

START_UP_S = 5  # spawning the trainer, loading the data: no step reported yet
STEPS = {"teacher": 30, "student": 12, "kd": 20}  # one step a second


class Clock:
    def __init__(self):
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    for module in (queue, records, run_service, study_service):
        monkeypatch.setattr(module, "utcnow", fake)
    return fake


class Slot:
    """One worker slot: claims the oldest ready run, starts up, reports a step a second, then completes it."""

    def __init__(self, name: str):
        self.name, self.run, self.since = name, None, None
        self.claimed: list[tuple[datetime, str]] = []

    def tick(self, session, clock: Clock, claim: bool = True) -> None:
        if self.run is not None:
            steps = STEPS[self.run.kind]
            step = int((clock.now - self.since).total_seconds()) - START_UP_S
            if step >= steps:
                finish_run(session, self.run.id, self.name, "completed",
                           result={"final_accuracy": 0.5, "best_accuracy": 0.5, "best_epoch": 1, "seconds": steps})
                self.run = None
            elif step >= 1:
                record_progress(session, self.run.id, self.name, {"epoch": 1, "epochs": 1, "step": step, "steps": steps})
            else:
                record_progress(session, self.run.id, self.name)
        if self.run is None and claim:
            self.run = claim_next(session, self.name)
            self.since = clock.now
            if self.run is not None:
                self.claimed.append((clock.now, self.run.kind))


def test_a_runs_first_eta_waits_for_a_step_timing(client, session, clock):
    run_id = client.post("/api/runs", json={"kind": "student", "dataset": "synthetic", "epochs": 4}).json()["id"]
    claim_next(session, "w")
    clock.tick(30)  # start-up: 30 s before the first step is reported
    record_progress(session, run_id, "w", {"epoch": 1, "epochs": 4, "step": 1, "steps": 10})
    progress = client.get(f"/api/runs/{run_id}").json()["progress"]
    assert progress["fraction"] == pytest.approx(0.025) and progress["eta_seconds"] is None
    clock.tick(14)  # 14 more steps at one a second
    record_progress(session, run_id, "w", {"epoch": 2, "epochs": 4, "step": 5, "steps": 10})
    # 25 steps left at the pace measured since the first report; the 30 s of start-up are not a pace.
    assert client.get(f"/api/runs/{run_id}").json()["progress"]["eta_seconds"] == pytest.approx(25.0)
    clock.tick(2)
    assert client.get(f"/api/runs/{run_id}").json()["progress"]["eta_seconds"] == pytest.approx(23.0)


@pytest.mark.parametrize("idle_between_runs", [0, 2], ids=["claims-at-once", "slots-idle-2s"])
def test_the_study_eta_counts_down_instead_of_jumping_when_runs_start(client, session, clock, idle_between_runs):
    study_id = submit(client, methods=("student", "kd"), seeds=(1, 2, 3))
    slots = [Slot("host:1:cpu0"), Slot("host:1:cpu1")]
    seen: list[tuple[int, float | None, int, int]] = []  # (second, ETA, running, done)
    start = clock.now
    idle = {slot.name: 0 for slot in slots}
    for second in range(400):
        for slot in slots:
            was = slot.run
            slot.tick(session, clock, claim=idle[slot.name] == 0)
            if was is not None and slot.run is None:
                idle[slot.name] = idle_between_runs  # the worker polls the queue again a moment later
            elif idle[slot.name]:
                idle[slot.name] -= 1
        progress = client.get(f"/api/studies/{study_id}").json()["progress"]
        seen.append((second, progress["eta_seconds"], progress["running"], progress["done"]))
        if progress["done"] == progress["total"]:
            break
        clock.tick()
    assert seen[-1][3] == 7, "the study did not finish"
    known = [(second, eta) for second, eta, _, _ in seen if eta is not None]
    # Known once every kind of run has a step timing: the first kd run's second step report, after its start-up.
    first_kd = min(at for slot in slots for at, kind in slot.claimed if kind == "kd")
    assert known and known[0][0] <= (first_kd - start).total_seconds() + START_UP_S + 2, (first_kd, known[:3])
    assert [second for second, _ in known] == list(range(known[0][0], seen[-1][0])), "the ETA went away again"
    finished_at = seen[-1][0]
    for second, eta in known:
        # Every figure shown is the time that was actually left, within the simulated workers' polling.
        assert eta == pytest.approx(finished_at - second, abs=1 + 2 * idle_between_runs), (second, eta, finished_at)
    for (_, before), (_, after) in zip(known, known[1:]):
        assert -1 - 2 * idle_between_runs - 0.5 <= after - before <= 0.5, (before, after)
