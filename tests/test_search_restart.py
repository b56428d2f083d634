"""A server killed mid-search (SIGKILL: no shutdown of any kind) continues the search after it restarts: no trial
asked twice, none lost, the budget kept, and the confirmation queued at the end. The server has no worker; the
test moves the trials' runs on in the database as a worker would (tests/search_fixtures.py)."""

from __future__ import annotations

from sqlmodel import Session

from app.store.db import make_engine
from tests.app_fixtures import wait_for
from tests.live_server import LiveServer
from tests.search_fixtures import complete, completed_teacher, search_body, trials


def test_a_server_killed_mid_search_continues_it_after_restart(tmp_path):
    server = LiveServer(tmp_path, worker=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'kd.sqlite'}")
    db = Session(engine, expire_on_commit=False)
    try:
        body = search_body(completed_teacher(server.api, db), trials=4, parallelism=2)
        search_id = server.api.post("/api/searches", json=body).json()["id"]
        wait_for(lambda: len(trials(db, search_id)) == 2, 30, what="the first two trials")
        complete(db, trials(db, search_id)[0], 0.8)
        wait_for(lambda: len(trials(db, search_id)) == 3, 30, what="a third trial in the freed slot")
        server.process.kill()
        server.process.wait()
        for run in trials(db, search_id)[1:]:  # the worker trains on while the server is down
            complete(db, run, 0.6 + 0.05 * run.trial_number)
        server.api.close()
        server = LiveServer(tmp_path, worker=False)
        wait_for(lambda: len(trials(db, search_id)) == 4, 30, what="the last trial, asked by the restarted server")
        complete(db, trials(db, search_id)[3], 0.7)
        search = wait_for(lambda: (s := server.api.get(f"/api/searches/{search_id}").json())["phase"] == "confirming"
                          and s, 30, what="the confirmation")
        assert [t["number"] for t in search["trials"]] == [0, 1, 2, 3]
        assert [t["status"] for t in search["trials"]] == ["completed"] * 4
        assert search["confirmation"]["progress"]["total"] == 8  # (top 2 + 2 references) × 2 seeds
    finally:
        db.close()
        engine.dispose()
        server.stop()
