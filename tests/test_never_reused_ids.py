"""A deleted row's id is never given to a new one (runs, studies, experiments, epochs), on SQLite and
PostgreSQL; and a SQLite database made before that rule is rebuilt at start-up with its rows, ids and
indexes kept (app.store.autoincrement)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, delete, func, inspect, select
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import SQLModel

import app.store.db as store_db
from app.main import create_app
from app.settings import Settings
from app.store.autoincrement import never_reuse_ids
from app.store.db import new_session
from app.store.models import Epoch, Experiment, Run, Study
from tests.app_fixtures import TEST_CLIENT_HOST, add_epochs, set_run
from tests.pg_fixtures import db_url, pg_server, pg_url  # noqa: F401
from tests.study_fixtures import submit

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy_v1.sql"
WORKER = "test:1:cpu"
TABLES = ("runs", "studies", "experiments", "epochs")


def _settings(db_url: str, tmp_path: Path) -> Settings:
    data_dir = Path(os.environ.get("KD_DATA_DIR") or tmp_path / "data")
    return Settings(db_url=db_url, data_dir=data_dir, runs_dir=tmp_path / "runs", allowed_hosts=(TEST_CLIENT_HOST,))


def _newest(session, model) -> int:
    return session.execute(select(func.max(model.id))).scalar_one()


def _student(client) -> int:
    response = client.post("/api/runs", json={"kind": "student", "dataset": "synthetic", "subset": 100})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _fill(client, session) -> dict[str, int]:
    """A study, an experiment, a run with epochs, each the newest of its table. Returns their ids."""
    study = submit(client, methods=("student",), seeds=(1, 2))
    experiment = client.post("/api/experiments", json={"dataset": "synthetic", "subset": 100}).json()["id"]
    run = _student(client)
    set_run(session, run, status="running", worker=WORKER)
    add_epochs(session, run, 2, worker=WORKER)
    set_run(session, run, status="failed")
    return {"study": study, "experiment": experiment, "run": run, "epoch": _newest(session, Epoch)}


def _delete_and_add_again(client, session, newest: dict[str, int]) -> dict[str, int]:
    """Delete the newest run (with its epochs), study and experiment, then add one of each: their new ids."""
    assert client.delete(f"/api/runs/{newest['run']}").status_code == 204
    for model, key in ((Run, "study"), (Run, "experiment")):
        session.execute(delete(model).where(getattr(model, f"{key}_id") == newest[key]))
    session.execute(delete(Study).where(Study.id == newest["study"]))
    session.execute(delete(Experiment).where(Experiment.id == newest["experiment"]))
    session.commit()
    assert (_newest(session, Run) or 0) < newest["run"] and (_newest(session, Epoch) or 0) < newest["epoch"]
    study = submit(client, methods=("student",), seeds=(1,))
    experiment = client.post("/api/experiments", json={"dataset": "synthetic", "subset": 100}).json()["id"]
    run = _student(client)
    set_run(session, run, status="running", worker=WORKER)
    add_epochs(session, run, 1, worker=WORKER)
    return {"study": study, "experiment": experiment, "run": run, "epoch": _newest(session, Epoch)}


def test_a_deleted_rows_id_is_never_given_again(db_url, tmp_path):
    with TestClient(create_app(_settings(db_url, tmp_path))) as client:
        with new_session(client.app.state.engine) as session:
            deleted = _fill(client, session)
            added = _delete_and_add_again(client, session, deleted)
    for key in deleted:
        assert added[key] > deleted[key], f"the new {key} took id {added[key]}, the deleted one's was {deleted[key]}"
    client.app.state.engine.dispose()


def _schema(path: Path) -> dict[str, object]:
    with sqlite3.connect(path) as connection:
        tables = {name: sql for name, sql in connection.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")}
        indexes = {name: (table, sql) for name, table, sql in
                   connection.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index'")}
        rows = {table: connection.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
                for table in TABLES if table in tables}
    return {"tables": tables, "indexes": indexes, "rows": rows}


def test_a_legacy_database_is_rebuilt_keeping_its_rows_ids_and_indexes(tmp_path):
    database = tmp_path / "kd.sqlite"
    with sqlite3.connect(database) as connection:
        connection.executescript(LEGACY.read_text())
        # A student whose teacher (run 42) was deleted: no new run may take 42.
        connection.execute("UPDATE runs SET teacher_run_id = 42 WHERE id = 9")
    settings = _settings(f"sqlite:///{database}", tmp_path)
    with TestClient(create_app(settings)) as client:
        before = client.get("/api/runs?limit=100").json()["items"]
    after_start = _schema(database)
    for table in ("runs", "experiments", "epochs"):
        assert "AUTOINCREMENT" in after_start["tables"][table], table
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # Every index the models declare is there, on its table.
    engine = create_engine(f"sqlite:///{database}")
    inspector = inspect(engine)
    for table in SQLModel.metadata.sorted_tables:
        assert {index.name for index in table.indexes} <= {i["name"] for i in inspector.get_indexes(table.name)}
    engine.dispose()

    # A second start changes nothing.
    with TestClient(create_app(settings)) as client:
        assert never_reuse_ids(client.app.state.engine) == []
        assert client.get("/api/runs?limit=100").json()["items"] == before
        assert len(before) == 10 and [run["id"] for run in before] == list(range(10, 0, -1))
        assert client.delete("/api/runs/10").status_code == 204
        assert _student(client) == 43
        assert _student(client) == 44
    assert _schema(database)["tables"] == after_start["tables"]


def _previous_versions_database(path: Path) -> None:
    """The tables as this project created them before AUTOINCREMENT (every other column the same)."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        for table in SQLModel.metadata.sorted_tables:
            connection.exec_driver_sql(str(CreateTable(table).compile(engine)).replace(" AUTOINCREMENT", ""))
            for index in table.indexes:
                connection.execute(CreateIndex(index))
    engine.dispose()


