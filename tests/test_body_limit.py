"""Bounded request bodies: 413 before a large body is read, and the API's token checked before any body is.

The requests go to the real server (uvicorn) over a socket that declares a body and never sends it: an
answer within a second or two proves that the server decided without reading, or waiting for, the body.
"""

from __future__ import annotations

import socket
import time

import pytest
from page_fixtures import STUDENT_KIND, make_settings

from app.main import create_app
from app.settings import Settings
from tests.live_server import LiveServer

TOKEN = "tok-" + "b" * 24
RUN = {"kind": STUDENT_KIND, "dataset": "synthetic", "subset": 100, "epochs": 1, "device": "cpu"}
TWENTY_MB = 20_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("body-limit"), worker=False, token=TOKEN)
    yield live
    live.stop()


def _declare_only(server, path: str, length: int, headers: dict[str, str] | None = None,
                  timeout: float = 5) -> tuple[int, bytes, float]:
    """POST ``path`` declaring ``length`` bytes of JSON and sending none of them: (status, answer, seconds)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Content-Type: application/json",
             f"Content-Length: {length}", *(f"{k}: {v}" for k, v in (headers or {}).items()), "", ""]
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall("\r\n".join(lines).encode())
        answer = b""
        try:
            while not _complete(answer):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except TimeoutError:
            pytest.fail(f"no answer within {timeout} s: the server is waiting for the body")
    return int(answer.split(b" ", 2)[1]), answer, time.monotonic() - started


def _complete(answer: bytes) -> bool:
    """Whether ``answer`` holds a whole response: its headers and as many body bytes as they announce (a
    redirect's body is empty, and the server may keep the connection open after it)."""
    head, separator, body = answer.partition(b"\r\n\r\n")
    if not separator:
        return False
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                   if line.lower().startswith(b"content-length:")), None)
    return length is not None and len(body) >= length


def _runs(server) -> int:
    return server.api.get("/api/runs").json()["total"]


def test_a_20_mb_body_gets_413_without_being_read(server):
    before = _runs(server)
    status, answer, seconds = _declare_only(server, "/api/runs", TWENTY_MB, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 413 and b"larger than 1,000,000 bytes (KD_MAX_BODY)" in answer
    assert seconds < 2
    # Pages' forms too: every route is behind the limit (past the token gate, which redirects a browser).
    status, _, _ = _declare_only(server, "/launch", TWENTY_MB, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 413
    status, _, _ = _declare_only(server, "/launch", TWENTY_MB)
    assert status == 303
    assert _runs(server) == before


def test_a_wrong_token_is_refused_before_the_body_is_read(server):
    # Under the size limit, so only the token can refuse it: without reading the 900 kB it announced.
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        status, answer, seconds = _declare_only(server, "/api/runs", 900_000, headers)
        assert status == 401 and b"missing or wrong API token" in answer and seconds < 2
        assert b"www-authenticate: bearer" in answer.lower()
    status, _, _ = _declare_only(server, "/api/runs", TWENTY_MB, {"Authorization": "Bearer wrong"})
    assert status == 401


def test_a_streamed_body_is_counted_as_it_arrives(server):
    # No Content-Length (chunked): refused once past the limit, and nothing is stored.
    before = _runs(server)

    def chunks():
        yield b'{"kind": "' + STUDENT_KIND.encode() + b'", "padding": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    response = server.api.post("/api/runs", content=chunks(), headers={"Authorization": f"Bearer {TOKEN}",
                                                                        "Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert "KD_MAX_BODY" in response.json()["detail"]
    assert _runs(server) == before


def test_bodies_under_the_limit_and_reads_work(server):
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert server.api.post("/api/runs", json=RUN, headers=bearer).status_code == 201
    streamed = server.api.post("/api/runs", content=iter([b'{"kind": "', STUDENT_KIND.encode(),
                                                          b'", "dataset": "synthetic", "subset": 100}']),
                               headers={**bearer, "Content-Type": "application/json"})
    assert streamed.status_code == 201, streamed.text
    assert server.api.get("/api/runs").status_code == 200


def test_the_limit_comes_from_kd_max_body(monkeypatch):
    assert Settings.from_env().max_body == 1_000_000
    monkeypatch.setenv("KD_MAX_BODY", "5000000")
    assert Settings.from_env().max_body == 5_000_000
    monkeypatch.setenv("KD_MAX_BODY", "10")
    with pytest.raises(SystemExit, match="KD_MAX_BODY"):
        Settings.from_env()


def test_every_api_write_declares_the_token(tmp_path):
    # The gate answers 401 to every state-changing /api call without the token; each of those routes asks
    # for it too, which the OpenAPI document shows as the Bearer scheme (so /docs sends it).
    paths = create_app(make_settings(tmp_path)).openapi()["paths"]
    writes = {(path, method): operation.get("security") for path, operations in paths.items()
              for method, operation in operations.items() if method not in ("get", "head", "options")}
    assert len(writes) >= 10 and all(path.startswith("/api/") for path, _ in writes)
    assert {key: security for key, security in writes.items() if security != [{"HTTPBearer": []}]} == {}
