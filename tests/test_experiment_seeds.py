"""POST /api/experiments with ``seeds``: one seed keeps the seed experiment as it was; several make it a
study of its methods (one teacher per seed), whose statistics GET /api/studies/{id} gives."""

from __future__ import annotations

import pytest
from sqlmodel import select

from app.store.models import Experiment, Run, Study
from kdcore.registry import EXPERIMENT_KINDS, METHODS
from tests.app_fixtures import app, app_settings, client, session  # noqa: F401

STUDENT_KINDS = [k for k in EXPERIMENT_KINDS if not METHODS[k].teaches]
TEACHER_KIND = next(k for k in EXPERIMENT_KINDS if METHODS[k].teaches)
BASE = {"dataset": "synthetic", "subset": 100}


def stored(session) -> tuple[int, int, int]:
    return tuple(len(session.exec(select(model)).all()) for model in (Experiment, Study, Run))


def runs_of(client, experiment_id: int) -> list[dict]:
    return client.get("/api/runs", params={"experiment_id": experiment_id, "limit": 500}).json()["items"]


def test_without_seeds_the_experiment_is_as_before(client, session):
    response = client.post("/api/experiments", json=BASE)
    assert response.status_code == 201, response.text
    experiment = response.json()
    assert experiment["study_id"] is None and list(experiment["run_ids"]) == list(EXPERIMENT_KINDS)
    assert [run["seed"] for run in experiment["runs"]] == [42] * len(EXPERIMENT_KINDS)
    assert stored(session) == (1, 0, len(EXPERIMENT_KINDS))


def test_one_seed_is_that_seed_for_every_run(client, session):
    experiment = client.post("/api/experiments", json={**BASE, "seeds": [7]}).json()
    assert experiment["study_id"] is None and experiment["overrides"] == {"seeds": [7]}
    assert {run["config"]["seed"] for run in runs_of(client, experiment["id"])} == {7}
    assert stored(session) == (1, 0, len(EXPERIMENT_KINDS))


def test_three_seeds_are_a_study_with_a_teacher_per_seed_and_each_methods_epochs(client, session):
    response = client.post("/api/experiments", json={**BASE, "seeds": [1, 2, 3]})
    assert response.status_code == 201, response.text
    experiment = response.json()
    runs = runs_of(client, experiment["id"])
    assert len(runs) == len(experiment["runs"]) == 3 * len(EXPERIMENT_KINDS)
    assert {run["study_id"] for run in runs} == {experiment["study_id"]} != {None}
    teachers = {run["config"]["seed"]: run["id"] for run in runs if run["kind"] == TEACHER_KIND}
    assert sorted(teachers) == [1, 2, 3]
    for run in runs:
        method = METHODS[run["kind"]]
        assert run["config"]["epochs"] == method.default_epochs  # the seed experiment's own epochs, per kind
        assert run["teacher_run_id"] == (teachers[run["config"]["seed"]] if method.needs_teacher else None)
    by_kind = {}
    for run in sorted(runs, key=lambda r: r["id"]):
        by_kind.setdefault(run["kind"], run["id"])
    assert experiment["run_ids"] == by_kind  # the first seed's run of each kind
    assert sorted(r["seed"] for r in experiment["runs"]) == sorted([1, 2, 3] * len(EXPERIMENT_KINDS))
    study = client.get(f"/api/studies/{experiment['study_id']}").json()
    assert study["spec"]["seeds"] == [1, 2, 3] and study["spec"]["teacher_per_seed"] is True
    assert [m if isinstance(m, str) else m["method"] for m in study["spec"]["methods"]] == STUDENT_KINDS
    assert sorted(g["method"] for g in study["groups"]) == sorted(EXPERIMENT_KINDS)
    assert client.get(f"/api/experiments/{experiment['id']}").json()["study_id"] == experiment["study_id"]
    assert client.get("/api/experiments").json()["items"][0]["study_id"] == experiment["study_id"]
    assert stored(session) == (1, 1, 15)


