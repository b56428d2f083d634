"""Security headers on every answer, and pages that need nothing the Content-Security-Policy refuses.
(The browser tests fail on any console error, a CSP violation included; tests/browser/test_framing.py
frames a page from another origin.)"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from page_fixtures import STUDENT_KIND, add_run, make_settings, session_of

from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "headers-token"


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


@pytest.fixture
def clients(tmp_path):
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as open_client, \
            TestClient(create_app(replace(settings, api_token=TOKEN))) as token_client:
        yield open_client, token_client


def test_every_kind_of_answer_carries_the_headers(clients):
    open_client, token_client = clients
    run = add_run(session_of(open_client), STUDENT_KIND)
    answers = {
        "page": open_client.get("/"), "run page": open_client.get(f"/runs/{run.id}"),
        "fragment": open_client.get("/fragments/active"), "api": open_client.get("/api/runs"),
        "csv": open_client.get(f"/api/runs/{run.id}/epochs.csv"), "static": open_client.get("/static/app.js"),
        "docs": open_client.get("/docs"), "redoc": open_client.get("/redoc"),
        "not found": open_client.get("/runs/999999"), "api 404": open_client.get("/api/runs/999999"),
        "422": open_client.post("/api/runs", json={}),
        "foreign host": open_client.get("/", headers={"Host": "evil.example"}),
        "sign in first": token_client.get("/", follow_redirects=False),
        "401": token_client.get("/api/runs"), "sign-in page": token_client.get("/signin"),
    }
    expected = {"x-frame-options": "DENY", "referrer-policy": "same-origin", "x-content-type-options": "nosniff"}
    for name, response in answers.items():
        assert {header: response.headers.get(header) for header in expected} == expected, name
        policy = directives(response.headers["content-security-policy"])
        assert policy["frame-ancestors"] == ["'none'"] and policy["default-src"] == ["'self'"], name
    assert answers["foreign host"].status_code == 403 and answers["401"].status_code == 401


def test_the_policy_allows_no_inline_script_and_nothing_from_another_host(clients):
    policy = directives(clients[0].get("/").headers["content-security-policy"])
    assert policy["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["style-src"]  # only style attributes get it, in style-src-attr
    for name, sources in policy.items():
        assert "'unsafe-eval'" not in sources and "*" not in sources, name
        assert all(s.startswith("'") or s in ("data:", "blob:") for s in sources), (name, sources)
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]


INLINE_HANDLER = re.compile(r"<[^>]*\s(on[a-z]+|hx-on[\w:-]*)\s*=", re.IGNORECASE)
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


@pytest.mark.parametrize("template", sorted(p.name for p in (ROOT / "templates").glob("*.html")))
def test_templates_hold_no_inline_script(template):
    # Every branch of every template, including those no test renders: a script element is a file
    # (src) or data (type="application/json"); no handler attributes, hx-on or javascript: URLs.
    source = (ROOT / "templates" / template).read_text()
    for attributes in SCRIPT_TAG.findall(source):
        assert "src=" in attributes or 'type="application/json"' in attributes, (template, attributes)
    assert not INLINE_HANDLER.search(source), (template, INLINE_HANDLER.search(source).group(0))
    assert not JAVASCRIPT_URL.search(source), template


@pytest.mark.parametrize("script", ["app.js", "api-docs.js"])
def test_our_scripts_evaluate_no_strings(script):
    source = (ROOT / "static" / script).read_text()
    assert not re.search(r"\beval\s*\(|\bnew\s+Function\b|\bset(Timeout|Interval)\s*\(\s*[\"'`]", source), script
    assert not re.search(r"setAttribute\(\s*[\"']on", source), script
