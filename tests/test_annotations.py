"""Tags and notes on runs and studies through the API: given on create, changed by PATCH, checked (a 422
naming the field, nothing stored), kept in step with the tags table that filters read, and guarded by the
token like every other write."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from page_fixtures import STUDENT_KIND, add_run, client, db, make_settings  # noqa: F401  (fixtures)
from sqlmodel import select

from app.main import create_app
from app.runs.annotations import MAX_NOTE_LENGTH, MAX_TAG_LENGTH, MAX_TAGS
from app.runs.responses import RunOut
from app.store.models import Run, Study, Tag

RUN = {"kind": STUDENT_KIND, "dataset": "synthetic", "subset": 100, "epochs": 1, "device": "cpu"}
STUDY = {"dataset": "synthetic", "subset": 100, "methods": [STUDENT_KIND], "seeds": [1, 2], "epochs": 1,
         "device": "cpu"}


def indexed(db) -> set[tuple]:
    """What the tags table holds: (tag, run id, study id)."""
    db.expire_all()
    return {(t.tag, t.run_id, t.study_id) for t in db.exec(select(Tag)).all()}


def test_a_run_takes_tags_and_a_note_on_create_and_shows_them(client, db):
    response = client.post("/api/runs", json={**RUN, "tags": ["  baseline ", "cpu", "baseline"],
                                              "note": "  first try\nwith one epoch  "})
    assert response.status_code == 201, response.text
    run = response.json()
    RunOut.model_validate(run)
    # Stripped, repeats dropped, the order kept; the note stripped at its ends only.
    assert run["tags"] == ["baseline", "cpu"] and run["note"] == "first try\nwith one epoch"
    assert client.get(f"/api/runs/{run['id']}").json()["tags"] == ["baseline", "cpu"]
    assert indexed(db) == {("baseline", run["id"], None), ("cpu", run["id"], None)}
    # Tags are no part of the configuration: the same recipe untagged replicates it.
    other = client.post("/api/runs", json=RUN).json()
    assert other["tags"] == [] and other["note"] is None
    assert db.get(Run, run["id"]).group_key == db.get(Run, other["id"]).group_key


def test_patch_changes_a_runs_tags_and_note_and_leaves_out_fields_alone(client, db):
    run_id = client.post("/api/runs", json={**RUN, "tags": ["a"], "note": "keep"}).json()["id"]
    changed = client.patch(f"/api/runs/{run_id}", json={"tags": ["b", "c"]})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["tags"], changed.json()["note"]) == (["b", "c"], "keep")
    assert indexed(db) == {("b", run_id, None), ("c", run_id, None)}
    assert client.patch(f"/api/runs/{run_id}", json={"note": "   "}).json()["note"] is None  # blank: no note
    cleared = client.patch(f"/api/runs/{run_id}", json={"tags": [], "note": "why"}).json()
    assert (cleared["tags"], cleared["note"]) == ([], "why") and indexed(db) == set()
    # A finished run is annotated too: it is the one worth remembering.
    done = add_run(db, STUDENT_KIND, accuracy=0.7)
    assert client.patch(f"/api/runs/{done.id}", json={"tags": ["final"]}).json()["tags"] == ["final"]
    assert client.patch("/api/runs/999999", json={"tags": ["x"]}).status_code == 404


@pytest.mark.parametrize(("body", "loc"), [
    ({"tags": ["ok", ""]}, ["body", "tags", 1]),
    ({"tags": ["   "]}, ["body", "tags", 0]),
    ({"tags": ["x" * (MAX_TAG_LENGTH + 1)]}, ["body", "tags", 0]),
    ({"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}, ["body", "tags"]),
    ({"tags": ["a,b"]}, ["body", "tags", 0]),
    ({"tags": ["two\nlines"]}, ["body", "tags", 0]),
    ({"tags": "a"}, ["body", "tags"]),
    ({"tags": [3]}, ["body", "tags", 0]),
    ({"note": 7}, ["body", "note"]),
    ({"note": "n" * (MAX_NOTE_LENGTH + 1)}, ["body", "note"]),
    ({"colour": "red"}, ["body", "colour"]),
])
def test_bad_tags_and_notes_are_a_422_naming_the_field_and_store_nothing(client, db, body, loc):
    run_id = client.post("/api/runs", json={**RUN, "tags": ["kept"], "note": "kept"}).json()["id"]
    study_id = client.post("/api/studies", json={**STUDY, "tags": ["kept"]}).json()["id"]
    before = indexed(db)
    for path in (f"/api/runs/{run_id}", f"/api/studies/{study_id}"):
        response = client.patch(path, json=body)
        assert response.status_code == 422, (path, response.text)
        assert loc in [error["loc"] for error in response.json()["detail"]], response.json()
    assert client.get(f"/api/runs/{run_id}").json()["tags"] == ["kept"]
    assert client.get(f"/api/studies/{study_id}").json()["tags"] == ["kept"]
    assert indexed(db) == before
    # The same checks on create, beside the configuration's own errors: one answer lists them all.
    if set(body) <= {"tags", "note"}:
        count = len(db.exec(select(Run)).all())
        response = client.post("/api/runs", json={**RUN, "epochs": 0, **body})
        assert response.status_code == 422
        locs = [error["loc"] for error in response.json()["detail"]]
        assert loc in locs and ["body", "epochs"] in locs
        assert client.post("/api/studies", json={**STUDY, **body}).status_code == 422
        db.expire_all()
        assert len(db.exec(select(Run)).all()) == count and indexed(db) == before


def test_a_study_takes_tags_and_a_note_and_lists_show_them(client, db):
    created = client.post("/api/studies", json={**STUDY, "name": "tagged", "tags": ["sweep", "cpu"],
                                                 "note": "a two-seed check"})
    assert created.status_code == 201, created.text
    study = created.json()
    assert (study["tags"], study["note"]) == (["sweep", "cpu"], "a two-seed check")
    listed = client.get("/api/studies").json()["items"][0]
    assert (listed["tags"], listed["note"]) == (["sweep", "cpu"], "a two-seed check")
    assert indexed(db) == {("sweep", None, study["id"]), ("cpu", None, study["id"])}
    # Its runs keep their own (no) tags: the study's apply to them for filtering only.
    assert all(client.get(f"/api/runs/{i}").json()["tags"] == [] for i in study["run_ids"])
    changed = client.patch(f"/api/studies/{study['id']}", json={"tags": ["final"], "note": None}).json()
    assert (changed["tags"], changed["note"]) == (["final"], None)
    assert db.get(Study, study["id"], populate_existing=True).tags == ["final"]
    assert client.patch("/api/studies/999999", json={"note": "x"}).status_code == 404


def test_deleting_a_tagged_run_or_study_deletes_its_tags(client, db):
    run_id = client.post("/api/runs", json={**RUN, "tags": ["gone"]}).json()["id"]
    client.post(f"/api/runs/{run_id}/cancel")
    assert client.delete(f"/api/runs/{run_id}").status_code == 204
    study = client.post("/api/studies", json={**STUDY, "tags": ["gone"]}).json()
    client.patch(f"/api/runs/{study['run_ids'][0]}", json={"tags": ["member"]})
    client.post(f"/api/studies/{study['id']}/cancel")
    assert client.delete(f"/api/studies/{study['id']}").status_code == 204
    assert indexed(db) == set()


def test_patch_needs_the_token_like_every_write(tmp_path):
    good = {"Authorization": "Bearer s3cret"}
    with TestClient(create_app(replace(make_settings(tmp_path), api_token="s3cret"))) as client:
        run_id = client.post("/api/runs", json=RUN, headers=good).json()["id"]
        study_id = client.post("/api/studies", json=STUDY, headers=good).json()["id"]
        for path in (f"/api/runs/{run_id}", f"/api/studies/{study_id}"):
            assert client.patch(path, json={"tags": ["x"]}).status_code == 401
            assert client.patch(path, json={"tags": ["x"]}, headers={"Authorization": "Bearer no"}).status_code == 401
            assert client.get(path, headers=good).json()["tags"] == []
            assert client.patch(path, json={"tags": ["x"]}, headers=good).json()["tags"] == ["x"]


def test_openapi_documents_the_patch_bodies_and_the_new_fields(client):
    document = client.get("/openapi.json").json()
    paths, schemas = document["paths"], document["components"]["schemas"]
    for path in ("/api/runs/{run_id}", "/api/studies/{study_id}"):
        patch = paths[path]["patch"]
        body = patch["requestBody"]["content"]["application/json"]["schema"]
        assert body["title"] == "AnnotationsPatch" and set(body["properties"]) == {"tags", "note"}
        assert body["additionalProperties"] is False
        assert {"401", "404", "422"} <= set(patch["responses"])
    for create in ("/api/runs", "/api/studies"):
        body = paths[create]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert {"tags", "note"} <= set(body["properties"]), create
    assert {"tags", "note"} <= set(schemas["RunOut"]["properties"]) & set(schemas["StudyOut"]["properties"])


def test_a_cross_site_patch_is_refused_and_changes_nothing(client, db):
    run_id = client.post("/api/runs", json={**RUN, "tags": ["kept"]}).json()["id"]
    response = client.patch(f"/api/runs/{run_id}", json={"tags": ["x"]}, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert client.get(f"/api/runs/{run_id}").json()["tags"] == ["kept"] and indexed(db) == {("kept", run_id, None)}
