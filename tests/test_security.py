"""What the server refuses: cross-site state changes, foreign Host headers (DNS rebinding), token guessing
(through sign-in, Bearer headers and cookies alike, with forwarded addresses believed only from named
proxies), and an exposed server without a token. The request checks run against the real server (uvicorn)."""

from __future__ import annotations

import argparse
import itertools
import re
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from page_fixtures import STUDENT_KIND, make_settings

from app import cli
from app.access.auth import COOKIE, cookie_value
from app.access.cross_site import HostPolicy, cross_site_reason, is_loopback, split_host
from app.access.throttle import FailureLimiter
from app.main import create_app
from tests.live_server import LiveServer

RUN = {"kind": STUDENT_KIND, "dataset": "synthetic", "subset": 100, "epochs": 1, "device": "cpu"}
EVIL = "http://evil.example"


# ---------------------------------------------------------------- the rules

@pytest.mark.parametrize("header, expected", [
    ("localhost:8000", ("localhost", 8000)), ("[::1]:8000", ("::1", 8000)), ("[::1]", ("::1", None)),
    ("Example.COM.", ("example.com", None)), ("127.0.0.1", ("127.0.0.1", None)), ("::1", ("::1", None)),
])
def test_split_host(header, expected):
    assert split_host(header) == expected


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("::1", True), ("localhost", True), ("127.0.0.2", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.10", False), ("10.0.0.1", False),
])
def test_which_binds_count_as_this_machine_only(host, loopback):
    assert is_loopback(host) is loopback


def test_a_loopback_server_answers_to_loopback_names_and_the_allowed_ones_only():
    policy = HostPolicy.for_server("127.0.0.1", ("kd.lab.example",))
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST", "kd.lab.example"):
        assert policy.allows(host), host
    for host in ("evil.example", "evil.example:8000", "localhost.evil.example", "192.168.1.5:8000", "", "testserver"):
        assert not policy.allows(host), host
    assert HostPolicy.for_server("127.0.0.1", ("*",)).allows("anything.example")


def test_a_wildcard_bind_also_answers_to_its_addresses_and_host_name():
    import socket

    policy = HostPolicy.for_server("0.0.0.0")
    assert policy.allows("192.168.1.5:8000") and policy.allows(f"{socket.gethostname()}:8000")
    assert not policy.allows("evil.example:8000")


@pytest.mark.parametrize("headers, refused", [
    ({}, False),  # curl, scripts
    ({"origin": "http://127.0.0.1:8000"}, False),
    ({"origin": "http://127.0.0.1:8000", "sec-fetch-site": "same-origin"}, False),
    ({"referer": "http://127.0.0.1:8000/launch"}, False),
    ({"origin": EVIL}, True),
    ({"origin": "http://127.0.0.1:9999"}, True),  # another local service is another origin
    ({"origin": "null"}, True),
    ({"referer": EVIL + "/page"}, True),
    ({"sec-fetch-site": "cross-site"}, True),
    ({"sec-fetch-site": "same-site"}, True),
    ({"origin": "http://127.0.0.1:8000", "sec-fetch-site": "cross-site"}, True),
])
def test_which_state_changes_count_as_cross_site(headers, refused):
    headers = {"host": "127.0.0.1:8000", **headers}
    assert (cross_site_reason("POST", headers) is not None) is refused
    assert cross_site_reason("GET", headers) is None  # reads change nothing


def test_an_origin_without_a_port_matches_the_default_port():
    assert cross_site_reason("POST", {"host": "kd.example", "origin": "https://kd.example"}) is None
    assert cross_site_reason("POST", {"host": "kd.example:443", "origin": "https://kd.example"}) is None
    assert cross_site_reason("POST", {"host": "kd.example:8443", "origin": "https://kd.example"}) is not None


# ---------------------------------------------------------------- through the real server

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("security"), worker=False)
    yield live
    live.stop()


def _runs(server) -> int:
    return server.api.get("/api/runs").json()["total"]


def test_cross_site_posts_are_refused_and_store_nothing(server):
    before = _runs(server)
    attempts = [
        ("/api/runs", {"json": RUN, "headers": {"Origin": EVIL}}),
        ("/api/experiments", {"json": {"dataset": "synthetic"}, "headers": {"Origin": EVIL}}),
        ("/launch/experiment", {"data": {"dataset": "synthetic"}, "headers": {"Origin": EVIL}}),
        ("/launch", {"data": {"kind": STUDENT_KIND, "dataset": "synthetic"}, "headers": {"Referer": EVIL + "/x"}}),
        ("/api/runs", {"content": "{}", "headers": {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}}),
        ("/api/runs", {"json": RUN, "headers": {"Sec-Fetch-Site": "same-site"}}),
    ]
    for path, request in attempts:
        response = server.api.post(path, **request)
        assert response.status_code == 403, (path, response.text)
        assert "another" in response.json()["detail"]
    assert _runs(server) == before


