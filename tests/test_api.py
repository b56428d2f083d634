"""REST API over a temporary SQLite database, without a worker (runs are moved between states directly)."""

from __future__ import annotations

import argparse
import csv
import io
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from app.leaderboard.responses import LeaderboardOut
from app.main import create_app
from app.store.models import Epoch, Experiment, Run
from kdcore.registry import EXPERIMENT_KINDS, METHODS
from tests.app_fixtures import add_epochs, app, app_settings, client, session, set_run  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
TEACHER = {"kind": "teacher", "dataset": "synthetic", "subset": 100, "epochs": 1}


def post_run(client, **body):
    response = client.post("/api/runs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def count(session, model) -> int:
    return len(session.exec(select(model)).all())


def test_create_run_takes_the_kinds_seed_defaults(client):
    run = post_run(client, kind="student", dataset="synthetic")
    assert run["status"] == "queued" and run["kind"] == "student"
    assert run["config"]["epochs"] == METHODS["student"].default_epochs
    assert run["config"]["params"] == {} and run["teacher_run_id"] is None
    assert run["architecture"] == run["config"]["architecture"] == METHODS["student"].default_architecture
    assert run["num_classes"] == 10 and run["progress"] is None


def test_create_kd_run_from_a_queued_teacher(client):
    teacher = post_run(client, **TEACHER)
    kd = post_run(client, kind="kd", dataset="synthetic", teacher_run_id=teacher["id"])
    assert kd["teacher_run_id"] == teacher["id"]
    assert kd["config"]["params"]["temperature"] == METHODS["kd"].params().temperature
    assert kd["config"]["epochs"] == METHODS["kd"].default_epochs


def test_list_filters_newest_first_and_paginates(client):
    teacher = post_run(client, **TEACHER)
    students = [post_run(client, kind="student", dataset="synthetic") for _ in range(3)]
    experiment = client.post("/api/experiments", json={"dataset": "synthetic", "subset": 100}).json()

    everything = client.get("/api/runs").json()
    assert everything["total"] == 4 + len(EXPERIMENT_KINDS)
    ids = [run["id"] for run in everything["items"]]
    assert ids == sorted(ids, reverse=True)

    page = client.get("/api/runs", params={"kind": "student", "limit": 2, "offset": 1}).json()
    assert page["total"] == 4 and [r["id"] for r in page["items"]] == [students[2]["id"], students[1]["id"]]
    in_experiment = client.get("/api/runs", params={"experiment_id": experiment["id"]}).json()
    assert {r["kind"] for r in in_experiment["items"]} == set(EXPERIMENT_KINDS)
    client.post(f"/api/runs/{teacher['id']}/cancel")
    cancelled = client.get("/api/runs", params={"status": "cancelled"}).json()
    assert [r["id"] for r in cancelled["items"]] == [teacher["id"]]
    assert client.get("/api/runs", params={"status": "paused"}).status_code == 422
    assert client.get("/api/runs", params={"limit": 0}).status_code == 422


@pytest.mark.parametrize("method, path", [
    ("get", "/api/runs/999"), ("get", "/api/runs/999/epochs"), ("get", "/api/runs/999/epochs.csv"),
    ("get", "/api/runs/999/checkpoint"), ("post", "/api/runs/999/cancel"), ("post", "/api/runs/999/retry"),
    ("delete", "/api/runs/999"), ("get", "/api/experiments/999"),
])
def test_unknown_ids_are_404(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 404 and "999" in response.json()["detail"]


def test_ids_beyond_64_bits_are_422_not_500(client):
    assert client.get(f"/api/runs/{2**70}").status_code == 422
    assert client.post("/api/runs", json={**TEACHER, "kind": "kd", "teacher_run_id": 2**70}).status_code == 422


def test_epochs_after_csv_best_epoch_and_progress(client, session):
    run = post_run(client, **TEACHER)
    set_run(session, run["id"], status="running", worker="test:1:cpu")
    add_epochs(session, run["id"], 3, epochs=4)

    epochs = client.get(f"/api/runs/{run['id']}/epochs").json()["items"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert epochs[0]["train_terms"] == {"ce": 2.0} and epochs[2]["test_accuracy"] == pytest.approx(0.3)
    assert [e["epoch"] for e in client.get(f"/api/runs/{run['id']}/epochs?after=2").json()["items"]] == [3]
    assert client.get(f"/api/runs/{run['id']}/epochs?after=3").json()["items"] == []

    detail = client.get(f"/api/runs/{run['id']}").json()
    assert detail["best_epoch"] == 3 and detail["best_accuracy"] == pytest.approx(0.3)
    assert detail["progress"]["epoch"] == 3 and detail["progress"]["fraction"] == pytest.approx(0.75)

    response = client.get(f"/api/runs/{run['id']}/epochs.csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert float(rows[1]["train_ce"]) == pytest.approx(1.0) and "test_accuracy" in rows[0]


def test_an_epoch_is_stored_once_per_run(client, session):
    run = post_run(client, **TEACHER)
    set_run(session, run["id"], status="running", worker="test:1:cpu")
    add_epochs(session, run["id"], 2)
    add_epochs(session, run["id"], 2)  # a resumed run repeats its epochs
    assert len(client.get(f"/api/runs/{run['id']}/epochs").json()["items"]) == 2
    session.add(Epoch(run_id=run["id"], epoch=1, train_loss=1, test_loss=1, test_accuracy=1, seconds=1,
                      images_per_sec=1))
    with pytest.raises(IntegrityError):  # the unique constraint, on SQLite and PostgreSQL alike
        session.commit()


def test_cancel_queued_running_and_finished_runs(client, session):
    queued, running, done = (post_run(client, **TEACHER) for _ in range(3))
    set_run(session, running["id"], status="running", worker="test:1:cpu")
    set_run(session, done["id"], status="completed")

    cancelled = client.post(f"/api/runs/{queued['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["error"] == "cancelled by user"
    stopping = client.post(f"/api/runs/{running['id']}/cancel").json()
    assert stopping["status"] == "running" and stopping["cancel_requested"] is True
    response = client.post(f"/api/runs/{done['id']}/cancel")
    assert response.status_code == 409 and "completed" in response.json()["detail"]


def test_cancelling_a_teacher_cancels_the_runs_waiting_for_it(client):
    experiment = client.post("/api/experiments", json={"dataset": "synthetic", "subset": 100}).json()
    ids = experiment["run_ids"]
    client.post(f"/api/runs/{ids['teacher']}/cancel")
    for kind in EXPERIMENT_KINDS:
        run = client.get(f"/api/runs/{ids[kind]}").json()
        if METHODS[kind].needs_teacher:
            assert run["status"] == "cancelled"
            assert run["error"] == f"teacher run {ids['teacher']} was cancelled"
        elif kind != "teacher":
            assert run["status"] == "queued"


def test_delete(client, session, app_settings):
    teacher = post_run(client, **TEACHER)
    kd = post_run(client, kind="kd", dataset="synthetic", teacher_run_id=teacher["id"])
    response = client.delete(f"/api/runs/{teacher['id']}")
    assert response.status_code == 409 and str(kd["id"]) in response.json()["detail"]

    set_run(session, kd["id"], status="running", worker="test:1:cpu")
    add_epochs(session, kd["id"], 2)
    assert client.delete(f"/api/runs/{kd['id']}").status_code == 409
    set_run(session, kd["id"], status="failed")
    run_dir = app_settings.runs_dir / str(kd["id"])
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"x")

    assert client.delete(f"/api/runs/{kd['id']}").status_code == 204
    assert client.get(f"/api/runs/{kd['id']}").status_code == 404
    assert count(session, Epoch) == 0 and not run_dir.exists()
    assert client.delete(f"/api/runs/{teacher['id']}").status_code == 204


def test_leaderboard_ranks_completed_runs(client, session):
    teacher, student, kd, queued = (post_run(client, **TEACHER) for _ in range(4))
    set_run(session, teacher["id"], status="completed", final_accuracy=0.5, best_accuracy=0.6, best_epoch=2,
            parameters=1000, train_seconds=12.5)
    set_run(session, student["id"], status="completed", final_accuracy=0.7, best_accuracy=0.7, best_epoch=1)
    set_run(session, kd["id"], status="failed", final_accuracy=0.9)
    board = client.get("/api/leaderboard").json()["items"]
    assert [row["run_id"] for row in board] == [student["id"], teacher["id"]]
    assert board[1]["rank"] == 2 and board[1]["parameters"] == 1000
    assert board[1]["best_epoch"] == 2 and board[1]["train_seconds"] == 12.5 and board[1]["kind"] == "teacher"
    # The board skips FastAPI's response check for speed: hold it to its documented model here.
    LeaderboardOut.model_validate(client.get("/api/leaderboard").json())


def test_checkpoint_download_by_run_id(client, session, app_settings):
    run = post_run(client, **TEACHER)
    assert client.get(f"/api/runs/{run['id']}/checkpoint").status_code == 404
    path = app_settings.runs_dir / str(run["id"]) / "checkpoint.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")
    set_run(session, run["id"], status="completed", checkpoint=str(path))
    response = client.get(f"/api/runs/{run['id']}/checkpoint")
    assert response.status_code == 200 and response.content == b"weights"
    assert client.get(f"/api/runs/{run['id']}").json()["checkpoint_url"] == f"/api/runs/{run['id']}/checkpoint"


def test_retry_resumes_from_the_checkpoint(client, session):
    run = post_run(client, **TEACHER)
    assert client.post(f"/api/runs/{run['id']}/retry").status_code == 409
    set_run(session, run["id"], status="failed", error="worker lost", checkpoint="/somewhere/checkpoint.pt")
    retried = client.post(f"/api/runs/{run['id']}/retry").json()
    assert retried["status"] == "queued" and retried["resume"] is True and retried["error"] is None


def test_datasets_are_listed_by_name_without_paths(client):
    items = client.get("/api/datasets").json()["items"]
    assert {"synthetic", "cifar10"} <= {item["name"] for item in items}
    assert all("path" not in item for item in items)
    normalization = {item["name"]: item["normalization"] for item in items}  # each dataset's own, or the default
    assert normalization["cifar100"] == {"mean": [0.5071, 0.4867, 0.4408], "std": [0.2675, 0.2565, 0.2761]}
    assert normalization["synthetic"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def test_experiment_queues_the_seed_runs_with_overrides(client):
    response = client.post("/api/experiments", json={
        "dataset": "synthetic", "subset": 100, "epochs": 2, "temperature": 4, "kinds": {"teacher": {"epochs": 3}}})
    assert response.status_code == 201, response.text
    experiment = response.json()
    assert list(experiment["run_ids"]) == list(EXPERIMENT_KINDS)
    teacher_id = experiment["run_ids"]["teacher"]
    for kind, run_id in experiment["run_ids"].items():
        run = client.get(f"/api/runs/{run_id}").json()
        assert run["status"] == "queued" and run["experiment_id"] == experiment["id"]
        assert run["config"]["subset"] == 100
        assert run["config"]["epochs"] == (3 if kind == "teacher" else 2)
        assert run["teacher_run_id"] == (teacher_id if METHODS[kind].needs_teacher else None)
        assert run["config"]["params"].get("temperature") == (4 if "temperature" in METHODS[kind].param_names() else None)
    assert client.get(f"/api/experiments/{experiment['id']}").json()["run_ids"] == experiment["run_ids"]
    assert client.get("/api/experiments").json()["total"] == 1


# ---- bad input: 422 with a message per field, and nothing stored ----

def _setup_teachers(client, session):
    completed = post_run(client, **TEACHER)
    set_run(session, completed["id"], status="completed")
    failed = post_run(client, **TEACHER)
    set_run(session, failed["id"], status="failed")
    student = post_run(client, kind="student", dataset="synthetic")
    return {"completed": completed["id"], "failed": failed["id"], "student": student["id"]}


BAD_RUNS = [
    ({"kind": "student", "colour": "red"}, "colour", "Extra inputs"),
    ({"kind": "student", "epochs": 0}, "epochs", "greater than or equal to 1"),
    ({"kind": "student", "lr": -1}, "lr", "greater than 0"),
    ({"kind": "student", "batch_size": 10**9}, "batch_size", "less than or equal"),
    ({"kind": "student", "epochs": "many"}, "epochs", "valid integer"),
    ({"kind": "student", "device": "tpu"}, "device", "'auto', 'cpu' or 'cuda'"),
    ({"kind": "student", "precision": "float16"}, "precision", "'float32' or 'bfloat16'"),
    ({"kind": "distill"}, "kind", "unknown run kind"),
    ({"dataset": "synthetic"}, "kind", "Field required"),
    ({"kind": "kd"}, "teacher_run_id", "give teacher_run_id"),
    ({"kind": "kd", "teacher_run_id": 999}, "teacher_run_id", "does not exist"),
    ({"kind": "kd", "teacher_run_id": "student"}, "teacher_run_id", "is a student run, not a teacher"),
    ({"kind": "kd", "teacher_run_id": "failed"}, "teacher_run_id", "is failed"),
    ({"kind": "student", "teacher_run_id": "completed"}, "teacher_run_id", "applies only to kinds"),
    ({"kind": "cosine", "teacher_run_id": "completed", "temperature": 3}, "temperature", "applies only to kinds: kd"),
    ({"kind": "kd", "teacher_run_id": "completed", "ce_weight": 0, "distill_weight": 0}, "distill_weight", "both be zero"),
    ({"kind": "student", "dataset": "imagenet"}, "dataset", "unknown dataset 'imagenet'"),
    ({"kind": "student", "dataset": "../../etc"}, "dataset", "should match pattern"),
]


@pytest.mark.parametrize("body, field, message", BAD_RUNS, ids=[f"{b[1]}-{b[2][:20]}" for b in BAD_RUNS])
def test_bad_run_input_is_422_per_field_and_stores_nothing(client, session, body, field, message):
    teachers = _setup_teachers(client, session)
    body = {"dataset": "synthetic", **body}
    if isinstance(body.get("teacher_run_id"), str):
        body["teacher_run_id"] = teachers[body["teacher_run_id"]]
    before = count(session, Run)
    response = client.post("/api/runs", json=body)
    assert response.status_code == 422, response.text
    errors = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
    assert message in errors.get(("body", field), ""), errors
    assert count(session, Run) == before


@pytest.mark.parametrize("raw", [b'{"kind": "student", "lr": NaN}', b'{"kind": "student", "lr": Infinity}',
                                 b'{"kind": "student", "epochs": NaN}', b"[1, 2]", b"not json", b""])
def test_non_finite_and_malformed_bodies_are_422(client, session, raw):
    response = client.post("/api/runs", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] and count(session, Run) == 0


# JSON has types: a wrong one is an error, never coerced (the HTML forms, all strings, are parsed).
WRONG_TYPES = [
    ({"kind": "student", "epochs": True}, "epochs", "valid integer"),
    ({"kind": "student", "epochs": "3"}, "epochs", "valid integer"),
    ({"kind": "student", "subset": "100"}, "subset", "valid integer"),
    ({"kind": "student", "seed": 1.0}, "seed", "valid integer"),
    ({"kind": "student", "lr": "0.5"}, "lr", "valid number"),
    ({"kind": "student", "lr": True}, "lr", "valid number"),
    ({"kind": "student", "resident_data": "false"}, "resident_data", "valid boolean"),
    ({"kind": "student", "cache_teacher": 0}, "cache_teacher", "valid boolean"),
    ({"kind": "kd", "teacher_run_id": "TEACHER"}, "teacher_run_id", "valid integer"),
    ({"kind": "kd", "teacher_run_id": True}, "teacher_run_id", "valid integer"),
]


@pytest.mark.parametrize("body, field, message", WRONG_TYPES, ids=[f"{b[1]}-{b[0][b[1]]!r}" for b in WRONG_TYPES])
def test_json_values_of_the_wrong_type_are_422_and_store_nothing(client, session, body, field, message):
    teacher = post_run(client, **TEACHER)["id"]
    body = {"dataset": "synthetic", **body}
    if body.get("teacher_run_id") == "TEACHER":
        body["teacher_run_id"] = str(teacher)  # a numeric string naming a real teacher
    response = client.post("/api/runs", json=body)
    assert response.status_code == 422, response.text
    assert [(e["loc"], message in e["msg"]) for e in response.json()["detail"]] == [(["body", field], True)]
    assert count(session, Run) == 1


def test_one_422_lists_every_wrong_type_and_ints_are_fine_for_floats(client, session):
    response = client.post("/api/runs", json={"kind": "kd", "dataset": "synthetic", "epochs": True, "lr": "0.5",
                                              "teacher_run_id": "1"})
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {
        ("body", "epochs"), ("body", "lr"), ("body", "teacher_run_id")}
    experiment = client.post("/api/experiments", json={"dataset": "synthetic", "epochs": True, "lr": "0.5",
                                                       "kinds": {"teacher": {"subset": "100"}}})
    assert experiment.status_code == 422
    assert sorted(tuple(e["loc"]) for e in experiment.json()["detail"]) == [
        ("body", "epochs"), ("body", "kinds", "teacher", "subset"), ("body", "lr")]
    assert count(session, Run) == 0 and count(session, Experiment) == 0
    run = post_run(client, kind="kd", dataset="synthetic", lr=1, temperature=2,
                   teacher_run_id=post_run(client, **TEACHER)["id"])
    assert run["config"]["lr"] == 1.0 and run["config"]["params"]["temperature"] == 2.0
    assert client.post("/api/experiments", json={"dataset": "synthetic", "lr": 1, "subset": 100}).status_code == 201


def test_class_count_must_match_the_teacher(app_settings, tmp_path):
    data_dir = tmp_path / "data"
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            (data_dir / "pets" / split / label).mkdir(parents=True)
    with TestClient(create_app(replace(app_settings, data_dir=data_dir))) as client:
        teacher = post_run(client, **TEACHER)
        response = client.post("/api/runs", json={"kind": "kd", "dataset": "pets", "teacher_run_id": teacher["id"]})
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "dataset"] and "has 2 classes but teacher run" in error["msg"]
        assert post_run(client, kind="teacher", dataset="pets")["num_classes"] == 2


def test_bad_experiment_input_stores_nothing(client, session):
    response = client.post("/api/experiments", json={
        "dataset": "nowhere", "subset": 0, "sparkle": 1, "kinds": {"kd": {"temperature": -1}, "mystery": {}}})
    assert response.status_code == 422
    locs = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert {("body", "dataset"), ("body", "subset"), ("body", "sparkle"), ("body", "kinds", "kd", "temperature"),
            ("body", "kinds", "mystery")} <= locs
    assert count(session, Run) == 0 and count(session, Experiment) == 0


def test_queue_cap_is_429(client, app_settings):
    for _ in range(app_settings.max_queued - 2):
        post_run(client, kind="student", dataset="synthetic")
    response = client.post("/api/experiments", json={"dataset": "synthetic"})
    assert response.status_code == 429 and "limit" in response.json()["detail"]
    post_run(client, kind="student", dataset="synthetic")
    post_run(client, kind="student", dataset="synthetic")
    assert client.post("/api/runs", json={"kind": "student", "dataset": "synthetic"}).status_code == 429


def test_token_guards_state_changing_calls(app_settings):
    with TestClient(create_app(replace(app_settings, api_token="s3cret"))) as client:
        body = {"kind": "student", "dataset": "synthetic"}
        assert client.post("/api/runs", json=body).status_code == 401
        assert client.post("/api/runs", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/api/runs", json=body, headers={"Authorization": "Bearer s3cret\u00e9".encode("latin-1")}).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        run = client.post("/api/runs", json=body, headers=good).json()
        assert client.get(f"/api/runs/{run['id']}").status_code == 401  # reads too (tests/test_auth_matrix.py)
        assert client.get("/api/runs", headers=good).status_code == 200
        assert client.post(f"/api/runs/{run['id']}/cancel").status_code == 401
        assert client.delete(f"/api/runs/{run['id']}").status_code == 401
        assert client.post("/api/experiments", json={"dataset": "synthetic"}).status_code == 401
        assert client.post(f"/api/runs/{run['id']}/cancel", headers=good).status_code == 200
        assert client.delete(f"/api/runs/{run['id']}", headers=good).status_code == 204


def test_without_a_token_writes_are_open(client):
    assert client.post("/api/runs", json={"kind": "student", "dataset": "synthetic"}).status_code == 201


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/runs", "/api/runs/{run_id}", "/api/experiments", "/api/leaderboard", "/api/datasets"} <= set(paths)
    bodies = {path: (media_type, content["schema"]["title"])
              for path, ops in paths.items() for op in ops.values() if "requestBody" in op
              for media_type, content in op["requestBody"]["content"].items()}
    json_body = "application/json"
    assert bodies == {"/api/runs": (json_body, "RunCreate"), "/api/experiments": (json_body, "ExperimentCreate"),
                      "/api/studies": (json_body, "StudyCreate"), "/api/runs/{run_id}": (json_body, "AnnotationsPatch"),
                      "/api/studies/{study_id}": (json_body, "AnnotationsPatch"),
                      "/api/benchmarks": (json_body, "BenchmarkSpec"), "/api/benchmarks/cost": (json_body, "BenchmarkSpec"),
                      "/api/latency": (json_body, "LatencyCreate"),
                      "/api/teachers/import": ("multipart/form-data", "TeacherImport"),
                      "/api/searches": (json_body, "SearchCreate")}


def test_every_api_operation_documents_what_it_returns(client):
    document = client.get("/openapi.json").json()
    components = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            success = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
            assert len(success) == 1, where
            (code, response), = success.items()
            if code == "204":
                assert "content" not in response, where
                continue
            (media_type, content), = response["content"].items()
            schema = content["schema"]
            if media_type == "application/json":
                # A named model with its fields, not FastAPI's "any object" for an undeclared dict.
                model = components[schema["$ref"].removeprefix("#/components/schemas/")]
                assert model["properties"] and model["additionalProperties"] is False, where
            else:
                assert schema["type"] == "string", where
            for error, documented in operation["responses"].items():
                if error.startswith(("4", "5")):
                    assert "$ref" in documented["content"]["application/json"]["schema"], (where, error)


def test_schema_upgrade_adds_columns_and_keeps_rows(app_settings, tmp_path):
    create_app(app_settings)
    db_file = app_settings.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(db_file) as connection:
        connection.execute("ALTER TABLE runs DROP COLUMN eta_seconds")
        connection.execute("DROP INDEX ix_runs_status")
        connection.execute("DROP INDEX ix_runs_status_group_accuracy")
        connection.execute("DROP INDEX ix_runs_kind_group_seed_status_accuracy")
        connection.execute("DROP INDEX ix_runs_study_status")
        connection.execute("ALTER TABLE runs DROP COLUMN status")
        connection.execute("ALTER TABLE runs DROP COLUMN prune_requested")  # a search's column, newer than the rest
        connection.execute("INSERT INTO runs (kind, config, created_at, cancel_requested, resume) "
                           "VALUES ('student', '{\"kind\": \"student\", \"dataset\": \"synthetic\"}', "
                           "'2024-01-01 00:00:00', 0, 0)")
    with TestClient(create_app(app_settings)) as client:
        run = client.get("/api/runs/1").json()
        assert run["kind"] == "student" and run["status"] == "queued"  # the column's default fills old rows
    with sqlite3.connect(db_file) as connection:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
        indexes = {row[1] for row in connection.execute("PRAGMA index_list(runs)")}
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"eta_seconds", "status", "prune_requested"} <= columns and "ix_runs_status" in indexes


def test_the_web_process_does_not_import_torch(tmp_path):
    code = (
        "import sys\n"
        "from app.main import create_app\n"
        "from app.settings import Settings\n"
        "import app.cli, app.executors.local.pool, app.runs.service\n"
        f"create_app(Settings(db_url='sqlite:///{tmp_path}/kd.sqlite', runs_dir='{tmp_path}/runs'))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_serve_bounds_the_graceful_shutdown(monkeypatch, tmp_path):
    # An open event stream must not hold Ctrl-C/SIGTERM: uvicorn closes what is left after a few seconds.
    import uvicorn

    from app import cli

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    monkeypatch.setenv("KD_DB_URL", f"sqlite:///{tmp_path / 'kd.sqlite'}")
    parser = argparse.ArgumentParser()
    cli.register_serve(parser.add_subparsers())
    args = parser.parse_args(["serve", "--no-worker"])
    assert args.func(args) == 0
    assert 0 < calls[0]["timeout_graceful_shutdown"] <= 5
