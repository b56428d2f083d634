"""The board's "single runs" view: each run with its seed, the study that launched it, and the hyperparameters
that set it apart from the other runs of its method listed (or from the method's defaults)."""

from __future__ import annotations

from page_fixtures import add_run, client, db, well_formed  # noqa: F401  (client and db are fixtures)

from app.studies import service as studies
from tests.study_fixtures import finish, submit


def test_single_runs_show_their_seed_study_and_differing_hyperparameters(client, db):
    study_id = submit(client, seeds=(1, 2), grid={"kd.temperature": [2, 4]})
    finish(db, study_id, lambda run: 0.5 + 0.01 * run.seed + (0.05 if run.kind == "kd" else 0))
    loose = add_run(db, "student", accuracy=0.4, seed=7)
    runs = {run.id: run for run in studies.study_runs(db, study_id)} | {loose.id: loose}

    doc = well_formed(client.get("/", params={"view": "runs"}).text)
    rows = doc.by_id("leaderboard-table").find("tbody").find_all("tr")
    assert {int(r.attrs["data-run-id"]) for r in rows} == set(runs)
    for row in rows:
        run = runs[int(row.attrs["data-run-id"])]
        assert row.find("td", data_col="seed").text() == str(run.seed)
        study = row.find("td", data_col="study")
        if run.study_id is None:
            assert study.text() == "—"
        else:
            assert study.find("a").attrs["href"] == f"/studies/{study_id}" and study.text() == f"#{study_id}"
        assert row.find(data_col="network").text() == run.architecture
        settings = row.find(data_col="settings")
        if run.kind == "kd":  # temperature differs between the kd runs: each says its own, the default too
            assert settings.text() == f"temperature={run.config['params']['temperature']:g}"
        else:  # the students and the teacher have no hyperparameters
            assert settings is None

    items = {item["run_id"]: item for item in client.get("/api/leaderboard").json()["items"]}
    for run_id, run in runs.items():
        assert (items[run_id]["seed"], items[run_id]["study_id"]) == (run.seed, run.study_id)
        assert items[run_id]["params"] == run.config["params"]


def test_a_lone_run_away_from_its_defaults_says_so(client, db):
    add_run(db, "kd", accuracy=0.6, temperature=8)
    add_run(db, "student", accuracy=0.5)
    doc = well_formed(client.get("/", params={"view": "runs"}).text)
    settings = [s.text() for s in doc.by_id("leaderboard-table").find_all(data_col="settings")]
    assert settings == ["temperature=8"]