def test_cross_site_cancel_is_refused(server):
    run = server.api.post("/api/runs", json=RUN).json()
    response = server.api.post(f"/api/runs/{run['id']}/cancel", headers={"Origin": EVIL})
    assert response.status_code == 403
    assert server.api.post(f"/runs/{run['id']}/cancel", headers={"Origin": EVIL}).status_code == 403
    assert server.api.delete(f"/api/runs/{run['id']}", headers={"Origin": EVIL}).status_code == 403
    assert server.run(run["id"])["status"] == "queued"


def test_scripts_and_same_origin_requests_work(server):
    assert server.api.post("/api/runs", json=RUN).status_code == 201  # no Origin, no Referer: a script
    assert server.api.post("/api/runs", json=RUN, headers={"Origin": server.url,
                                                            "Sec-Fetch-Site": "same-origin"}).status_code == 201
    form = server.api.post("/launch", data={"kind": STUDENT_KIND, "dataset": "synthetic", "subset": "100"},
                           headers={"Origin": server.url, "Referer": server.url + "/launch"})
    assert form.status_code == 303 and form.headers["location"].startswith("/runs/")
    local = f"http://localhost:{server.port}"
    assert server.api.post("/api/runs", json=RUN, headers={"Host": f"localhost:{server.port}",
                                                            "Origin": local}).status_code == 201


def test_foreign_host_headers_are_refused(server):
    # A DNS-rebinding page talks to 127.0.0.1 under its own name: nothing, not even a read, answers it.
    before = _runs(server)
    for method, path in (("GET", "/"), ("GET", "/api/runs"), ("GET", "/launch"), ("POST", "/api/runs")):
        response = server.api.request(method, path, json=RUN, headers={"Host": f"evil.example:{server.port}"})
        assert response.status_code == 403, (method, path)
        assert "evil.example" in response.json()["detail"]
    assert _runs(server) == before
    assert server.api.get("/", headers={"Host": f"[::1]:{server.port}"}).status_code == 200


def test_the_checks_hold_with_a_token_too(tmp_path):
    token = "tok-" + "x" * 20
    live = LiveServer(tmp_path, worker=False, token=token)
    try:
        bearer = {"Authorization": f"Bearer {token}"}
        assert live.api.post("/api/runs", json=RUN, headers=bearer).status_code == 201
        assert live.api.post("/api/runs", json=RUN, headers={**bearer, "Origin": EVIL}).status_code == 403
        assert live.api.get("/api/runs", headers={**bearer, "Host": "evil.example"}).status_code == 403
        assert live.api.get("/api/runs", headers=bearer).json()["total"] == 1
    finally:
        live.stop()


def test_allowed_hosts_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_ALLOWED_HOSTS", "kd.lab.example, other.example")
    live = LiveServer(tmp_path, worker=False)
    try:
        assert live.api.get("/api/runs", headers={"Host": "kd.lab.example"}).status_code == 200
        assert live.api.get("/api/runs", headers={"Host": "evil.example"}).status_code == 403
    finally:
        live.stop()


# ---------------------------------------------------------------- sign-in attempts

