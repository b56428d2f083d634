"""The queue cap under concurrent requests to a real server (threads, 127.0.0.1), on SQLite and PostgreSQL.

Every admission (a run, an experiment's runs, a retry) counts the queue and inserts in one
serialised transaction, so the cap holds however many requests arrive at once.
"""

from __future__ import annotations

from collections import Counter

from fastapi.testclient import TestClient
from sqlalchemy import text

from app.main import create_app
from app.settings import Settings
from app.store.db import init_db
from tests.app_fixtures import TEST_CLIENT_HOST
from tests.live_server import live_server, post_at_once
from tests.pg_fixtures import db_url, pg_server, pg_url  # noqa: F401

CAP = 20
RUN = {"kind": "student", "dataset": "synthetic", "subset": 100, "epochs": 1}


def queued(api) -> list[int]:
    return [run["id"] for run in api.get("/api/runs", params={"status": "queued", "limit": 500}).json()["items"]]


def test_concurrent_admissions_never_pass_the_queue_cap(db_url, tmp_path):
    with live_server(tmp_path, db_url, env={"KD_MAX_QUEUED": str(CAP)}) as api:
        base = str(api.base_url)
        # Experiments: 5 runs each, all admitted or none.
        statuses = post_at_once(base, [("/api/experiments", {"dataset": "synthetic", "subset": 100})] * 10)
        assert Counter(statuses) == {201: 4, 429: 6}
        assert len(queued(api)) == CAP and api.get("/api/experiments").json()["total"] == 4
        for run_id in queued(api):
            api.post(f"/api/runs/{run_id}/cancel")  # students of a cancelled teacher are cancelled with it
        assert queued(api) == []

        statuses = post_at_once(base, [("/api/runs", RUN)] * 80)
        assert Counter(statuses) == {201: CAP, 429: 80 - CAP}
        assert len(queued(api)) == CAP and api.get("/api/runs").json()["total"] == 2 * CAP

        for run_id in queued(api)[:10]:
            assert api.post(f"/api/runs/{run_id}/cancel").status_code == 200
        cancelled = [run["id"] for run in api.get("/api/runs", params={"status": "cancelled", "limit": 500}).json()["items"]]
        statuses = post_at_once(base, [(f"/api/runs/{run_id}/retry", None) for run_id in cancelled])
        # Runs whose teacher was cancelled cannot be retried (409); of the others, 10 fit.
        assert statuses.count(200) == 10 and set(statuses) <= {200, 409, 429}, Counter(statuses)
        assert len(queued(api)) == CAP


def test_a_database_from_before_the_lock_table_gets_it_at_start(db_url, tmp_path):
    settings = Settings(db_url=db_url, runs_dir=tmp_path / "runs", max_queued=1, allowed_hosts=(TEST_CLIENT_HOST,))
    engine = init_db(settings)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE locks"))
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        assert client.post("/api/runs", json=RUN).status_code == 201
        assert client.post("/api/runs", json=RUN).status_code == 429
        client.app.state.engine.dispose()
