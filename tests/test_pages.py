"""Route tests for the dashboard's home and launch pages and their fragments (parsed HTML, no browser)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from page_fixtures import (  # noqa: F401  (client and db are fixtures)
    KD_KINDS,
    STUDENT_KIND,
    TEACHER_KIND,
    add_run,
    client,
    db,
    make_client,
    session_of,
    well_formed,
)
from sqlmodel import select

from app.store.models import Run
from kdcore.config import METHOD_PARAMS, RunConfig
from kdcore.registry import EXPERIMENT_KINDS, KINDS, METHODS

ROOT = Path(__file__).resolve().parent.parent


def test_home_empty_state_offers_the_tutorial_experiment(client):
    response = client.get("/")
    assert response.status_code == 200
    doc = well_formed(response.text)
    empty = doc.by_id("no-runs")
    assert "launch the tutorial experiment" in empty.text()
    assert any(a.attrs["href"].endswith("/launch#experiment") for a in empty.find_all("a"))
    assert doc.find("table") is None
    assert doc.find(id="no-completed") is None  # one empty state, not two
    assert doc.by_id("leaderboard").attrs["hx-trigger"] == "leaderboard-stale from:body"


def test_home_ranks_completed_runs_with_compression_and_scatter(client, db):
    # The single-run view (the default groups replicates: tests/test_leaderboard_groups.py).
    teacher = add_run(db, TEACHER_KIND, accuracy=0.80, parameters=1_000_000)
    kd = add_run(db, KD_KINDS[0], accuracy=0.85, parameters=250_000, teacher=teacher.id)
    student = add_run(db, STUDENT_KIND, accuracy=0.70, parameters=250_000)
    add_run(db, STUDENT_KIND, status="failed", error="boom")
    doc = well_formed(client.get("/?view=runs").text)
    rows = doc.by_id("leaderboard-table").find("tbody").find_all("tr")
    assert [int(r.attrs["data-run-id"]) for r in rows] == [kd.id, teacher.id, student.id]
    kd_cells = [td.text() for td in rows[0].find_all("td")]
    assert "85.0%" in kd_cells and "4.0×" in kd_cells and "+5.0 pt" in kd_cells
    assert f"#{teacher.id}" in kd_cells  # the teacher column links the teacher run
    assert kd_cells[-1] == "synthetic"
    spec = json.loads(doc.by_id("scatter-spec").text())
    assert spec["xLog"] is True
    by_name = {s["name"]: s for s in spec["series"]}
    assert set(by_name) == {METHODS[k].title for k in (TEACHER_KIND, KD_KINDS[0], STUDENT_KIND)}
    assert by_name[METHODS[KD_KINDS[0]].title]["x"] == [250_000]
    assert by_name[METHODS[KD_KINDS[0]].title]["links"] == [f"/runs/{kd.id}"]
    assert len({s["color"] for s in spec["series"]}) == 3  # coloured by kind


def test_home_lists_queue_with_progress(client, db):
    teacher = add_run(db, TEACHER_KIND, status="running", epochs=4)
    waiting = add_run(db, KD_KINDS[0], status="queued", teacher=teacher.id)
    doc = well_formed(client.get("/").text)
    active = doc.by_id("active")
    assert active.attrs["hx-trigger"].startswith("every")
    rows = {int(r.attrs["data-run-id"]): r for r in active.find_all(class_="active-row")}
    assert set(rows) == {teacher.id, waiting.id}
    bar = rows[teacher.id].find(role="progressbar")
    # Epoch 2 of 4 at step 5 of 10: (1 + 0.5) / 4.
    assert bar.attrs["aria-valuenow"] == "38"
    assert "epoch 2/4" in rows[teacher.id].text() and "ETA" in rows[teacher.id].text()
    assert f"teacher run #{teacher.id} must finish first" in rows[waiting.id].text()
    assert rows[waiting.id].find("button", class_="danger").attrs["hx-post"] == f"/runs/{waiting.id}/cancel"


def test_active_fragment_tells_the_leaderboard_to_refresh_when_a_run_finished(client, db):
    add_run(db, STUDENT_KIND)
    fresh = client.get("/fragments/active?done=1")
    assert fresh.status_code == 200 and "HX-Trigger" not in fresh.headers
    doc = well_formed(fresh.text)
    assert doc.by_id("active").attrs["hx-get"].endswith("?done=1")
    stale = client.get("/fragments/active?done=0")
    assert stale.headers["HX-Trigger"] == "leaderboard-stale"
    home = well_formed(client.get("/").text)
    assert home.by_id("leaderboard").attrs["hx-trigger"] == "leaderboard-stale from:body"


def test_the_single_run_board_shows_a_page_of_rows_and_pages_on(client, db):
    for accuracy in (0.1, 0.2, 0.3):
        add_run(db, STUDENT_KIND, accuracy=accuracy, seed=int(accuracy * 10))
    top = well_formed(client.get("/fragments/leaderboard?view=runs&limit=2").text)
    assert len(top.by_id("leaderboard-table").find("tbody").find_all("tr")) == 2
    # The chart shows the runs listed: with 100,000 runs, one point each would be megabytes of page.
    assert len(json.loads(top.by_id("scatter-spec").text())["series"][0]["x"]) == 2
    assert top.by_id("board-count").text() == "3 completed"
    assert top.by_id("pager-top").find(class_="position").text() == "1–2 of 3"
    following = top.by_id("page-next-bottom").attrs["hx-get"]
    assert following == "/fragments/leaderboard?view=runs&offset=2&limit=2"
    rest = well_formed(client.get(following).text)
    assert [r.find("td", class_="num").text() for r in rest.by_id("leaderboard-table").find("tbody").find_all("tr")] \
        == ["3"]
    assert rest.by_id("leaderboard").attrs["hx-get"] == following  # a refresh keeps the view and the page


@pytest.mark.parametrize("kind", KINDS)
def test_launch_form_fields_follow_the_kind(client, db, kind):
    teacher = add_run(db, TEACHER_KIND, accuracy=0.9)
    running_teacher = add_run(db, TEACHER_KIND, status="running")
    add_run(db, TEACHER_KIND, status="failed")
    doc = well_formed(client.get(f"/launch?kind={kind}").text)
    form = doc.by_id("launch-form")
    assert form.attrs["method"] == "post" and "novalidate" in form.attrs
    selected = doc.by_id("in-kind").find("option", selected=True)
    assert selected.attrs["value"] == kind
    names = {i.attrs.get("name") for i in form.find_all("input") + form.find_all("select")}
    defaults = METHODS[kind].params()
    for param in METHOD_PARAMS:
        assert (param in names) == (param in METHODS[kind].param_names())
        if param in METHODS[kind].param_names() and not isinstance(getattr(defaults, param), bool):
            assert float(doc.by_id(f"in-{param}").attrs["value"]) == getattr(defaults, param)
    chosen = doc.by_id("in-architecture").find("option", selected=True)
    assert chosen.attrs["value"] == METHODS[kind].default_architecture
    assert "resnet32x4" in {o.attrs["value"] for o in doc.by_id("in-architecture").find_all("option")}
    assert doc.by_id("in-epochs").attrs["value"] == str(METHODS[kind].default_epochs)
    assert ("teacher_run_id" in names) == METHODS[kind].needs_teacher
    if METHODS[kind].needs_teacher:
        offered = [o.attrs["value"] for o in doc.by_id("in-teacher_run_id").find_all("option")]
        assert offered == [str(running_teacher.id), str(teacher.id)]  # the failed teacher is not offered
    datasets = [o.attrs["value"] for o in doc.by_id("in-dataset").find_all("option")]
    assert "synthetic" in datasets and "cifar10" in datasets


def test_kind_change_fragment_redraws_kind_fields_and_keeps_the_teacher(client, db):
    first = add_run(db, TEACHER_KIND)
    second = add_run(db, TEACHER_KIND)
    kind_select = well_formed(client.get("/launch").text).by_id("in-kind")
    assert kind_select.attrs["hx-get"] == "/fragments/launch-fields" and kind_select.attrs["hx-target"] == "#kind-fields"
    response = client.get(f"/fragments/launch-fields?kind={KD_KINDS[0]}&teacher_run_id={first.id}")
    doc = well_formed(response.text)
    assert doc.find("html") is None  # a fragment, not a page
    chosen = doc.by_id("in-teacher_run_id").find("option", selected=True)
    assert chosen.attrs["value"] == str(first.id) != str(second.id)
    student = well_formed(client.get(f"/fragments/launch-fields?kind={STUDENT_KIND}").text)
    assert student.find(id="in-teacher_run_id") is None and student.find(id="in-epochs")


def test_launch_without_teachers_says_how_to_get_one(client):
    doc = well_formed(client.get(f"/launch?kind={KD_KINDS[0]}").text)
    select = doc.by_id("in-teacher_run_id")
    assert "disabled" in select.attrs
    link = doc.by_id("field-teacher_run_id").find("a")
    assert link.attrs["href"] == f"/launch?kind={TEACHER_KIND}"


def test_launch_submit_creates_the_run_and_redirects_to_it(client, db):
    teacher = add_run(db, TEACHER_KIND)
    form = {"kind": KD_KINDS[0], "teacher_run_id": str(teacher.id), "dataset": "synthetic", "subset": "200",
            "epochs": "2", "batch_size": "64", "lr": "0.01", "seed": "7", "device": "cpu", "resident_data": "false",
            "cache_teacher": "false", "cuda_graphs": "false", "precision": "bfloat16"}
    form.update({p: str(v) for p, v in METHODS[KD_KINDS[0]].params().model_dump().items()})
    response = client.post("/launch", data=form, follow_redirects=False)
    assert response.status_code == 303
    run_id = int(response.headers["location"].rsplit("/", 1)[1])
    run = db.get(Run, run_id)
    assert run.teacher_run_id == teacher.id and run.status == "queued"
    assert run.config["epochs"] == 2 and run.config["lr"] == 0.01 and run.config["resident_data"] is False
    assert run.config["precision"] == "bfloat16"
    page = client.get(response.headers["location"])
    assert page.status_code == 200 and "<dd>bfloat16</dd>" in page.text


def test_launch_empty_fields_take_the_kind_defaults(client, db):
    response = client.post("/launch", data={"kind": STUDENT_KIND, "dataset": "synthetic", "epochs": "", "subset": " "},
                           follow_redirects=False)
    assert response.status_code == 303
    run = db.exec(select(Run)).one()
    assert run.config["epochs"] == METHODS[STUDENT_KIND].default_epochs and run.config["subset"] is None


def test_invalid_launch_shows_inline_errors_and_keeps_the_input(client, db):
    form = {"kind": KD_KINDS[0], "dataset": "synthetic", "epochs": "many", "lr": "-1", "subset": "300"}
    response = client.post("/launch", data=form, follow_redirects=False)
    assert response.status_code == 200
    doc = well_formed(response.text)
    for field in ("epochs", "lr", "teacher_run_id"):
        box = doc.by_id(f"field-{field}")
        assert "invalid" in box.classes
        assert box.find(class_="error", role="alert").text()
    assert "integer" in doc.by_id("err-epochs").text()
    assert doc.by_id("in-epochs").attrs["value"] == "many"  # the user's input is kept
    assert doc.by_id("in-subset").attrs["value"] == "300"
    assert doc.by_id("in-epochs").attrs["aria-describedby"] == "err-epochs"
    assert "invalid" not in doc.by_id("field-subset").classes
    assert db.exec(select(Run)).all() == []


def test_unknown_dataset_error_sits_beside_the_dataset(client):
    response = client.post("/launch", data={"kind": STUDENT_KIND, "dataset": "nope"})
    doc = well_formed(response.text)
    assert response.status_code == 200
    assert "unknown dataset" in doc.by_id("err-dataset").text()
    assert doc.by_id("in-dataset").find("option", selected=True).attrs["value"] == "nope"


def test_seed_experiment_launch_and_its_errors(client, db):
    bad = client.post("/launch/experiment", data={"dataset": "synthetic", "subset": "0"})
    assert bad.status_code == 200
    doc = well_formed(bad.text)
    assert doc.by_id("experiment").find(id="exp-err-subset").text()
    assert db.exec(select(Run)).all() == []
    good = client.post("/launch/experiment", data={"dataset": "synthetic", "subset": "200", "epochs": "1",
                                                   "device": "cpu"}, follow_redirects=False)
    assert good.status_code == 303 and "/compare?experiment=" in good.headers["location"]
    assert len(db.exec(select(Run)).all()) == len(EXPERIMENT_KINDS)


def test_assets_are_served_offline(client):
    htmx = client.get("/static/vendor/htmx.min.js")
    assert htmx.status_code == 200
    readme = (ROOT / "static" / "vendor" / "README.md").read_text()
    assert hashlib.sha256(htmx.content).hexdigest() in readme and 'version:"2.' in htmx.text
    # Plotly's cartesian bundle (scatter, bar, heatmap), the version and sha256 the README records.
    plotly_js = client.get("/static/vendor/plotly-cartesian.min.js")
    assert plotly_js.status_code == 200 and "javascript" in plotly_js.headers["content-type"]
    assert hashlib.sha256(plotly_js.content).hexdigest() in readme
    assert re.search(r"plotly\.js \(cartesian - minified\) v4\.1\.1", plotly_js.text[:200])
    assert "| 4.1.1 |" in readme
    doc = well_formed(client.get("/launch").text)
    sources = [s.attrs["src"] for s in doc.find_all("script") if "src" in s.attrs]
    assert all(src.startswith("/") for src in sources), sources  # no CDN
    for src in sources + [link.attrs["href"] for link in doc.find_all("link")]:
        assert client.get(src).status_code == 200, src


def test_pages_stay_out_of_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert all(path.startswith("/api/") for path in paths)


def test_web_process_does_not_import_torch():
    code = "import sys, app.main; app.main.create_app(); assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_best_run_of_each_kind_is_summarised(client, db):
    teacher = add_run(db, TEACHER_KIND, accuracy=0.60, parameters=1_000_000)
    add_run(db, KD_KINDS[0], accuracy=0.50, parameters=200_000, teacher=teacher.id)
    best_kd = add_run(db, KD_KINDS[0], accuracy=0.65, parameters=250_000, teacher=teacher.id)
    doc = well_formed(client.get("/?view=runs").text)
    rows = doc.by_id("best-by-kind").find("tbody").find_all("tr")
    assert [int(r.attrs["data-run-id"]) for r in rows] == [teacher.id, best_kd.id]  # registry order
    assert [td.text() for td in rows[1].find_all("td")][1:] == ["65.0%", "+5.0 pt", "250k", "4.0×"]


def test_cached_leaderboard_follows_completions_and_deletions(client, db):
    from app.runs import service as services

    def ranked() -> list[int]:
        doc = well_formed(client.get("/?view=runs").text)
        table = doc.find(id="leaderboard-table")
        return [int(r.attrs["data-run-id"]) for r in table.find("tbody").find_all("tr")] if table else []

    first = add_run(db, STUDENT_KIND, accuracy=0.5)
    assert ranked() == [first.id]
    second = add_run(db, STUDENT_KIND, accuracy=0.7)
    assert ranked() == [second.id, first.id]
    services.delete_run(db, first.id)
    assert ranked() == [second.id]
    # A completion that replaces a deletion (same count) still shows.
    services.delete_run(db, second.id)
    third = add_run(db, STUDENT_KIND, accuracy=0.6)
    assert ranked() == [third.id]


def test_leaderboard_version_moves_with_completions_and_deletions_only(client, db):
    from app.leaderboard.completed import leaderboard_version
    from app.runs import service as services

    empty = leaderboard_version(db)
    done = add_run(db, STUDENT_KIND, accuracy=0.5)
    after_completion = leaderboard_version(db)
    assert after_completion != empty
    add_run(db, STUDENT_KIND, status="running")
    add_run(db, STUDENT_KIND, status="queued")
    assert leaderboard_version(db) == after_completion  # active runs are not on the board
    services.delete_run(db, done.id)
    assert leaderboard_version(db) != after_completion


def test_pages_query_the_database_only_through_services():
    # These modules shape what services return; queries of their own would bypass the service layer.
    app_dir = ROOT / "app"
    modules = [path for name in ("pages", "events", "views", "form", "charts") for path in app_dir.glob(f"*/{name}.py")]
    modules += list((app_dir / "web").glob("*.py"))
    assert len(modules) >= 15, modules
    for module in modules:
        source = module.read_text()
        for needle in ("select(", "session.exec", "session.execute", "from app.store.models import Run"):
            assert needle not in source, (module, needle)


@pytest.mark.parametrize("path", ["/", "/launch", f"/launch?kind={KD_KINDS[0]}", "/compare"])
def test_element_ids_are_unique(client, db, path):
    add_run(db, TEACHER_KIND)
    ids = [node.attrs["id"] for node in well_formed(client.get(path).text).iter() if node.attrs.get("id")]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_a_config_stored_before_precision_existed_shows_the_float32_it_trained_in():
    from app.runs.form import config_rows

    stored = {k: v for k, v in RunConfig(kind=STUDENT_KIND).to_json_dict().items() if k != "precision"}
    values = {name: value for name, _, value, _ in config_rows(STUDENT_KIND, stored)}
    assert values["precision"] == "float32"


def test_path_for_writes_every_named_route_as_url_path_for_does(client):
    # Templates write links through path_for's table of route formats (url_path_for walks every route per
    # call); the table must know every route, under the prefix it was included with.
    from app.web.rendering import _route_formats

    formats = _route_formats(client.app)
    assert {"home", "run_page", "study_page", "compare_page", "create_run"} <= set(formats)
    for name, (path, params) in formats.items():
        values = {param: "7" for param in params}
        assert path.format(**values) == client.app.url_path_for(name, **values), name
