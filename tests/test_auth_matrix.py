"""With a token set, no route answers its data without it: every route of the application, classified here.

A route nobody classified fails the first test, so a new route is a decision, not an accident. The routes
come from the application itself, which covers the OpenAPI document and the page routers, and both are
checked against this table too.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from app_fixtures import wait_for
from fastapi.testclient import TestClient
from page_fixtures import STUDENT_KIND, TEACHER_KIND, add_run, make_settings, session_of
from sqlmodel import select
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from app.access.auth import COOKIE, cookie_value
from app.main import PAGE_ROUTERS, create_app
from app.store.models import Run, Study
from app.web.rendering import _api_routes

TOKEN = "matrix-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}

# Answers without a token: how a browser signs in (or drops its cookie), and the static files, which are
# the app's own scripts and styles and the vendored libraries, and hold no user data.
PUBLIC = {"GET /signin", "POST /signin", "POST /signout", "GET /static/{path}", "GET /static/api-docs/{path}"}

# Need the token. "api": a program's route, refused with 401; "page": a browser's, sent to sign in.
PRIVATE = {
    "GET /api/runs": "api", "GET /api/runs/{run_id}": "api", "GET /api/runs/{run_id}/epochs": "api",
    "GET /api/runs/{run_id}/epochs.csv": "api", "GET /api/runs/{run_id}/checkpoint": "api",
    "GET /api/runs/{run_id}/export": "api", "GET /api/runs/{run_id}/export/card": "api",
    "POST /runs/{run_id}/export": "page",
    "GET /api/experiments": "api", "GET /api/experiments/{experiment_id}": "api", "GET /api/leaderboard": "api",
    "GET /api/leaderboard/groups": "api", "GET /api/methods": "api", "GET /api/architectures": "api",
    "GET /api/datasets": "api", "POST /api/runs": "api", "PATCH /api/runs/{run_id}": "api",
    "POST /api/runs/{run_id}/cancel": "api", "POST /api/runs/{run_id}/retry": "api",
    "DELETE /api/runs/{run_id}": "api", "POST /api/experiments": "api", "GET /api/studies": "api",
    "GET /api/studies/{study_id}": "api", "GET /api/studies/{study_id}/export.json": "api",
    "GET /api/studies/{study_id}/runs.csv": "api", "GET /api/studies/{study_id}/groups.csv": "api",
    "GET /api/studies/{study_id}/table.md": "api", "GET /api/studies/{study_id}/table.tex": "api",
    "GET /api/studies/{study_id}/reproduction.csv": "api", "GET /api/reproduction": "api",
    "GET /api/reproduction.csv": "api", "GET /reproduction": "page",
    "POST /api/studies": "api", "PATCH /api/studies/{study_id}": "api", "POST /api/studies/{study_id}/cancel": "api",
    "DELETE /api/studies/{study_id}": "api", "GET /openapi.json": "api",
    "GET /runs/{run_id}/events": "page", "GET /studies": "page", "GET /studies/{study_id}": "page",
    "POST /studies/{study_id}/annotations": "page", "GET /fragments/studies/{study_id}/progress": "page",
    "GET /fragments/studies/{study_id}/results": "page", "POST /studies/{study_id}/cancel": "page",
    "POST /studies/{study_id}/delete": "page", "GET /": "page", "GET /fragments/leaderboard": "page",
    "GET /fragments/leaderboard/group/{key}": "page", "GET /fragments/active": "page", "GET /launch": "page",
    "GET /fragments/launch-fields": "page", "GET /fragments/launch-recipe": "page", "POST /launch": "page",
    "GET /fragments/launch-estimate": "page",
    "POST /launch/experiment": "page", "POST /launch/study": "page", "GET /fragments/study-count": "page",
    "GET /runs/{run_id}": "page", "POST /runs/{run_id}/annotations": "page", "POST /runs/{run_id}/cancel": "page",
    "POST /runs/{run_id}/retry": "page", "POST /runs/{run_id}/delete": "page", "GET /compare": "page",
    "GET /docs": "page", "GET /redoc": "page",
    "GET /api/teachers": "api", "POST /api/teachers/import": "api", "POST /launch/teacher": "page",
    "POST /api/benchmarks": "api", "POST /api/benchmarks/cost": "api", "GET /api/benchmarks": "api",
    "GET /api/benchmarks/{benchmark_id}": "api", "GET /api/benchmarks/{benchmark_id}/table.md": "api",
    "GET /benchmarks/{benchmark_id}": "page", "POST /launch/benchmark": "page", "GET /fragments/benchmark-cost": "page",
    "GET /api/latency": "api", "POST /api/latency": "api", "GET /networks": "page", "POST /networks/latency": "page",
    "POST /api/searches": "api", "GET /api/searches": "api", "GET /api/searches/{search_id}": "api",
    "POST /api/searches/{search_id}/confirm": "api", "POST /api/searches/{search_id}/cancel": "api",
    "GET /searches": "page", "GET /searches/{search_id}": "page", "GET /fragments/searches/{search_id}": "page",
    "POST /searches/{search_id}/confirm": "page", "POST /searches/{search_id}/cancel": "page",
    "POST /searches": "page",
}
NEED_A_FILE = ("GET /api/runs/{run_id}/checkpoint", "GET /api/runs/{run_id}/export", "GET /api/runs/{run_id}/export/card")
STATIC_FILES = {"/static/{path}": "app.css", "/static/api-docs/{path}": "swagger-ui.css"}


def served_routes(app) -> set[str]:
    """Every "METHOD /path" the application answers, HEAD aside (it follows GET)."""
    routes = {f"{method} {prefix}{route.path}" for prefix, route in _api_routes(app.routes, "")
              for method in route.methods - {"HEAD"}}
    routes |= {f"GET {route.path}/{{path}}" for route in app.routes if isinstance(route, Mount)}
    routes |= {f"{method} {route.path}" for route in app.routes
               if isinstance(route, Route) and not isinstance(route, APIRoute) for method in route.methods - {"HEAD"}}
    return routes


@pytest.fixture
def app(tmp_path):
    return create_app(replace(make_settings(tmp_path), api_token=TOKEN))


@pytest.fixture
def client(app):
    with TestClient(app) as client:
        yield client


@pytest.fixture
def ids(client) -> dict[str, str]:
    """Real ids for the paths' parameters, so that a refused read is refused with data behind it."""
    with session_of(client) as db:
        run = add_run(db, STUDENT_KIND)
        run_id, key = run.id, run.group_key
        teacher_id = add_run(db, TEACHER_KIND).id
    search = client.post("/api/searches", headers=BEARER, json={
        "methods": ["kd"], "teacher_run_id": teacher_id, "space": ["kd.temperature=1:4"], "trials": 1,
        "dataset": "synthetic", "subset": 100, "epochs": 1, "validation": 0.2, "device": "cpu"})
    study = client.post("/api/studies", headers=BEARER, json={
        "dataset": "synthetic", "subset": 100, "methods": [STUDENT_KIND], "seeds": [1], "epochs": 1, "device": "cpu"})
    experiment = client.post("/api/experiments", headers=BEARER, json={"dataset": "synthetic", "subset": 100})
    benchmark = client.post("/api/benchmarks", headers=BEARER, json={
        "pairs": ["resnet56:resnet20"], "methods": ["kd"], "seeds": [1], "epochs": 1, "dataset": "synthetic100"})
    assert study.status_code == 201 and experiment.status_code == 201 and benchmark.status_code == 201
    assert search.status_code == 201, search.text
    wait_for(lambda: _trial_queued(client, search.json()["id"]), timeout=30, interval=0.05,
             what="the search driver to queue its trial")
    return {"run_id": str(run_id), "study_id": str(study.json()["id"]),
            "experiment_id": str(experiment.json()["id"]), "key": key, "benchmark_id": str(benchmark.json()["id"]),
            "search_id": str(search.json()["id"])}