def test_failure_limiter_counts_per_client_within_the_window():
    now = [0.0]
    limiter = FailureLimiter(limit=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("a") is None
        limiter.failed("a")
    assert limiter.retry_after("a") == 60 and limiter.retry_after("b") is None
    now[0] = 30.0
    assert limiter.retry_after("a") == 30
    now[0] = 60.5
    assert limiter.retry_after("a") is None


def test_a_repeated_wrong_value_is_no_new_guess():
    now = [0.0]
    limiter = FailureLimiter(limit=3, window_s=60, clock=lambda: now[0])
    for _ in range(10):
        limiter.failed("a", "stale cookie")
    limiter.failed("a", "guess 1")
    assert limiter.retry_after("a") is None
    limiter.failed("a", "guess 2")
    assert limiter.retry_after("a") == 60
    now[0] = 61.0  # once its first failure has left the window, the same value counts again
    limiter.failed("a", "stale cookie")
    assert limiter.retry_after("a") is None and len(limiter._failures["a"]) == 1


def _app_with_a_clock(tmp_path, token: str):
    """An app with ``token`` whose failure limiter reads the returned clock (``now[0]``, in seconds)."""
    app = create_app(replace(make_settings(tmp_path), api_token=token))
    now = [1000.0]
    app.state.token_limiter.clock = lambda: now[0]
    return app, now


def test_sign_in_is_limited_to_ten_failures_a_minute(tmp_path):
    token = "s3cret-token"
    app, now = _app_with_a_clock(tmp_path, token)
    with TestClient(app) as client:
        for attempt in range(10):
            response = client.post("/signin", data={"token": f"guess-{attempt}", "next": "/"}, follow_redirects=False)
            assert response.status_code == 200 and "not this server" in response.text
        for refused in (client.post("/signin", data={"token": token, "next": "/"}, follow_redirects=False),
                        client.get(f"/signin?token={token}", follow_redirects=False)):
            assert refused.status_code == 429
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            assert "Too many failed attempts" in refused.text and "kd_session" not in refused.cookies
        now[0] += 61
        response = client.post("/signin", data={"token": token, "next": "/"}, follow_redirects=False)
        assert response.status_code == 303 and "kd_session" in response.cookies


# ---------------------------------------------------------------- an exposed server

def _serve(monkeypatch, tmp_path, *argv: str, env_token: str | None = None):
    """Run `kd serve` up to uvicorn, returning the app it would serve and uvicorn's arguments."""
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.setenv("KD_DB_URL", f"sqlite:///{tmp_path / 'kd.sqlite'}")
    monkeypatch.delenv("KD_API_TOKEN", raising=False)
    if env_token:
        monkeypatch.setenv("KD_API_TOKEN", env_token)
    parser = argparse.ArgumentParser()
    cli.register_serve(parser.add_subparsers())
    args = parser.parse_args(["serve", "--no-worker", "--port", "8123", *argv])
    assert args.func(args) == 0
    return served


def test_a_non_loopback_bind_without_a_token_generates_and_requires_one(monkeypatch, tmp_path, capsys):
    served = _serve(monkeypatch, tmp_path, "--host", "0.0.0.0")
    printed = capsys.readouterr().out
    urls = re.findall(r"http://\S+/signin\?token=(\S+)", printed)
    assert urls and "127.0.0.1:8123" in printed and len(set(urls)) == 1
    token = urls[0]
    assert len(token) >= 24 and served["app"].state.settings.api_token == token
    with TestClient(served["app"], base_url="http://192.168.1.5:8123") as client:
        assert client.post("/api/runs", json=RUN).status_code == 401
        assert client.post("/launch", data={"kind": STUDENT_KIND}, follow_redirects=False).status_code == 303
        assert client.get("/api/runs").status_code == 401  # reads need it too
        assert client.get("/", follow_redirects=False).headers["location"] == "/signin?next=/"
        # The printed URL signs the browser in and lands on the dashboard without the token in the address.
        response = client.get(f"/signin?token={token}", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/"
        assert client.post("/api/runs", json={**RUN, "dataset": "synthetic"}).status_code == 201
        client.cookies.clear()
        assert client.post("/api/runs", json=RUN, headers={"Authorization": f"Bearer {token}"}).status_code == 201


def test_no_auth_opts_out_with_a_warning(monkeypatch, tmp_path, capsys, caplog):
    served = _serve(monkeypatch, tmp_path, "--host", "0.0.0.0", "--no-auth")
    assert served["app"].state.settings.api_token is None
    assert "without an API token" in caplog.text and "token=" not in capsys.readouterr().out


@pytest.mark.parametrize("argv, env_token", [(("--host", "127.0.0.1"), None), (("--host", "0.0.0.0"), "chosen-token")])
def test_a_loopback_bind_or_a_chosen_token_generates_nothing(monkeypatch, tmp_path, capsys, argv, env_token):
    served = _serve(monkeypatch, tmp_path, *argv, env_token=env_token)
    assert served["app"].state.settings.api_token == env_token
    assert "token=" not in capsys.readouterr().out


def test_allowed_host_flag_adds_names(monkeypatch, tmp_path):
    served = _serve(monkeypatch, tmp_path, "--allowed-host", "kd.lab.example")
    with TestClient(served["app"], base_url="http://kd.lab.example") as client:
        assert client.get("/api/runs").status_code == 200
    with TestClient(served["app"], base_url="http://other.example") as client:
        assert client.get("/api/runs").status_code == 403



# ---------------------------------------------------------------- guessing through any route

def test_wrong_bearer_tokens_and_cookies_count_toward_the_sign_in_limit(tmp_path):
    token = "s3cret-token"
    app, now = _app_with_a_clock(tmp_path, token)
    with TestClient(app) as client:
        for attempt in range(20):  # no credential at all is not a guess
            assert client.get("/api/runs").status_code == 401
        client.cookies.set(COOKIE, cookie_value("the token before a restart"))
        for attempt in range(20):  # nor is the same stale cookie, sent by every poll of every open tab
            assert client.get("/fragments/active", headers={"HX-Request": "true"}).status_code == 401
        client.cookies.clear()
        for attempt in range(5):
            assert client.get("/api/runs", headers={"Authorization": f"Bearer guess-{attempt}"}).status_code == 401
        for attempt in range(3):
            client.cookies.set(COOKIE, cookie_value(f"guess-{attempt}"))
            assert client.get("/", follow_redirects=False).status_code == 303
        client.cookies.clear()
        assert client.post("/signin", data={"token": "guess", "next": "/"}).status_code == 200  # the tenth
        for refused in (client.get("/api/runs", headers={"Authorization": f"Bearer {token}"}),
                        client.get("/runs/1/events", headers={"Authorization": f"Bearer {token}"}),
                        client.post("/signin", data={"token": token, "next": "/"}, follow_redirects=False)):
            assert refused.status_code == 429, refused.request.url
            assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "too many failed attempts" in client.get("/api/runs").json()["detail"]
        assert client.get("/static/app.css").status_code == 200  # public files are not held back
        now[0] += 61
        assert client.get("/api/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200


_guesses = itertools.count()


def _guess(server, address: str) -> int:
    """One new wrong token (a repeated one is no new guess), claiming to come from ``address``."""
    headers = {"Authorization": f"Bearer wrong-{next(_guesses)}", "X-Forwarded-For": address}
    return server.api.get("/api/runs", headers=headers).status_code


def test_forwarded_addresses_are_ignored_unless_the_proxy_is_named(tmp_path):
    # By default a new X-Forwarded-For per try is no new client: guessing is still limited.
    token = "tok-" + "y" * 20
    for name in ("default", "proxied"):
        (tmp_path / name).mkdir()
    server = LiveServer(tmp_path / "default", worker=False, token=token)
    try:
        # The sign-in URL carries the token; the access log shows it redacted.
        assert server.api.get(f"/signin?token={token}&next=/").status_code == 303
        server.api.cookies.clear()
        assert [_guess(server, f"203.0.113.{i}") for i in range(10)] == [401] * 10
        assert server.api.get("/api/runs", headers={"X-Forwarded-For": "203.0.113.99"}).status_code == 429
    finally:
        server.stop()
    log = (tmp_path / "default" / "server.log").read_text()
    assert token not in log and "GET /signin?token=[redacted]&next=/ HTTP/1.1" in log
    # Behind a named proxy, its X-Forwarded-For is the client: each address has its own limit.
    server = LiveServer(tmp_path / "proxied", worker=False, token=token, env={"KD_FORWARDED_ALLOW_IPS": "127.0.0.1"})
    try:
        assert [_guess(server, f"203.0.113.{i}") for i in range(12)] == [401] * 12
        assert [_guess(server, "198.51.100.7") for _ in range(11)] == [401] * 10 + [429]
        assert server.api.get("/api/runs", headers={"X-Forwarded-For": "203.0.113.99"}).status_code == 200
    finally:
        server.stop()


def test_public_read_opens_reads_with_a_warning(monkeypatch, tmp_path, caplog):
    served = _serve(monkeypatch, tmp_path, "--public-read", env_token="chosen-token")
    assert served["app"].state.settings.public_read
    assert "serving reads without the API token" in caplog.text
    with TestClient(served["app"], base_url="http://127.0.0.1:8123") as client:
        assert client.get("/api/runs").status_code == 200
        assert client.post("/api/runs", json=RUN).status_code == 401


def test_public_read_from_the_environment(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("KD_PUBLIC_READ", "1")
    assert _serve(monkeypatch, tmp_path, env_token="chosen-token")["app"].state.settings.public_read
    assert "serving reads without the API token" in caplog.text


@pytest.mark.parametrize("argv, options", [
    ((), {"proxy_headers": False, "forwarded_allow_ips": None}),
    (("--forwarded-allow-ips", "10.0.0.5,10.0.1.0/24"), {"proxy_headers": True, "forwarded_allow_ips": "10.0.0.5,10.0.1.0/24"}),
])
def test_uvicorn_believes_forwarded_headers_only_from_named_proxies(monkeypatch, tmp_path, argv, options):
    served = _serve(monkeypatch, tmp_path, *argv)
    assert {name: served[name] for name in options} == options
