"""The launch page's study form and the tutorial experiment's seeds field (parsed HTML, no browser)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from page_fixtures import (  # noqa: F401  (client and db are fixtures)
    KD_KINDS,
    STUDENT_KIND,
    TEACHER_KIND,
    add_run,
    client,
    db,
    make_settings,
    session_of,
    well_formed,
)
from sqlmodel import select

from app.main import create_app
from app.runs.form import FormError, parse_seeds
from app.store.models import Experiment, Run, Study
from app.studies.form import DEFAULT_METHODS, STUDY_METHODS, parse_grid, study_payload
from kdcore.registry import EXPERIMENT_KINDS, METHODS
from kdcore.studies.study import parse_spec, run_count

KD = next(k for k in KD_KINDS if "temperature" in METHODS[k].param_names())
STUDY = {"methods": [STUDENT_KIND, KD], "seeds": "1,2,3", "dataset": "synthetic", "subset": "100"}


def stored(db) -> tuple[int, int, int]:
    return tuple(len(db.exec(select(model)).all()) for model in (Study, Run, Experiment))


def study_form(doc):
    return doc.by_id("study-form")


# ---------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, seeds", [("1,2,3", [1, 2, 3]), (" 4, 5 ", [4, 5]), ("1 2 3", [1, 2, 3]),
                                         ("3", [1, 2, 3]), ("1", [1]), ("7,", [7]), ("0,", [0])])
def test_seeds_are_a_list_or_a_count(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [("", "give seeds"), ("1,x", "'x'"), ("1.5", "whole numbers"),
                                           ("-1,2", "'-1'"), ("0", "between 1 and 100"), ("101", "between 1")])
def test_unreadable_seeds_say_why(text, message):
    with pytest.raises(FormError) as caught:
        parse_seeds(text)
    assert [e["loc"] for e in caught.value.errors] == [["seeds"]] and message in caught.value.errors[0]["msg"]


def test_grid_lines_become_typed_values():
    grid = parse_grid("kd.temperature = 1, 2, 4.5\n\n  kd.standardize=true,false \ndkd.alpha = 1e-1, x")
    assert grid == {"kd.temperature": [1, 2, 4.5], "kd.standardize": [True, False], "dkd.alpha": [0.1, "x"]}
    assert parse_grid("kd.temperature =") == {"kd.temperature": []}  # kdcore.studies.study says "give a value"


@pytest.mark.parametrize("text, loc, message", [
    ("kd.temperature 1, 2", ["grid", "line 1"], "line 1: write method.param = values"),
    ("kd.temperature = 1\n= 2", ["grid", "line 2"], "line 2"),
    ("kd.temperature = 1\nkd.temperature = 2", ["grid", "kd.temperature"], "two lines"),
])
def test_bad_grid_lines_name_their_line_or_key(text, loc, message):
    with pytest.raises(FormError) as caught:
        parse_grid(text)
    [error] = caught.value.errors
    assert error["loc"] == loc and message in error["msg"]


def test_the_payload_keeps_only_what_was_given():
    payload = study_payload({"methods": [STUDENT_KIND, KD], "seeds": ["3"], "epochs": [""],
                             "teacher_per_seed": ["false", "true"], "architectures": ["resnet20", "resnet8x4"],
                             "grid": ["kd.temperature=2"], "subset": [" 100 "], "teacher_run_id": [""], "preset": [""]})
    assert payload == {"methods": [STUDENT_KIND, KD], "seeds": [1, 2, 3], "teacher_per_seed": True, "subset": "100",
                       "architectures": ["resnet20", "resnet8x4"], "grid": {"kd.temperature": [2]}}
    assert "teacher_per_seed" not in study_payload({"methods": [KD], "seeds": ["1"], "teacher_per_seed": ["false"]})
    with pytest.raises(FormError) as caught:
        study_payload({"methods": [KD], "seeds": ["x"], "grid": ["nonsense"]})
    assert [e["loc"][0] for e in caught.value.errors] == ["seeds", "grid"]  # both, in one answer


# ---------------------------------------------------------------- the form

def test_the_study_form_offers_every_method_but_the_teacher_with_its_description(client, db):
    done = add_run(db, TEACHER_KIND, accuracy=0.9)
    add_run(db, TEACHER_KIND, status="failed")
    doc = well_formed(client.get("/launch").text)
    form = study_form(doc)
    assert form.attrs["method"] == "post" and form.attrs["action"] == "/launch/study"
    boxes = form.find_all("input", type="checkbox", name="methods")
    assert [b.attrs["value"] for b in boxes] == list(STUDY_METHODS) == [k for k in METHODS if not METHODS[k].teaches]
    assert [b.attrs["value"] for b in boxes if "checked" in b.attrs] == list(DEFAULT_METHODS) == [STUDENT_KIND, KD]
    for box in boxes:
        assert METHODS[box.attrs["value"]].description in box.parent.text()
    networks = [b.attrs["value"] for b in form.find_all("input", name="architectures")]
    assert {"tutorial_student", "resnet32x4"} <= set(networks) and not any("checked" in b.attrs for b in
                                                                          form.find_all("input", name="architectures"))
    assert doc.by_id("study-in-seeds").attrs["value"] == "1, 2, 3"
    teachers = [o.attrs["value"] for o in doc.by_id("study-in-teacher_run_id").find_all("option")]
    assert teachers == ["", str(done.id)]  # train one, or the completed teacher (not the failed one)
    assert doc.by_id("study-in-teacher_per_seed").attrs["type"] == "checkbox"
    assert doc.by_id("study-in-grid").tag == "textarea"
    assert f"{KD}.temperature" in doc.by_id("study-grid-help").text()
    # Two methods over three seeds and the one teacher the study trains.
    count = doc.by_id("study-count-text")
    assert count.attrs["data-count"] == "7" and "limit 500" in count.text()
    assert doc.by_id("study-count").attrs["hx-get"] == "/fragments/study-count"
    assert doc.by_id("study-in-dataset").find("option", selected=True).attrs["value"]


def test_the_count_fragment_follows_the_form(client, db):
    teacher = add_run(db, TEACHER_KIND)
    base = [("methods", STUDENT_KIND), ("methods", KD), ("seeds", "1,2,3,4"), ("grid", f"{KD}.temperature = 1, 2, 4")]
    doc = well_formed(client.get("/fragments/study-count", params=base).text)
    assert doc.find("html") is None
    spec = parse_spec({"methods": [STUDENT_KIND, KD], "seeds": [1, 2, 3, 4], "grid": {f"{KD}.temperature": [1, 2, 4]}})
    assert doc.by_id("study-count-text").attrs["data-count"] == str(run_count(spec)) == "17"
    per_seed = well_formed(client.get("/fragments/study-count", params=[*base, ("teacher_per_seed", "true")]).text)
    assert per_seed.by_id("study-count-text").attrs["data-count"] == "20"
    given = well_formed(client.get("/fragments/study-count", params=[*base, ("teacher_run_id", teacher.id)]).text)
    assert given.by_id("study-count-text").attrs["data-count"] == "16" and "teacher" not in given.by_id(
        "study-count-text").text()
    # The grid's help, swapped out of band, lists the chosen methods' hyperparameters only.
    help_box = doc.by_id("study-grid-help")
    assert help_box.attrs["hx-swap-oob"] == "true"
    assert f"{KD}.temperature" in help_box.text()
    other = next(k for k in KD_KINDS if k != KD)
    assert f"{other}." not in help_box.text()


@pytest.mark.parametrize("params, message", [
    ([("methods", KD)], "give seeds"),
    ([("seeds", "1,2")], "choose at least one method"),
    ([("methods", KD), ("seeds", "1,1")], "distinct"),
])
def test_the_count_fragment_says_why_it_cannot_count(client, params, message):
    doc = well_formed(client.get("/fragments/study-count", params=params).text)
    count = doc.by_id("study-count-text")
    assert "data-count" not in count.attrs and message in count.text()


BAD_GRID_LINES = [f"{KD}.tempreature = 1, 2", "cosine.temperature = 1", f"{KD}.temperature = -1",
                  f"{KD}.temperature = warm", f"{KD}.temperature = 1, 1", "temperature = 4"]


@pytest.mark.parametrize("line", BAD_GRID_LINES)
def test_the_count_refuses_a_grid_line_as_the_submit_does_in_its_words(client, db, line):
    form = {**STUDY, "grid": line}
    count = well_formed(client.get("/fragments/study-count", params=form).text).by_id("study-count-text")
    before = stored(db)
    submitted = well_formed(client.post("/launch/study", data=form, follow_redirects=False).text)
    assert stored(db) == before
    message = submitted.by_id("study-err-grid").text()
    assert "data-count" not in count.attrs and count.text() == f"Run count: {message}"


def test_a_count_past_the_limit_is_flagged(client):
    params = [("methods", KD), ("seeds", "100"), ("grid", f"{KD}.temperature = 1, 2, 3, 4, 5, 6")]
    count = well_formed(client.get("/fragments/study-count", params=params).text).by_id("study-count-text")
    assert count.attrs["data-count"] == "601" and "error" in count.classes
    assert "more than the limit of 500" in count.text()


def test_submitting_a_study_stores_its_runs_and_goes_to_its_page(client, db):
    form = {**STUDY, "grid": f"{KD}.temperature = 1, 4", "epochs": "2", "teacher_epochs": "3",
            "teacher_per_seed": ["false", "true"], "name": "kd vs student", "teacher_run_id": "", "preset": ""}
    response = client.post("/launch/study", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    study_id = int(response.headers["location"].removeprefix("/studies/"))
    study = db.get(Study, study_id)
    assert study.name == "kd vs student" and study.spec["teacher_per_seed"] is True
    runs = db.exec(select(Run).where(Run.study_id == study_id)).all()
    assert len(runs) == study.total_runs == 3 + 3 * (1 + 2)
    teachers = {run.seed: run.id for run in runs if run.kind == TEACHER_KIND}
    assert sorted(teachers) == [1, 2, 3]
    for run in runs:
        assert run.config["epochs"] == (3 if run.kind == TEACHER_KIND else 2)
        if run.kind == KD:
            assert run.teacher_run_id == teachers[run.seed]
    assert sorted(run.config["params"]["temperature"] for run in runs if run.kind == KD) == [1, 1, 1, 4, 4, 4]
    api = client.get(f"/api/studies/{study_id}").json()
    assert api["spec"]["grid"] == {f"{KD}.temperature": [1, 4]} and api["progress"]["queued"] == 12


def test_a_study_may_distil_from_an_existing_teacher_on_chosen_networks(client, db):
    teacher = add_run(db, TEACHER_KIND)
    form = {**STUDY, "seeds": "2", "teacher_run_id": str(teacher.id), "architectures": ["resnet8x4", "resnet20"]}
    response = client.post("/launch/study", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    runs = db.exec(select(Run).where(Run.study_id == int(response.headers["location"].rsplit("/", 1)[1]))).all()
    assert len(runs) == 2 * 2 * 2 and not any(run.kind == TEACHER_KIND for run in runs)
    assert {run.teacher_run_id for run in runs if run.kind == KD} == {teacher.id}
    assert {run.architecture for run in runs} == {"resnet8x4", "resnet20"}
    assert {run.seed for run in runs} == {1, 2}


BAD_STUDIES = [
    ({"methods": []}, "methods", "choose at least one method"),
    ({"methods": [STUDENT_KIND, "bogus"]}, "methods", "bogus: unknown method"),
    ({"grid": f"{KD}.alpha = 1, 2"}, "grid", f"{KD}.alpha: {KD} has no hyperparameter 'alpha'"),
    ({"grid": f"{STUDENT_KIND}.temperature = 1"}, "grid", "no hyperparameter"),
    ({"grid": "just words"}, "grid", "line 1"),
    ({"grid": f"{KD}.temperature = 0, 1"}, "grid", f"{KD}.temperature:"),
    ({"seeds": "a, b"}, "seeds", "whole numbers"),
    ({"seeds": "1, 1"}, "seeds", "distinct"),
    ({"seeds": "100", "grid": f"{KD}.temperature = 1, 2, 3, 4, 5, 6"}, "grid", "at most 500 are allowed"),
    ({"teacher_run_id": "STUDENT"}, "teacher_run_id", "not a teacher"),
    ({"teacher_run_id": "TEACHER", "teacher_per_seed": "true"}, "teacher_per_seed", "it trains none"),
    ({"methods": [STUDENT_KIND], "teacher_epochs": "5"}, "teacher_epochs", "no method of this study distils"),
    ({"dataset": "nope"}, "dataset", "unknown dataset"),
    ({"subset": "3"}, "subset", "at least 10"),
    ({"epochs": "0"}, "epochs", "greater than or equal to 1"),
    ({"teacher_epochs": "many"}, "teacher_epochs", "valid integer"),
    ({"architectures": ["resnet20", "nonet"]}, "architectures", "unknown architecture 'nonet'"),
    ({"validation": "0.9"}, "validation", "less than or equal to 0.5"),
]


@pytest.mark.parametrize("change, field, message", BAD_STUDIES, ids=[f"{c[1]}-{c[2][:24]}" for c in BAD_STUDIES])
def test_a_bad_study_shows_its_error_beside_the_field_and_stores_nothing(client, db, change, field, message):
    student, teacher = add_run(db, STUDENT_KIND), add_run(db, TEACHER_KIND)
    change = {k: {"STUDENT": str(student.id), "TEACHER": str(teacher.id)}.get(v, v) if isinstance(v, str) else v
              for k, v in change.items()}
    before = stored(db)
    response = client.post("/launch/study", data={**STUDY, **change}, follow_redirects=False)
    assert response.status_code == 200
    doc = well_formed(response.text)
    error = doc.by_id(f"study-err-{field}")
    assert message in error.text(), error.text()
    assert "invalid" in doc.by_id(f"study-field-{field}").classes
    assert doc.find(id="study-error") is None  # nothing left over above the form
    assert "autofocus" in doc.by_id("study-invalid").attrs
    assert stored(db) == before
    # The person's input is kept.
    form = study_form(doc)
    checked = [b.attrs["value"] for b in form.find_all("input", name="methods") if "checked" in b.attrs]
    assert checked == [m for m in STUDY_METHODS if m in change.get("methods", STUDY["methods"])]
    assert doc.by_id("study-in-seeds").attrs["value"] == change.get("seeds", STUDY["seeds"])
    assert doc.by_id("study-in-grid").text() == change.get("grid", "")
    # The other forms stay clean.
    assert doc.find(id="err-dataset") is None and doc.find(id="exp-err-dataset") is None


def test_a_full_queue_is_said_above_the_study_form(tmp_path):
    with TestClient(create_app(replace(make_settings(tmp_path), max_queued=5))) as small:
        response = small.post("/launch/study", data=STUDY)
        doc = well_formed(response.text)
        assert "the queue holds 0 runs and its limit is 5" in doc.by_id("study-error").text()
        with session_of(small) as db:
            assert stored(db) == (0, 0, 0)


# ---------------------------------------------------------------- the seed experiment's seeds

def test_the_seed_experiment_form_has_seeds_defaulting_to_one(client):
    doc = well_formed(client.get("/launch").text)
    seeds = doc.by_id("exp-in-seeds")
    assert seeds.attrs["value"] == "1" and "as before" in doc.by_id("exp-field-seeds").text()


def test_one_seed_launches_the_seed_experiment_as_before(client, db):
    response = client.post("/launch/experiment", data={"dataset": "synthetic", "subset": "200", "seeds": "1"},
                           follow_redirects=False)
    assert response.status_code == 303 and "/compare?experiment=" in response.headers["location"]
    runs = db.exec(select(Run)).all()
    assert sorted(run.kind for run in runs) == sorted(EXPERIMENT_KINDS)
    assert {run.seed for run in runs} == {42} and stored(db)[0] == 0
    assert db.exec(select(Experiment)).one().overrides == {}


def test_three_seeds_launch_the_seed_experiment_as_a_study(client, db):
    response = client.post("/launch/experiment", data={"dataset": "synthetic", "subset": "200", "seeds": "3",
                                                       "epochs": "2"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    study_id = int(response.headers["location"].removeprefix("/studies/"))
    runs = db.exec(select(Run).where(Run.study_id == study_id)).all()
    assert len(runs) == 3 * len(EXPERIMENT_KINDS)
    experiment = db.exec(select(Experiment)).one()
    assert {run.experiment_id for run in runs} == {experiment.id} and experiment.overrides["seeds"] == [1, 2, 3]
    assert {run.seed for run in runs if run.kind == TEACHER_KIND} == {1, 2, 3}
    assert {run.config["epochs"] for run in runs} == {2}


def test_unreadable_experiment_seeds_are_shown_beside_the_field(client, db):
    response = client.post("/launch/experiment", data={"dataset": "synthetic", "seeds": "1, two"})
    doc = well_formed(response.text)
    assert "whole numbers" in doc.by_id("experiment").find(id="exp-err-seeds").text()
    assert doc.by_id("exp-in-seeds").attrs["value"] == "1, two"
    assert stored(db) == (0, 0, 0)


def test_the_study_form_holds_out_the_validation_split_it_is_given(client, db):
    response = client.post("/launch/study", data={**STUDY, "validation": "0.2"}, follow_redirects=False)
    assert response.status_code == 303
    runs = db.exec(select(Run).where(Run.study_id == int(response.headers["location"].rsplit("/", 1)[1]))).all()
    assert runs and {run.config["validation"] for run in runs} == {0.2}
