"""FLOPs and MACs where people read parameters: GET /api/architectures, the launch form's network list, the run
page, the leaderboard (rows and API), and the board's max_flops filter ("the best student under 50 MFLOPs")."""

from __future__ import annotations

import re

import pytest
from page_fixtures import STUDENT_KIND, add_run, client, db  # noqa: F401  (client and db are fixtures)

from app.web.formatting import fmt_params
from kdcore.architectures import catalog

TEN = catalog(10)


def test_the_architecture_list_gives_forward_flops_and_macs_at_batch_one(client):
    items = client.get("/api/architectures", params={"num_classes": 10}).json()["items"]
    assert {item["name"] for item in items} == set(TEN)
    for item in items:
        assert item["flops"] == 2 * item["macs"] > 0
    resnet = next(item for item in items if item["name"] == "resnet8x4")
    # The paper tables' resnet8x4: 0.18 GMACs at 32×32.
    assert 170e6 < resnet["macs"] < 180e6


def test_the_launch_form_lists_each_network_with_its_macs(client):
    page = client.get("/launch").text
    option = re.search(r'<option value="resnet20"[^>]*>([^<]*)</option>', page)
    assert option and f"{fmt_params(TEN['resnet20']['macs'])} MACs" in option[1]


def test_the_run_page_and_the_board_show_macs_beside_parameters(client, db):
    small = add_run(db, STUDENT_KIND, accuracy=0.61, architecture="resnet20")
    large = add_run(db, STUDENT_KIND, accuracy=0.64, architecture="resnet32x4")
    run_page = client.get(f"/runs/{small.id}").text
    cell = re.search(r'<div id="run-cost">.*?<strong>(.*?)</strong>', run_page, re.S)[1]
    assert fmt_params(TEN["resnet20"]["macs"]) in cell and f"{fmt_params(TEN['resnet20']['flops'])} FLOPs" in cell
    for view in ("groups", "runs"):
        board = client.get("/", params={"view": view}).text
        cells = re.findall(r'<td class="num hide-sm" data-col="macs">([^<]*)</td>', board)
        assert cells == [fmt_params(TEN["resnet32x4"]["macs"]), fmt_params(TEN["resnet20"]["macs"])]
    groups = client.get("/api/leaderboard/groups").json()["items"]
    assert [(g["architecture"], g["macs"], g["flops"]) for g in groups] == [
        (name, TEN[name]["macs"], TEN[name]["flops"]) for name in ("resnet32x4", "resnet20")]
    assert {r["run_id"]: r["macs"] for r in client.get("/api/leaderboard").json()["items"]} == {
        large.id: TEN["resnet32x4"]["macs"], small.id: TEN["resnet20"]["macs"]}


@pytest.mark.parametrize("limit", ["200M", "2e8", "200000000", "0.2G"])
def test_max_flops_keeps_the_networks_under_the_limit(client, db, limit):
    add_run(db, STUDENT_KIND, accuracy=0.64, architecture="resnet32x4")  # 2.2 GFLOPs: the best, and too costly
    small = add_run(db, STUDENT_KIND, accuracy=0.61, architecture="resnet20")  # 163 MFLOPs
    assert TEN["resnet20"]["flops"] <= 200e6 < TEN["resnet32x4"]["flops"]
    groups = client.get("/api/leaderboard/groups", params={"max_flops": limit}).json()["items"]
    assert [g["architecture"] for g in groups] == ["resnet20"]
    runs = client.get("/api/leaderboard", params={"max_flops": limit}).json()["items"]
    assert [r["run_id"] for r in runs] == [small.id]
    board = client.get("/", params={"max_flops": limit}).text
    assert re.findall(r'data-col="macs">([^<]*)<', board) == [fmt_params(TEN["resnet20"]["macs"])]
    assert 'name="max_flops"' in board and 'value="200000000"' in board


def test_a_limit_below_every_network_matches_nothing_and_a_bad_one_is_a_422(client, db):
    add_run(db, STUDENT_KIND, accuracy=0.61, architecture="resnet20")
    assert client.get("/api/leaderboard/groups", params={"max_flops": "1k"}).json()["items"] == []
    refused = client.get("/api/leaderboard/groups", params={"max_flops": "fifty"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["query", "max_flops"]


def test_the_pareto_front_keeps_each_point_that_nothing_as_cheap_beats():
    from app.leaderboard.pareto import front

    points = [(5.0, 0.70), (1.0, 0.50), (2.0, 0.62), (2.0, 0.60), (3.0, 0.61), (4.0, 0.66), (5.0, 0.69)]
    # Cheapest first; of two equally cheap the more accurate; a costlier point only when it is more accurate.
    assert front(points) == [1, 2, 5, 0]
    assert front([]) == []


def test_the_pareto_chart_s_error_bars_stay_inside_0_and_100_percent():
    # Two seeds give an interval of ±12.7 std: drawn raw, it ran from -200 % to 300 %.
    from app.leaderboard.pareto import pareto_chart

    row = {"mean": 0.5, "ci95": [-2.0, 3.0], "std": 0.2, "kind": STUDENT_KIND, "title": "Student", "color": "#000",
           "label": "Student", "n": 2, "architecture": "tutorial_student", "dataset": "synthetic", "parameters": 267738,
           "flops": 2.6e6, "run_ids": [1, 2], "compare_url": "/compare?group=x", "num_classes": 10}
    series = pareto_chart([row], {})["series"][0]
    assert (series["errorMinus"], series["errorPlus"]) == ([0.5], [0.5])
