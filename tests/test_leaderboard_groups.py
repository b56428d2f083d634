"""The leaderboard by configuration: replicates grouped (Run.group_key), their statistics against SciPy,
the difference to the baseline student (paired or Welch), the runs a row opens to, the REST API, the
cache, and the studies the home page lists."""

from __future__ import annotations

import math
import random

import pytest
from page_fixtures import (  # noqa: F401  (client and db are fixtures)
    KD_KINDS,
    STUDENT_KIND,
    TEACHER_KIND,
    add_run,
    client,
    db,
    well_formed,
)
from scipy import stats

from app.leaderboard import board as leaderboard
from app.leaderboard import views as view_models
from app.leaderboard.responses import LeaderboardGroupListOut, LeaderboardOut
from app.runs import service as services
from app.store.models import Run, utcnow
from kdcore.studies.stats import summarize
from tests.pg_fixtures import pg_server, pg_url  # noqa: F401  (PostgreSQL, skipped where absent)

KD = KD_KINDS[0]


def groups(client, **params) -> list[dict]:
    body = client.get("/api/leaderboard/groups", params={"limit": 1000, **params})
    assert body.status_code == 200
    LeaderboardGroupListOut.model_validate(body.json())
    return body.json()["items"]


def by_kind(items: list[dict]) -> dict[str, dict]:
    found = {}
    for item in items:
        assert item["kind"] not in found, "one group per kind expected in this test"
        found[item["kind"]] = item
    return found


def seed_experiment(db, kd_accuracies: dict[int, float], student_accuracies: dict[int, float]):
    """A teacher, KD students distilled from it and baseline students, by seed."""
    teacher = add_run(db, TEACHER_KIND, accuracy=0.80, parameters=1_000_000)
    kd = [add_run(db, KD, accuracy=a, seed=s, teacher=teacher.id, parameters=250_000)
          for s, a in kd_accuracies.items()]
    student = [add_run(db, STUDENT_KIND, accuracy=a, seed=s, parameters=250_000)
               for s, a in student_accuracies.items()]
    return teacher, kd, student


def test_replicates_form_one_row_with_scipys_mean_std_and_interval(client, db):
    kd_values = {1: 0.712, 2: 0.705, 3: 0.731, 4: 0.719}
    teacher, kd, student = seed_experiment(db, kd_values, {1: 0.69, 2: 0.70, 3: 0.71, 4: 0.695})
    found = by_kind(groups(client))
    assert set(found) == {TEACHER_KIND, KD, STUDENT_KIND}
    row = found[KD]
    values = list(kd_values.values())
    assert row["n"] == 4 and sorted(row["run_ids"]) == [r.id for r in kd] and row["seeds"] == [1, 2, 3, 4]
    assert row["mean"] == pytest.approx(sum(values) / 4, abs=1e-12)
    assert row["std"] == pytest.approx(stats.tstd(values), abs=1e-12)
    low, high = stats.t.interval(0.95, 3, loc=sum(values) / 4, scale=stats.sem(values))
    assert row["ci95"] == pytest.approx([low, high], abs=1e-12)
    # The database's sums give what kdcore.studies.stats gives from the values themselves.
    expected = summarize(values)
    assert (row["std"], row["ci95"]) == (pytest.approx(expected.std, abs=1e-12), pytest.approx(list(expected.ci95)))
    assert row["role"] == "method" and found[STUDENT_KIND]["role"] == "baseline"
    assert found[TEACHER_KIND]["role"] == "teacher"
    # Against the teacher configuration's mean, and its size.
    assert row["vs_teacher"] == pytest.approx(sum(values) / 4 - 0.80)
    assert row["teacher_key"] == teacher.group_key and row["compression"] == pytest.approx(4.0)
    # Best mean first.
    assert [item["kind"] for item in groups(client)] == [TEACHER_KIND, KD, STUDENT_KIND]
    assert [item["rank"] for item in groups(client)] == [1, 2, 3]


