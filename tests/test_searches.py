"""Searches through the API with the driver stepped by hand (no worker: the trials' runs are moved on in the
database as a worker would, tests/search_fixtures.py): pruning on validation accuracy only, a restarted driver
that continues where the search stood, the confirmation study, refusals, and the search page."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from app.searches.driver import SearchDriver
from app.store.models import Run, Search, Study
from tests.app_fixtures import app, app_settings, session  # noqa: F401
from tests.page_fixtures import well_formed as parse
from tests.search_fixtures import complete, completed_teacher, epoch, search_body, start, stop, trials


@pytest.fixture
def api(app):  # noqa: F811
    # No lifespan: the server's own driver thread stays off, and each test steps a driver itself.
    return TestClient(app)


def driver(app, app_settings) -> SearchDriver:  # noqa: F811
    return SearchDriver(app.state.engine, app_settings)


def submit(api, session, **extra) -> int:  # noqa: F811
    response = api.post("/api/searches", json=search_body(completed_teacher(api, session), **extra))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_pruning_reads_validation_accuracy_never_test(api, app, app_settings, session):  # noqa: F811
    search_id = submit(api, session)
    steps = driver(app, app_settings)
    steps.tick()
    runs = trials(session, search_id)
    assert [r.trial_number for r in runs] == list(range(8)) and {r.status for r in runs} == {"queued"}
    # Four trials lead at epoch 1 on validation (and trail on test); then one trails on validation but leads on
    # test, and one the other way round. Successive halving keeps the best third at each rung.
    for run, (val, test) in zip(runs[:6], [(0.9, 0.1)] * 4 + [(0.1, 0.99), (0.95, 0.05)]):
        start(session, run)
        epoch(session, run, 1, val, test)
    steps.tick()
    asked = {r.trial_number: r.prune_requested for r in trials(session, search_id)}
    assert asked[4] and not asked[5] and not any(asked[n] for n in range(4)), asked
    stop(session, runs[4])
    rows = {t["number"]: t for t in api.get(f"/api/searches/{search_id}").json()["trials"]}
    assert (rows[4]["status"], rows[4]["last_epoch"]) == ("pruned", 1)
    assert rows[5]["status"] == "running"
    run_page = parse(api.get(f"/runs/{runs[4].id}").text)
    assert "pruned" in run_page.find(id="run-search").text()
    assert api.get("/api/runs", params={"status": "pruned"}).json()["total"] == 1


def test_a_restarted_driver_continues_the_search(api, app, app_settings, session):  # noqa: F811
    search_id = submit(api, session, trials=5, parallelism=2)
    driver(app, app_settings).tick()
    first, second = trials(session, search_id)
    start(session, first)
    start(session, second)
    epoch(session, first, 1, 0.9, 0.5)
    complete(session, first, 0.9)
    # The server restarts: a new driver rebuilds Optuna's state from the runs table alone.
    restarted = driver(app, app_settings)
    restarted.tick()
    runs = trials(session, search_id)
    assert [r.trial_number for r in runs] == [0, 1, 2], "one slot freed: one more trial, numbered on"
    # The pruner's record came back with it: trial 1 is judged against trial 0's epoch 1 (successive halving's
    # rung); a fresh study would have promoted it, alone at its rung.
    epoch(session, second, 1, 0.1, 0.99)
    restarted.tick()
    assert trials(session, search_id)[1].prune_requested
    stop(session, second)
    for _ in range(3):
        restarted.tick()
        for run in trials(session, search_id):
            if run.status == "queued":
                complete(session, run, 0.5 + 0.05 * run.trial_number)
    restarted.tick()
    runs = trials(session, search_id)
    assert [r.trial_number for r in runs] == [0, 1, 2, 3, 4] and runs[1].status == "pruned"
    search = session.get(Search, search_id, populate_existing=True)
    assert search.phase == "confirming"
    study = session.get(Study, search.confirmation_study_id)
    # The top 2 by validation accuracy (trials 0 and 4), the baseline student and plain KD, over 2 fresh seeds.
    assert sorted(study.spec["seeds"]) == [1, 2]
    confirmed = session.exec(select(Run).where(Run.study_id == study.id)).all()
    assert len(confirmed) == 8  # (2 winners + the baseline student + plain KD) × 2 seeds
    temperatures = {r.config["params"]["temperature"] for r in confirmed if r.kind == "kd"}
    assert {runs[0].trial_params["kd.temperature"], runs[4].trial_params["kd.temperature"]} <= temperatures
    page = api.get(f"/api/searches/{search_id}").json()
    assert page["confirmation"]["study_id"] == study.id and page["phase"] == "confirming"


@pytest.mark.parametrize("change, field, words", [
    ({"validation": 0}, "validation", "validation accuracy"),
    ({"space": ["kd.temperature=log:0:16"]}, "space", "above 0"),
    ({"space": ["kd.nonsense=1:2"]}, "space", "nonsense"),
    ({"max_runs": 10}, "max_runs", "at most 16 runs (8 trials + 8 confirmation runs)"),
    ({"pruner": "median"}, "pruner", "hyperband"),
    ({"max_hours": 1}, "max_hours", "cannot be estimated"),
])
def test_a_refused_search_says_why_and_stores_nothing(api, session, change, field, words):  # noqa: F811
    response = api.post("/api/searches", json={**search_body(completed_teacher(api, session)), **change})
    assert response.status_code == 422
    errors = [e for e in response.json()["detail"] if e["loc"] == ["body", field]]
    assert errors and words in errors[0]["msg"], response.json()
    assert api.get("/api/searches").json()["total"] == 0


def test_the_search_page_shows_trials_phases_and_charts(api, app, app_settings, session):  # noqa: F811
    search_id = submit(api, session, trials=4, parallelism=4)
    steps = driver(app, app_settings)
    steps.tick()
    runs = trials(session, search_id)
    for run, val in zip(runs[:3], (0.6, 0.7, 0.8)):
        complete(session, run, val)
    start(session, runs[3])
    epoch(session, runs[3], 1, 0.1, 0.9)
    steps.tick()
    stop(session, runs[3])
    page = parse(api.get(f"/searches/{search_id}").text)
    rows = page.find(id="trials-table").find_all("tr", data_trial=True)
    assert [r.attrs["data-status"] for r in rows] == ["completed", "completed", "completed", "pruned"]
    assert page.find(id="search-best").text().startswith("Best so far: trial 2 at 80.0")
    assert page.find(id="search-history") and page.find(id="search-parallel") and page.find(id="search-importance")
    assert page.find(id="search-slice-0") and page.find(id="search-slice-1")
    steps.tick()  # all trials done: the confirmation is queued
    page = parse(api.get(f"/searches/{search_id}").text)
    assert page.find(id="confirmation-link") is not None
    assert page.find(id="study-table") is not None, "the confirmation's table and p-values on the search page"


def test_trials_pack_where_the_executor_packs(api, app, app_settings, session):  # noqa: F811
    # Trials differ in hyperparameters only, which a pack's key leaves out: a packing worker takes them together.
    from app.store.queue import claim_next, claim_pack_mates

    search_id = submit(api, session, trials=4, parallelism=4)
    driver(app, app_settings).tick()
    first = claim_next(session, "test:1:cpu")
    assert first.search_id == search_id
    mates = claim_pack_mates(session, "test:1:cpu", first, 3)
    assert sorted(r.trial_number for r in [first, *mates]) == [0, 1, 2, 3]


def test_the_launch_form_starts_a_search_or_names_what_is_wrong(api, session):  # noqa: F811
    teacher = completed_teacher(api, session)
    launch = parse(api.get("/launch").text)
    assert launch.find(id="search-in-teacher").find("option", value=str(teacher)) is not None
    form = {"methods": "kd", "teacher_run_id": str(teacher), "space": "kd.temperature=log:1:16\nkd.distill_weight=0.1:0.9",
            "trials": "4", "parallelism": "2", "sampler": "tpe", "pruner": "hyperband", "dataset": "synthetic",
            "subset": "100", "epochs": "3", "validation": "0", "top_k": "1", "seeds": "2"}
    refused = api.post("/searches", data=form, headers={"HX-Request": "true"})
    assert refused.status_code == 422 and "validation" in parse(refused.text).by_id("search-error").text()
    started = api.post("/searches", data={**form, "validation": "0.2"}, headers={"HX-Request": "true"})
    assert started.headers["HX-Redirect"] == "/searches/1"
    listing = parse(api.get("/searches").text)
    assert listing.find("tr", data_search_id="1") is not None


def test_cancelling_a_confirming_search_cancels_its_confirmation(api, app, app_settings, session):  # noqa: F811
    search_id = submit(api, session, trials=1, parallelism=1)
    steps = driver(app, app_settings)
    steps.tick()
    complete(session, trials(session, search_id)[0], 0.7)
    steps.tick()
    study_id = api.get(f"/api/searches/{search_id}").json()["confirmation"]["study_id"]
    assert api.post(f"/api/searches/{search_id}/cancel").status_code == 200
    assert api.get(f"/api/studies/{study_id}").json()["status"] == "cancelled"
    steps.tick()
    assert api.get(f"/api/searches/{search_id}").json()["phase"] == "cancelled"
    assert api.post(f"/api/searches/{search_id}/cancel").status_code == 409