def _trial_queued(client, search_id: int) -> bool:
    # The server's search driver queues the search's one trial on its next pass: until it has, the store
    # could change under a test that checks a refused request stored nothing.
    with session_of(client) as db:
        return db.exec(select(Run).where(Run.search_id == search_id)).first() is not None


def concrete(route: str, ids: dict[str, str]) -> tuple[str, str]:
    method, path = route.split(" ", 1)
    return method, re.sub(r"\{(\w+)\}", lambda m: STATIC_FILES.get(path) or ids[m.group(1)], path)


def refused_as(response, kind: str) -> bool:
    if kind == "api":
        return response.status_code == 401 and response.json()["detail"] == "missing or wrong API token"
    return response.status_code == 303 and response.headers["location"].startswith("/signin?next=")


def stored(client) -> tuple[int, int, list[str]]:
    with session_of(client) as db:
        runs = db.exec(select(Run)).all()
        return len(runs), len(db.exec(select(Study)).all()), sorted(f"{r.id}:{r.status}" for r in runs)


def test_every_route_is_classified(app):
    served, classified = served_routes(app), PUBLIC | set(PRIVATE)
    assert served - classified == set(), "classify these routes in PUBLIC or PRIVATE"
    assert classified - served == set(), "these classified routes no longer exist"
    assert not PUBLIC & set(PRIVATE)


