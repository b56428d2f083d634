"""Readable legends and tables (parsed pages, no browser): a method's colour is the same on the board, the run
page, compare and the study page; group legends name their hyperparameters and seeds; compare shows the
configuration of groups too; intervals are shown inside [0, 100] %, and two seeds are said to be too few.
tests/browser/test_readable_charts.py checks what the charts draw."""

from __future__ import annotations

import json
import re

import pytest
from sqlmodel import select

from page_fixtures import add_epoch, add_run, client, db, well_formed  # noqa: F401  (client and db are fixtures)

from app.store.models import Epoch, Run
from app.studies import service as studies
from app.web.charts import kind_color, method_styles
from tests.study_fixtures import finish, submit

SWEEP = {"kd.temperature": [2, 4]}


def _chip_colors(node) -> dict[str, str]:
    """The colour of each coloured label (``.kind``) under ``node``, by its text."""
    return {chip.text(): re.search(r"--kind-color:\s*(#[0-9a-f]{6})", chip.attrs["style"]).group(1)
            for chip in node.find_all(class_="kind")}


def _spec(doc, chart_id: str) -> dict:
    return json.loads(doc.by_id(f"{chart_id}-spec").text())


def _sweep(client, db, accuracy=None, seeds=(1, 2, 3)) -> tuple[int, list[dict]]:
    study_id = submit(client, grid=SWEEP, seeds=seeds)
    finish(db, study_id, **({"accuracy": accuracy} if accuracy else {}))
    return study_id, studies.study_groups(studies.study_runs(db, study_id))


def _accuracy(run) -> float:
    return {"teacher": 0.8, "student": 0.6, "cosine": 0.62}.get(run.kind, 0.63) + 0.01 * run.seed


def test_a_method_has_one_colour_on_the_board_the_run_page_compare_and_the_study_page(client, db):
    study_id = submit(client, methods=("student", "cosine", "kd"), grid=SWEEP)
    finish(db, study_id, _accuracy)
    groups = studies.study_groups(studies.study_runs(db, study_id))
    first = {}  # each method's first configuration (by first run): it has the method's own colour
    for group in sorted(groups, key=lambda g: min(g["run_ids"])):
        first.setdefault(group["method"], group)
    colour = {method: kind_color(method) for method in first}
    assert len(set(colour.values())) == len(colour) == 4

    board = well_formed(client.get("/").text)
    for row in board.by_id("groups-table").find("tbody").find_all("tr", class_="group-row"):
        group = next(g for g in groups if g["key"] == row.attrs["data-group"])
        assert set(_chip_colors(row).values()) == {colour[group["method"]]}
    for method, group in first.items():
        run_page = well_formed(client.get(f"/runs/{group['run_ids'][0]}").text)
        assert set(_chip_colors(run_page.by_id("run-summary")).values()) == {colour[method]}
        assert {s["color"] for s in _spec(run_page, "accuracy-chart")["series"]} == {colour[method]}

    study = well_formed(client.get(f"/studies/{study_id}").text)
    rows = {tr.attrs["data-group"]: tr for tr in study.by_id("study-table").find("tbody").find_all("tr")}
    for method, group in first.items():
        assert set(_chip_colors(rows[group["key"]]).values()) == {colour[method]}
    other_kd = next(g for g in groups if g["method"] == "kd" and g is not first["kd"])
    assert set(_chip_colors(rows[other_kd["key"]]).values()) == {method_styles(["kd", "kd"])[1]["color"]}
    legend = {li.attrs["data-group"]: li.find("line").attrs["stroke"] for li in study.by_id("curve-legend").find_all("li")}
    assert all(legend[g["key"]] == colour[m] for m, g in first.items())

    compare = well_formed(client.get(f"/compare?study={study_id}").text)
    rows = {tr.attrs["data-group"]: tr for tr in compare.by_id("compare-groups").find("tbody").find_all("tr")}
    for method, group in first.items():
        assert set(_chip_colors(rows[group["key"]]).values()) == {colour[method]}
    picked = [first["kd"]["run_ids"][0], first["cosine"]["run_ids"][0]]
    runs = well_formed(client.get(f"/compare?run={picked[0]}&run={picked[1]}").text)
    assert _chip_colors(runs.by_id("compare-runs")) == {f"#{picked[0]} kd": colour["kd"],
                                                        f"#{picked[1]} cosine": colour["cosine"]}


def test_group_legends_name_their_hyperparameters_and_seeds(client, db):
    study_id, groups = _sweep(client, db)
    study = well_formed(client.get(f"/studies/{study_id}").text)
    legend = [li.text() for li in study.by_id("curve-legend").find_all("li")]
    assert {"kd temperature=2 (mean of 3)", "kd temperature=4 (mean of 3)", "student (mean of 3)"} <= set(legend)
    # On compare, a kd group away from its defaults says so even alone; a default one says nothing more.
    kd4 = next(g for g in groups if g["method"] == "kd" and g["params"]["temperature"] == 4)
    kd2 = next(g for g in groups if g["method"] == "kd" and g["params"]["temperature"] == 2)
    compare = well_formed(client.get(f"/compare?group={kd4['key']}").text)
    assert [s["name"] for s in _spec(compare, "compare-group-0")["series"]] == ["G1 kd temperature=4 (mean of 3)"]
    compare = well_formed(client.get(f"/compare?group={kd2['key']}").text)
    assert [s["name"] for s in _spec(compare, "compare-group-0")["series"]] == ["G1 kd (mean of 3)"]


