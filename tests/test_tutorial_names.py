"""The tutorial's CNNs are ``tutorial_teacher`` and ``tutorial_student``; their former names ``seed_teacher`` and
``seed_student`` still name them everywhere a network is named: configs (from the CLI, the API, the forms),
stored runs, checkpoints, and the group keys runs were stored with."""

from __future__ import annotations

import hashlib
import json

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.main import create_app
from app.store.models import Run, utcnow
from kdcore.architectures import ALIASES, RENAMED, build, catalog
from kdcore.config import RunConfig
from kdcore.studies.study import SPEED_FIELDS, baseline_key, group_key
from tests.page_fixtures import make_settings, well_formed

FORMER = {"teacher": "seed_teacher", "student": "seed_student"}
RECIPE = {"dataset": "synthetic", "subset": 200, "epochs": 3, "device": "cpu"}


def _key_before_the_rename(stored: dict, teacher_key: str | None = None) -> str:
    """kdcore.studies.study.group_key as it was when runs were stored under the former names."""
    kept = {k: v for k, v in stored.items() if k not in ("seed", *SPEED_FIELDS)
            and not (k == "precision" and v == "float32") and not (k == "validation" and v == 0.0)}
    text = json.dumps({"config": kept, "teacher": teacher_key}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _stored_before(kind: str, **fields) -> dict:
    """A config as a run stored before the rename holds it: the former name of its network."""
    config = RunConfig(kind=kind, **RECIPE, **fields).to_json_dict()
    return {**config, "architecture": FORMER.get(kind, FORMER["student"])}


def test_the_tutorial_networks_have_tutorial_names_and_answer_to_their_former_ones():
    assert set(RENAMED) == set(FORMER.values())
    names = list(catalog(10))
    assert names[:2] == ["tutorial_teacher", "tutorial_student"] and not set(FORMER.values()) & set(names)
    assert RunConfig(kind="teacher").architecture == "tutorial_teacher"
    assert RunConfig(kind="kd").architecture == "tutorial_student"
    for kind, former in FORMER.items():
        config = RunConfig(kind=kind, architecture=former)
        assert config.architecture == f"tutorial_{kind}" and config == RunConfig(kind=kind)
    # A stored config under a former name reads back as today's.
    assert RunConfig.model_validate(_stored_before("kd")) == RunConfig(kind="kd", **RECIPE)
    assert sum(p.numel() for p in build("seed_teacher", 10).parameters()) == catalog(10)["tutorial_teacher"]["parameters"]


def test_group_keys_of_runs_stored_under_the_former_names_do_not_change():
    teacher, student = _stored_before("teacher"), _stored_before("student")
    teacher_key = _key_before_the_rename(teacher)
    assert group_key(teacher) == group_key(RunConfig(kind="teacher", **RECIPE)) == teacher_key
    assert group_key(student) == group_key(RunConfig(kind="student", **RECIPE, seed=7)) == _key_before_the_rename(student)
    kd = _stored_before("kd", params={"temperature": 4})
    assert group_key(RunConfig(kind="kd", **RECIPE, temperature=4), teacher_key) == _key_before_the_rename(kd, teacher_key)
    # A new distilled run still compares with the students stored under the former name.
    assert baseline_key(RunConfig(kind="kd", **RECIPE)) == _key_before_the_rename(student)
    # Other networks' keys are untouched.
    resnet = RunConfig(kind="student", architecture="resnet20", **RECIPE)
    assert group_key(resnet) == _key_before_the_rename(resnet.to_json_dict())


def _old_run(session: Session, kind: str, seed: int, accuracy: float) -> Run:
    stored = _stored_before(kind, seed=seed)
    run = Run(kind=kind, status="completed", config=stored, dataset="synthetic", epochs=3, architecture=stored["architecture"],
              seed=seed, group_key=_key_before_the_rename(stored), baseline_key=_key_before_the_rename(_stored_before("student")),
              num_classes=10, created_at=utcnow(), started_at=utcnow(), finished_at=utcnow(), parameters=267_738,
              final_accuracy=accuracy, best_accuracy=accuracy, best_epoch=3, train_seconds=10.0)
    session.add(run)
    session.commit()
    return run


def test_a_database_of_runs_under_the_former_names_keeps_their_keys_and_shows_todays_names(tmp_path):
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        with Session(client.app.state.engine) as session:
            old = [_old_run(session, "student", seed, 0.5 + seed / 100) for seed in (1, 2)]
            keys = {run.id: run.group_key for run in old}
    # The next start renames them, keys untouched; a new run named either way joins their group.
    with TestClient(create_app(settings)) as client:
        runs = {r["id"]: r for r in client.get("/api/runs").json()["items"]}
        for run_id in keys:
            assert runs[run_id]["architecture"] == runs[run_id]["config"]["architecture"] == "tutorial_student"
        new = [client.post("/api/runs", json={"kind": "student", **RECIPE, "seed": 3 + i, "architecture": name}).json()
               for i, name in enumerate(("seed_student", "tutorial_student"))]
        assert [run["architecture"] for run in new] == ["tutorial_student"] * 2
        with Session(client.app.state.engine) as session:
            stored = {run.id: run.group_key for run in session.exec(select(Run)).all()}
        assert {run_id: stored[run_id] for run_id in keys} == keys
        assert {stored[run["id"]] for run in new} == {keys[old[0].id]}
        listed = {item["name"]: item for item in client.get("/api/architectures").json()["items"]}
        assert listed["tutorial_student"]["aliases"] == ["seed_student"] and "seed_student" not in listed
        # The launch form given a former name (an old link) selects the network by today's name.
        form = well_formed(client.get("/launch", params={"kind": "student", "architecture": "seed_student"}).text)
        chosen = form.by_id("in-architecture").find("option", selected=True)
        assert chosen.attrs["value"] == "tutorial_student"
        assert not any("not found" in o.text() for o in form.by_id("in-architecture").find_all("option"))
        with Session(client.app.state.engine) as session:
            assert not session.exec(select(Run).where(Run.architecture.in_(list(ALIASES)))).all()


def test_a_checkpoint_naming_the_former_teacher_still_loads_as_a_teacher(tmp_path):
    import torch

    from kdcore.training.checkpoint import load_teacher, save_checkpoint

    model = build("tutorial_teacher", 10)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"config": _stored_before("teacher"), "num_classes": 10, "model": model.state_dict(),
                           "modules": None})
    teacher = load_teacher(path, 10, torch.device("cpu"))
    assert teacher.architecture == "tutorial_teacher"
    for name, value in model.state_dict().items():
        assert torch.equal(teacher.state_dict()[name], value), name


