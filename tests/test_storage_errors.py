"""A full or read-only database or runs disk, said in words a person can act on: 507/503 JSON from the API,
the error page on pages, one log line per change from the worker, one line from `kd serve`, and a run that
fails for lack of space saying so (app.store.storage, app.executors.backoff, kdcore.errors.StorageFull)."""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from app import cli
from app.executors.backoff import Backoff
from app.executors.local import pool as pool_module
from app.executors.local.pool import WorkerPool
from app.store import db as db_module
from kdcore.errors import StorageFull
from kdcore.training import checkpoint as checkpoint_module
from kdcore.training.checkpoint import save_checkpoint
from tests.app_fixtures import SYNTHETIC_RUN, app, app_settings, client, wait_for  # noqa: F401
from tests.live_server import _free_port
from tests.test_worker import _get

REPO = Path(__file__).resolve().parents[1]
# A note long enough that its run's row needs a page of its own (SQLite's pages hold 4,096 bytes).
BIG_RUN = {**SYNTHETIC_RUN, "kind": "student", "note": "n" * 4000}


def _on_every_connection(engine, *pragmas: str) -> None:
    """Run ``pragmas`` on each new connection of ``engine``, from now on (the pool's connections are dropped)."""

    def apply(connection, _record) -> None:
        cursor = connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma.format(pages=cursor.execute("PRAGMA page_count").fetchone()[0]))
        cursor.close()

    event.listen(engine, "connect", apply)
    engine.dispose()


@pytest.fixture
def full_database(app):
    """SQLite really full: the file may not grow past its size now (SQLITE_FULL, "database or disk is full")."""
    _on_every_connection(app.state.engine, "PRAGMA max_page_count={pages}")


@pytest.fixture
def read_only_database(app):
    """SQLite really read-only for the server (SQLITE_READONLY, "attempt to write a readonly database")."""
    _on_every_connection(app.state.engine, "PRAGMA query_only=ON")


def test_a_full_database_answers_507_naming_the_file_and_stores_nothing(client, full_database, app_settings):
    response = client.post("/api/runs", json=BIG_RUN)

    assert response.status_code == 507
    database = str((Path(app_settings.db_url.removeprefix("sqlite:///"))).resolve())
    assert response.json() == {
        "detail": f"cannot write the database: no space left on device: {database} (database or disk is full)",
        "condition": "no space left on device", "path": database}
    assert client.get("/api/runs").json()["total"] == 0


def test_a_read_only_database_answers_503_json(client, read_only_database):
    response = client.post("/api/runs", json=SYNTHETIC_RUN | {"kind": "student"})

    assert response.status_code == 503 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["condition"] == "read-only" and body["path"].endswith("kd.sqlite")
    assert "attempt to write a readonly database" in body["detail"]


def test_a_page_says_the_condition_on_the_error_page(client, read_only_database):
    response = client.post("/launch", data={"kind": "student", "dataset": "synthetic", "subset": "100",
                                            "epochs": "1"})

    assert response.status_code == 503 and response.headers["content-type"].startswith("text/html")
    assert "Nothing was saved" in response.text
    assert "cannot write the database: read-only:" in response.text


def test_other_database_errors_stay_500(client, app):
    def broken(*_args, **_kwargs):
        raise sqlite3.OperationalError("no such table: runs")

    event.listen(app.state.engine, "before_cursor_execute", broken)
    with pytest.raises(OperationalError):
        client.get("/api/runs")


def test_the_worker_logs_a_full_database_once_and_its_recovery_once(app, app_settings, caplog, monkeypatch):
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorname = "SQLITE_FULL"
    failures = iter(range(6))

    def claim(session, worker):
        if next(failures, None) is not None:
            raise OperationalError("UPDATE runs ...", {}, full)
        return None

    monkeypatch.setattr(pool_module, "claim_next", claim)
    monkeypatch.setattr("app.executors.backoff.MAX_WAIT_S", 0.4)  # quick doubling for the test
    pool = WorkerPool(app_settings, gpus=[], engine=app.state.engine)
    with caplog.at_level(logging.INFO, logger="kd.worker"):
        pool.start()
        try:
            wait_for(lambda: "working again" in caplog.text, 30, what="the worker to recover")
        finally:
            pool.stop()
    said = [r for r in caplog.records if r.name == "kd.worker" and r.levelno >= logging.WARNING]
    assert [r.getMessage().split(": ", 1)[1] for r in said] == [
        f"cannot write the database: no space left on device: {Path(app_settings.db_url[10:]).resolve()}"
        " (database or disk is full); waiting, retrying every 0.4 s at most",
        "working again after: cannot write the database: no space left on device: "
        f"{Path(app_settings.db_url[10:]).resolve()} (database or disk is full)"]
    assert all(r.exc_info is None for r in said)  # no traceback


