"""Searches without training, for the search tests: a teacher to distil from, a search submitted through the API,
and its trials moved on in the database as a worker would (running, epochs with validation and test accuracy
of the test's choosing, an ending through the executors' own writer)."""

from __future__ import annotations

from sqlmodel import select

from app.executors.records import finish_run, record_epoch
from app.store.models import Run
from tests.app_fixtures import set_run

WORKER = "test:1:cpu"
EPOCHS = 6
SPACE = ["kd.temperature=log:1:16", "kd.distill_weight=0.1:0.9"]


def completed_teacher(api, db) -> int:
    teacher = api.post("/api/runs", json={"kind": "teacher", "dataset": "synthetic", "subset": 100, "epochs": 1,
                                          "device": "cpu"}).json()
    set_run(db, teacher["id"], status="completed", final_accuracy=0.8)
    return teacher["id"]


def search_body(teacher_id: int, **extra) -> dict:
    return {"methods": ["kd"], "teacher_run_id": teacher_id, "space": SPACE, "trials": 8, "parallelism": 8,
            "pruner": "successive-halving", "dataset": "synthetic", "subset": 100, "epochs": EPOCHS,
            "validation": 0.2, "device": "cpu", "top_k": 2, "seeds": 2, **extra}


def trials(db, search_id: int) -> list[Run]:
    return list(db.exec(select(Run).where(Run.search_id == search_id).order_by(Run.trial_number)
                        .execution_options(populate_existing=True)).all())


def start(db, run: Run) -> None:
    set_run(db, run.id, status="running", worker=WORKER)


def epoch(db, run: Run, n: int, val: float, test: float) -> None:
    record_epoch(db, run.id, WORKER, {"epoch": n, "epochs": EPOCHS, "train_loss": 1.0, "train_terms": {},
                                      "test_loss": 1.0, "test_accuracy": test, "seconds": 1.0,
                                      "images_per_sec": 100.0, "val_accuracy": val, "val_loss": 1.0})


def complete(db, run: Run, val: float, test: float = 0.5) -> None:
    """Train the trial to its end (every epoch at ``val``) and complete it."""
    if run.status == "queued":
        start(db, run)
    for n in range(1, EPOCHS + 1):
        epoch(db, run, n, val, test)
    finish_run(db, run.id, WORKER, "completed", result={
        "final_accuracy": test, "best_val_accuracy": val, "best_epoch": EPOCHS, "test_accuracy_at_best": test,
        "seconds": 3.0})


def stop(db, run: Run) -> None:
    """The executor stops a run asked to stop, as it stops a cancelled one."""
    finish_run(db, run.id, WORKER, "cancelled", error="cancelled by user")