def test_a_database_of_the_previous_version_keeps_its_rows_and_stops_reusing_ids(tmp_path, monkeypatch):
    database = tmp_path / "kd.sqlite"
    _previous_versions_database(database)
    settings = _settings(f"sqlite:///{database}", tmp_path)
    with monkeypatch.context() as previous_version:
        previous_version.setattr(store_db, "never_reuse_ids", lambda engine: [])
        with TestClient(create_app(settings)) as client:
            with new_session(client.app.state.engine) as session:
                newest = _fill(client, session)
    before = _schema(database)
    assert not any("AUTOINCREMENT" in before["tables"][table] for table in TABLES)

    with TestClient(create_app(settings)) as client:
        after = _schema(database)
        assert after["rows"] == before["rows"]
        assert {name: table for name, (table, _) in after["indexes"].items()} == \
            {name: table for name, (table, _) in before["indexes"].items()}
        assert all("AUTOINCREMENT" in after["tables"][table] for table in TABLES)
        with new_session(client.app.state.engine) as session:
            added = _delete_and_add_again(client, session, newest)
    for key in newest:
        assert added[key] > newest[key], key


def test_postgresql_numbers_ids_from_sequences(pg_url, tmp_path):
    with TestClient(create_app(_settings(pg_url, tmp_path))) as client:
        engine = client.app.state.engine
        with engine.connect() as connection:
            for table in TABLES:
                default = connection.exec_driver_sql(
                    "SELECT column_default FROM information_schema.columns "
                    f"WHERE table_name = '{table}' AND column_name = 'id'").scalar()
                assert default == f"nextval('{table}_id_seq'::regclass)", (table, default)
    engine.dispose()


def test_the_rebuild_leaves_a_table_with_columns_it_does_not_know(tmp_path):
    database, table = tmp_path / "kd.sqlite", "runs"
    _previous_versions_database(database)
    with sqlite3.connect(database) as connection:
        connection.execute(f"ALTER TABLE {table} ADD COLUMN from_a_newer_version TEXT")
    engine = store_db.make_engine(f"sqlite:///{database}")
    assert table not in never_reuse_ids(engine)
    assert "from_a_newer_version" in {column["name"] for column in inspect(engine).get_columns(table)}
    engine.dispose()