def test_pages_forms_and_the_api_say_tutorial_where_they_meant_the_seed_tutorial(tmp_path):
    """"seed" means a random seed, and nothing else, on pages, forms and in API descriptions."""
    with TestClient(create_app(make_settings(tmp_path))) as client:
        texts = {path: client.get(path).text for path in ("/", "/launch", "/compare", "/studies", "/openapi.json")}
    for path, text in texts.items():
        lowered = text.lower()
        for wording in ("seed experiment", "the seed's recipe", "the seed's default", "seed recipe", "seed value",
                        "seed default", "seed settings", "seed_teacher", "seed_student"):
            assert wording not in lowered, (path, wording)
    assert "tutorial experiment" in texts["/launch"].lower() and "tutorial recipe" in texts["/launch"]
    assert "Queue the tutorial experiment" in texts["/openapi.json"]


def test_the_command_line_takes_a_former_name_and_keeps_todays(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "kdcore.cli", "train", "student", "--arch", "seed_student",
                           "--dataset", "synthetic", "--subset", "20", "--epochs", "1", "--batch-size", "10",
                           "--device", "cpu", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    from kdcore.training.checkpoint import load_checkpoint

    assert json.loads(done.stdout.strip().splitlines()[-1])["parameters"] == 267_738
    assert load_checkpoint(out / "checkpoint.pt")["config"]["architecture"] == "tutorial_student"