def test_a_studys_overrides_keep_their_experiment_meaning(client):
    kd = next(k for k in STUDENT_KINDS if "temperature" in METHODS[k].param_names())
    response = client.post("/api/experiments", json={
        **BASE, "seeds": [4, 5], "epochs": 2, "lr": 0.01, "temperature": 3,
        "kinds": {TEACHER_KIND: {"epochs": 3}, kd: {"epochs": 1, "distill_weight": 0.5}}})
    assert response.status_code == 201, response.text
    for run in runs_of(client, response.json()["id"]):
        config, kind = run["config"], run["kind"]
        assert config["lr"] == 0.01
        assert config["epochs"] == {TEACHER_KIND: 3, kd: 1}.get(kind, 2)
        assert config["params"].get("temperature") == (3 if "temperature" in METHODS[kind].param_names() else None)
        if kind == kd:
            assert config["params"]["distill_weight"] == 0.5


def test_the_shared_architecture_applies_to_teachers_and_students_alike(client):
    response = client.post("/api/experiments", json={**BASE, "seeds": [1, 2], "architecture": "resnet8x4"})
    assert response.status_code == 201, response.text
    assert {run["config"]["architecture"] for run in runs_of(client, response.json()["id"])} == {"resnet8x4"}


INEXPRESSIBLE = [
    ({"kinds": {"kd": {"lr": 0.1}}}, ("kinds", "kd", "lr"), "share one lr"),
    ({"kinds": {"teacher": {"batch_size": 8}}}, ("kinds", "teacher", "batch_size"), "share one batch_size"),
    ({"kinds": {"cosine": {"seed": 3}}}, ("kinds", "cosine", "seed"), "seeds sets every run's seed"),
    ({"kinds": {"fitnet": {"architecture": "resnet20"}}}, ("kinds", "fitnet", "architecture"), "share one"),
]


@pytest.mark.parametrize("body, loc, message", INEXPRESSIBLE, ids=[".".join(c[1]) for c in INEXPRESSIBLE])
def test_per_kind_overrides_a_study_cannot_express_are_422(client, session, body, loc, message):
    response = client.post("/api/experiments", json={**BASE, "seeds": [1, 2], **body})
    assert response.status_code == 422, response.text
    errors = {tuple(e["loc"][1:]): e["msg"] for e in response.json()["detail"]}
    assert message in errors[loc], errors
    assert stored(session) == (0, 0, 0)
    # With one seed the same override is an ordinary experiment's.
    assert client.post("/api/experiments", json={**BASE, **body}).status_code == 201


BAD_SEEDS = [
    ({"seeds": []}, ("seeds",), "at least 1"),
    ({"seeds": [1, 1]}, ("seeds",), "distinct"),
    ({"seeds": [1, -1]}, ("seeds", 1), "greater than or equal to 0"),
    ({"seeds": "1,2"}, ("seeds",), "valid list"),
    ({"seeds": [1, "2"]}, ("seeds", 1), "valid integer"),
    ({"seeds": list(range(101))}, ("seeds",), "at most 100"),
    ({"seeds": [1, 2], "seed": 3}, ("seed",), "not both"),
]


@pytest.mark.parametrize("body, loc, message", BAD_SEEDS, ids=[str(b[0]["seeds"])[:12] for b in BAD_SEEDS])
def test_bad_seeds_are_422_and_store_nothing(client, session, body, loc, message):
    response = client.post("/api/experiments", json={**BASE, **body})
    assert response.status_code == 422, response.text
    errors = {tuple(e["loc"][1:]): e["msg"] for e in response.json()["detail"]}
    assert message in errors.get(loc, ""), errors
    assert stored(session) == (0, 0, 0)


def test_seed_errors_come_with_the_experiments_others(client, session):
    response = client.post("/api/experiments", json={"dataset": "nowhere", "seeds": [2, 2]})
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {("body", "seeds"), ("body", "dataset")}
    assert stored(session) == (0, 0, 0)


