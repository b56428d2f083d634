"""POST/GET /api/benchmarks and the launch page's benchmark form: the preset queued as one teacher per teacher
network and one study per teacher network and learning rate, its cost said before anything trains, refusals
that store nothing, and the paper's table read back from the studies' runs."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from app.store.models import Benchmark, Run, Study
from tests.app_fixtures import app, app_settings, client, session, set_run  # noqa: F401

BODY = {"pairs": ["resnet32x4:resnet8x4", "resnet32x4:ShuffleV1", "vgg13:vgg8"], "methods": ["kd"], "seeds": [1, 2],
        "epochs": 1, "dataset": "cifar100"}


def stored(session) -> tuple[int, int, int]:
    return tuple(session.exec(select(func.count()).select_from(table)).one() for table in (Run, Study, Benchmark))


def test_a_benchmark_queues_one_teacher_per_network_and_a_study_per_network_and_learning_rate(client, session):
    cost = client.post("/api/benchmarks/cost", json=BODY)
    assert cost.status_code == 200 and stored(session) == (0, 0, 0)  # said before, and nothing stored
    cost = cost.json()
    assert (cost["teachers"], cost["students"], cost["distilled"], cost["total"], cost["studies"]) == (2, 6, 6, 14, 3)
    assert cost["gpu"]["hours"] > 0 and cost["gpu"]["basis"] == "rough" and "estimate" in cost["gpu"]["how"]
    response = client.post("/api/benchmarks", json=BODY)
    assert response.status_code == 201, response.text
    benchmark = response.json()
    assert benchmark["cost"]["total"] == stored(session)[0] == 14
    teachers = benchmark["teachers"]
    assert sorted(teachers) == ["resnet32x4", "vgg13"]
    for network, run_id in teachers.items():
        teacher = session.get(Run, run_id)
        assert (teacher.kind, teacher.architecture, teacher.study_id) == ("teacher", network, None)
        assert teacher.config["lr"] == 0.05 and teacher.config["seed"] == 1 and teacher.config["epochs"] == 1
    by_pairs = {tuple(s["pairs"]): s for s in benchmark["studies"]}
    assert set(by_pairs) == {("resnet32x4:resnet8x4",), ("resnet32x4:ShuffleV1",), ("vgg13:vgg8",)}
    for pairs, entry in by_pairs.items():
        study = session.get(Study, entry["study_id"])
        runs = session.exec(select(Run).where(Run.study_id == study.id)).all()
        assert study.benchmark_id == benchmark["id"] and study.teacher_run_id == entry["teacher_run_id"]
        assert sorted(r.kind for r in runs) == ["kd", "kd", "student", "student"]
        assert {r.config["lr"] for r in runs} == {0.01 if "ShuffleV1" in pairs[0] else 0.05}
        assert all(r.teacher_run_id == entry["teacher_run_id"] for r in runs if r.kind == "kd")
    assert [p["label"] for p in benchmark["table"]["pairs"]] == [
        "resnet32x4→resnet8x4", "vgg13→vgg8", "resnet32x4→ShuffleV1"]  # the paper's order
    # The study page names its benchmark.
    page = client.get(f"/studies/{by_pairs[('vgg13:vgg8',)]['study_id']}")
    assert f'href="/benchmarks/{benchmark["id"]}"' in page.text


def test_the_table_reads_the_studies_runs_with_the_published_values_beside_them(client, session):
    benchmark = client.post("/api/benchmarks", json={**BODY, "pairs": ["resnet32x4:resnet8x4"]}).json()
    finals = {("teacher", 1): (0.790, 0.7942), ("student", 1): (0.721, 0.724), ("student", 2): (0.725, 0.727),
              ("kd", 1): (0.728, 0.7325), ("kd", 2): (0.730, 0.7345)}
    ids = [benchmark["teachers"]["resnet32x4"], *session.exec(select(Run.id).where(Run.study_id.is_not(None))).all()]
    for run_id in ids:
        run = session.get(Run, run_id)
        final, best = finals[(run.kind, run.seed)]
        set_run(session, run_id, status="completed", final_accuracy=final, best_accuracy=best)
    data = client.get(f"/api/benchmarks/{benchmark['id']}").json()
    rows = {row["method"]: row["cells"][0] for row in data["table"]["rows"]}
    assert rows["teacher"]["n"] == 1 and rows["student"]["n"] == 2 and rows["kd"]["n"] == 2
    assert rows["kd"]["mean"] == pytest.approx(0.729)
    published = {r["source"].split(" ")[0]: r for r in rows["kd"]["published"]}
    # RepDistiller's 73.33 is a best-epoch value: compared with our best epochs (73.25 and 73.45), inside.
    assert published["HobbitLong/RepDistiller"]["value"] == 73.33
    assert published["HobbitLong/RepDistiller"]["inside"] is True
    table = client.get(f"/api/benchmarks/{benchmark['id']}/table.md")
    assert table.status_code == 200 and "72.90 ± 0.14 (n=2)" in table.text and "73.33 [" in table.text
    page = client.get(f"/benchmarks/{benchmark['id']}")
    assert page.status_code == 200 and "72.90 ± 0.14 (n=2)" in page.text and "73.33 [" in page.text


@pytest.mark.parametrize("changes, loc, words", [
    ({"pairs": ["resnet32x4:vgg8"]}, ["body", "pairs", 0], "is not a pair of the benchmark"),
    ({"methods": ["kd", "distil-all"]}, ["body", "methods", 1], "unknown method"),
    ({"dataset": "missing-set"}, ["body", "dataset"], "missing-set"),
    ({"teachers": {"vgg13": 987654}}, ["body", "teachers", "vgg13"], "does not exist"),
    ({"seeds": []}, ["body", "seeds"], "at least 1"),
])
def test_a_refused_benchmark_names_the_field_and_stores_nothing(client, session, changes, loc, words):
    for route in ("/api/benchmarks", "/api/benchmarks/cost"):
        response = client.post(route, json={**BODY, **changes})
        if route.endswith("cost") and loc[1] in ("dataset", "teachers"):
            continue  # the cost needs no dataset's data nor teacher's run: the submit checks those
        assert response.status_code == 422, (route, response.text)
        assert any(e["loc"] == loc and words in e["msg"] for e in response.json()["detail"]), response.json()
    assert stored(session) == (0, 0, 0)


def test_a_given_teacher_of_another_network_is_refused(client, session):
    first = client.post("/api/benchmarks", json={**BODY, "pairs": ["vgg13:vgg8"]}).json()
    before = stored(session)
    response = client.post("/api/benchmarks", json={**BODY, "teachers": {"resnet32x4": first["teachers"]["vgg13"]}})
    assert response.status_code == 422
    assert "is a vgg13 teacher, not a resnet32x4" in response.text and stored(session) == before


def test_the_launch_page_shows_the_cost_before_launching_and_launches_it(client, session):
    page = client.get("/launch")
    form = page.text[page.text.index('id="benchmark-form"'):]
    # All 13 pairs with the default methods and seeds: 123 runs, in GPU-hours, labelled an estimate.
    cost = form[form.index('id="benchmark-cost-text"'):][:600]
    assert 'data-runs="123"' in cost and "GPU-hours" in cost and "estimated" in cost
    narrowed = client.get("/fragments/benchmark-cost", params={"pairs": "vgg13:vgg8", "methods": "kd", "seeds": "1",
                                                               "epochs": "1", "dataset": "cifar100"})
    assert 'data-runs="3"' in narrowed.text
    refused = client.post("/launch/benchmark", data={"pairs": "vgg13:resnet20", "methods": "kd", "seeds": "1"})
    assert refused.status_code == 200 and "is not a pair of the benchmark" in refused.text and stored(session) == (0, 0, 0)
    launched = client.post("/launch/benchmark", data={"pairs": "vgg13:vgg8", "methods": "kd", "seeds": "1",
                                                      "epochs": "1", "dataset": "cifar100"}, follow_redirects=False)
    assert launched.status_code == 303 and launched.headers["location"].startswith("/benchmarks/")
    assert stored(session) == (3, 1, 1)
