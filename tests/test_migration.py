"""A database written before methods and architectures became plugins (tests/fixtures/legacy_v1.sql,
dumped from runs created through that version's REST API) opens, migrates and serves; baseline keys
stored before they named the epochs are recomputed."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import delete, update
from sqlmodel import Session, select

from app.main import create_app
from app.settings import Settings
from app.store.migrations import recompute_baseline_keys
from app.store.models import DataMigration, Run
from kdcore.config import RunConfig
from kdcore.studies.study import SPEED_FIELDS, baseline_key
from tests.app_fixtures import TEST_CLIENT_HOST

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy_v1.sql"


def _legacy_database(tmp_path: Path) -> Settings:
    with sqlite3.connect(tmp_path / "kd.sqlite") as connection:
        connection.executescript(LEGACY.read_text())
    return Settings(db_url=f"sqlite:///{tmp_path / 'kd.sqlite'}", data_dir=tmp_path / "data", runs_dir=tmp_path / "runs",
                    allowed_hosts=(TEST_CLIENT_HOST,))


def test_stored_configs_move_to_todays_shape(tmp_path):
    settings = _legacy_database(tmp_path)
    with sqlite3.connect(tmp_path / "kd.sqlite") as connection:
        before = dict(connection.execute("SELECT id, config FROM runs").fetchall())
    assert '"temperature": 4.0' in before[3] and "architecture" not in before[3]
    with TestClient(create_app(settings)) as client:
        runs = {run["id"]: run for run in client.get("/api/runs?limit=100").json()["items"]}
        assert len(runs) == 10
        kd = runs[3]
        assert kd["architecture"] == "tutorial_student" and kd["config"]["params"] == {
            "ce_weight": 0.75, "distill_weight": 0.5, "temperature": 4.0, "standardize": False}
        assert runs[5]["config"]["params"] == {"ce_weight": 0.5, "distill_weight": 0.25}  # fitnet
        assert runs[1]["architecture"] == "tutorial_teacher" and runs[1]["config"]["params"] == {}
        for run in runs.values():
            assert RunConfig.model_validate(run["config"]).to_json_dict() == run["config"]
        # Pages over the migrated runs: the leaderboard, a run page with its epochs, the experiment.
        assert client.get("/").status_code == 200
        page = client.get("/runs/3").text
        assert "Temperature" in page and "tutorial_student" in page
        assert client.get("/compare?experiment=1").status_code == 200
        board = client.get("/api/leaderboard").json()["items"]
        assert [row["run_id"] for row in board] == [1, 3, 2]
    # A second start finds nothing left to migrate and changes nothing.
    with sqlite3.connect(tmp_path / "kd.sqlite") as connection:
        migrated = dict(connection.execute("SELECT id, config FROM runs").fetchall())
    with TestClient(create_app(settings)):
        pass
    with sqlite3.connect(tmp_path / "kd.sqlite") as connection:
        assert dict(connection.execute("SELECT id, config FROM runs").fetchall()) == migrated


def test_a_legacy_kd_run_can_be_retried_and_a_new_run_distils_from_a_legacy_teacher(tmp_path):
    with TestClient(create_app(_legacy_database(tmp_path))) as client:
        assert client.post("/api/runs/4/cancel").json()["status"] == "cancelled"
        retried = client.post("/api/runs/4/retry").json()
        assert retried["status"] == "queued" and retried["config"]["params"]["distill_weight"] == 0.25
        new = client.post("/api/runs", json={"kind": "dkd", "dataset": "synthetic", "teacher_run_id": 1,
                                             "architecture": "resnet20"})
        assert new.status_code == 201 and new.json()["config"]["params"]["beta"] == 8.0


def _legacy_baseline_key(config: dict) -> str:
    """The baseline key as stored before it named the epochs (any student of the network, data and recipe)."""
    left_out = ("seed", "kind", "params", "epochs", "teacher_weights", *SPEED_FIELDS)
    kept = {k: v for k, v in config.items() if k not in left_out and not (k == "precision" and v == "float32")}
    return hashlib.sha1(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def test_baseline_keys_are_recomputed_once_with_the_epochs_and_the_experiments_own_student(tmp_path):
    settings = _legacy_database(tmp_path)
    with TestClient(create_app(settings)) as client:
        engine = client.app.state.engine
    with Session(engine) as session:
        runs = {run.id: run for run in session.exec(select(Run)).all()}
        # Experiment 1 (runs 6-10): its 10-epoch KD students compare with its 20-epoch student, as the seed does.
        assert runs[8].experiment_id == 1 and runs[7].kind == "student" and (runs[8].epochs, runs[7].epochs) == (10, 20)
        assert {runs[i].baseline_key for i in (7, 8, 9, 10)} == {runs[7].group_key}
        # Run 3 was launched alone: its baseline is a 10-epoch student of its recipe, not run 2 (3 epochs, lr 0.002).
        assert runs[3].baseline_key == baseline_key(runs[3].config) != runs[2].group_key
        # Keys stored the old way (epochs left out) are recomputed, once per database.
        expected = {i: run.baseline_key for i, run in runs.items()}
        legacy = {i: _legacy_baseline_key(runs[i].config) for i in runs}
        for run_id, key in legacy.items():
            session.execute(update(Run).where(Run.id == run_id).values(baseline_key=key))
        session.execute(delete(DataMigration))
        session.commit()
    assert recompute_baseline_keys(engine) == len(runs)
    assert recompute_baseline_keys(engine) == 0  # done: not even read again
    with Session(engine) as session:
        assert {run.id: run.baseline_key for run in session.exec(select(Run)).all()} == expected
        session.execute(delete(DataMigration))
        session.commit()
    assert recompute_baseline_keys(engine) == 0  # run again, it changes nothing
