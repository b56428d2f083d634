"""A method's pre-stage in the app: the worker's records keep its epochs apart from the main stage's, the run
page says which stage is under way and draws the stage's curves apart, the CSV names each row's stage, and
deleting the run deletes them."""

from __future__ import annotations

import csv
import io
import json

from page_fixtures import TEACHER_KIND, add_epoch, add_run, client, db, well_formed  # noqa: F401  (fixtures)
from sqlmodel import select

from app.executors.records import record_epoch, record_progress
from app.store.models import Epoch, Run, StageEpoch

WORKER = "test:0:cpu"


def _stage_metrics(epoch: int, epochs: int, value: float) -> dict:
    return {"stage": "init", "epoch": epoch, "epochs": epochs, "train_loss": value, "train_terms": {"fsp": value},
            "test_loss": 2.3, "test_accuracy": 0.1, "seconds": 1.0, "images_per_sec": 100.0,
            "val_loss": None, "val_accuracy": None}


def _running_fsp(db, epochs: int = 3) -> Run:
    teacher = add_run(db, TEACHER_KIND)
    run = add_run(db, "fsp", teacher=teacher.id, status="queued", epochs=epochs, params={"init_epochs": 5})
    run.status, run.worker = "running", WORKER
    db.add(run)
    db.commit()
    return run


def test_the_worker_stores_stage_epochs_apart_and_the_progress_names_the_stage(client, db):
    run = _running_fsp(db)
    record_progress(db, run.id, WORKER, {"stage": "init", "epoch": 1, "epochs": 5, "step": 3, "steps": 8})
    record_epoch(db, run.id, WORKER, _stage_metrics(1, 5, 0.9))
    record_progress(db, run.id, WORKER, {"stage": "init", "epoch": 2, "epochs": 5, "step": 4, "steps": 8})
    assert db.exec(select(Epoch).where(Epoch.run_id == run.id)).all() == []
    rows = db.exec(select(StageEpoch).where(StageEpoch.run_id == run.id)).all()
    assert [(r.stage, r.epoch, r.epochs, r.train_terms) for r in rows] == [("init", 1, 5, {"fsp": 0.9})]
    progress = client.get(f"/api/runs/{run.id}").json()["progress"]
    assert (progress["stage"], progress["epoch"], progress["epochs"]) == ("init", 2, 5)
    assert progress["fraction"] == 1.5 / 5  # of the stage under way
    doc = well_formed(client.get(f"/runs/{run.id}").text)
    assert "stage: init (2/5)" in doc.by_id("run-progress").text()
    assert "step 4/8 of init epoch 2" in doc.by_id("run-progress").text()
    stage = doc.by_id("stage-curves")
    assert "Stage “init”: 1/5 epochs before the main stage, training the student and adapters" in stage.text()
    spec = json.loads(doc.by_id("stage-chart-spec").text())
    assert [(s["key"], s["x"], s["y"]) for s in spec["series"]] == [("train_terms.fsp", [1], [0.9])]
    # The main stage's curves hold none of the stage's epochs.
    assert all(s["x"] == [] for s in json.loads(doc.by_id("loss-chart-spec").text())["series"])

    # The main stage's first step: its progress has no stage, and its pace starts afresh.
    record_progress(db, run.id, WORKER, {"stage": None, "epoch": 1, "epochs": 3, "step": 1, "steps": 8})
    progress = client.get(f"/api/runs/{run.id}").json()["progress"]
    assert progress["stage"] is None and progress["eta_seconds"] is None
    page = well_formed(client.get(f"/runs/{run.id}").text)
    assert "epoch 1/3" in page.by_id("run-progress").text() and "stage:" not in page.by_id("run-progress").text()


def test_the_epochs_csv_names_each_rows_stage_and_deleting_the_run_deletes_the_stage_epochs(client, db):
    run = _running_fsp(db, epochs=2)
    for n in (1, 2):
        record_epoch(db, run.id, WORKER, _stage_metrics(n, 2, 1.0 / n))
    add_epoch(db, run, 1)
    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/runs/{run.id}/epochs.csv").text)))
    assert [(r["stage"], r["epoch"]) for r in rows] == [("init", "1"), ("init", "2"), ("main", "1")]
    assert rows[1]["train_fsp"] == "0.5" and rows[2]["train_fsp"] == "" and rows[2]["train_ce"] != ""
    db.exec(select(Run).where(Run.id == run.id)).one().status = "completed"
    db.commit()
    assert client.delete(f"/api/runs/{run.id}").status_code == 204
    assert db.exec(select(StageEpoch).where(StageEpoch.run_id == run.id)).all() == []


def test_a_run_without_a_stage_shows_none(client, db):
    run = add_run(db, TEACHER_KIND)
    doc = well_formed(client.get(f"/runs/{run.id}").text)
    assert doc.find(id="stage-curves") is None
    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/runs/{run.id}/epochs.csv").text)))
    assert {r["stage"] for r in rows} == {"main"}


def test_the_api_takes_a_staged_methods_init_epochs_and_refuses_bad_ones_storing_nothing(client, db):
    teacher = add_run(db, TEACHER_KIND)
    body = {"kind": "ft", "teacher_run_id": teacher.id, "dataset": "synthetic", "epochs": 1}
    created = client.post("/api/runs", json={**body, "params": {"init_epochs": 3}})
    assert created.status_code == 201, created.text
    assert created.json()["config"]["params"]["init_epochs"] == 3
    assert created.json()["config"]["params"]["init_lr"] == 0.01  # FT's own default, RepDistiller's for ResNets
    before = len(db.exec(select(Run)).all())
    refused = client.post("/api/runs", json={**body, "params": {"init_epochs": -1}})
    assert refused.status_code == 422 and "init_epochs" in refused.text
    assert len(db.exec(select(Run)).all()) == before
