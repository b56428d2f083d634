"""Studies without training, for the page and browser tests: submit one through the API (a TestClient
or an httpx client of a live server), then finish its runs in the database with epochs, as a worker would."""

from __future__ import annotations

from app.store.models import Run
from app.studies import service as studies
from tests.app_fixtures import set_run
from tests.page_fixtures import add_epoch

STUDENT = [0.60, 0.62, 0.61]  # the baseline student's final accuracy for seeds 1, 2, 3
# kd's per-seed differences to the student, by (temperature, distill_weight).
DIFFS = {(2, 0.5): [0.05, 0.052, 0.049],   # significant, and clearly above the next
         (4, 0.5): [0.03, -0.02, 0.01],    # inside the noise
         (2, 0.9): [0.02, 0.021, 0.019],   # significant
         (4, 0.9): [0.0, 0.0, 0.0]}        # no spread: no t-test
GRID_2D = {"kd.temperature": [2, 4], "kd.distill_weight": [0.5, 0.9]}


def submit(client, methods=("student", "kd"), seeds=(1, 2, 3), grid=None, **extra) -> int:
    body = {"dataset": "synthetic", "subset": 100, "methods": list(methods), "seeds": list(seeds), "epochs": 3,
            "device": "cpu", **({"teacher_epochs": 2} if "kd" in methods else {}), **extra}
    if grid:
        body["grid"] = grid
    response = client.post("/api/studies", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def kd_accuracy(run: Run) -> float:
    seed = run.seed - 1
    if run.kind == "teacher":
        return 0.8
    if run.kind == "student":
        return STUDENT[seed]
    params = run.config["params"]
    # Without a grid kd has its defaults: it then differs from the student as the best configuration does.
    return STUDENT[seed] + DIFFS.get((params["temperature"], params["distill_weight"]), DIFFS[(2, 0.5)])[seed]


def finish(db, study_id: int, accuracy=kd_accuracy, only=None) -> list[Run]:
    """Complete the study's unfinished runs (those ``only`` accepts) with epochs rising to ``accuracy(run)``."""
    done = []
    for run in studies.study_runs(db, study_id):
        if run.status == "completed" or (only is not None and not only(run)):
            continue
        final = accuracy(run)
        epochs = run.config["epochs"]
        for n in range(1, epochs + 1):
            add_epoch(db, run, n, accuracy=final * (0.7 + 0.3 * n / epochs))
        done.append(set_run(db, run.id, status="completed", final_accuracy=final, best_accuracy=final,
                            best_epoch=epochs, train_seconds=10.0, parameters=300_000))
    return done
