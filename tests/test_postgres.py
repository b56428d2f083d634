"""The REST API, the queue, the schema upgrade and a worker against a real PostgreSQL server.

The server comes from tests.pg_fixtures (skipped with the reason where it cannot start); each test
gets a fresh database. The SQLite suites' tests are reused here by importing them, so this module's
``app_settings`` puts them on PostgreSQL; the queue cap under concurrency is in test_admission.py.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text

from app.executors.local.pool import WorkerPool
from app.main import create_app
from app.settings import Settings
from tests.app_fixtures import SYNTHETIC_RUN, TEST_CLIENT_HOST, app, client, session, wait_for  # noqa: F401
from tests.pg_fixtures import pg_server, pg_url  # noqa: F401
from tests.test_api import (  # noqa: F401  (collected again here, on PostgreSQL)
    test_an_epoch_is_stored_once_per_run,
    test_bad_experiment_input_stores_nothing,
    test_cancel_queued_running_and_finished_runs,
    test_cancelling_a_teacher_cancels_the_runs_waiting_for_it,
    test_create_kd_run_from_a_queued_teacher,
    test_create_run_takes_the_kinds_seed_defaults,
    test_delete,
    test_epochs_after_csv_best_epoch_and_progress,
    test_experiment_queues_the_seed_runs_with_overrides,
    test_ids_beyond_64_bits_are_422_not_500,
    test_leaderboard_ranks_completed_runs,
    test_list_filters_newest_first_and_paginates,
    test_queue_cap_is_429,
    test_retry_resumes_from_the_checkpoint,
)
from tests.test_api_studies import (  # noqa: F401
    test_a_full_queue_refuses_the_whole_study,
    test_cancelling_a_study_cancels_its_unfinished_runs_only,
    test_deleting_a_study_removes_its_runs_epochs_and_folders_and_is_refused_while_one_runs,
    test_groups_equal_the_statistics_recomputed_from_the_member_runs,
    test_one_teacher_per_seed,
)
from tests.test_worker_queue import (  # noqa: F401
    test_a_failed_teacher_cancels_its_waiting_runs,
    test_concurrent_workers_never_claim_a_run_twice,
    test_lost_workers_runs_fail_and_live_ones_stay,
    test_progress_heartbeat_and_eta,
    test_runs_wait_for_their_teacher,
)

BIG_ID = 2**62


@pytest.fixture
def app_settings(pg_url, tmp_path: Path) -> Settings:
    data_dir = Path(os.environ.get("KD_DATA_DIR") or tmp_path / "data")
    return Settings(db_url=pg_url, data_dir=data_dir, runs_dir=tmp_path / "runs", max_queued=20,
                    allowed_hosts=(TEST_CLIENT_HOST,),
                    heartbeat_s=0.5, poll_s=0.2, cancel_grace_s=3)


def test_ids_use_the_whole_64_bit_range(client, app):
    with app.state.engine.begin() as connection:
        for table in ("runs", "experiments"):
            connection.execute(text(f"ALTER SEQUENCE {table}_id_seq RESTART WITH {BIG_ID}"))
    experiment = client.post("/api/experiments", json={"dataset": "synthetic", "subset": 100})
    assert experiment.status_code == 201, experiment.text
    ids = experiment.json()["run_ids"]
    assert experiment.json()["id"] == BIG_ID and ids["teacher"] == BIG_ID
    assert client.get(f"/api/runs/{ids['kd']}").json()["teacher_run_id"] == BIG_ID
    kd = client.post("/api/runs", json={"kind": "kd", "dataset": "synthetic", "teacher_run_id": BIG_ID})
    assert kd.status_code == 201, kd.text
    assert client.get("/api/runs", params={"experiment_id": BIG_ID}).json()["total"] == 5
    assert client.get(f"/api/runs/{2**63 - 1}").status_code == 404
    assert client.get(f"/api/experiments/{2**63 - 1}").status_code == 404
    missing = client.post("/api/runs", json={"kind": "kd", "dataset": "synthetic", "teacher_run_id": 2**63 - 1})
    assert missing.status_code == 422 and "does not exist" in missing.text


def test_schema_upgrade_adds_columns_and_keeps_rows(app_settings):
    # A plain postgresql:// URL works too (psycopg 3 rather than SQLAlchemy's default psycopg2).
    create_app(replace(app_settings, db_url=app_settings.db_url.replace("postgresql+psycopg://", "postgresql://")))
    engine = create_engine(app_settings.db_url)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE runs DROP COLUMN eta_seconds"))
        connection.execute(text("DROP INDEX ix_runs_status"))
        connection.execute(text("ALTER TABLE runs DROP COLUMN status"))
        connection.execute(text("ALTER TABLE runs DROP COLUMN prune_requested"))  # a search's column, newer than the rest
        connection.execute(text("INSERT INTO runs (kind, config, created_at, cancel_requested, resume) VALUES "
                                "('student', '{\"kind\": \"student\", \"dataset\": \"synthetic\"}', "
                                "'2024-01-01 00:00:00+00', false, false)"))
    with TestClient(create_app(app_settings)) as client:
        run = client.get("/api/runs/1").json()
        assert run["kind"] == "student" and run["status"] == "queued"  # the column's default fills old rows
        assert run["created_at"] == "2024-01-01T00:00:00.000Z"
    inspector = inspect(engine)
    columns = {column["name"]: column for column in inspector.get_columns("runs")}
    assert {"eta_seconds", "status", "prune_requested"} <= set(columns)
    assert "ix_runs_status" in {index["name"] for index in inspector.get_indexes("runs")}
    assert str(columns["id"]["type"]) == "BIGINT" and str(columns["created_at"]["type"]) == "TIMESTAMP"
    assert columns["created_at"]["type"].timezone
    engine.dispose()


def test_a_worker_trains_a_run_end_to_end(client, app, app_settings):
    pool = WorkerPool(app_settings, gpus=[], engine=app.state.engine)
    pool.start()
    try:
        run_id = client.post("/api/runs", json={**SYNTHETIC_RUN, "kind": "teacher"}).json()["id"]
        run = wait_for(lambda: (r := client.get(f"/api/runs/{run_id}").json())["status"] not in ("queued", "running")
                       and r, 120, what=f"run {run_id} to finish")
    finally:
        pool.stop()
    assert run["status"] == "completed", run["error"]
    assert run["progress"]["fraction"] == 1.0 and run["final_accuracy"] is not None and run["has_checkpoint"]
    epochs = client.get(f"/api/runs/{run_id}/epochs").json()["items"]
    assert [e["epoch"] for e in epochs] == [1] and epochs[0]["train_terms"]
    assert [row["run_id"] for row in client.get("/api/leaderboard").json()["items"]] == [run_id]
    # The pages read the same rows through their own queries.
    for page in ("/", f"/runs/{run_id}", f"/compare?run={run_id}", "/launch", "/fragments/leaderboard",
                 "/fragments/active", "/?view=runs"):
        assert client.get(page).status_code == 200, page
    # Its epochs time the next such run (their JSON fields read in PostgreSQL's words).
    estimate = client.get("/fragments/launch-estimate", params={"form": "run", "kind": "teacher", **SYNTHETIC_RUN}).text
    assert 'data-basis="measured"' in estimate, estimate


def test_the_queue_does_not_depend_on_the_servers_default_isolation(pg_server, pg_url, app_settings):
    # Under REPEATABLE READ a second claimer or admission would fail where READ COMMITTED waits and goes on.
    database = pg_url.rsplit("/", 1)[1]
    pg_server.admin(f"ALTER DATABASE {database} SET default_transaction_isolation = 'repeatable read'")
    with TestClient(create_app(app_settings)) as client:
        with client.app.state.engine.connect() as connection:
            assert connection.execute(text("SHOW transaction_isolation")).scalar() == "read committed"
        client.app.state.engine.dispose()
