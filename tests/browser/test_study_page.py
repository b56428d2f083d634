"""The study pages in Chromium against a live server without a worker: studies submitted through the API,
their runs finished (or started) in the database with epochs. The table, the heatmap and its click, live
progress while runs end, cancelling, and screenshots at laptop and phone width, light and dark."""

from __future__ import annotations

import time

import pytest
from browser_support import DRAWN_POINTS, LAPTOP, PHONE, LiveServer
from sqlmodel import Session, create_engine
from test_screenshots import shoot

from app.store.models import utcnow
from app.studies import service as studies
from tests.app_fixtures import set_run
from tests.page_fixtures import add_epoch
from tests.study_fixtures import GRID_2D, finish, submit

SIZES = {"laptop": LAPTOP, "phone": PHONE}
CELL_CENTRE = """([el, i, j]) => {
  const xa = el._fullLayout.xaxis, ya = el._fullLayout.yaxis;
  return { x: xa._offset + xa.l2p(j), y: ya._offset + ya.l2p(i) };
}"""


@pytest.fixture(scope="module")
def study_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("studies"), worker=False)
    engine = create_engine(f"sqlite:///{server.root / 'kd.sqlite'}")
    server.db = lambda: Session(engine)
    with server.db() as db:
        server.grid = submit(server.api, grid=GRID_2D, name="KD: temperature × distill weight")
        finish(db, server.grid)
        server.sweep = submit(server.api, grid={"kd.temperature": [1, 2, 4, 8]}, name="KD temperature sweep")
        finish(db, server.sweep, lambda run: 0.8 if run.kind == "teacher" else 0.6 + 0.01 * run.seed +
               (0.02 * min(run.config["params"]["temperature"], 4) ** 0.5 + 0.004 * ((run.seed * 7 + int(
                   run.config["params"]["temperature"])) % 3) if run.kind == "kd" else 0))
        # Half done: a student and a kd run finished, one kd run training, the rest queued.
        server.running = submit(server.api, name="Student vs KD, 3 seeds")
        finish(db, server.running, only=lambda run: run.kind == "teacher" or run.seed == 1)
        training = next(r for r in studies.study_runs(db, server.running) if r.status == "queued" and r.kind == "kd")
        set_run(db, training.id, status="running", started_at=utcnow(), worker="test:0:cpu", heartbeat_at=utcnow(),
                progress_epoch=2, progress_epochs=3, progress_step=5, progress_steps=10, progress_at=utcnow(),
                eta_seconds=40.0)
        add_epoch(db, training, 1, accuracy=0.45)
    yield server
    server.stop()
    engine.dispose()


def test_table_heatmap_and_a_cell_click(new_page, study_server):
    page = new_page()
    page.goto(f"{study_server.url}/studies/{study_server.grid}")
    groups = study_server.api.get(f"/api/studies/{study_server.grid}").json()["groups"]
    rows = page.locator("#study-table tbody tr")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.group)") == [g["key"] for g in groups]
    verdict = page.locator("#study-verdict")
    assert verdict.get_attribute("data-winner") == "true" and verdict.inner_text().startswith("Best:")
    # A row expands to its runs, which link to their pages.
    first = rows.nth(0)
    first.locator("summary").click()
    assert first.locator("details.members a").first.get_attribute("href") == f"/runs/{groups[0]['run_ids'][0]}"
    assert first.locator("details.members a").first.is_visible()

    heatmap = page.locator("#heatmap-0")
    heatmap.locator(".main-svg").first.wait_for()
    assert heatmap.locator("text.textpoint, .hm text, text").filter(has_text="n=3").count() >= 4
    spec = page.evaluate("JSON.parse(document.getElementById('heatmap-0-spec').textContent)")
    link = spec["series"][0]["links"][1][0]  # second row (distill_weight 0.9), first column (temperature 2)
    heatmap.scroll_into_view_if_needed()  # the mouse clicks inside the viewport
    centre = page.evaluate(CELL_CENTRE, [heatmap.element_handle(), 1, 0])
    box = heatmap.bounding_box()
    page.mouse.click(box["x"] + centre["x"], box["y"] + centre["y"])
    page.wait_for_url(study_server.url + link)
    key = link.rsplit("group=", 1)[1]
    assert page.locator("#compare-groups tbody tr").evaluate_all("rows => rows.map(r => r.dataset.group)") == [key]
    # Only a group: its charts are the groups' own; its band is drawn as a filled trace beside its mean line.
    page.locator("#compare-group-0 .main-svg").first.wait_for()
    assert page.locator("#compare-group-0 .scatterlayer .js-fill").count() >= 1


def test_copy_the_paper_table(new_page, study_server):
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=study_server.url)
    page.goto(f"{study_server.url}/studies/{study_server.grid}")
    page.click("#copy-markdown")
    page.wait_for_function("() => document.getElementById('copy-markdown').textContent === 'Copied'")
    table = study_server.api.get(f"/api/studies/{study_server.grid}/table.md").text
    assert page.evaluate("navigator.clipboard.readText()") == table
    page.wait_for_function("() => document.getElementById('copy-markdown').textContent === 'Copy'")


