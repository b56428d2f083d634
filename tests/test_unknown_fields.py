"""Unknown fields: each is named, up to a bound, and a body of thousands gets a short answer (500,000
unknown keys once got a 45 MB 422)."""

from __future__ import annotations

import pytest

from app.store.errors import MAX_REPORTED_ERRORS, MAX_UNKNOWN_LISTED, InputError, field_error
from tests.app_fixtures import app, app_settings, client  # noqa: F401

JUNK = {f"junk{i}": i for i in range(5000)}
BODIES = {
    "run": ("/api/runs", {"kind": "student", "dataset": "synthetic", **JUNK}, ["body"]),
    "run params": ("/api/runs", {"kind": "kd", "dataset": "synthetic", "params": JUNK}, ["body", "params"]),
    "experiment": ("/api/experiments", {"dataset": "synthetic", **JUNK}, ["body"]),
    "experiment kind": ("/api/experiments", {"dataset": "synthetic", "kinds": {"kd": JUNK}}, ["body", "kinds", "kd"]),
    "study": ("/api/studies", {"dataset": "synthetic", "methods": ["student"], "seeds": [1], **JUNK}, ["body"]),
}


@pytest.mark.parametrize("name", BODIES)
def test_thousands_of_unknown_fields_get_a_short_answer(client, name):
    path, body, where = BODIES[name]
    before = client.get("/api/runs").json()["total"]
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert len(response.content) < 20_000, len(response.content)
    unknown = [e for e in response.json()["detail"] if e["type"] == "extra_forbidden"]
    assert [e["loc"] for e in unknown[:3]] == [[*where, "junk0"], [*where, "junk1"], [*where, "junk2"]]
    assert len(unknown) == MAX_UNKNOWN_LISTED + 1
    assert unknown[-1]["loc"] == where
    assert unknown[-1]["msg"] == f"{5000 - MAX_UNKNOWN_LISTED:,} more unknown fields not listed (of 5,000)"
    assert client.get("/api/runs").json()["total"] == before


def test_a_few_unknown_fields_are_each_named_beside_the_other_errors(client):
    response = client.post("/api/runs", json={"kind": "student", "dataset": "synthetic", "colour": "red",
                                              "size": 3, "lr": -1})
    detail = response.json()["detail"]
    assert {"loc": ["body", "lr"], "msg": "Input should be greater than 0", "type": "greater_than"} in detail
    assert [e["loc"] for e in detail if e["type"] == "extra_forbidden"] == [["body", "colour"], ["body", "size"]]


def test_any_list_of_errors_is_bounded_and_counts_what_it_leaves_out():
    errors = [field_error([f"f{i}"], "wrong") for i in range(MAX_REPORTED_ERRORS + 7)]
    bounded = InputError(errors).errors
    assert bounded[:MAX_REPORTED_ERRORS] == errors[:MAX_REPORTED_ERRORS]
    assert bounded[-1] == field_error([], f"7 more problems not listed (of {MAX_REPORTED_ERRORS + 7})",
                                      "too_many_errors")
    assert InputError(errors[:3]).errors == errors[:3]
