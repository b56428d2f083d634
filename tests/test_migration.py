"""A database written before methods and architectures became plugins (tests/fixtures/legacy_v1.sql,
dumped from runs created through that version's REST API) opens, migrates and serves."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from kdcore.config import RunConfig
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
        assert kd["architecture"] == "seed_student" and kd["config"]["params"] == {
            "ce_weight": 0.75, "distill_weight": 0.5, "temperature": 4.0, "standardize": False}
        assert runs[5]["config"]["params"] == {"ce_weight": 0.5, "distill_weight": 0.25}  # fitnet
        assert runs[1]["architecture"] == "seed_teacher" and runs[1]["config"]["params"] == {}
        for run in runs.values():
            assert RunConfig.model_validate(run["config"]).to_json_dict() == run["config"]
        # Pages over the migrated runs: the leaderboard, a run page with its epochs, the experiment.
        assert client.get("/").status_code == 200
        page = client.get("/runs/3").text
        assert "Temperature" in page and "seed_student" in page
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
