"""Fuzz every operation of the OpenAPI schema (schemathesis): no request may end in a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.app_fixtures import app, app_settings  # noqa: F401


@pytest.fixture
def api_schema(app):
    client_runs = [{"kind": "teacher", "dataset": "synthetic", "subset": 50, "epochs": 1},
                   {"kind": "student", "dataset": "synthetic"}]
    from fastapi.testclient import TestClient

    with TestClient(app) as client:  # a few rows, so that ids 1 and 2 exist
        for body in client_runs:
            assert client.post("/api/runs", json=body).status_code == 201
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(checks=[not_a_server_error])