def test_a_seed_that_ran_twice_is_one_sample_of_the_mean_curve(client, db):
    study_id, groups = _sweep(client, db)
    student = next(g for g in groups if g["method"] == "student")
    first = db.get(Run, student["run_ids"][0])
    again = Run(**{name: getattr(first, name) for name in ("kind", "status", "config", "dataset", "epochs", "architecture",
                                                           "seed", "group_key", "baseline_key", "study_id", "num_classes")},
                final_accuracy=0.99, best_accuracy=0.99, best_epoch=3, parameters=300_000)
    db.add(again)
    db.commit()
    for n in (1, 2, 3):
        add_epoch(db, again, n, accuracy=0.99)
    doc = well_formed(client.get(f"/studies/{study_id}").text)
    band = next(s for s in _spec(doc, "curve-0")["series"] if s["name"] == "student (mean of 3)")
    assert set(band["n"]) == {3}  # four runs, three seeds
    # Seed 1's two runs are averaged into its value first, then the seeds' values.
    last = {}
    for run_id in [*student["run_ids"], again.id]:
        epoch = db.exec(select(Epoch).where(Epoch.run_id == run_id, Epoch.epoch == 3)).one()
        last.setdefault(db.get(Run, run_id).seed, []).append(epoch.test_accuracy)
    per_seed = [sum(v) / len(v) for v in last.values()]
    assert band["y"][band["x"].index(3)] == pytest.approx(sum(per_seed) / 3)


def test_intervals_stay_inside_0_and_100_percent_and_two_seeds_are_too_few(client, db):
    # Two seeds far apart near the top: a t interval reaching past 100 %.
    study_id, groups = _sweep(client, db, accuracy=lambda run: {1: 0.9, 2: 0.99}[run.seed] if run.kind != "teacher"
                              else 0.8, seeds=(1, 2))
    kd = next(g for g in groups if g["method"] == "kd")
    assert kd["n"] == 2 and kd["ci95"][1] > 1 and kd["ci95"][0] < 0.9
    pages = {"study": well_formed(client.get(f"/studies/{study_id}").text),
             "compare": well_formed(client.get(f"/compare?study={study_id}").text),
             "board": well_formed(client.get("/").text)}
    tables = {"study": "study-table", "compare": "compare-groups", "board": "groups-table"}
    for name, doc in pages.items():
        row = doc.by_id(tables[name]).find("tr", data_group=kd["key"])
        ci = row.find("td", data_col="ci")
        low, high = (float(v) for v in re.findall(r"(-?\d+\.\d)%", ci.text()))
        assert 0 <= low <= high == 100.0, (name, ci.text())
        assert "data-clipped" in ci.find(class_="interval").attrs
        assert "2 seeds: too few" in ci.text(), name
    assert "too wide to be of use" in pages["study"].by_id("too-few-seeds").text()
    finals = _spec(pages["compare"], "finals-chart")["series"][0]
    index = finals["x"].index(next(tr for tr in pages["compare"].by_id("compare-groups").find_all("tr")
                                   if tr.attrs.get("data-group") == kd["key"]).find(class_="kind").text())
    assert finals["y"][index] + finals["errorPlus"][index] == 1.0
    band = next(s for s in _spec(pages["study"], "sweep-0")["series"] if "upper" in s)
    assert max(band["upper"]) <= 1.0 and min(band["lower"]) >= 0.0
    curves = _spec(pages["study"], "curve-0")["series"]
    assert all(u is None or u <= 1.0 for s in curves for u in s["upper"])


def test_compare_shows_the_configuration_of_groups_beside_runs(client, db):
    study_id, groups = _sweep(client, db)
    single = add_run(db, "kd", accuracy=0.55, epochs=3, temperature=8, teacher=groups[0]["run_ids"][0])
    doc = well_formed(client.get(f"/compare?study={study_id}&run={single.id}").text)
    table = doc.by_id("config-diff")
    heads = [th.text() for th in table.find("thead").find_all("th")[1:]]
    shown = [g for g in studies.study_groups(studies.study_runs(db, study_id))]
    assert heads == [f"#{single.id}", *(f"G{i + 1}" for i in range(len(shown)))]
    rows = {r.find("td").text(): [td.text() for td in r.find_all("td")[1:]] for r in table.find("tbody").find_all("tr")}
    order = [g["key"] for g in shown]
    by_key = {g["key"]: g for g in groups}
    assert rows["kind"] == ["kd", *(by_key[k]["method"] for k in order)]
    assert rows["Temperature"] == ["8", *("2" if by_key[k]["params"].get("temperature") == 2 else
                                          "4" if by_key[k]["params"].get("temperature") == 4 else "—" for k in order)]
    assert rows["Seed"] == ["42", *(", ".join(map(str, by_key[k]["seeds"])) for k in order)]
    assert "1, 2, 3" in rows["Seed"] and "1" in rows["Seed"]  # the students' seeds; the one teacher's
