"""GET /api/runs/{id}/export: a completed run's deployable files as a zip, made in a subprocess once per checkpoint
and format, then answered from the run's folder."""

from __future__ import annotations

import io
import json
import shutil
import zipfile

from app.store.models import Run
from tests.app_fixtures import SYNTHETIC_RUN, app, app_settings, client, session, set_run  # noqa: F401


def _completed_run(client, session, app_settings, run_dir) -> int:
    """A run row whose folder holds the trained resnet8x4's checkpoint, as a worker leaves a completed run."""
    run_id = client.post("/api/runs", json={"kind": "student", "architecture": "resnet8x4", **SYNTHETIC_RUN}).json()["id"]
    folder = app_settings.runs_dir / str(run_id)
    folder.mkdir(parents=True)
    shutil.copy(run_dir / "checkpoint.pt", folder / "checkpoint.pt")
    set_run(session, run_id, status="completed", checkpoint=str(folder / "checkpoint.pt"), final_accuracy=0.5)
    return run_id


def _unzipped(response) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
        return {name: bundle.read(name) for name in bundle.namelist()}


def test_the_export_is_a_zip_of_the_file_and_its_card_made_once(client, session, app_settings, resnet8x4_run):
    result, run_dir = resnet8x4_run
    run_id = _completed_run(client, session, app_settings, run_dir)
    response = client.get(f"/api/runs/{run_id}/export?format=weights")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert f'filename="run-{run_id}-student-weights.zip"' in response.headers["content-disposition"]
    files = _unzipped(response)
    assert sorted(files) == [f"run-{run_id}-weights/card.json", f"run-{run_id}-weights/model.pt"]
    card = json.loads(files[f"run-{run_id}-weights/card.json"])
    assert card["accuracy"]["test_accuracy"] == result.final_accuracy and card["run"]["run_id"] == run_id
    made = (app_settings.runs_dir / str(run_id) / "export" / "weights" / "card.json").stat().st_mtime_ns
    assert client.get(f"/api/runs/{run_id}/export/card?format=weights").json() == card
    assert (app_settings.runs_dir / str(run_id) / "export" / "weights" / "card.json").stat().st_mtime_ns == made


def test_an_onnx_export_made_from_the_same_checkpoint_is_served_from_the_runs_folder(
        client, session, app_settings, resnet8x4_run, resnet8x4_onnx):
    card, exported = resnet8x4_onnx
    run_id = _completed_run(client, session, app_settings, resnet8x4_run[1])
    shutil.copytree(exported, app_settings.runs_dir / str(run_id) / "export" / "onnx")
    files = _unzipped(client.get(f"/api/runs/{run_id}/export"))  # onnx by default
    assert json.loads(files[f"run-{run_id}-onnx/card.json"]) == card
    assert files[f"run-{run_id}-onnx/model.onnx"] == (exported / "model.onnx").read_bytes()


def test_only_a_completed_run_with_a_checkpoint_exports(client, session, app_settings):
    run_id = client.post("/api/runs", json={"kind": "student", **SYNTHETIC_RUN}).json()["id"]
    response = client.get(f"/api/runs/{run_id}/export?format=onnx")
    assert response.status_code == 409 and "only a completed run" in response.json()["detail"]
    set_run(session, run_id, status="completed")
    assert client.get(f"/api/runs/{run_id}/export").status_code == 404
    assert client.get("/api/runs/987654/export").status_code == 404
    response = client.get(f"/api/runs/{run_id}/export?format=tflite")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "format"]
    assert session.get(Run, run_id) is not None