def test_difference_to_the_baseline_is_a_paired_t_test_when_the_seeds_match(client, db):
    kd_values = {1: 0.712, 2: 0.705, 3: 0.731}
    student_values = {1: 0.700, 2: 0.690, 3: 0.722}
    seed_experiment(db, kd_values, student_values)
    diff = by_kind(groups(client))[KD]["vs_baseline"]
    expected = stats.ttest_rel(list(kd_values.values()), list(student_values.values()))
    interval = expected.confidence_interval(0.95)
    assert diff["paired"] is True and diff["n"] == 3 and diff["baseline_n"] == 3
    assert diff["mean"] == pytest.approx(sum(kd_values.values()) / 3 - sum(student_values.values()) / 3)
    assert diff["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert diff["ci95"] == pytest.approx([interval.low, interval.high], abs=1e-12)
    assert diff["significant"] == (expected.pvalue < 0.05)
    assert by_kind(groups(client))[STUDENT_KIND]["vs_baseline"] is None  # the baseline itself


def test_difference_uses_welch_when_the_seeds_differ_or_repeat(client, db):
    kd_values = {1: 0.712, 2: 0.705, 3: 0.731}
    student_values = {4: 0.690, 5: 0.700, 6: 0.695, 7: 0.705}
    seed_experiment(db, kd_values, student_values)
    diff = by_kind(groups(client))[KD]["vs_baseline"]
    expected = stats.ttest_ind(list(kd_values.values()), list(student_values.values()), equal_var=False)
    interval = expected.confidence_interval(0.95)
    assert diff["paired"] is False and (diff["n"], diff["baseline_n"]) == (3, 4)
    assert diff["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert diff["ci95"] == pytest.approx([interval.low, interval.high], abs=1e-12)


def test_repeats_of_a_seed_are_one_sample_averaged_and_said_so(client, db):
    # The seed experiment launched three times with seed 0 (on a nondeterministic device), once with seed 1.
    teacher = add_run(db, TEACHER_KIND, accuracy=0.80)
    kd = {0: [0.682, 0.674, 0.689], 1: [0.701]}
    student = {0: [0.668, 0.660], 1: [0.690]}
    runs = [add_run(db, KD, accuracy=a, seed=s, teacher=teacher.id) for s, values in kd.items() for a in values]
    for seed, values in student.items():
        for accuracy in values:
            add_run(db, STUDENT_KIND, accuracy=accuracy, seed=seed)
    row = by_kind(groups(client))[KD]
    kd_seeds = [sum(kd[0]) / 3, kd[1][0]]
    student_seeds = [sum(student[0]) / 2, student[1][0]]
    assert row["n"] == 2 and row["seeds"] == [0, 1] and len(row["run_ids"]) == 4
    assert row["repeats"] == [{"seed": 0, "runs": 3}]
    assert row["mean"] == pytest.approx(sum(kd_seeds) / 2, abs=1e-12)
    assert row["std"] == pytest.approx(stats.tstd(kd_seeds), abs=1e-12)
    # Paired by distinct seed: two pairs, not four runs against three.
    diff = row["vs_baseline"]
    assert diff["paired"] is True and (diff["n"], diff["baseline_n"]) == (2, 2)
    assert diff["p_value"] == pytest.approx(stats.ttest_rel(kd_seeds, student_seeds).pvalue, rel=1e-9)
    assert row["baseline_n"] == 2 and row["baseline_mean"] == pytest.approx(sum(student_seeds) / 2, abs=1e-12)
    # The page says so beside n, and the opened row too.
    doc = well_formed(client.get("/").text)
    cells = doc.find("tr", class_="group-row", data_group=row["key"]).find_all("td")
    assert cells[3].text() == "2 seed 0 ran 3×"
    fragment = well_formed(client.get(f"/fragments/leaderboard/group/{runs[0].group_key}").text)
    assert "4 completed runs, seeds 0, 1 seed 0 ran 3×" in fragment.find(class_="group-detail-head").text()
    student_row = by_kind(groups(client))[STUDENT_KIND]
    assert student_row["n"] == 2 and student_row["repeats"] == [{"seed": 0, "runs": 2}]


def test_a_kd_group_compares_with_the_student_of_its_own_epochs_even_when_another_has_more_runs(client, db):
    teacher = add_run(db, TEACHER_KIND, accuracy=0.80)
    for seed, accuracy in ((1, 0.73), (2, 0.74)):
        add_run(db, KD, accuracy=accuracy, seed=seed, teacher=teacher.id, epochs=4)
    own = [add_run(db, STUDENT_KIND, accuracy=a, seed=s, epochs=4) for s, a in ((1, 0.72), (2, 0.71))]
    # A study of 3-epoch students lands: more runs, lower accuracy. It is no baseline for 4-epoch KD runs,
    # and neither is a student with another recipe.
    for seed in range(1, 6):
        add_run(db, STUDENT_KIND, accuracy=0.60 + seed / 1000, seed=seed, epochs=3)
    add_run(db, STUDENT_KIND, accuracy=0.95, seed=1, epochs=4, lr=0.01)
    row = by_kind_first(groups(client), KD)
    assert row["baseline_key"] == own[0].group_key and row["baseline_epochs"] == 4
    assert row["baseline_n"] == 2 and row["baseline_mean"] == pytest.approx(0.715)
    diff = row["vs_baseline"]
    assert (diff["baseline_key"], diff["baseline_epochs"], diff["baseline_n"]) == (own[0].group_key, 4, 2)
    assert diff["mean"] == pytest.approx(0.735 - 0.715) and diff["paired"]
    title = well_formed(client.get("/").text).find("tr", class_="group-row", data_group=row["key"]).find(class_="ns")
    assert "against the 4-epoch student" in title.attrs["title"]


def test_without_a_matching_student_the_board_says_so_and_launches_one(client, db):
    teacher = add_run(db, TEACHER_KIND, accuracy=0.80)
    kd = [add_run(db, KD, accuracy=a, seed=s, teacher=teacher.id, epochs=4, lr=0.002) for s, a in ((3, 0.7), (4, 0.71))]
    add_run(db, STUDENT_KIND, accuracy=0.60, seed=3, epochs=3, lr=0.002)  # other epochs: not a match
    row = by_kind_first(groups(client), KD)
    assert row["vs_baseline"] is None and row["baseline_key"] is None
    wanted = row["missing_baseline"]
    assert (wanted["kind"], wanted["epochs"], wanted["lr"], wanted["seed"]) == (STUDENT_KIND, 4, 0.002, 3)
    cell = well_formed(client.get("/").text).find("tr", class_="group-row", data_group=row["key"]).find_all("td")[6]
    assert cell.find(class_="no-baseline").text() == "no matching student"
    # The link opens the launch form filled in with that student's recipe; launching it fills the gap.
    link = cell.find("a", class_="launch-baseline").attrs["href"]
    form = well_formed(client.get(link).text).by_id("launch-form")
    values = form_values(form)
    assert (values["kind"], values["epochs"], values["lr"], values["subset"]) == (STUDENT_KIND, "4", "0.002", "200")
    response = client.post("/launch", data=values, follow_redirects=False)
    assert response.status_code == 303
    launched = db.get(Run, int(response.headers["location"].rsplit("/", 1)[1]))
    assert launched.group_key == kd[0].baseline_key
    launched.status, launched.final_accuracy, launched.finished_at = "completed", 0.65, utcnow()
    db.commit()
    row = by_kind_first(groups(client), KD)
    assert row["baseline_key"] == launched.group_key and row["missing_baseline"] is None
    assert row["vs_baseline"]["mean"] == pytest.approx(0.705 - 0.65)


def form_values(form) -> dict[str, str]:
    """What a browser submits for ``form`` untouched: every input's value (a checked box after its
    hidden "false"), each select's chosen option."""
    values: dict[str, str] = {}
    for node in form.iter():
        name = node.attrs.get("name")
        if not name or "disabled" in node.attrs:
            continue
        if node.tag == "input" and (node.attrs.get("type") != "checkbox" or "checked" in node.attrs):
            values[name] = node.attrs.get("value") or ""
        elif node.tag == "select":
            options = node.find_all("option")
            chosen = next((o for o in options if "selected" in o.attrs), options[0] if options else None)
            values[name] = chosen.attrs.get("value", "") if chosen else ""
    return values


def by_kind_first(items: list[dict], kind: str) -> dict:
    return next(item for item in items if item["kind"] == kind)


def test_single_runs_say_n1_and_show_no_spread(client, db):
    teacher = add_run(db, TEACHER_KIND, accuracy=0.80)
    add_run(db, KD, accuracy=0.75, teacher=teacher.id)
    add_run(db, STUDENT_KIND, accuracy=0.70)
    row = by_kind(groups(client))[KD]
    assert row["n"] == 1 and row["std"] is None and row["ci95"] is None
    assert row["vs_baseline"]["p_value"] is None and row["vs_baseline"]["significant"] is False
    doc = well_formed(client.get("/").text)
    cells = doc.find("tr", class_="group-row", data_group=row["key"]).find_all("td")
    assert cells[3].find(class_="n1").text() == "n = 1"
    assert "±" not in cells[4].text()
    # +5 points, but nothing to test: not a ranking, and said with the same badge as the count.
    assert cells[6].find(class_="n1").text() == "n = 1" and cells[6].find(class_="ns") is None


def test_rows_mark_differences_inside_the_noise(client, db):
    teacher = add_run(db, TEACHER_KIND, accuracy=0.90)
    clear = {1: 0.80, 2: 0.81, 3: 0.79, 4: 0.805}
    for seed, accuracy in clear.items():
        add_run(db, KD, accuracy=accuracy, seed=seed, teacher=teacher.id)
    noisy = {1: 0.705, 2: 0.69, 3: 0.72, 4: 0.70}  # cosine-like: within a point of the student
    for seed, accuracy in noisy.items():
        add_run(db, KD_KINDS[1], accuracy=accuracy, seed=seed, teacher=teacher.id)
    for seed, accuracy in {1: 0.70, 2: 0.70, 3: 0.71, 4: 0.695}.items():
        add_run(db, STUDENT_KIND, accuracy=accuracy, seed=seed)
    doc = well_formed(client.get("/").text)
    found = by_kind(groups(client))
    sure = doc.find("tr", class_="group-row", data_group=found[KD]["key"])
    assert sure.find(class_="sig") is not None and "p " in sure.find(class_="sig").text()
    assert "paired t-test over 4 seeds" in sure.find(class_="sig").attrs["title"]
    unsure = doc.find("tr", class_="group-row", data_group=found[KD_KINDS[1]]["key"])
    assert unsure.find(class_="ns").text() == "n.s." and unsure.find(class_="sig") is None
    assert "inside-noise" in unsure.find(class_="delta").classes
    assert "Not significant at 5 %" in unsure.find(class_="ns").attrs["title"]
    baseline = doc.find("tr", class_="group-row", data_group=found[STUDENT_KIND]["key"])
    assert "baseline" in baseline.text()
    # Each method's best configuration, with the same markers.
    best = {r.attrs["data-group"] for r in doc.by_id("best-by-kind").find("tbody").find_all("tr")}
    assert best == {found[k]["key"] for k in (TEACHER_KIND, KD, KD_KINDS[1], STUDENT_KIND)}


def test_the_database_sums_match_the_runs_at_random(client, db):
    rng = random.Random(7)
    expected: dict[str, list[float]] = {}
    for index in range(40):
        kind = rng.choice([STUDENT_KIND, TEACHER_KIND])
        epochs = rng.choice([2, 3, 4])
        run = add_run(db, kind, accuracy=round(rng.uniform(0.3, 0.9), 4), seed=index, epochs=epochs,
                      status=rng.choice(["completed", "completed", "failed"]))
        if run.status == "completed":
            expected.setdefault(run.group_key, []).append(run.final_accuracy)
    items = groups(client)
    assert {item["key"]: item["n"] for item in items} == {key: len(v) for key, v in expected.items()}
    for item in items:
        values = expected[item["key"]]
        assert item["mean"] == pytest.approx(sum(values) / len(values), abs=1e-12)
        if len(values) > 1:
            assert item["std"] == pytest.approx(stats.tstd(values), abs=1e-9)
    means = [item["mean"] for item in items]
    assert means == sorted(means, reverse=True)


def test_a_row_opens_to_its_runs(client, db):
    teacher, kd, _ = seed_experiment(db, {1: 0.71, 2: 0.72, 3: 0.70}, {1: 0.69, 2: 0.70, 3: 0.68})
    add_run(db, KD, status="failed", seed=4, teacher=teacher.id)  # same configuration, not in the statistics
    key = kd[0].group_key
    doc = well_formed(client.get("/").text)
    button = doc.find("tr", class_="group-row", data_group=key).find("button", class_="expand")
    assert button.attrs["hx-get"] == f"/fragments/leaderboard/group/{key}"
    assert button.attrs["aria-controls"] == f"runs-{key}" and button.attrs["aria-expanded"] == "false"
    assert "hidden" in doc.by_id(f"runs-{key}").attrs
    fragment = well_formed(client.get(button.attrs["hx-get"]).text)
    rows = fragment.find("tbody").find_all("tr")
    assert [int(r.attrs["data-run-id"]) for r in rows] == [kd[1].id, kd[0].id, kd[2].id]  # best first
    assert [r.find_all("td")[1].text() for r in rows] == ["2", "1", "3"]  # their seeds
    compare = fragment.find("a", class_="btn").attrs["href"]
    assert compare == f"/compare?group={key}"  # the configuration's mean and band over all its runs
    assert "paired t-test" in fragment.text()
    assert client.get("/fragments/leaderboard/group/0123456789abcdef").status_code == 404


def test_runs_without_a_group_key_stand_alone(client, db):
    loose = add_run(db, STUDENT_KIND, accuracy=0.6)
    twin = add_run(db, STUDENT_KIND, accuracy=0.7)
    db.get(Run, loose.id).group_key = None
    db.commit()
    keys = {item["key"]: item["n"] for item in groups(client)}
    assert keys == {f"run-{loose.id}": 1, twin.group_key: 1}
    fragment = well_formed(client.get(f"/fragments/leaderboard/group/run-{loose.id}").text)
    assert [int(r.attrs["data-run-id"]) for r in fragment.find("tbody").find_all("tr")] == [loose.id]


def test_the_api_pages_through_groups_and_keeps_the_single_run_board(client, db):
    for seed in range(3):
        for epochs in (2, 3, 4, 5):
            add_run(db, STUDENT_KIND, accuracy=0.5 + epochs / 100 + seed / 1000, seed=seed, epochs=epochs)
    first = client.get("/api/leaderboard/groups?limit=3").json()
    assert (first["total"], first["runs"], first["limit"], first["offset"]) == (4, 12, 3, 0)
    assert [item["epochs"] for item in first["items"]] == [5, 4, 3]
    rest = client.get("/api/leaderboard/groups?limit=3&offset=3").json()
    assert [item["rank"] for item in rest["items"]] == [4] and rest["items"][0]["n"] == 3
    assert client.get("/api/leaderboard/groups?limit=0").status_code == 422
    single = client.get("/api/leaderboard?limit=5&offset=2").json()
    LeaderboardOut.model_validate(single)
    assert (single["total"], single["limit"], single["offset"]) == (12, 5, 2)
    assert [row["rank"] for row in single["items"]] == [3, 4, 5, 6, 7]
    assert client.get("/api/leaderboard").json()["limit"] == 100  # bounded by default
    paths = client.get("/openapi.json").json()["paths"]
    schema = paths["/api/leaderboard/groups"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/LeaderboardGroupListOut")


def test_the_cache_follows_completions_and_deletions(client, db):
    first = add_run(db, STUDENT_KIND, accuracy=0.70, seed=1)
    second = add_run(db, STUDENT_KIND, accuracy=0.72, seed=2)

    def shown() -> dict[str, int]:
        doc = well_formed(client.get("/").text)
        return {r.attrs["data-group"]: int(r.attrs["data-n"]) for r in doc.find_all("tr", class_="group-row")}

    assert shown() == {first.group_key: 2}
    # A third replicate finishes, as the worker leaves it.
    third = add_run(db, STUDENT_KIND, status="running", seed=3)
    run = db.get(Run, third.id)
    run.status, run.final_accuracy, run.finished_at = "completed", 0.74, utcnow()
    db.commit()
    assert shown() == {first.group_key: 3}
    assert groups(client)[0]["n"] == 3
    services.delete_run(db, second.id)
    assert shown() == {first.group_key: 2}
    assert groups(client)[0]["run_ids"] == [first.id, third.id]
    # A deletion and a completion between two reads (the count stays) still show.
    services.delete_run(db, first.id)
    add_run(db, STUDENT_KIND, accuracy=0.9, seed=5, epochs=7)
    assert len(shown()) == 2


def test_the_board_pages_forward_and_back_and_the_single_run_view(client, db):
    for epochs in (2, 3, 4):
        add_run(db, STUDENT_KIND, accuracy=0.5 + epochs / 100, epochs=epochs)

    def rows(doc) -> list[tuple[str, str]]:
        return [(r.find("td", class_="num").text(), r.attrs["data-group"]) for r in doc.find_all("tr", class_="group-row")]

    doc = well_formed(client.get("/?limit=2").text)
    assert [rank for rank, _ in rows(doc)] == ["1", "2"]
    assert doc.by_id("board-count").text() == "3 configurations from 3 completed runs"
    assert doc.by_id("pager-top").find(class_="position").text() == "1–2 of 3"
    assert "Show all" not in doc.by_id("leaderboard").text()
    # The section refreshes itself with the page it shows.
    assert doc.by_id("leaderboard").attrs["hx-get"] == "/fragments/leaderboard?limit=2"
    assert doc.find(id="page-first-top") is None and doc.find(id="page-previous-top") is None  # the first page
    following = doc.by_id("page-next-top")
    assert following.attrs["href"] == "/?offset=2&limit=2"  # without JavaScript, the page itself
    assert following.attrs["hx-get"] == "/fragments/leaderboard?offset=2&limit=2"
    second = client.get(following.attrs["hx-get"], headers={"HX-Request": "true", "HX-Trigger": "page-next-top"})
    # The address follows: reloaded or passed on, it shows this page.
    assert second.headers["HX-Push-Url"] == "/?offset=2&limit=2"
    second = well_formed(second.text)
    assert [rank for rank, _ in rows(second)] == ["3"] and second.by_id("pager-bottom").find(class_="position").text() \
        == "3–3 of 3"
    assert second.by_id("page-previous-top").attrs["hx-get"] == "/fragments/leaderboard?limit=2"
    assert second.find(id="page-next-top") is None  # the last page
    assert {key for _, key in rows(doc)} | {key for _, key in rows(second)} == {g["key"] for g in groups(client)}
    # The board refreshing itself (a run completed) keeps the address as it is.
    refresh = client.get("/fragments/leaderboard?offset=2&limit=2", headers={"HX-Request": "true",
                                                                             "HX-Trigger": "leaderboard"})
    assert "HX-Push-Url" not in refresh.headers
    toggle = doc.by_id("view-runs")
    assert toggle.attrs["hx-get"] == "/fragments/leaderboard?view=runs&limit=2"  # the first page of the other view
    assert doc.by_id("view-groups").attrs["aria-pressed"] == "true"
    runs = client.get(toggle.attrs["hx-get"], headers={"HX-Request": "true", "HX-Trigger": "view-runs"})
    assert runs.headers["HX-Push-Url"] == "/?view=runs&limit=2"
    runs = well_formed(runs.text)
    assert len(runs.by_id("leaderboard-table").find("tbody").find_all("tr")) == 2
    assert runs.by_id("view-runs").attrs["aria-pressed"] == "true"
    assert runs.by_id("pager-top").find(class_="position").text() == "1–2 of 3"
    assert well_formed(client.get("/?view=runs").text).find(id="leaderboard-table") is not None
    # An address past the last page says so and leads back.
    beyond = well_formed(client.get("/?offset=30&limit=2").text)
    assert "No configurations on this page" in beyond.by_id("no-rows").text()
    assert beyond.by_id("no-rows-first").attrs["href"] == "/?limit=2"


def test_home_lists_the_latest_studies_with_their_progress(client, db):
    body = {"dataset": "synthetic", "subset": 100, "methods": ["student", KD], "seeds": [1, 2], "epochs": 1,
            "teacher_epochs": 1, "device": "cpu"}
    study = client.post("/api/studies", json=body).json()
    run_ids = study["run_ids"]
    for run_id in run_ids[:2]:
        run = db.get(Run, run_id)
        run.status, run.final_accuracy, run.finished_at = "completed", 0.5, utcnow()
    db.commit()
    doc = well_formed(client.get("/").text)
    row = doc.by_id("studies").find(class_="study-row")
    assert row.attrs["data-study-id"] == str(study["id"])
    assert row.find("a").attrs["href"] == f"/studies/{study['id']}"
    assert f"2/{len(run_ids)} runs done" in row.text()
    assert row.find(role="progressbar").attrs["aria-valuenow"] == "2"
    assert "running" in row.find(class_="badge").text() or "queued" in row.find(class_="badge").text()
    # The queue fragment, polled every 2 s, carries the studies too: their progress stays live.
    assert well_formed(client.get("/fragments/active?done=0").text).find(id="studies") is not None


def test_the_ranking_is_one_aggregate_not_a_query_per_group(client, db):
    from sqlalchemy import event

    teacher = add_run(db, TEACHER_KIND, accuracy=0.8)
    for seed in range(6):
        add_run(db, KD, accuracy=0.7 + seed / 100, seed=seed, teacher=teacher.id, epochs=2 + seed % 3)
        add_run(db, STUDENT_KIND, accuracy=0.6 + seed / 100, seed=seed, epochs=2 + seed % 3)
    engine = client.app.state.engine
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        view_models.forget_leaderboards()
        client.get("/fragments/leaderboard")
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    board_queries = [s for s in statements if "FROM runs" in s]
    assert len(board_queries) <= 8, board_queries  # 7 groups: a fixed number of queries, not one per group
    assert not any("runs.config" in s and "IN (" not in s for s in board_queries)  # configs of shown groups only


def test_the_ranking_cache_is_kept_per_database(client, db, tmp_path):
    from page_fixtures import make_client, session_of

    add_run(db, STUDENT_KIND, accuracy=0.7)
    with make_client(tmp_path / "other") as other:
        with session_of(other) as other_db:
            add_run(other_db, TEACHER_KIND, accuracy=0.9)
        assert [g["kind"] for g in groups(other)] == [TEACHER_KIND]
    assert [g["kind"] for g in groups(client)] == [STUDENT_KIND]
    assert math.isclose(leaderboard.ranking(db).runs, 1)


def test_the_grouped_board_on_postgresql(pg_url, tmp_path):
    from fastapi.testclient import TestClient
    from page_fixtures import session_of

    from app.main import create_app
    from app.settings import Settings
    from tests.app_fixtures import TEST_CLIENT_HOST

    settings = Settings(db_url=pg_url, data_dir=tmp_path / "data", runs_dir=tmp_path / "runs",
                        allowed_hosts=(TEST_CLIENT_HOST,))
    with TestClient(create_app(settings)) as client, session_of(client) as db:
        kd_values, student_values = {1: 0.712, 2: 0.705, 3: 0.731}, {1: 0.700, 2: 0.690, 3: 0.722}
        _, kd, _ = seed_experiment(db, kd_values, student_values)
        row = by_kind(groups(client))[KD]
        expected = stats.ttest_rel(list(kd_values.values()), list(student_values.values()))
        assert row["n"] == 3 and row["std"] == pytest.approx(stats.tstd(list(kd_values.values())), abs=1e-12)
        assert row["vs_baseline"]["paired"] and row["vs_baseline"]["p_value"] == pytest.approx(expected.pvalue)
        assert [r["rank"] for r in groups(client)] == [1, 2, 3]
        for page in ("/", "/?view=runs", f"/fragments/leaderboard/group/{kd[0].group_key}"):
            assert client.get(page).status_code == 200, page
        services.delete_run(db, kd[0].id)
        assert by_kind(groups(client))[KD]["n"] == 2


def test_completions_move_the_cached_ranking_on_without_a_recount(client, db, monkeypatch):
    teacher = add_run(db, TEACHER_KIND, accuracy=0.8)
    for seed in (1, 2):
        add_run(db, KD, accuracy=0.70 + seed / 100, seed=seed, teacher=teacher.id)
        add_run(db, STUDENT_KIND, accuracy=0.69 + seed / 100, seed=seed)
    pending = [add_run(db, kind, status="running", seed=3, teacher=teacher.id if kind == KD else None)
               for kind in (KD, STUDENT_KIND, STUDENT_KIND)]
    pending[2] = db.get(Run, pending[2].id)
    pending[2].group_key = None  # a run without a group key completes too
    db.commit()
    groups(client)  # ranked and cached
    recounts = []
    full = leaderboard._rank
    monkeypatch.setattr(leaderboard, "_rank", lambda session: recounts.append(1) or full(session))
    for run, accuracy in zip(pending, (0.75, 0.66, 0.61)):
        row = db.get(Run, run.id)
        row.status, row.final_accuracy, row.finished_at = "completed", accuracy, utcnow()
    db.commit()
    moved = groups(client)
    assert recounts == []  # moved on by the three runs alone
    view_models.forget_leaderboards()
    recounted = groups(client)
    assert recounts == [1]
    # The same board as a recount, to the last run id and p-value (what it kept of the database included).
    assert [(g["key"], g["n"], g["rank"]) for g in moved] == [(g["key"], g["n"], g["rank"]) for g in recounted]
    assert all(same(a, b) for a, b in zip(moved, recounted))
    assert {g["key"] for g in moved} >= {f"run-{pending[2].id}"}
    # A deletion is not a completion: the next read counts again.
    services.delete_run(db, pending[0].id)
    assert by_kind_n(groups(client), KD) == 2 and recounts == [1, 1]


def same(a, b) -> bool:
    """Equal, floats to 1e-12 (a running sum and the database's differ in the last bits)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-12)
    return a == b


def by_kind_n(items: list[dict], kind: str) -> int:
    return sum(g["n"] for g in items if g["kind"] == kind)
