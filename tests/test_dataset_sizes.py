"""Training-split sizes: the catalog knows them without loading the data, they match what the loader
loads, and a run or experiment whose subset the dataset cannot give is refused when it is submitted."""

from __future__ import annotations

import json
import tarfile
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from app.main import create_app
from app.store.models import Run
from kdcore.data import catalog
from kdcore.data.loader import load_dataset
from tests.app_fixtures import app, app_settings, client, session  # noqa: F401
from tests.page_fixtures import STUDENT_KIND, well_formed
from tests.test_data import _write_imagefolder


def test_known_sizes_match_the_loaded_data(tmp_path):
    folder = _write_imagefolder(tmp_path / "pets", per_class=(4, 1))
    (folder / "train" / "cat" / "extra.png").write_bytes((folder / "train" / "cat" / "0000.png").read_bytes())
    with tarfile.open(tmp_path / "pets2.tar.gz", "w:gz") as tar:
        tar.add(folder / "train", arcname="./train")  # a "./" prefix, as `tar -C dir .` writes
        tar.add(folder / "test", arcname="./test")
    for name in ("synthetic", "pets", "pets2"):
        info = catalog.find_dataset(name, tmp_path)
        assert info.train_size == len(load_dataset(name, tmp_path).train_y) == (2000 if name == "synthetic" else 13)
    assert catalog.find_dataset("cifar10", tmp_path).train_size == 50000  # torchvision's, before any download


def test_an_archive_is_read_once_and_old_cache_entries_again(tmp_path, monkeypatch):
    folder = _write_imagefolder(tmp_path / "src", per_class=(3, 1))
    with tarfile.open(tmp_path / "pets.tar", "w") as tar:
        tar.add(folder / "train", arcname="train")
        tar.add(folder / "test", arcname="test")
    assert catalog.find_dataset("pets", tmp_path).train_size == 9
    index = tmp_path / ".kdcache" / "classes.json"
    [key] = json.loads(index.read_text())
    index.write_text(json.dumps({key: ["cat", "dog", "eel"]}))  # an entry from before sizes were kept
    assert catalog.find_dataset("pets", tmp_path).train_size == 9
    assert json.loads(index.read_text())[key] == {"classes": ["cat", "dog", "eel"], "train_size": 9}

    def no_reading(*_args, **_kwargs):
        raise AssertionError("the archive was read again")

    monkeypatch.setattr(catalog.tarfile, "open", no_reading)
    assert catalog.find_dataset("pets", tmp_path).train_size == 9


# ---- a subset the dataset cannot give is refused at submit: 422 naming the size, nothing stored ----

def _count_runs(client) -> int:
    return client.get("/api/runs").json()["total"]


@pytest.mark.parametrize("subset, message", [
    (2001, "subset must be at most 2000: dataset 'synthetic' has 2000 training images"),
    (5, "subset must be at least 10: one training image for each class of dataset 'synthetic'"),
])
def test_api_refuses_a_subset_the_dataset_cannot_give(client, subset, message):
    run = client.post("/api/runs", json={"kind": "student", "dataset": "synthetic", "subset": subset})
    assert run.status_code == 422, run.text
    assert run.json()["detail"] == [{"loc": ["body", "subset"], "msg": message, "type": run.json()["detail"][0]["type"]}]
    experiment = client.post("/api/experiments", json={"dataset": "synthetic", "subset": subset})
    assert experiment.status_code == 422 and experiment.json()["detail"][0]["msg"] == message
    per_kind = client.post("/api/experiments", json={"dataset": "synthetic", "kinds": {"teacher": {"subset": subset}}})
    assert per_kind.status_code == 422
    assert [(e["loc"], e["msg"]) for e in per_kind.json()["detail"]] == [(["body", "kinds", "teacher", "subset"], message)]
    assert _count_runs(client) == 0 and client.get("/api/experiments").json()["total"] == 0
    assert client.post("/api/runs", json={"kind": "student", "dataset": "synthetic", "subset": 2000}).status_code == 201


def test_an_image_folders_size_is_counted(app_settings, tmp_path):
    _write_imagefolder(tmp_path / "data" / "pets", per_class=(4, 1))
    with TestClient(create_app(replace(app_settings, data_dir=tmp_path / "data"))) as client:
        too_many = client.post("/api/runs", json={"kind": "student", "dataset": "pets", "subset": 13})
        assert too_many.status_code == 422 and "'pets' has 12 training images" in too_many.text
        assert client.post("/api/runs", json={"kind": "student", "dataset": "pets", "subset": 12}).status_code == 201


def test_the_size_is_checked_with_the_other_errors(client):
    response = client.post("/api/experiments", json={"dataset": "synthetic", "subset": 9999, "epochs": 0,
                                                     "kinds": {"kd": {"dataset": "cifar10"}}})
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {
        ("body", "subset"), ("body", "epochs"), ("body", "kinds", "kd", "dataset")}


def test_forms_show_the_size_beside_the_subset_field(client, session):
    run_form = well_formed(client.post("/launch", data={"kind": STUDENT_KIND, "dataset": "synthetic",
                                                        "subset": "5000"}).text)
    assert "invalid" in run_form.by_id("field-subset").classes
    assert "has 2000 training images" in run_form.by_id("err-subset").text()
    experiment_form = well_formed(client.post("/launch/experiment", data={"dataset": "synthetic", "subset": "5000"}).text)
    assert "has 2000 training images" in experiment_form.by_id("exp-err-subset").text()
    assert session.exec(select(Run)).all() == []
