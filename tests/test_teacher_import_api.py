"""Teachers from elsewhere over the API and the launch page, and the teacher registry: an uploaded state dict
becomes a completed teacher run (mapped and evaluated by the worker) that KD runs and studies distil from; a file
that does not fit fails its run with the first mismatch named and leaves no checkpoint; a teacher whose file
changed after it completed is flagged in the registry and refused."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.executors.checksums import TeacherFileChanged, verified_teacher_file
from app.executors.records import finish_run
from app.main import create_app
from app.store.migrations import record_teacher_checksums
from app.store.models import Run
from kdcore.architectures import build
from kdcore.data.catalog import file_sha256
from kdcore.training.checkpoint import load_checkpoint
from tests.app_fixtures import app, app_settings, client, session, set_run  # noqa: F401
from tests.test_migration import _legacy_database
from tests.test_worker import wait_finished, worker  # noqa: F401

SMALL = {"dataset": "synthetic", "subset": 100, "epochs": 1, "device": "cpu", "batch_size": 50}


def state_dict_file(architecture: str, seed: int = 3) -> tuple[bytes, dict]:
    torch.manual_seed(seed)
    state = build(architecture, 10).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue(), state


def post_import(client, content: bytes, name: str = "tiny.pth", **fields):
    body = {"architecture": "tutorial_student", "dataset": "synthetic", "format": "state_dict", **fields}
    return client.post("/api/teachers/import", data=body, files={"file": (name, content)})


def test_import_end_to_end_then_distil_and_a_file_that_does_not_fit(client, worker, app_settings):
    content, state = state_dict_file("tutorial_student")
    response = post_import(client, content, "my teacher.pth")
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    misfit, _ = state_dict_file("tutorial_teacher")  # declared as the student: other shapes
    misfit_id = post_import(client, misfit).json()["id"]
    run = wait_finished(client, run_id)
    assert run["status"] == "completed", run["error"]
    assert run["kind"] == "teacher" and run["origin"]["file"] == "my teacher.pth"
    assert run["origin"]["file_sha256"] == hashlib.sha256(content).hexdigest()
    # The worker's checkpoint holds the uploaded weights, under the network's names, with the accuracy it measured.
    checkpoint = Path(app_settings.runs_dir) / str(run_id) / "checkpoint.pt"
    payload = load_checkpoint(checkpoint)
    assert all(torch.equal(payload["model"][k], state[k]) for k in state)
    assert run["final_accuracy"] == pytest.approx(payload["test_accuracy"])
    assert run["checkpoint_sha256"] == file_sha256(checkpoint)
    assert not (checkpoint.parent / "upload").exists()  # the upload went once the weights were mapped

    entry = next(e for e in client.get("/api/teachers").json()["items"] if e["run_id"] == run_id)
    assert entry["checksum_ok"] and entry["sha256"] == run["checkpoint_sha256"]
    assert entry["origin"] == "imported from my teacher.pth, state_dict format"
    assert entry["recipe"] == "not stated (imported)" and entry["test_accuracy"] == run["final_accuracy"]

    # A file that does not fit: failed, the first mismatch named, no checkpoint, not offered as a teacher.
    misfit_run = wait_finished(client, misfit_id)
    assert misfit_run["status"] == "failed"
    assert "does not fit tutorial_student" in misfit_run["error"] and "has shape" in misfit_run["error"]
    assert not misfit_run["has_checkpoint"] and misfit_run["checkpoint_sha256"] is None
    assert misfit_run["error"] in client.get(f"/runs/{misfit_id}").text.replace("&#39;", "'")
    assert not (Path(app_settings.runs_dir) / str(misfit_id) / "checkpoint.pt").exists()
    refused = client.post("/api/runs", json={"kind": "kd", "teacher_run_id": misfit_id, **SMALL})
    assert refused.status_code == 422 and "failed" in refused.text
    assert [e["run_id"] for e in client.get("/api/teachers").json()["items"]] == [run_id]

    # A study accepts the imported teacher for its KD runs; a KD run trains from it to the end.
    study = client.post("/api/studies", json={"methods": ["kd"], "seeds": [1], "teacher_run_id": run_id,
                                              "architectures": ["tutorial_student"], **SMALL})
    assert study.status_code == 201, study.text
    members = [client.get(f"/api/runs/{i}").json() for i in study.json()["run_ids"]]
    assert [r["teacher_run_id"] for r in members if r["kind"] == "kd"] == [run_id]
    client.post(f"/api/studies/{study.json()['id']}/cancel")  # its training is the KD run's below
    kd = client.post("/api/runs", json={"kind": "kd", "teacher_run_id": run_id, **SMALL})
    assert kd.status_code == 201, kd.text
    assert wait_finished(client, kd.json()["id"])["status"] == "completed"


def completed_teacher(session, path: Path) -> int:
    """A teacher run ended by the worker's own writer, which records its checksum."""
    run = Run(kind="teacher", config={"kind": "teacher", "dataset": "synthetic", "architecture": "tutorial_teacher",
                                      "epochs": 1}, dataset="synthetic", architecture="tutorial_teacher",
              num_classes=10, status="queued")
    session.add(run)
    session.commit()
    set_run(session, run.id, status="running", worker="test:1:cpu")
    finish_run(session, run.id, "test:1:cpu", "completed", result={"checkpoint": str(path), "final_accuracy": 0.5})
    return run.id


