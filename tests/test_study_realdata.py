"""Issue 9's acceptance test, through the product: a study of student and kd over three seeds on a real
CIFAR-10 subset, submitted to a live server whose worker trains it, reports groups whose statistics equal
SciPy's recomputed from the member runs (skipped when ../shared/datasets/cifar10-jpg.tar.xz is absent)."""

import json
import time

import numpy as np
import pytest
from scipy import stats

from tests.live_server import LiveServer

pytestmark = pytest.mark.realdata
SEEDS = (1, 2, 3)
STUDY = {"dataset": "cifar10-jpg", "subset": 500, "methods": ["student", "kd"], "seeds": list(SEEDS),
         "epochs": 1, "teacher_epochs": 1, "device": "cpu"}


@pytest.fixture
def server(real_archive, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cifar10-jpg.tar.xz").symlink_to(real_archive)
    live = LiveServer(tmp_path, worker=True)
    yield live
    live.stop()


def _wait_until_completed(server: LiveServer, study_id: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        study = server.api.get(f"/api/studies/{study_id}").json()
        if study["status"] == "completed":
            return study
        time.sleep(1)
    raise AssertionError(f"study {study_id} still {study['status']} after {timeout:.0f} s: {study['progress']}")


def _configuration(run: dict) -> str:
    # What makes runs replicates, read from the runs themselves: the method and its config but the seed.
    return json.dumps({"kind": run["kind"], **{k: v for k, v in run["config"].items() if k != "seed"}},
                      sort_keys=True)


@pytest.mark.timeout(720)
def test_a_real_study_reports_group_statistics_equal_to_scipy_on_its_member_runs(server):
    response = server.api.post("/api/studies", json=STUDY)
    assert response.status_code == 201, response.text
    study = _wait_until_completed(server, response.json()["id"], timeout=600)

    runs = {run_id: server.run(run_id) for run_id in study["run_ids"]}
    assert len(runs) == 7 and all(run["status"] == "completed" for run in runs.values()), \
        [(run["kind"], run["status"], run["error"]) for run in runs.values()]
    assert all(run["dataset"] == "cifar10-jpg" and run["config"]["subset"] == 500 for run in runs.values())
    teacher = next(run for run in runs.values() if run["kind"] == "teacher")
    assert all(run["teacher_run_id"] == teacher["id"] for run in runs.values() if run["kind"] == "kd")

    by_configuration: dict[str, dict[int, dict]] = {}
    for run in runs.values():
        by_configuration.setdefault(_configuration(run), {})[run["config"]["seed"]] = run
    groups = {group["method"]: group for group in study["groups"]}
    assert set(groups) == {"teacher", "student", "kd"}
    finals = {}
    for method in ("student", "kd"):
        group = groups[method]
        members = next(m for m in by_configuration.values() if next(iter(m.values()))["kind"] == method)
        assert sorted(group["run_ids"]) == sorted(run["id"] for run in members.values())
        assert sorted(members) == list(SEEDS) and group["seeds"] == list(SEEDS)
        values = np.array([members[seed]["final_accuracy"] for seed in SEEDS])
        finals[method] = values
        assert values.std() > 0, f"{method}: the seeds gave identical accuracies, so the test would be vacuous"
        assert group["n"] == 3 and group["mean"] == pytest.approx(values.mean(), abs=1e-12)
        assert group["std"] == pytest.approx(values.std(ddof=1), abs=1e-12)
        low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
        assert group["ci95"] == pytest.approx([low, high], abs=1e-12)

    test = stats.ttest_rel(finals["kd"], finals["student"])  # paired by seed: both lists are in SEEDS order
    interval = test.confidence_interval(0.95)
    diff = groups["kd"]["vs_baseline"]
    assert diff["paired"] is True and diff["n"] == 3
    assert diff["mean"] == pytest.approx(finals["kd"].mean() - finals["student"].mean(), abs=1e-12)
    assert diff["p_value"] == pytest.approx(test.pvalue, abs=1e-12)
    assert diff["ci95"] == pytest.approx([interval.low, interval.high], abs=1e-12)
    assert diff["significant"] == (test.pvalue < 0.05)
    assert groups["student"]["vs_baseline"] is None and groups["student"]["role"] == "baseline"