def test_progress_follows_the_runs_and_cancel_stops_the_polling(new_page, study_server):
    study_id = submit(study_server.api, methods=("student",), seeds=(1, 2, 3), name="to cancel")
    page = new_page()
    fragments = []
    page.on("request", lambda request: "/fragments/studies/" in request.url and fragments.append(request.url))
    page.goto(f"{study_server.url}/studies/{study_id}")
    assert page.inner_text("#study-status") == "queued" and page.inner_text("#study-done") == "0 of 3 runs done"
    assert page.locator("#study-table tr[data-role=baseline] td[data-col=n]").inner_text() == "0/3"
    with study_server.db() as db:
        finish(db, study_id, only=lambda run: run.seed == 1)
    # The progress card polls; a run that ended refreshes the table too.
    page.wait_for_function("() => document.getElementById('study-done').textContent === '1 of 3 runs done'", timeout=10_000)
    page.wait_for_function("() => document.querySelector('#study-table tr[data-role=baseline] td[data-col=n]')"
                           ".textContent.trim() === 'n = 1/3'", timeout=10_000)
    assert page.inner_text("#study-status") == "running"
    assert any("/results" in url for url in fragments)
    # Its mean curve appears without a reload and draws each of the finished run's 3 epochs.
    page.wait_for_function(f"() => ({DRAWN_POINTS})('curve-0').includes(3)", timeout=5_000)

    page.click("#cancel-study")  # the confirm dialog is accepted (conftest)
    page.wait_for_function("() => document.getElementById('study-status').textContent === 'cancelled'")
    assert page.locator("#cancel-study").count() == 0
    assert page.get_attribute("#study-progress", "hx-trigger") is None
    polled = len(fragments)
    time.sleep(4)  # longer than the polling interval
    assert len(fragments) == polled, fragments[polled:]
    statuses = {r["status"] for r in study_server.api.get("/api/runs", params={"limit": 500}).json()["items"]
                if r["study_id"] == study_id}
    assert statuses == {"completed", "cancelled"}


def test_delete_buttons_remove_a_run_then_its_study(new_page, study_server):
    study_id = submit(study_server.api, methods=("student",), seeds=(1, 2), name="to delete")
    with study_server.db() as db:
        finish(db, study_id)
        run_ids = [run.id for run in studies.study_runs(db, study_id)]
    page = new_page()
    asked = []
    page.on("dialog", lambda dialog: asked.append(dialog.message))  # conftest accepts it
    page.goto(f"{study_server.url}/runs/{run_ids[0]}")
    page.click("#delete-run")
    page.wait_for_url(f"{study_server.url}/studies/{study_id}")
    assert asked[-1].startswith(f"Delete run #{run_ids[0]} ")
    assert page.inner_text("#study-done") == "1 of 1 run done"
    assert page.locator("#study-table a", has_text=f"#{run_ids[0]}").count() == 0
    assert study_server.api.get(f"/api/runs/{run_ids[0]}").status_code == 404

    page.click("#delete-study")
    page.wait_for_url(f"{study_server.url}/studies")
    assert asked[-1].startswith(f"Delete study #{study_id} and its 1 run,")
    assert page.locator(f"#studies-table tr[data-study-id='{study_id}']").count() == 0
    assert page.locator("#studies-table tr[data-study-id]").count() >= 3  # the others stay
    assert study_server.api.get(f"/api/studies/{study_id}").status_code == 404
    assert study_server.api.get(f"/api/runs/{run_ids[1]}").status_code == 404


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", SIZES)
def test_study_pages_at_each_width_and_scheme(new_page, study_server, size, scheme):
    page = new_page(SIZES[size], scheme)
    pages = {"study": f"/studies/{study_server.grid}", "study-running": f"/studies/{study_server.running}",
             "study-sweep": f"/studies/{study_server.sweep}",
             "studies": "/studies", "compare-groups": f"/compare?study={study_server.grid}"}
    for name, path in pages.items():
        page.goto(study_server.url + path)
        shoot(page, name, size, scheme)


def test_reported_vs_reproduced_is_seen_and_its_view_is_one_click_away(new_page, study_server, monkeypatch):
    # A CIFAR-100 study stored as the API stores one (its networks' tap check, a 100-class description in a
    # subprocess of seconds, left out: the runs are finished here, not trained), finished in the database.
    monkeypatch.setattr(studies, "study_tap_errors", lambda *args: [])
    accuracy = {"teacher": {1: 0.79}, "student": {1: 0.710, 2: 0.709, 3: 0.711},
                "kd": {1: 0.7331, 2: 0.7352, 3: 0.7318}}
    with study_server.db() as db:
        study = studies.create_study(db, {"dataset": "cifar100", "methods": ["student", "kd"], "seeds": [1, 2, 3],
                                          "epochs": 3, "teacher_epochs": 2, "device": "cpu",
                                          "architectures": ["resnet8x4"], "teacher_architecture": "resnet32x4"})
        db.commit()
        finish(db, study.id, lambda run: accuracy[run.kind][run.seed])
        kd_key = next(r.group_key for r in studies.study_runs(db, study.id) if r.kind == "kd")
    page = new_page()
    page.goto(f"{study_server.url}/studies/{study.id}")
    cell = page.locator(f'#study-table tr[data-group="{kd_key}"] td[data-col="published"]')
    # On a laptop's screen, not scrolled out of the table.
    box, table = cell.bounding_box(), page.locator("#study-table-card").bounding_box()
    assert box["x"] + box["width"] <= table["x"] + table["width"] and box["x"] + box["width"] <= LAPTOP["width"]
    assert cell.inner_text().split() == ["73.33%", "inside"]
    page.get_by_role("link", name="Reproduction").click()
    page.wait_for_url("**/reproduction")
    rows = page.locator("#reproduction-table tbody tr")
    assert rows.count() == len(study_server.api.get("/api/reproduction").json()["items"]) > 0
    last = page.locator("#reproduction-table thead th").last.bounding_box()
    assert last["x"] + last["width"] <= LAPTOP["width"]  # every column on the screen
