"""POST/GET /api/studies: expansion into runs, refusals that store nothing, statistics recomputed with SciPy
from the member runs, cancel, exports, and a study trained end to end by the worker."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from scipy import stats as sp
from sqlmodel import func, select

from app.executors.local.pool import WorkerPool
from app.store.models import Epoch, Experiment, Run, Study
from tests.app_fixtures import add_epochs, app, app_settings, client, session, set_run, wait_for  # noqa: F401

STUDY = {"dataset": "synthetic", "subset": 100, "methods": ["student", "kd"], "seeds": [1, 2, 3], "epochs": 1,
         "teacher_epochs": 1, "device": "cpu", "batch_size": 50}
# Final accuracies by (kind, seed), as if the workers had trained them.
ACCURACY = {("teacher", 1): 0.71, ("student", 1): 0.601, ("student", 2): 0.622, ("student", 3): 0.598,
            ("kd", 1): 0.634, ("kd", 2): 0.641, ("kd", 3): 0.618}


def stored(session) -> tuple[int, int]:
    return (session.exec(select(func.count()).select_from(Run)).one(),
            session.exec(select(func.count()).select_from(Study)).one())


def submit(client, **changes):
    response = client.post("/api/studies", json={**STUDY, **changes})
    assert response.status_code == 201, response.text
    return response.json()


def runs_of(client, study):
    return [client.get(f"/api/runs/{run_id}").json() for run_id in study["run_ids"]]


def complete(session, runs, accuracy=ACCURACY):
    for run in runs:
        value = accuracy[(run["kind"], run["config"]["seed"])]
        set_run(session, run["id"], status="completed", final_accuracy=value, best_accuracy=value + 0.01,
                train_seconds=2.0)


def test_a_study_expands_to_one_run_per_configuration_and_seed(client):
    study = submit(client, grid={"kd.temperature": [2, 4]})
    runs = runs_of(client, study)
    kinds = [(r["kind"], r["config"]["seed"]) for r in runs]
    assert kinds[0] == ("teacher", 1)  # one teacher, trained first with the first seed
    assert sorted(kinds[1:]) == sorted([("student", s) for s in (1, 2, 3)] + [("kd", s) for s in (1, 2, 3)] * 2)
    teacher = runs[0]
    assert all(r["study_id"] == study["id"] for r in runs)
    for run in runs[1:]:
        assert run["teacher_run_id"] == (teacher["id"] if run["kind"] == "kd" else None)
        assert run["config"]["epochs"] == 1 and run["config"]["subset"] == 100
    assert teacher["config"]["epochs"] == 1
    temperatures = sorted({r["config"]["params"]["temperature"] for r in runs if r["kind"] == "kd"})
    assert temperatures == [2.0, 4.0]
    assert study["status"] == "queued" and study["progress"]["total"] == 10
    # One group per configuration: teacher, student, kd at T=2 and at T=4, each over its seeds.
    assert sorted((g["method"], g["runs"]) for g in study["groups"]) == [
        ("kd", 3), ("kd", 3), ("student", 3), ("teacher", 1)]


def test_one_teacher_per_seed(client):
    runs = runs_of(client, submit(client, teacher_per_seed=True))
    teachers = {r["config"]["seed"]: r["id"] for r in runs if r["kind"] == "teacher"}
    assert sorted(teachers) == [1, 2, 3]
    for run in runs:
        if run["kind"] == "kd":
            assert run["teacher_run_id"] == teachers[run["config"]["seed"]]
    study = client.get(f"/api/studies/{runs[0]['study_id']}").json()
    # Students of replicate teachers are replicates too.
    assert sorted((g["method"], g["runs"]) for g in study["groups"]) == [("kd", 3), ("student", 3), ("teacher", 3)]


def test_a_study_can_distil_from_an_existing_teacher(client):
    teacher = client.post("/api/runs", json={"kind": "teacher", "dataset": "synthetic", "subset": 100}).json()
    runs = runs_of(client, submit(client, teacher_epochs=None, teacher_run_id=teacher["id"]))
    assert not any(r["kind"] == "teacher" for r in runs)
    assert {r["teacher_run_id"] for r in runs if r["kind"] == "kd"} == {teacher["id"]}


@pytest.mark.parametrize("changes, loc", [
    ({"methods": []}, ["body", "methods"]),
    ({"methods": ["student", "nosuch"]}, ["body", "methods", 1]),
    ({"methods": ["teacher", "kd"]}, ["body", "methods", 0]),
    ({"grid": {"kd.nosuch": [1, 2]}}, ["body", "grid", "kd.nosuch"]),
    ({"grid": {"student.temperature": [1, 2]}}, ["body", "grid", "student.temperature"]),
    ({"grid": {"kd.temperature": [-1, 2]}}, ["body", "grid", "kd.temperature"]),
    ({"methods": [{"method": "kd", "params": {"nosuch": 1}}]}, ["body", "methods", 0, "params", "nosuch"]),
    ({"seeds": [1, 1]}, ["body", "seeds"]),
    ({"seeds": "1,2"}, ["body", "seeds"]),
    ({"seeds": list(range(80)), "grid": {"kd.temperature": [1, 2, 3, 4, 5, 6, 7]}}, ["body", "grid"]),
    ({"lr": -1}, ["body", "lr"]),
    ({"nosuch": 1}, ["body", "nosuch"]),
    ({"dataset": "nosuch"}, ["body", "dataset"]),
    ({"subset": 10**9}, ["body", "subset"]),
    ({"teacher_run_id": 10**6}, ["body", "teacher_run_id"]),
    ({"teacher_epochs": 0}, ["body", "teacher_epochs"]),
    ({"methods": ["student"], "teacher_epochs": 2}, ["body", "teacher_epochs"]),
])
def test_bad_studies_are_refused_naming_the_field_and_store_nothing(client, session, changes, loc):
    before = stored(session)
    response = client.post("/api/studies", json={**STUDY, **changes})
    assert response.status_code == 422, response.text
    assert loc in [error["loc"] for error in response.json()["detail"]], response.json()
    assert stored(session) == before


def test_the_run_limit_is_a_setting(client, session, app_settings):
    # 500 by default (KD_MAX_STUDY_RUNS); 3 seeds × 2 configurations + 1 teacher = 7 here.
    object.__setattr__(app_settings, "max_study_runs", 6)
    response = client.post("/api/studies", json=STUDY)
    assert response.status_code == 422 and "expands to 7 runs; at most 6" in response.text
    assert stored(session) == (0, 0)


def test_a_full_queue_refuses_the_whole_study(client, session):
    # The fixture's queue holds 20 runs; this study has 3 × 7 + 1 = 22.
    response = client.post("/api/studies", json={**STUDY, "grid": {"kd.temperature": [1, 2, 3, 4, 5, 6]}})
    assert response.status_code == 429
    assert stored(session) == (0, 0)


def test_a_teacher_run_must_be_a_teacher_and_needed(client):
    student = client.post("/api/runs", json={"kind": "student", "dataset": "synthetic"}).json()
    refused = client.post("/api/studies", json={**STUDY, "teacher_epochs": None, "teacher_run_id": student["id"]})
    assert refused.status_code == 422 and "not a teacher" in refused.text
    teacher = client.post("/api/runs", json={"kind": "teacher", "dataset": "synthetic"}).json()
    unused = client.post("/api/studies", json={**STUDY, "methods": ["student"], "teacher_epochs": None,
                                               "teacher_run_id": teacher["id"]})
    assert unused.status_code == 422 and unused.json()["detail"][0]["loc"] == ["body", "teacher_run_id"]


def _t_interval(values):
    values = np.asarray(values)
    half = sp.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return [values.mean() - half, values.mean() + half]


def test_groups_equal_the_statistics_recomputed_from_the_member_runs(client, session):
    study = submit(client)
    complete(session, runs_of(client, study))
    study = client.get(f"/api/studies/{study['id']}").json()
    assert study["status"] == "completed" and study["progress"]["done"] == 7
    groups = {g["method"]: g for g in study["groups"]}
    members = runs_of(client, study)
    finals = {kind: {r["config"]["seed"]: r["final_accuracy"] for r in members if r["kind"] == kind}
              for kind in ("student", "kd")}
    for kind in ("student", "kd"):
        values = [finals[kind][s] for s in (1, 2, 3)]
        group = groups[kind]
        assert group["n"] == 3 and group["seeds"] == [1, 2, 3]
        assert group["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert group["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        assert group["ci95"] == pytest.approx(_t_interval(values), abs=1e-12)
    assert groups["student"]["role"] == "baseline" and groups["student"]["vs_baseline"] is None
    diff = groups["kd"]["vs_baseline"]
    per_seed = [finals["kd"][s] - finals["student"][s] for s in (1, 2, 3)]
    expected = sp.ttest_rel([finals["kd"][s] for s in (1, 2, 3)], [finals["student"][s] for s in (1, 2, 3)])
    assert diff["paired"] and diff["n"] == 3
    assert diff["mean"] == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert diff["ci95"] == pytest.approx(_t_interval(per_seed), abs=1e-12)
    assert diff["p_value"] == pytest.approx(expected.pvalue, abs=1e-12)
    assert diff["significant"] == (expected.pvalue < 0.05)
    # Best mean first.
    assert [g["mean"] for g in study["groups"]] == sorted((g["mean"] for g in study["groups"]), reverse=True)


def test_a_failed_seed_leaves_unpaired_groups_compared_by_welchs_test(client, session):
    study = submit(client)
    members = runs_of(client, study)
    complete(session, members)
    failed = next(r for r in members if r["kind"] == "kd" and r["config"]["seed"] == 3)
    set_run(session, failed["id"], status="failed", final_accuracy=None, error="loss became NaN")
    groups = {g["method"]: g for g in client.get(f"/api/studies/{study['id']}").json()["groups"]}
    diff = groups["kd"]["vs_baseline"]
    kd, student = [ACCURACY[("kd", s)] for s in (1, 2)], [ACCURACY[("student", s)] for s in (1, 2, 3)]
    expected = sp.ttest_ind(kd, student, equal_var=False)
    assert groups["kd"]["n"] == 2 and groups["kd"]["runs"] == 3
    assert not diff["paired"] and (diff["n"], diff["baseline_n"]) == (2, 3)
    assert diff["p_value"] == pytest.approx(expected.pvalue, abs=1e-12)


def test_progress_while_the_study_runs(client, session):
    study = submit(client)
    members = runs_of(client, study)
    set_run(session, members[0]["id"], status="completed", final_accuracy=0.7, train_seconds=10.0)
    set_run(session, members[1]["id"], status="running")
    study = client.get(f"/api/studies/{study['id']}").json()
    assert study["status"] == "running"
    assert {k: study["progress"][k] for k in ("total", "done", "running", "queued")} == {
        "total": 7, "done": 1, "running": 1, "queued": 5}
    listed = client.get("/api/studies").json()
    assert listed["total"] == 1 and listed["items"][0]["done"] == 1 and listed["items"][0]["methods"] == ["student", "kd"]


def test_cancelling_a_study_cancels_its_unfinished_runs_only(client, session):
    study = submit(client)
    members = runs_of(client, study)
    set_run(session, members[0]["id"], status="completed", final_accuracy=0.7)
    set_run(session, members[1]["id"], status="running")
    response = client.post(f"/api/studies/{study['id']}/cancel")
    assert response.status_code == 200
    after = {r["id"]: r for r in runs_of(client, study)}
    assert after[members[0]["id"]]["status"] == "completed"
    assert after[members[1]["id"]]["status"] == "running" and after[members[1]["id"]]["cancel_requested"]
    assert all(r["status"] == "cancelled" for i, r in after.items() if i not in (members[0]["id"], members[1]["id"]))
    set_run(session, members[1]["id"], status="cancelled")  # as the worker ends it
    assert client.get(f"/api/studies/{study['id']}").json()["status"] == "cancelled"
    assert client.post(f"/api/studies/{study['id']}/cancel").status_code == 409
    assert client.post("/api/studies/999/cancel").status_code == 404
    assert client.get("/api/studies/999").status_code == 404


def test_deleting_a_study_removes_its_runs_epochs_and_folders_and_is_refused_while_one_runs(
        client, session, app_settings):
    study = submit(client)
    members = runs_of(client, study)
    teacher = next(run["id"] for run in members if run["kind"] == "teacher")
    set_run(session, teacher, status="running", worker="test:1:cpu")
    add_epochs(session, teacher, 2)
    for run in members:
        (app_settings.runs_dir / str(run["id"])).mkdir(parents=True)
        (app_settings.runs_dir / str(run["id"]) / "checkpoint.pt").write_bytes(b"weights")
    refused = client.delete(f"/api/studies/{study['id']}")
    assert refused.status_code == 409 and str(teacher) in refused.json()["detail"]
    assert stored(session) == (7, 1) and (app_settings.runs_dir / str(teacher)).exists()

    set_run(session, teacher, status="completed", final_accuracy=0.7)
    # A run outside the study waiting to distil from the study's teacher keeps the study.
    outsider = client.post("/api/runs", json={"kind": "kd", "dataset": "synthetic", "teacher_run_id": teacher})
    refused = client.delete(f"/api/studies/{study['id']}")
    assert refused.status_code == 409 and str(outsider.json()["id"]) in refused.json()["detail"]
    client.post(f"/api/runs/{outsider.json()['id']}/cancel")

    assert client.delete(f"/api/studies/{study['id']}").status_code == 204
    assert client.get(f"/api/studies/{study['id']}").status_code == 404
    assert all(client.get(f"/api/runs/{run['id']}").status_code == 404 for run in members)
    assert stored(session) == (1, 0) and session.exec(select(func.count()).select_from(Epoch)).one() == 0
    assert not any((app_settings.runs_dir / str(run["id"])).exists() for run in members)
    assert client.delete(f"/api/studies/{study['id']}").status_code == 404


def test_deleting_a_multi_seed_experiments_study_removes_the_experiment_too(client, session):
    response = client.post("/api/experiments", json={"dataset": "synthetic", "subset": 100, "seeds": [1, 2]})
    assert response.status_code == 201, response.text
    experiment = response.json()
    assert client.delete(f"/api/studies/{experiment['study_id']}").status_code == 204
    assert client.get(f"/api/experiments/{experiment['id']}").status_code == 404
    assert session.exec(select(func.count()).select_from(Experiment)).one() == 0


def test_study_delete_is_documented_with_its_errors(client):
    operation = client.get("/openapi.json").json()["paths"]["/api/studies/{study_id}"]["delete"]
    assert set(operation["responses"]) == {"204", "401", "404", "409", "422"}
    assert operation["responses"]["404"]["description"] == "No such study"
    assert "running" in operation["responses"]["409"]["description"]


def test_exports(client, session):
    study = submit(client)
    complete(session, runs_of(client, study))
    base = f"/api/studies/{study['id']}"
    runs = list(csv.DictReader(io.StringIO(client.get(f"{base}/runs.csv").text)))
    assert len(runs) == 7 and {r["method"] for r in runs} == {"teacher", "student", "kd"}
    assert float(next(r for r in runs if r["method"] == "kd" and r["seed"] == "2")["final_accuracy"]) == 0.641
    groups = list(csv.DictReader(io.StringIO(client.get(f"{base}/groups.csv").text)))
    api_groups = {g["key"]: g for g in client.get(base).json()["groups"]}
    for row in groups:
        assert float(row["mean"]) == pytest.approx(api_groups[row["group"]]["mean"])
    kd_row = next(row for row in groups if row["method"] == "kd")
    student = next(g for g in api_groups.values() if g["method"] == "student")
    assert (kd_row["baseline_group"], kd_row["baseline_epochs"], kd_row["baseline_n"]) == (student["key"], "1", "3")
    markdown = client.get(f"{base}/table.md").text
    kd_mean = np.mean([ACCURACY[("kd", s)] for s in (1, 2, 3)]) * 100
    kd_std = np.std([ACCURACY[("kd", s)] for s in (1, 2, 3)], ddof=1) * 100
    assert f"| {kd_mean:.2f} ± {kd_std:.2f} | 3 |" in markdown
    latex = client.get(f"{base}/table.tex").text
    assert latex.startswith(r"\begin{tabular}") and f"{kd_mean:.2f} $\\pm$ {kd_std:.2f}" in latex
    exported = client.get(f"{base}/export.json").json()
    assert len(exported["runs"]) == 7 and exported["tables"]["markdown"] == markdown


def test_a_study_trains_end_to_end(client, app, app_settings):
    study = submit(client, seeds=[1, 2], subset=60, batch_size=30)
    pool = WorkerPool(app_settings, gpus=[], engine=app.state.engine)
    pool.start()
    try:
        done = wait_for(lambda: (s := client.get(f"/api/studies/{study['id']}").json())["status"] == "completed" and s,
                        timeout=240, what="the study to complete")
    finally:
        pool.stop()
    assert done["progress"]["completed"] == 5
    for group in done["groups"]:
        assert group["n"] == group["runs"] and group["mean"] is not None
    epochs = client.get(f"/api/runs/{done['run_ids'][-1]}/epochs").json()["items"]
    assert len(epochs) == 1


def test_the_same_study_twice_counts_each_seed_once_and_the_board_agrees_with_its_pages(client, session):
    # Submitted twice with the same seeds, configuration and teacher recipe: on a CPU the second trains
    # the same draws bit for bit. Each seed is one sample, on the board as on each study's page.
    studies = []
    for _ in range(2):
        study = submit(client)
        complete(session, runs_of(client, study))
        studies.append(client.get(f"/api/studies/{study['id']}").json())
    board = {g["key"]: g for g in client.get("/api/leaderboard/groups?limit=1000").json()["items"]}
    assert set(board) == {g["key"] for g in studies[0]["groups"]} == {g["key"] for g in studies[1]["groups"]}
    for study in studies:
        for group in study["groups"]:
            row = board[group["key"]]
            assert row["n"] == group["n"] == len(group["seeds"]) and len(row["run_ids"]) == 2 * group["n"]
            assert row["repeats"] == [{"seed": seed, "runs": 2} for seed in group["seeds"]]
            # The same figures to the last digit: both come from kdcore.studies.groups.group_figures.
            for name in ("n", "mean", "std", "ci95", "best_mean", "vs_baseline", "baseline_key"):
                assert row[name] == group[name], (group["method"], name)
    kd = next(g for g in studies[0]["groups"] if g["method"] == "kd")
    assert kd["vs_baseline"]["paired"] and kd["vs_baseline"]["n"] == 3 and kd["vs_baseline"]["baseline_epochs"] == 1
