"""The validation split through the server: submit checks, the best epoch a worker records, the API and its
exports, and a real worker training a run with one."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlmodel import select

from app.executors.local.pool import WorkerPool
from app.executors.records import record_epoch
from app.store.models import Run, Study
from tests.app_fixtures import SYNTHETIC_RUN, app, app_settings, client, session, set_run, wait_for  # noqa: F401

TEACHER = {"kind": "teacher", "dataset": "synthetic", "subset": 100, "epochs": 3}
OPTIMISTIC = "best test epoch (optimistic)"
# Test accuracy peaks in epoch 3, validation accuracy in epoch 2.
EPOCHS = [(0.30, 0.40), (0.35, 0.60), (0.50, 0.45)]


def post(client, path, **body):
    return client.post(path, json=body)


def _record(session, run_id, with_validation=True):
    for epoch, (test, val) in enumerate(EPOCHS, start=1):
        record_epoch(session, run_id, "test:1:cpu", {
            "epoch": epoch, "epochs": len(EPOCHS), "train_loss": 1.0, "train_terms": {"ce": 1.0}, "test_loss": 2.0,
            "test_accuracy": test, "seconds": 1.0, "images_per_sec": 10.0,
            "val_loss": 1.5 if with_validation else None, "val_accuracy": val if with_validation else None})


def test_the_best_epoch_is_the_best_validation_epoch_everywhere_the_api_reports_it(client, session):
    run = post(client, "/api/runs", **TEACHER, validation=0.1).json()
    assert run["config"]["validation"] == 0.1
    set_run(session, run["id"], status="running", worker="test:1:cpu")
    _record(session, run["id"])
    detail = client.get(f"/api/runs/{run['id']}").json()
    assert (detail["best_epoch"], detail["best_val_accuracy"], detail["test_accuracy_at_best"]) == (2, 0.60, 0.35)
    assert detail["best_epoch_label"] == "best validation epoch"
    epochs = client.get(f"/api/runs/{run['id']}/epochs").json()["items"]
    assert [(e["val_accuracy"], e["val_loss"]) for e in epochs] == [(v, 1.5) for _, v in EPOCHS]
    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/runs/{run['id']}/epochs.csv").text)))
    assert [float(r["val_accuracy"]) for r in rows] == [v for _, v in EPOCHS]
    cell = re.search(r'data-col="at-best">(.*?)</td>', client.get(f"/compare?run={run['id']}").text, re.S).group(1)
    assert "35.0%" in cell and "best validation epoch 2" in cell


def test_without_a_split_every_best_figure_says_it_is_the_optimistic_best_test_epoch(client, session):
    run = post(client, "/api/runs", **TEACHER).json()
    set_run(session, run["id"], status="running", worker="test:1:cpu")
    _record(session, run["id"], with_validation=False)
    detail = client.get(f"/api/runs/{run['id']}").json()
    assert (detail["best_epoch"], detail["test_accuracy_at_best"], detail["best_val_accuracy"]) == (3, 0.50, None)
    assert detail["best_epoch_label"] == OPTIMISTIC
    rows = list(csv.DictReader(io.StringIO(client.get(f"/api/runs/{run['id']}/epochs.csv").text)))
    assert rows[0]["val_accuracy"] == "" and rows[0]["val_loss"] == ""
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    for model, field in (("RunOut", "best_epoch"), ("RunOut", "test_accuracy_at_best"), ("RunOut", "best_accuracy"),
                         ("StudyRunOut", "test_accuracy_at_best")):
        assert OPTIMISTIC in schema[model]["properties"][field]["description"], (model, field)
    # The run page and the compare page label its figure so.
    assert OPTIMISTIC.capitalize() in client.get(f"/runs/{run['id']}").text
    cell = re.search(r'data-col="at-best">(.*?)</td>', client.get(f"/compare?run={run['id']}").text, re.S).group(1)
    assert "50.0%" in cell and f"{OPTIMISTIC} 3" in cell


def _stored(session):
    return len(session.exec(select(Run)).all()), len(session.exec(select(Study)).all())


def test_distilling_best_weights_of_a_teacher_without_a_split_is_a_422_naming_the_field(client, session):
    plain = post(client, "/api/runs", **TEACHER).json()["id"]
    held_out = post(client, "/api/runs", **TEACHER, validation=0.1).json()["id"]
    before = _stored(session)
    kd = {"kind": "kd", "dataset": "synthetic", "subset": 100, "teacher_weights": "best"}
    refused = [
        post(client, "/api/runs", **kd, teacher_run_id=plain),
        post(client, "/api/studies", dataset="synthetic", subset=100, methods=["kd"], seeds=[1],
             teacher_run_id=plain, teacher_weights="best"),
        post(client, "/api/studies", dataset="synthetic", subset=100, methods=["kd"], seeds=[1], teacher_weights="best"),
        post(client, "/api/experiments", dataset="synthetic", subset=100, teacher_weights="best"),
    ]
    for response in refused:
        assert response.status_code == 422, response.text
        errors = response.json()["detail"]
        assert [e["loc"][-1] for e in errors] == ["teacher_weights"], errors
        assert "validation split" in errors[0]["msg"] and "test set" in errors[0]["msg"]
    assert _stored(session) == before
    assert post(client, "/api/runs", **kd, teacher_run_id=held_out).status_code == 201
    assert post(client, "/api/experiments", dataset="synthetic", subset=100, teacher_weights="best",
                validation=0.1).status_code == 201


def test_a_split_the_subset_cannot_hold_out_is_a_422_on_validation(client, session):
    before = _stored(session)
    response = post(client, "/api/runs", kind="student", dataset="synthetic", subset=15, validation=0.1)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "validation"]]
    assert "at least 20" in response.json()["detail"][0]["msg"]
    assert post(client, "/api/runs", kind="student", validation=0.6).status_code == 422
    assert _stored(session) == before


def test_a_worker_records_each_epochs_validation_and_the_best_validation_epoch(client, app, app_settings):
    response = client.post("/api/runs", json={**SYNTHETIC_RUN, "kind": "teacher", "architecture": "seed_student",
                                              "epochs": 3, "subset": 200, "validation": 0.1})
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    pool = WorkerPool(app_settings, gpus=[], engine=app.state.engine)
    pool.start()
    try:
        run = wait_for(lambda: (r := client.get(f"/api/runs/{run_id}").json())["status"] in
                       ("completed", "failed") and r, 180, what="the run to finish")
    finally:
        pool.stop()
    assert run["status"] == "completed", run["error"]
    epochs = client.get(f"/api/runs/{run_id}/epochs").json()["items"]
    best = max(epochs, key=lambda e: e["val_accuracy"])
    assert run["best_epoch"] == best["epoch"] and run["best_val_accuracy"] == pytest.approx(best["val_accuracy"])
    assert run["test_accuracy_at_best"] == pytest.approx(best["test_accuracy"])
    assert (app_settings.runs_dir / str(run_id) / "best.pt").is_file()


def test_the_study_page_shows_test_accuracy_at_the_best_validation_epoch_beside_the_final(client, session):
    pages = {}
    for validation in (0.1, 0.0):
        study = post(client, "/api/studies", dataset="synthetic", subset=100, methods=["student"], seeds=[1, 2],
                     validation=validation).json()
        runs = session.exec(select(Run).where(Run.study_id == study["id"])).all()
        for run, (final, at_best) in zip(runs, [(0.50, 0.46), (0.60, 0.52)]):
            set_run(session, run.id, status="completed", final_accuracy=final, best_accuracy=at_best, best_epoch=2,
                    best_val_accuracy=0.7 if validation else None)
        pages[validation] = client.get(f"/studies/{study['id']}").text
    cell = re.search(r'data-col="at-best"[^>]*>(.*?)</td>', pages[0.1], re.S)
    assert "At best val. epoch" in pages[0.1] and cell and "49.0%" in cell.group(1) and "± 4.2" in cell.group(1)
    assert 'data-col="mean"' in pages[0.1] and "55.0%" in pages[0.1]  # the comparison stays on final accuracy
    assert "At best val. epoch" not in pages[0.0] and 'data-col="at-best"' not in pages[0.0]
