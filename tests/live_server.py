"""A real ``python -m app.cli serve`` subprocess on 127.0.0.1 against any database URL.

The browser tests' LiveServer is tied to SQLite; these tests also point the server at PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(root: Path, db_url: str, *, env: dict[str, str] | None = None,
                start_timeout: float = 60) -> Iterator[httpx.Client]:
    """Serve the dashboard without a worker; yields a client for it and stops the server after."""
    port = _free_port()
    environment = {**os.environ, "KD_DB_URL": db_url, "KD_RUNS_DIR": str(root / "runs"),
                   "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    environment.pop("KD_API_TOKEN", None)
    log_path = root / "server.log"
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {log_path.read_text()[-3000:]}")
            try:
                if client.get("/api/datasets").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start within {start_timeout:.0f} s")
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


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