def test_backoff_waits_longer_while_a_problem_lasts_and_tracebacks_an_unknown_error_once(caplog):
    backoff = Backoff(logging.getLogger("test.backoff"), "slot", None, first_wait_s=1, max_wait_s=5)
    with caplog.at_level(logging.INFO, logger="test.backoff"):
        waits = []
        for _ in range(5):
            try:
                raise KeyError("boom")
            except KeyError as exc:
                waits.append(backoff.failed(exc))
    assert waits == [1, 2, 4, 5, 5]
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None


def test_kd_serve_on_a_read_only_database_prints_one_line_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KD_DB_URL", f"sqlite:///{tmp_path / 'kd.sqlite'}")
    real = db_module.make_engine

    def read_only_engine(url):
        engine = real(url)
        _on_every_connection(engine, "PRAGMA query_only=ON")
        return engine

    monkeypatch.setattr(db_module, "make_engine", read_only_engine)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--port", "1", "--no-worker"])
    message = str(exit_info.value.code)
    assert message == (f"kd serve: cannot write the database: read-only: {(tmp_path / 'kd.sqlite').resolve()}"
                       " (attempt to write a readonly database)")


def _namespace_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-Urm", "true"], capture_output=True).returncode == 0


needs_namespace = pytest.mark.skipif(not _namespace_available(),
                                     reason="needs unshare -Urm (user and mount namespaces) for a real read-only "
                                     "or full file system")


@needs_namespace
def test_kd_serve_on_a_read_only_file_system_prints_one_line(tmp_path):
    folder = tmp_path / "db"
    folder.mkdir()
    script = f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && exec {sys.executable} " \
             "-m app.cli serve --port 1 --no-worker"
    env = {**os.environ, "KD_DB_URL": f"sqlite:///{folder / 'kd.sqlite'}", "PYTHONPATH": str(REPO)}
    done = subprocess.run(["unshare", "-Urm", "sh", "-c", script], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.splitlines() == [
        f"kd serve: cannot write the database: the file cannot be opened or its folder is not writable: "
        f"{folder / 'kd.sqlite'} (unable to open database file)"]


def test_a_full_disk_under_a_checkpoint_names_the_folder(tmp_path, monkeypatch):
    """torch.save reports a failed write as "enforce fail at inline_container.cc"; the disk-full OSError
    behind it becomes StorageFull naming the folder. The file handle fails as a full disk does."""

    class FullDisk(io.FileIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_module.os, "fdopen", lambda fd, mode: FullDisk(fd, "w"))
    with pytest.raises(StorageFull) as error:
        save_checkpoint(tmp_path / "runs" / "7" / "checkpoint.pt", {"model": {}})
    assert str(error.value) == f"no space left on device: {tmp_path / 'runs' / '7'} (writing checkpoint.pt)"
    assert list((tmp_path / "runs" / "7").iterdir()) == []  # the partial file is gone


@needs_namespace
def test_a_run_that_fills_the_runs_disk_fails_saying_so(tmp_path):
    """A real 300 KB file system as KD_RUNS_DIR: the server's run fails with "no space left on device"."""
    runs = tmp_path / "runs"
    runs.mkdir()
    script = f"mount -t tmpfs -o size=300k tmpfs {runs} && exec {sys.executable} -m app.cli serve --port $PORT --gpus ''"
    port = _free_port()
    env = {**os.environ, "KD_DB_URL": f"sqlite:///{tmp_path / 'kd.sqlite'}", "KD_RUNS_DIR": str(runs),
           "PYTHONPATH": str(REPO), "PORT": str(port), "CUDA_VISIBLE_DEVICES": ""}
    server = subprocess.Popen(["unshare", "-Urm", "sh", "-c", script], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _get(base, "/api/datasets"), 60, what="the server")
        run_id = httpx.post(f"{base}/api/runs", json={**SYNTHETIC_RUN, "kind": "teacher"}, timeout=60).json()["id"]
        run = wait_for(lambda: (r := _get(base, f"/api/runs/{run_id}")) and r["status"] == "failed" and r,
                       120, what="the run to fail")
        assert run["error"] == f"no space left on device: {runs / str(run_id)} (writing checkpoint.pt)"
    finally:
        server.terminate()
        server.wait(60)