def test_a_study_past_the_queue_cap_is_429_and_stores_nothing(client, session, app_settings):
    seeds = list(range(app_settings.max_queued // len(EXPERIMENT_KINDS) + 1))
    response = client.post("/api/experiments", json={**BASE, "seeds": seeds})
    assert response.status_code == 429 and "limit" in response.json()["detail"]
    assert stored(session) == (0, 0, 0)


def test_the_schema_documents_seeds_and_the_study(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/experiments"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "seeds" in body["properties"] and body["additionalProperties"] is False
    assert "study" in body["properties"]["seeds"]["description"]
    out = schema["components"]["schemas"]["ExperimentOut"]
    assert {"study_id", "run_ids", "runs"} <= set(out["properties"])
    assert "seed" in schema["components"]["schemas"]["ExperimentRunOut"]["properties"]


def _finish(session, runs: list[dict], accuracy: dict[str, float]) -> None:
    for run in runs:
        stored_run = session.get(Run, run["id"], populate_existing=True)
        stored_run.status, stored_run.final_accuracy = "completed", accuracy[run["kind"]]
        stored_run.finished_at = stored_run.created_at
        session.add(stored_run)
    session.commit()


def _board(client) -> dict[str, dict]:
    """The distilled configurations on the leaderboard, by method (one each here)."""
    return {g["kind"]: g for g in client.get("/api/leaderboard/groups?limit=1000").json()["items"]
            if g["role"] == "method"}


def test_an_experiments_distilled_runs_compare_with_its_own_student(client, session):
    # The seed's recipe: KD students train 10 epochs, the student 20; the seed compares them.
    experiment = client.post("/api/experiments", json=BASE).json()
    runs = runs_of(client, experiment["id"])
    accuracy = {"teacher": 0.8, "student": 0.60, **{k: 0.61 + i / 100 for i, k in enumerate(STUDENT_KINDS[1:])}}
    _finish(session, runs, accuracy)
    student = next(r for r in runs if r["kind"] == "student")
    own_key = session.get(Run, student["id"]).group_key
    board = _board(client)
    for kind in STUDENT_KINDS[1:]:
        row = board[kind]
        assert row["epochs"] == METHODS[kind].default_epochs != 20
        assert (row["baseline_key"], row["baseline_epochs"]) == (own_key, 20)
        assert row["vs_baseline"]["mean"] == pytest.approx(accuracy[kind] - 0.60)
    # A KD run launched alone at 10 epochs compares with a 10-epoch student: there is none.
    teacher = next(r for r in runs if r["kind"] == TEACHER_KIND)
    alone = client.post("/api/runs", json={"kind": STUDENT_KINDS[1], "dataset": "synthetic", "subset": 100,
                                           "teacher_run_id": teacher["id"], "lr": 0.01}).json()
    _finish(session, [alone], accuracy)
    row = next(g for g in client.get("/api/leaderboard/groups").json()["items"] if alone["id"] in g["run_ids"])
    assert row["vs_baseline"] is None and row["missing_baseline"]["epochs"] == 10


def test_a_study_of_other_epochs_leaves_the_experiments_comparison_alone(client, session):
    # The issue: a seed experiment at 4 epochs read KD +1.0 pt against its own student; after a study of
    # 3-epoch students landed (more runs), the same row read +6.7 pt against those.
    experiment = client.post("/api/experiments", json={**BASE, "epochs": 4}).json()
    accuracy = {"teacher": 0.8, "student": 0.60, **{k: 0.61 for k in STUDENT_KINDS[1:]}}
    _finish(session, runs_of(client, experiment["id"]), accuracy)
    before = _board(client)[STUDENT_KINDS[1]]
    study = client.post("/api/studies", json={**BASE, "methods": ["student"], "seeds": [1, 2, 3, 4, 5],
                                              "epochs": 3}).json()
    _finish(session, [client.get(f"/api/runs/{i}").json() for i in study["run_ids"]], {"student": 0.543})
    after = _board(client)[STUDENT_KINDS[1]]
    assert after["baseline_epochs"] == 4 and after["baseline_key"] == before["baseline_key"]
    assert after["vs_baseline"] == before["vs_baseline"] and after["vs_baseline"]["mean"] == pytest.approx(0.01)
