"""Filters on the leaderboard (both views) and the run list, by method, dataset, network, epochs, study and
tag: through the API and through the page's controls, whose state is the page's address. Unknown values
match nothing, bad types are a 422, and a configuration chosen by a study or a tag keeps the figures of all
its runs."""

from __future__ import annotations

import pytest
from page_fixtures import KD_KINDS, STUDENT_KIND, TEACHER_KIND, add_run, client, db, well_formed  # noqa: F401
from sqlmodel import select

from app.leaderboard import board as leaderboard
from app.leaderboard.responses import LeaderboardGroupListOut, LeaderboardOut
from app.runs.responses import RunListOut
from app.store.models import Run, Study
from tests.pg_fixtures import pg_server, pg_url  # noqa: F401  (PostgreSQL, skipped where absent)

KD = KD_KINDS[0]


@pytest.fixture
def stored(client, db):
    return fill(client, db)


def fill(client, db) -> dict:
    """A teacher; KD and student configurations over seeds; students of other epochs, data and network; a
    study holding a fourth seed of the student; a tagged KD run and a tagged study."""
    teacher = add_run(db, TEACHER_KIND, accuracy=0.80, seed=1)
    kd = [add_run(db, KD, accuracy=0.70 + s / 100, seed=s, teacher=teacher.id) for s in (1, 2, 3)]
    student = [add_run(db, STUDENT_KIND, accuracy=0.66 + s / 100, seed=s) for s in (1, 2, 3)]
    longer = [add_run(db, STUDENT_KIND, accuracy=0.72 + s / 100, seed=s, epochs=5) for s in (1, 2)]
    other_data = add_run(db, STUDENT_KIND, accuracy=0.40, seed=1, dataset="synthetic100")
    other_net = add_run(db, STUDENT_KIND, accuracy=0.60, seed=1, architecture="resnet20")
    study = Study(name="fourth seed", dataset="synthetic", spec={"methods": [STUDENT_KIND], "seeds": [4]}, total_runs=1)
    db.add(study)
    db.commit()
    in_study = add_run(db, STUDENT_KIND, accuracy=0.70, seed=4, study=study.id)
    assert client.patch(f"/api/runs/{kd[0].id}", json={"tags": ["promising"]}).status_code == 200
    assert client.patch(f"/api/studies/{study.id}", json={"tags": ["sweep"]}).status_code == 200
    keys = {"teacher": teacher.group_key, "kd": kd[0].group_key, "student": student[0].group_key,
            "longer": longer[0].group_key, "other_data": other_data.group_key, "other_net": other_net.group_key}
    assert len(set(keys.values())) == 6 and in_study.group_key == keys["student"]
    return {"keys": keys, "study": study.id, "in_study": in_study.id, "kd": [r.id for r in kd],
            "student": [r.id for r in [*student, in_study]]}