def test_teacher_whose_file_changed_is_flagged_and_refused(client, session, tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"weights as completed")
    teacher_id = completed_teacher(session, path)
    assert session.get(Run, teacher_id, populate_existing=True).checkpoint_sha256 == file_sha256(path)
    assert client.post("/api/runs", json={"kind": "kd", "teacher_run_id": teacher_id, **SMALL}).status_code == 201

    path.write_bytes(b"weights replaced later")
    [entry] = client.get("/api/teachers").json()["items"]
    assert not entry["checksum_ok"] and "no longer matches" in entry["problem"]
    assert "FILE CHANGED" in client.get("/launch").text
    for route, body in (("/api/runs", {"kind": "kd", "teacher_run_id": teacher_id, **SMALL}),
                        ("/api/studies", {"methods": ["kd"], "seeds": [1], "teacher_run_id": teacher_id, **SMALL})):
        refused = client.post(route, json=body)
        assert refused.status_code == 422, refused.text
        assert f"teacher run {teacher_id}" in refused.text and "no longer matches" in refused.text
    # A KD run queued before the change is refused its teacher by the worker as well.
    with pytest.raises(TeacherFileChanged):
        verified_teacher_file(session.get(Run, teacher_id))
    path.unlink()
    assert "missing" in client.get("/api/teachers").json()["items"][0]["problem"]


def test_teachers_completed_before_the_registry_get_their_checksum_at_start_up(app, session, tmp_path):
    path = tmp_path / "old.pt"
    path.write_bytes(b"an old teacher")
    teacher_id = completed_teacher(session, path)
    set_run(session, teacher_id, checkpoint_sha256=None)
    assert record_teacher_checksums(app.state.engine) == 1
    assert session.get(Run, teacher_id, populate_existing=True).checkpoint_sha256 == file_sha256(path)


def test_an_old_database_gets_the_registry_columns_at_start_up(tmp_path):
    legacy = TestClient(create_app(_legacy_database(tmp_path)))  # no lifespan: nothing here needs the catalog
    teachers = legacy.get("/api/teachers").json()["items"]
    assert teachers and all(t["origin"] == "trained here" and t["imported"] is None for t in teachers)
    assert all(r["origin"] is None for r in legacy.get("/api/runs").json()["items"])


def test_refused_imports_store_nothing(client, app_settings, tmp_path):
    runs_dir = Path(app_settings.runs_dir)
    bad = post_import(client, b"x" * 100, architecture="nope", dataset="nowhere", format="pickle", num_classes="7")
    assert bad.status_code == 422
    assert {tuple(e["loc"][1:]) for e in bad.json()["detail"]} == {("architecture",), ("dataset",), ("format",)}
    wrong_classes = post_import(client, b"x" * 100, num_classes="100")
    assert wrong_classes.status_code == 422 and "has 10 classes" in wrong_classes.text
    assert post_import(client, b"").status_code == 422
    small = create_app(replace(app_settings, max_upload=4096, runs_dir=tmp_path / "small-runs",
                               db_url=f"sqlite:///{tmp_path / 'small.sqlite'}"))
    limited = TestClient(small)
    too_large = post_import(limited, b"x" * 10_000)
    assert too_large.status_code == 413 and "KD_MAX_UPLOAD" in too_large.text
    assert post_import(limited, b"x" * 1000).status_code == 201  # a file under it is fine
    assert client.get("/api/runs").json()["total"] == 0
    assert not [p for p in runs_dir.rglob("*") if p.is_file()]
    assert not [p for p in (tmp_path / "small-runs").rglob("*.part")]


def test_launch_page_form_posts_the_file(client, app_settings):
    page = client.get("/launch").text
    assert 'id="teacher-import"' in page and 'enctype="multipart/form-data"' in page and 'type="file"' in page
    content, _ = state_dict_file("tutorial_student")
    response = client.post("/launch/teacher", data={"architecture": "tutorial_student", "dataset": "synthetic",
                                                    "format": "mdistiller", "preset": ""},
                           files={"file": ("wrn.pth", content)}, follow_redirects=False)
    assert response.status_code == 303, response.text
    run_id = int(response.headers["location"].rsplit("/", 1)[1])
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "queued" and run["origin"]["format"] == "mdistiller"
    assert run["origin"]["recipe"] == "crd-cifar" and run["config"]["epochs"] == 240
    assert (Path(app_settings.runs_dir) / str(run_id) / "upload" / "wrn.pth").read_bytes() == content
    # No file and no network: the form comes back with each error beside its field, and nothing is queued.
    again = client.post("/launch/teacher", data={"architecture": "", "dataset": "synthetic", "format": "state_dict"},
                        files={"file": ("", b"")})
    assert again.status_code == 200
    assert 'id="import-err-file"' in again.text and 'id="import-err-architecture"' in again.text
    assert client.get("/api/runs").json()["total"] == 1
