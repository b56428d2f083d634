"""Tags and notes on the run page and the study page: shown, edited in place (htmx) with what is refused said
beside its field and the input kept, and listed with the studies."""

from __future__ import annotations

from page_fixtures import STUDENT_KIND, add_run, client, db, well_formed  # noqa: F401  (fixtures)

from app.store.models import Run, Study

HTMX = {"HX-Request": "true"}
STUDY = {"dataset": "synthetic", "subset": 100, "methods": [STUDENT_KIND], "seeds": [1, 2], "epochs": 1,
         "device": "cpu"}


def card(doc):
    return doc.by_id("annotations")


def shown_tags(node) -> list[tuple[str, bool]]:
    return [(a.text(), "inherited" in a.classes) for a in node.find_all("a", class_="tag")]


def test_the_run_page_shows_its_tags_its_studys_and_its_note(client, db):
    study = client.post("/api/studies", json={**STUDY, "tags": ["sweep"]}).json()
    run_id = study["run_ids"][0]
    client.patch(f"/api/runs/{run_id}", json={"tags": ["first", "sweep"], "note": "line one\nline two"})
    doc = well_formed(client.get(f"/runs/{run_id}").text)
    # Its own tags, then the study's it does not have itself, each a link to the board filtered by it.
    assert shown_tags(card(doc)) == [("first", False), ("sweep", False)]
    assert card(doc).find("a", class_="tag").attrs["href"] == "/?view=runs&tag=first"
    assert doc.by_id("annotations-note").text() == "line one line two"
    assert "note-text" in doc.by_id("annotations-note").classes  # kept as written (pre-wrap)
    client.patch(f"/api/runs/{run_id}", json={"tags": []})
    doc = well_formed(client.get(f"/runs/{run_id}").text)
    assert shown_tags(card(doc)) == [("sweep", True)]
    assert "Its study's tags (sweep) tag it too" in doc.by_id("help-tags").text()
    # The form holds what is stored, ready to edit.
    assert doc.by_id("in-tags").attrs["value"] == "" and doc.by_id("in-note").text() == "line one line two"
    bare = add_run(db, STUDENT_KIND, accuracy=0.7)
    doc = well_formed(client.get(f"/runs/{bare.id}").text)
    assert card(doc).find("a", class_="tag") is None and doc.by_id("annotations-note").text() == "No note."


def test_editing_on_the_run_page_saves_and_redraws_the_card(client, db):
    run = add_run(db, STUDENT_KIND, accuracy=0.7)
    doc = well_formed(client.get(f"/runs/{run.id}").text)
    form = doc.by_id("annotations-edit").find("form")
    assert form.attrs["hx-post"] == form.attrs["action"] == f"/runs/{run.id}/annotations"
    assert form.attrs["hx-target"] == "#annotations"
    answer = client.post(form.attrs["hx-post"], data={"tags": " final, cpu ,, final,", "note": "  keep this  "},
                         headers=HTMX)
    assert answer.status_code == 200
    fragment = well_formed(answer.text)
    assert fragment.by_id("annotations-saved").text() == "Saved"
    assert shown_tags(fragment) == [("final", False), ("cpu", False)]
    assert fragment.by_id("in-tags").attrs["value"] == "final, cpu"
    stored = db.get(Run, run.id, populate_existing=True)
    assert (stored.tags, stored.note) == (["final", "cpu"], "keep this")
    assert client.get("/api/runs", params={"tag": "cpu"}).json()["total"] == 1
    # Emptied fields remove them.
    client.post(form.attrs["hx-post"], data={"tags": "", "note": ""}, headers=HTMX)
    stored = db.get(Run, run.id, populate_existing=True)
    assert (stored.tags, stored.note) == ([], None)
    # Without JavaScript the form posts and goes back to the page.
    plain = client.post(form.attrs["action"], data={"tags": "a", "note": ""}, follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == f"/runs/{run.id}"


def test_a_refused_edit_says_why_beside_the_field_and_keeps_the_input(client, db):
    run = add_run(db, STUDENT_KIND, accuracy=0.7)
    client.patch(f"/api/runs/{run.id}", json={"tags": ["kept"], "note": "kept"})
    long_tag = "x" * 41
    typed = {"tags": f"ok, {long_tag}", "note": "a new note"}
    fragment = well_formed(client.post(f"/runs/{run.id}/annotations", data=typed, headers=HTMX).text)
    assert fragment.find(id="annotations-saved") is None
    assert "open" in fragment.by_id("annotations-edit").attrs
    error = fragment.by_id("err-tags").text()
    assert long_tag in error and "at most 40 characters" in error
    assert fragment.by_id("in-tags").attrs["aria-invalid"] == "true"
    assert fragment.by_id("in-tags").attrs["value"] == typed["tags"] and fragment.by_id("in-note").text() == typed["note"]
    # Nothing stored: the card still shows what was.
    assert shown_tags(fragment) == [("kept", False)]
    stored = db.get(Run, run.id, populate_existing=True)
    assert (stored.tags, stored.note) == (["kept"], "kept")
    too_many = ", ".join(f"t{i}" for i in range(21))
    fragment = well_formed(client.post(f"/runs/{run.id}/annotations", data={"tags": too_many, "note": ""},
                                       headers=HTMX).text)
    assert "at most 20 tags" in fragment.by_id("err-tags").text()
    # Without JavaScript the page itself comes back with the errors.
    page = well_formed(client.post(f"/runs/{run.id}/annotations", data=typed).text)
    assert long_tag in page.by_id("err-tags").text() and page.find(id="run-summary") is not None
    assert client.post("/runs/999999/annotations", data=typed, headers=HTMX).status_code == 404


def test_the_study_page_edits_its_tags_and_note_and_the_list_shows_them(client, db):
    study_id = client.post("/api/studies", json={**STUDY, "name": "check", "tags": ["sweep"]}).json()["id"]
    doc = well_formed(client.get(f"/studies/{study_id}").text)
    assert shown_tags(card(doc)) == [("sweep", False)]
    # A study's tags choose configurations: they link to the board by configuration.
    assert card(doc).find("a", class_="tag").attrs["href"] == "/?tag=sweep"
    form = doc.by_id("annotations-edit").find("form")
    assert form.attrs["hx-post"] == f"/studies/{study_id}/annotations"
    fragment = well_formed(client.post(form.attrs["hx-post"], data={"tags": "sweep, seeds", "note": "why it ran"},
                                       headers=HTMX).text)
    assert fragment.by_id("annotations-saved").text() == "Saved"
    assert shown_tags(fragment) == [("sweep", False), ("seeds", False)]
    study = db.get(Study, study_id, populate_existing=True)
    assert (study.tags, study.note) == (["sweep", "seeds"], "why it ran")
    refused = well_formed(client.post(form.attrs["hx-post"], data={"tags": "x" * 41, "note": ""}, headers=HTMX).text)
    assert "at most 40 characters" in refused.by_id("err-tags").text()
    row = well_formed(client.get("/studies").text).find("tr", data_study_id=str(study_id))
    assert shown_tags(row) == [("sweep", False), ("seeds", False)] and "why it ran" in row.text()
    plain = client.post(form.attrs["action"], data={"tags": "", "note": ""}, follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == f"/studies/{study_id}"