def groups(client, **params) -> dict:
    response = client.get("/api/leaderboard/groups", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return LeaderboardGroupListOut.model_validate(response.json()).model_dump()


def keys_of(answer: dict) -> list[str]:
    return [item["key"] for item in answer["items"]]


def test_the_api_filters_configurations_by_each_fact(client, stored):
    keys = stored["keys"]
    every = groups(client)
    assert every["total"] == 6
    assert keys_of(groups(client, dataset="synthetic100")) == [keys["other_data"]]
    assert keys_of(groups(client, architecture="resnet20")) == [keys["other_net"]]
    # A network's former name finds the runs stored under its current one (tutorial_student).
    tutorial = keys_of(groups(client, architecture="tutorial_student"))
    assert tutorial and keys_of(groups(client, architecture="seed_student")) == tutorial
    assert client.get("/api/runs", params={"architecture": "seed_student"}).json()["total"] == \
        client.get("/api/runs", params={"architecture": "tutorial_student"}).json()["total"] > 0
    assert keys_of(groups(client, kind=KD)) == [keys["kd"]]
    assert keys_of(groups(client, epochs=5)) == [keys["longer"]]
    both = groups(client, kind=STUDENT_KIND, epochs=3, dataset="synthetic")
    assert set(keys_of(both)) == {keys["student"], keys["other_net"]}
    # Numbered among those listed, the order of the whole board kept.
    assert [item["rank"] for item in both["items"]] == [1, 2]
    assert keys_of(both) == [k for k in keys_of(every) if k in set(keys_of(both))]
    # The rows' figures are the rows' own, filtered or not.
    unfiltered = {item["key"]: item for item in every["items"]}
    for item in both["items"]:
        assert {k: v for k, v in item.items() if k != "rank"} == \
            {k: v for k, v in unfiltered[item["key"]].items() if k != "rank"}
    assert both["runs"] == 4 + 1  # the student's four seeds (one in the study) and the other network's run


def test_a_study_or_a_tag_chooses_configurations_whose_figures_count_all_their_runs(client, stored):
    keys = stored["keys"]
    by_study = groups(client, study_id=stored["study"])
    assert keys_of(by_study) == [keys["student"]]
    row = by_study["items"][0]
    # One run of the configuration is in the study; its n and mean are those of all four seeds.
    assert row["n"] == 4 and sorted(row["run_ids"]) == sorted(stored["student"]) and by_study["runs"] == 4
    assert keys_of(groups(client, tag="promising")) == [keys["kd"]]
    assert groups(client, tag="promising")["items"][0]["n"] == 3
    assert keys_of(groups(client, tag="sweep")) == [keys["student"]]  # a study's tag tags its runs
    assert keys_of(groups(client, tag="sweep", kind=KD)) == []


@pytest.mark.parametrize("params", [{"dataset": "nope"}, {"architecture": "nope"}, {"kind": "nope"},
                                    {"epochs": 999}, {"study_id": 999}, {"tag": "nope"}])
def test_unknown_values_match_nothing(client, stored, params):
    assert groups(client, **params) == {"items": [], "total": 0, "runs": 0, "limit": 100, "offset": 0}
    single = client.get("/api/leaderboard", params=params).json()
    assert (single["items"], single["total"]) == ([], 0)
    listed = client.get("/api/runs", params=params).json()
    assert (listed["items"], listed["total"]) == ([], 0)


@pytest.mark.parametrize("params", [{"epochs": "ten"}, {"epochs": 0}, {"study_id": "first"}, {"study_id": -1},
                                    {"tag": "t" * 41}, {"kind": "k" * 201}])
def test_bad_types_are_a_422(client, stored, params):
    name = next(iter(params))
    for path in ("/api/leaderboard/groups", "/api/leaderboard", "/api/runs", "/", "/fragments/leaderboard"):
        response = client.get(path, params=params)
        assert response.status_code == 422, (path, params)
        assert response.json()["detail"][0]["loc"] == ["query", name]


def test_the_single_run_board_and_the_run_list_filter_runs(client, stored):
    single = client.get("/api/leaderboard", params={"kind": KD, "limit": 2}).json()
    LeaderboardOut.model_validate(single)
    assert single["total"] == 3 and [r["run_id"] for r in single["items"]] == [stored["kd"][2], stored["kd"][1]]
    assert [r["rank"] for r in single["items"]] == [1, 2]
    tagged = client.get("/api/leaderboard", params={"tag": "promising"}).json()
    assert [r["run_id"] for r in tagged["items"]] == [stored["kd"][0]] and tagged["items"][0]["tags"] == ["promising"]
    via_study = client.get("/api/leaderboard", params={"tag": "sweep"}).json()
    assert [r["run_id"] for r in via_study["items"]] == [stored["in_study"]]
    listed = client.get("/api/runs", params={"study_id": stored["study"]}).json()
    RunListOut.model_validate(listed)
    assert [r["id"] for r in listed["items"]] == [stored["in_study"]] and listed["total"] == 1
    assert client.get("/api/runs", params={"tag": "sweep"}).json()["total"] == 1
    assert client.get("/api/runs", params={"dataset": "synthetic100"}).json()["total"] == 1
    assert client.get("/api/runs", params={"architecture": "resnet20", "epochs": 3}).json()["total"] == 1
    assert client.get("/api/runs", params={"epochs": 5, "kind": STUDENT_KIND}).json()["total"] == 2
    # An empty value (a form's "any") is no filter.
    assert client.get("/api/runs", params={"epochs": "", "tag": ""}).json()["total"] == 12


def test_filtering_reads_the_ranking_it_has_rather_than_summing_again(client, stored, monkeypatch):
    groups(client)  # ranked and kept
    sums = []
    monkeypatch.setattr(leaderboard, "_configurations", lambda *a, **k: sums.append(1) or [])
    for params in ({"dataset": "synthetic100"}, {"epochs": 5}, {"study_id": stored["study"]}, {"tag": "sweep"}):
        assert groups(client, **params)["total"] == 1
    assert sums == []


def board_rows(doc) -> list[str]:
    return [row.attrs["data-group"] for row in doc.find_all("tr", class_="group-row")]


def test_the_page_filters_by_its_address_and_shows_the_filter_it_applies(client, stored):
    keys = stored["keys"]
    doc = well_formed(client.get("/?dataset=synthetic100").text)
    assert board_rows(doc) == [keys["other_data"]]
    assert doc.by_id("board-count").text() == "1 of 6 configurations match (1 completed runs)"
    assert doc.by_id("pager-top").find(class_="position").text() == "1–1 of 1"
    chosen = doc.by_id("filter-dataset").find("option", selected=True)
    assert chosen.attrs["value"] == "synthetic100"
    assert doc.by_id("leaderboard").attrs["hx-get"] == "/fragments/leaderboard?dataset=synthetic100"
    # Each control offers what the completed runs hold.
    offered = {name: [o.attrs["value"] for o in doc.by_id(f"filter-{name}").find_all("option")][1:]
               for name in ("kind", "dataset", "architecture", "epochs", "study_id", "tag")}
    assert offered["dataset"] == ["synthetic", "synthetic100"] and offered["epochs"] == ["3", "5"]
    assert set(offered["kind"]) == {TEACHER_KIND, KD, STUDENT_KIND} and "resnet20" in offered["architecture"]
    assert offered["study_id"] == [str(stored["study"])] and offered["tag"] == ["promising", "sweep"]
    assert doc.by_id("clear-filters").attrs["href"] == "/"
    # Unfiltered, the count is the whole board's and no Clear link shows.
    whole = well_formed(client.get("/").text)
    assert whole.by_id("board-count").text() == "6 configurations from 12 completed runs"
    assert whole.find(id="clear-filters") is None and len(board_rows(whole)) == 6


def test_the_filter_form_submits_to_the_board_and_the_address_follows(client, stored):
    doc = well_formed(client.get("/").text)
    form = doc.by_id("board-filters")
    assert form.attrs["action"] == "/" and form.attrs["method"] == "get"  # without JavaScript, the page itself
    # What the browser sends: every control's value, "any" as an empty one, the page size.
    sent = {node.attrs["name"]: "" for node in form.find_all("select")}
    sent.update(kind=STUDENT_KIND, epochs="3", limit="25")
    answer = client.get(form.attrs["hx-get"], params=sent, headers={"HX-Request": "true", "HX-Trigger": "board-filters"})
    assert answer.status_code == 200
    assert answer.headers["HX-Push-Url"] == f"/?kind={STUDENT_KIND}&epochs=3&limit=25"
    fragment = well_formed(answer.text)
    keys = stored["keys"]
    assert set(board_rows(fragment)) == {keys["student"], keys["other_net"], keys["other_data"]}
    assert fragment.by_id("filter-limit").find("option", selected=True).attrs["value"] == "25"
    # The address it pushed loads the same board.
    assert board_rows(well_formed(client.get(answer.headers["HX-Push-Url"]).text)) == board_rows(fragment)


def test_a_study_or_tag_filter_says_the_figures_are_the_whole_configurations(client, stored):
    doc = well_formed(client.get(f"/?study_id={stored['study']}").text)
    (row,) = doc.find_all("tr", class_="group-row")
    assert row.attrs["data-n"] == "4"
    note = doc.by_id("filter-note").text()
    assert f"with a completed run in study #{stored['study']}" in note and "all its completed runs" in note
    assert doc.find(id="filter-note") is not None
    assert well_formed(client.get("/?epochs=5").text).find(id="filter-note") is None


def test_unknown_values_on_the_page_match_nothing_and_say_so(client, stored):
    doc = well_formed(client.get("/?kind=nope").text)
    assert board_rows(doc) == [] and "No configurations match these filters" in doc.by_id("no-rows").text()
    assert doc.by_id("filter-kind").find("option", selected=True).attrs["value"] == "nope"
    assert doc.by_id("no-rows-clear").attrs["href"] == "/"
    runs = well_formed(client.get("/?view=runs&tag=nope").text)
    assert runs.find(id="leaderboard-table") is None and "No runs match" in runs.by_id("no-rows").text()


def test_the_single_run_view_filters_and_shows_tags(client, stored):
    doc = well_formed(client.get("/?view=runs&tag=sweep").text)
    rows = doc.by_id("leaderboard-table").find("tbody").find_all("tr")
    assert [r.attrs["data-run-id"] for r in rows] == [str(stored["in_study"])]
    inherited = rows[0].find("a", class_="inherited")
    assert inherited.text() == "sweep" and inherited.attrs["href"] == "/?view=runs&tag=sweep"
    assert doc.by_id("board-count").text() == "1 of 12 completed runs match"
    kd = well_formed(client.get(f"/?view=runs&kind={KD}").text)
    tags = {r.attrs["data-run-id"]: [a.text() for a in r.find_all("a", class_="tag")]
            for r in kd.by_id("leaderboard-table").find("tbody").find_all("tr")}
    assert tags == {str(stored["kd"][0]): ["promising"], str(stored["kd"][1]): [], str(stored["kd"][2]): []}


def test_a_tag_edit_shows_on_the_cached_board(client, db, stored):
    assert board_rows(well_formed(client.get("/?tag=late").text)) == []
    longer = db.exec(select(Run.id).where(Run.epochs == 5)).first()
    client.patch(f"/api/runs/{longer}", json={"tags": ["late"]})
    assert board_rows(well_formed(client.get("/?tag=late").text)) == [stored["keys"]["longer"]]
    client.patch(f"/api/runs/{longer}", json={"tags": []})
    assert board_rows(well_formed(client.get("/?tag=late").text)) == []


def test_filters_and_tags_on_postgresql(pg_url, tmp_path):
    from fastapi.testclient import TestClient
    from page_fixtures import session_of

    from app.main import create_app
    from app.settings import Settings
    from tests.app_fixtures import TEST_CLIENT_HOST

    settings = Settings(db_url=pg_url, data_dir=tmp_path / "data", runs_dir=tmp_path / "runs",
                        allowed_hosts=(TEST_CLIENT_HOST,))
    with TestClient(create_app(settings)) as pg, session_of(pg) as db:
        data = fill(pg, db)
        keys = data["keys"]
        assert keys_of(groups(pg, dataset="synthetic100")) == [keys["other_data"]]
        assert keys_of(groups(pg, epochs=5)) == [keys["longer"]]
        assert keys_of(groups(pg, tag="sweep")) == [keys["student"]]
        assert groups(pg, study_id=data["study"])["items"][0]["n"] == 4
        assert pg.get("/api/runs", params={"tag": "promising"}).json()["total"] == 1
        assert board_rows(well_formed(pg.get("/?tag=promising").text)) == [keys["kd"]]
        pg.patch(f"/api/runs/{data['kd'][0]}", json={"tags": []})
        assert groups(pg, tag="promising")["total"] == 0
