"""Fixtures for the server, API and worker tests. Import the ones a test module uses:

    from tests.app_fixtures import app_settings, client, session  # noqa: F401
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.executors.records import record_epoch
from app.main import create_app
from app.settings import Settings
from app.store.db import new_session
from app.store.models import Run

# The host name Starlette's TestClient sends; a real server answers only to its own names (app.access.cross_site).
TEST_CLIENT_HOST = "testserver"
SYNTHETIC_RUN = {"dataset": "synthetic", "subset": 100, "epochs": 1, "device": "cpu", "batch_size": 50}


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    # Shares the session's data directory (conftest.py), so the synthetic data is generated once.
    data_dir = Path(os.environ.get("KD_DATA_DIR") or tmp_path / "data")
    return Settings(db_url=f"sqlite:///{tmp_path / 'db' / 'kd.sqlite'}", data_dir=data_dir,
                    runs_dir=tmp_path / "runs", max_queued=20, heartbeat_s=0.5, poll_s=0.2, cancel_grace_s=3,
                    allowed_hosts=(TEST_CLIENT_HOST,))


@pytest.fixture
def app(app_settings):
    return create_app(app_settings)


@pytest.fixture
def client(app):
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def session(app, app_settings):
    with new_session(app.state.engine, app_settings) as db_session:
        yield db_session


def set_run(session, run_id: int, **fields) -> Run:
    """Put a run into a state the tests need (as a worker would have)."""
    run = session.get(Run, run_id, populate_existing=True)
    for name, value in fields.items():
        setattr(run, name, value)
    session.add(run)
    session.commit()
    return run


def add_epochs(session, run_id: int, count: int, worker: str = "test:1:cpu", epochs: int | None = None) -> None:
    """Record ``count`` epochs through the worker's own writer; the run must be running under ``worker``."""
    for epoch in range(1, count + 1):
        record_epoch(session, run_id, worker, {
            "epoch": epoch, "epochs": epochs or count, "train_loss": 2.0 / epoch, "train_terms": {"ce": 2.0 / epoch},
            "test_loss": 2.1 / epoch, "test_accuracy": 0.1 * epoch, "seconds": 1.5, "images_per_sec": 100.0,
        })


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