def test_the_openapi_document_and_the_page_routers_are_covered(client):
    document = client.get("/openapi.json", headers=BEARER).json()
    operations = {f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops}
    pages = {f"{method} {route.path}" for router in PAGE_ROUTERS for route in router.routes
             for method in route.methods - {"HEAD"}}
    assert len(operations) >= 29 and len(pages) >= 25
    assert operations <= set(PRIVATE) and pages <= set(PRIVATE)


@pytest.mark.parametrize("credentials", [{}, {"headers": {"Authorization": "Bearer wrong"}},
                                         {"cookies": {COOKIE: cookie_value("another-token")}}],
                         ids=["none", "wrong-bearer", "wrong-cookie"])
def test_no_private_route_answers_without_the_token(app, client, ids, credentials):
    # Fresh limits for each kind of credential: ten wrong ones in a row would (rightly) end in 429.
    app.state.token_limiter.limit = 10_000
    before = stored(client)
    client.cookies.clear()
    for cookie, value in credentials.get("cookies", {}).items():
        client.cookies.set(cookie, value)
    for route, kind in PRIVATE.items():
        method, path = concrete(route, ids)
        response = client.request(method, path, headers=credentials.get("headers"), follow_redirects=False,
                                  **({"json": {}} if method in ("POST", "PATCH") else {}))
        assert refused_as(response, kind), (route, response.status_code, response.text[:200])
        assert ids["run_id"] not in response.text.replace(f"next=/runs/{ids['run_id']}", ""), route
    assert stored(client) == before


def test_with_the_token_every_private_route_answers(client, ids):
    for route in PRIVATE:
        method, path = concrete(route, ids)
        if method != "GET":  # on an id that does not exist: answered (404, 422, a form), not refused
            path = path.replace(f"/{ids['run_id']}", "/987654").replace(f"/{ids['study_id']}", "/987654")
        response = client.request(method, path, headers=BEARER, follow_redirects=False,
                                  **({"json": {}} if method in ("POST", "PATCH") else {}))
        assert response.status_code not in (401, 403, 429), (route, response.status_code, response.text[:200])
        assert not response.headers.get("location", "").startswith("/signin"), route
        if method == "GET" and route not in NEED_A_FILE:  # a stored run has no checkpoint
            assert response.status_code == 200, (route, response.status_code, response.text[:200])


def test_public_routes_answer_without_the_token(client):
    for route in PUBLIC:
        method, path = concrete(route, {})
        response = client.request(method, path, follow_redirects=False)
        assert response.status_code in (200, 303), route
        assert not response.headers.get("location", "").startswith("/signin"), route


def test_public_read_opens_reads_and_only_reads(tmp_path):
    app = create_app(replace(make_settings(tmp_path), api_token=TOKEN, public_read=True))
    with TestClient(app) as client:
        run_ids = {"run_id": str(add_run(session_of(client), STUDENT_KIND).id)}
        ids = {**run_ids, "study_id": "987654", "experiment_id": "987654", "key": "k", "benchmark_id": "987654",
               "search_id": "987654"}
        for route, kind in PRIVATE.items():
            method, path = concrete(route, ids)
            response = client.request(method, path, follow_redirects=False,
                                      **({"json": {}} if method in ("POST", "PATCH") else {}))
            if method == "GET":
                assert response.status_code not in (401, 403), (route, response.status_code)
                assert not response.headers.get("location", "").startswith("/signin"), route
            else:
                assert refused_as(response, kind), (route, response.status_code)
