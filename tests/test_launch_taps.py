"""A network without the taps a method reads is refused at launch, naming the network and the tap: by the
API (422, nothing stored), the launch form (beside the architecture), a study, and `kd train` before its
first epoch. The networks are the catalog's; two made-up ones stand for a plugin's."""

from __future__ import annotations

import pytest
from page_fixtures import TEACHER_KIND, add_run, client, db, well_formed  # noqa: F401  (client and db are fixtures)
from sqlmodel import select

import kdcore.architectures as architectures
from app.store.models import Run
from kdcore.config import RunConfig
from kdcore.taps import TapError

PKT_NEEDS = "embedding"  # pkt reads the embedding of both networks (kdcore.methods.pkt.taps)
STAGES_ONLY = {"description": "two conv stages, no embedding tap", "parameters": 1000, "flops": 1000,
               "taps": {"stage1": [8, 16, 16], "stage2": [16, 8, 8]}}


@pytest.fixture(autouse=True)
def stages_only_network(monkeypatch):
    """The catalog this process reads, with a network that has no embedding tap."""
    for count in (10,):
        key = (architectures._fingerprint(), count)
        monkeypatch.setitem(architectures._catalogs, key, {**architectures.catalog(count), "stages_only": STAGES_ONLY})


def test_the_api_refuses_a_student_network_without_the_tap(client, db):
    teacher = add_run(db, TEACHER_KIND)
    answer = client.post("/api/runs", json={"kind": "pkt", "dataset": "synthetic", "architecture": "stages_only",
                                            "teacher_run_id": teacher.id})
    assert answer.status_code == 422
    assert answer.json()["detail"] == [{
        "loc": ["body", "architecture"], "type": "missing_tap",
        "msg": "network 'stages_only' has no tap 'embedding', which method 'pkt' reads (its taps: stage1, stage2)"}]
    assert [r.kind for r in db.exec(select(Run)).all()] == [TEACHER_KIND]


def test_the_api_refuses_a_teacher_network_without_the_tap(client, db):
    teacher = add_run(db, TEACHER_KIND, architecture="stages_only")
    answer = client.post("/api/runs", json={"kind": "pkt", "dataset": "synthetic", "teacher_run_id": teacher.id})
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "teacher_run_id"]
    assert error["msg"] == (f"teacher network 'stages_only' has no tap 'embedding', which method 'pkt' reads "
                            f"(its taps: stage1, stage2) (teacher run {teacher.id})")


def test_the_launch_form_shows_it_beside_the_architecture(client, db):
    teacher = add_run(db, TEACHER_KIND)
    form = {"kind": "pkt", "teacher_run_id": str(teacher.id), "dataset": "synthetic", "architecture": "stages_only"}
    response = client.post("/launch", data=form, follow_redirects=False)
    assert response.status_code == 200
    doc = well_formed(response.text)
    assert "invalid" in doc.by_id("field-architecture").classes
    assert "network 'stages_only' has no tap 'embedding'" in doc.by_id("err-architecture").text()
    assert len(db.exec(select(Run)).all()) == 1


def test_a_study_refuses_it_once_for_all_its_seeds(client, db):
    teacher = add_run(db, TEACHER_KIND)
    answer = client.post("/api/studies", json={"dataset": "synthetic", "methods": ["student", "pkt"], "seeds": [1, 2],
                                               "architectures": ["stages_only"], "teacher_run_id": teacher.id})
    assert answer.status_code == 422
    assert [(e["loc"], e["type"]) for e in answer.json()["detail"]] == [(["body", "architectures"], "missing_tap")]
    assert "network 'stages_only' has no tap 'embedding'" in answer.json()["detail"][0]["msg"]


def test_the_trainer_refuses_it_with_the_same_words_before_training(tmp_path, teacher_checkpoint):
    from kdcore.training.engine import train

    config = RunConfig(kind="pkt", dataset="synthetic", subset=100, epochs=1, device="cpu", architecture="stages_only")
    with pytest.raises(TapError, match="network 'stages_only' has no tap 'embedding', which method 'pkt' reads"):
        train(config, out_dir=tmp_path / "run", teacher_checkpoint=teacher_checkpoint)
    assert not (tmp_path / "run").exists()
