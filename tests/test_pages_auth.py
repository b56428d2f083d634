"""The dashboard under KD_API_TOKEN: sign-in, the cookie, pages that send a browser to sign in and back, and
--public-read (tests/test_auth_matrix.py checks every route)."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from page_fixtures import (  # noqa: F401  (db is a fixture, using this module's token client)
    STUDENT_KIND,
    add_run,
    db,
    make_client,
    make_settings,
    session_of,
    well_formed,
)
from sqlmodel import select

from app.access.auth import COOKIE, safe_next
from app.main import create_app
from app.store.models import Run

TOKEN = "s3cret-token"
LAUNCH = {"kind": STUDENT_KIND, "dataset": "synthetic", "subset": "100", "epochs": "1", "device": "cpu"}


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(replace(make_settings(tmp_path), api_token=TOKEN))) as client:
        yield client


def sign_in(client, token: str = TOKEN, next_path: str = "/launch"):
    return client.post("/signin", data={"token": token, "next": next_path}, follow_redirects=False)


def run_count(db) -> int:
    return len(db.exec(select(Run)).all())


def test_launch_without_the_cookie_stores_nothing_and_asks_to_sign_in(client, db):
    response = client.post("/launch", data=LAUNCH, headers={"Referer": "http://testserver/launch?kind=student"},
                           follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=/launch%3Fkind%3Dstudent"
    assert client.post("/launch/experiment", data={"dataset": "synthetic"}, follow_redirects=False).status_code == 303
    assert run_count(db) == 0
    # Following the redirect lands on the sign-in form, which returns to the launch page afterwards.
    doc = well_formed(client.get(response.headers["location"]).text)
    assert doc.find("input", name="next").attrs["value"] == "/launch?kind=student"
    assert doc.find("input", name="token").attrs["type"] == "password"


def test_htmx_actions_without_the_cookie_are_401_with_a_redirect_to_sign_in(client, db):
    run = add_run(db, STUDENT_KIND, status="queued")
    failed = add_run(db, STUDENT_KIND, status="failed", error="boom")
    for path in (f"/runs/{run.id}/cancel", f"/runs/{failed.id}/retry"):
        response = client.post(path, headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver/runs/{run.id}"})
        assert response.status_code == 401
        assert response.headers["hx-redirect"] == f"/signin?next=/runs/{run.id}"
    db.expire_all()
    assert db.get(Run, run.id).status == "queued" and db.get(Run, failed.id).status == "failed"


def test_wrong_token_shows_an_error_and_sets_nothing(client, db):
    response = sign_in(client, "wrong")
    assert response.status_code == 200 and COOKIE not in response.cookies
    assert "set-cookie" not in response.headers
    doc = well_formed(response.text)
    assert "not this server's API token" in doc.by_id("signin-error").text()
    assert client.post("/launch", data=LAUNCH, follow_redirects=False).status_code == 303
    assert run_count(db) == 0


def test_signed_in_browser_launches_and_signs_out(client, db):
    response = sign_in(client)
    assert response.status_code == 303 and response.headers["location"] == "/launch"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/" in cookie
    assert TOKEN not in cookie  # an HMAC of the token, not the token
    assert "Sign out" in client.get("/launch").text
    created = client.post("/launch", data=LAUNCH, follow_redirects=False)
    assert created.status_code == 303 and created.headers["location"].startswith("/runs/")
    assert run_count(db) == 1
    # The REST API takes the cookie too (SameSite=Strict keeps other sites from sending it).
    assert client.post("/api/runs", json={"kind": STUDENT_KIND, "dataset": "synthetic"}).status_code == 201
    signed_out = client.post("/signout", follow_redirects=False)
    assert signed_out.status_code == 303 and COOKIE in signed_out.headers["set-cookie"]
    assert client.post("/launch", data=LAUNCH, follow_redirects=False).status_code == 303
    assert run_count(db) == 2


def test_bearer_header_works_on_page_routes_and_a_forged_cookie_does_not(client, db):
    run = add_run(db, STUDENT_KIND, status="queued")
    client.cookies.set(COOKIE, TOKEN)  # the raw token is not the cookie's value
    assert client.post(f"/runs/{run.id}/cancel", follow_redirects=False).headers["location"].startswith("/signin")
    client.cookies.clear()
    response = client.post(f"/runs/{run.id}/cancel", headers={"Authorization": f"Bearer {TOKEN}"},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/runs/{run.id}"
    db.expire_all()
    assert db.get(Run, run.id).status == "cancelled"


def test_pages_send_the_browser_to_sign_in_and_back(client, db):
    run = add_run(db, STUDENT_KIND)
    for path in ("/", "/launch?kind=student", f"/runs/{run.id}", "/compare", "/studies", "/docs"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/signin?next=" + quote(path, safe="/"), path
    signin = well_formed(client.get(f"/signin?next=/runs/{run.id}").text)
    assert "before showing its runs" in signin.by_id("signin-form").text()
    assert sign_in(client, next_path=f"/runs/{run.id}").headers["location"] == f"/runs/{run.id}"
    assert f"#{run.id}" in well_formed(client.get(f"/runs/{run.id}").text).find("h1").text()


def test_public_read_keeps_pages_readable_and_offers_sign_in(tmp_path):
    settings = replace(make_settings(tmp_path), api_token=TOKEN, public_read=True)
    with TestClient(create_app(settings)) as client, session_of(client) as db:
        run = add_run(db, STUDENT_KIND)
        for path in ("/", "/launch", f"/runs/{run.id}", "/compare", "/fragments/active", "/api/runs"):
            assert client.get(path).status_code == 200, path
        doc = well_formed(client.get("/launch").text)
        assert doc.by_id("signin-link").attrs["href"] == "/signin?next=/launch"
        assert doc.by_id("signin-notice") is not None
        assert "Pages stay readable" in well_formed(client.get("/signin").text).by_id("signin-form").text()
        assert client.post("/launch", data=LAUNCH, follow_redirects=False).headers["location"].startswith("/signin")
        assert run_count(db) == 1


@pytest.mark.parametrize("target, expected", [
    ("/runs/3?x=1", "/runs/3?x=1"), ("//evil.example/x", "/"), ("https://evil.example/", "/"),
    ("/\\evil.example", "/"), ("javascript:alert(1)", "/"), ("", "/"), ("runs/3", "/"),
])
def test_sign_in_returns_only_to_local_paths(target, expected):
    assert safe_next(target) == expected


def test_without_a_token_nothing_changes(tmp_path):
    with make_client(tmp_path) as client:
        assert client.get("/signin?next=/launch", follow_redirects=False).headers["location"] == "/launch"
        html = client.get("/launch").text
        assert "signin-link" not in html and "signin-notice" not in html and "Sign out" not in html
        response = client.post("/launch", data=LAUNCH, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/runs/")
