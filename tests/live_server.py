"""A real ``python -m app.cli serve`` subprocess on 127.0.0.1, against SQLite or any database URL: the
browser tests' server, and the server that request-level tests (security, admission) talk to."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# The architecture catalog each server describes at start (a torch subprocess of 4 s or more, per server):
# described once per test process and handed to every later server. Its file names carry a fingerprint of
# the architectures' code, so a copy is never stale.
_CATALOGS = Path(tempfile.mkdtemp(prefix="kd-test-catalogs-"))
atexit.register(shutil.rmtree, _CATALOGS, ignore_errors=True)


def _copy_catalogs(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for file in source.glob("architectures-*.json"):
        if not (target / file.name).exists():
            shutil.copyfile(file, target / file.name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``python -m app.cli serve`` on 127.0.0.1 and a free port, with its own data, runs and cache folders
    under ``root``; with ``worker`` its embedded CPU worker trains what is queued."""

    def __init__(self, root: Path, *, worker: bool, token: str | None = None, db_url: str | None = None,
                 env: dict[str, str] | None = None, start_timeout: float = 60):
        self.root, self.port = root, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "KD_DB_URL": db_url or f"sqlite:///{root / 'kd.sqlite'}",
                       "KD_DATA_DIR": str(root / "data"), "KD_RUNS_DIR": str(root / "runs"),
                       "KD_CACHE_DIR": str(root / "cache"), "CUDA_VISIBLE_DEVICES": "", **(env or {})}
        self.cache = Path(environment["KD_CACHE_DIR"])
        _copy_catalogs(_CATALOGS, self.cache)
        environment.pop("KD_API_TOKEN", None)
        if token:
            environment["KD_API_TOKEN"] = token
        command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--gpus", ""] if worker else ["--no-worker"]
        self.log = (root / "server.log").open("w")
        self.process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=self.log, stderr=subprocess.STDOUT)
        # With a token, every route but sign-in needs it: the test's own client carries it.
        self.api = httpx.Client(base_url=self.url, timeout=30,
                                headers={"Authorization": f"Bearer {token}"} if token else None)
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {(root / 'server.log').read_text()[-3000:]}")
            try:
                if self.api.get("/api/datasets").status_code == 200:
                    _copy_catalogs(self.cache, _CATALOGS)
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start within {start_timeout:.0f} s")

    def run(self, run_id: int) -> dict:
        return self.api.get(f"/api/runs/{run_id}").json()

    def wait_for(self, run_id: int, statuses=("completed", "failed", "cancelled"), timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id)
            if run["status"] in statuses:
                return run
            time.sleep(0.25)
        raise AssertionError(f"run {run_id} still {run['status']} after {timeout} s")

    def stop(self) -> None:
        _copy_catalogs(self.cache, _CATALOGS)
        self.api.close()
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


@contextmanager
def live_server(root: Path, db_url: str, *, env: dict[str, str] | None = None) -> Iterator[httpx.Client]:
    """Serve the dashboard without a worker against ``db_url``; yields a client for it."""
    server = LiveServer(root, worker=False, db_url=db_url, env=env)
    try:
        yield server.api
    finally:
        server.stop()


def post_at_once(base_url: str, requests: list[tuple[str, dict | None]], timeout: float = 60) -> list[int]:
    """Send each ``(path, json body)`` POST from its own thread, all released together; returns the
    status codes in the order given."""
    barrier = threading.Barrier(len(requests))
    statuses: list[int | None] = [None] * len(requests)
    # One client (thread-safe) with a connection per request: building a client per thread costs more
    # CPU than the requests.
    client = httpx.Client(base_url=base_url, timeout=timeout, limits=httpx.Limits(max_connections=len(requests)))

    def post(index: int, path: str, body: dict | None) -> None:
        barrier.wait(timeout)
        statuses[index] = client.post(path, json=body).status_code

    threads = [threading.Thread(target=post, args=(i, *request), daemon=True) for i, request in enumerate(requests)]
    with client:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout)
    missing = statuses.count(None)
    assert not missing, f"{missing} of {len(requests)} requests got no answer within {timeout:.0f} s"
    return statuses
