"""The leaderboard by configuration in a real browser: significance markers, a row opened to its runs,
the single-run toggle, a live refresh when a replicate completes, the studies card; screenshots at laptop
and phone width, light and dark (test-output/screenshots/leaderboard-groups-*.png)."""

from __future__ import annotations

import pytest
from browser_support import DRAWN_POINTS, LAPTOP, PHONE, LiveServer
from page_fixtures import KD_KINDS, STUDENT_KIND, TEACHER_KIND, add_run
from test_screenshots import shoot

from app.store.db import make_engine, new_session
from app.store.models import Run, utcnow

KD, COSINE, FITNET = KD_KINDS[:3]
SIZES = {"laptop": LAPTOP, "phone": PHONE}


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A server without a worker, its database filled with the seed experiment over three seeds (KD clearly
    ahead of the student, cosine inside the noise, one FitNets run), and a study still queued."""
    root = tmp_path_factory.mktemp("board")
    server = LiveServer(root, worker=False)
    engine = make_engine(f"sqlite:///{root / 'kd.sqlite'}")
    with new_session(engine) as db:
        teacher = add_run(db, TEACHER_KIND, accuracy=0.703, parameters=1_190_000, seed=1)
        runs = {"kd": [], "cosine": [], "student": []}
        for seed, (kd, cosine, student) in {1: (0.688, 0.672, 0.668), 2: (0.684, 0.681, 0.671),
                                            3: (0.691, 0.665, 0.663)}.items():
            runs["kd"].append(add_run(db, KD, accuracy=kd, seed=seed, teacher=teacher.id, parameters=268_000))
            runs["cosine"].append(add_run(db, COSINE, accuracy=cosine, seed=seed, teacher=teacher.id,
                                          parameters=268_000))
            runs["student"].append(add_run(db, STUDENT_KIND, accuracy=student, seed=seed, parameters=268_000))
        add_run(db, FITNET, accuracy=0.689, seed=1, teacher=teacher.id, parameters=268_000)
        # A fourth KD seed, still training: the test completes it and watches the board refresh itself.
        pending = add_run(db, KD, status="running", seed=4, teacher=teacher.id)
    study = server.api.post("/api/studies", json={"name": "kd temperature sweep", "dataset": "synthetic",
                                                  "subset": 200, "methods": ["student", KD], "seeds": [1, 2, 3],
                                                  "epochs": 2, "teacher_epochs": 2, "device": "cpu",
                                                  "grid": {f"{KD}.temperature": [2, 4]}})
    assert study.status_code == 201, study.text
    server.fill = {"engine": engine, "teacher": teacher.id, "pending": pending.id, "study": study.json()["id"],
                   "kd_key": runs["kd"][0].group_key, "cosine_key": runs["cosine"][0].group_key,
                   "student_key": runs["student"][0].group_key, "kd_ids": [r.id for r in runs["kd"]]}
    yield server
    server.stop()
    engine.dispose()


def group_row(page, key: str):
    return page.locator(f"#groups-table tr.group-row[data-group='{key}']")


def test_configurations_show_spread_and_significance(new_page, board):
    page = new_page()
    page.goto(board.url)
    fill = board.fill
    kd, cosine = group_row(page, fill["kd_key"]), group_row(page, fill["cosine_key"])
    assert kd.get_attribute("data-n") == "3"
    assert kd.locator(".sig").is_visible() and kd.locator(".ns").count() == 0
    assert cosine.locator(".ns").inner_text() == "n.s." and cosine.locator(".sig").count() == 0
    assert "Not significant at 5 %" in cosine.locator(".ns").get_attribute("title")
    assert "baseline" in group_row(page, fill["student_key"]).inner_text()
    singles = page.locator("#groups-table tr.group-row", has_text="n = 1")  # the teacher and the FitNets run
    assert singles.count() == 2 and not any("±" in text for text in singles.all_inner_texts())
    # Ranked by mean: the best configuration comes first.
    means = page.locator("#groups-table tr.group-row").evaluate_all(
        "rows => rows.map(r => parseFloat(r.cells[4].innerText))")
    assert means == sorted(means, reverse=True)
    page.wait_for_selector("#scatter .main-svg")
    assert sum(page.evaluate(DRAWN_POINTS, "scatter")) == page.locator("#groups-table tr.group-row").count()


def test_a_configuration_opens_to_its_runs(new_page, board):
    page = new_page()
    page.goto(board.url)
    key = board.fill["kd_key"]
    button = group_row(page, key).locator("button.expand")
    runs = page.locator(f"#runs-{key}")
    assert runs.is_hidden()
    button.click()
    page.wait_for_selector(f"#runs-{key} .group-runs-table tbody tr")
    assert runs.is_visible() and button.get_attribute("aria-expanded") == "true"
    shown = runs.locator("tbody tr").evaluate_all("rows => rows.map(r => +r.dataset.runId)")
    assert sorted(shown) == sorted(board.fill["kd_ids"])
    assert "paired t-test" in runs.inner_text()
    button.click()  # closes without a second request
    assert runs.is_hidden() and button.get_attribute("aria-expanded") == "false"
    button.click()
    assert runs.is_visible() and runs.locator("tbody tr").count() == 3
    runs.locator("a.btn", has_text="Compare").click()
    page.wait_for_selector("#compare-groups")  # the configuration as one group: its mean and band
    group = page.locator(f"#compare-groups tr[data-group='{key}']")
    members = group.locator(".member-links a").evaluate_all("links => links.map(a => +a.textContent.slice(1))")
    assert group.count() == 1 and set(board.fill["kd_ids"]) <= set(members)  # and its runs that did not complete


def test_the_single_run_view_is_a_toggle_away(new_page, board):
    page = new_page()
    page.goto(board.url)
    page.click("#view-runs")
    page.wait_for_selector("#leaderboard-table")
    assert page.url.endswith("/?view=runs")
    assert page.locator("#leaderboard-table tbody tr").count() == 11  # every completed run
    assert page.locator("#view-runs").get_attribute("aria-pressed") == "true"
    page.reload()
    assert page.locator("#leaderboard-table").is_visible()
    page.click("#view-groups")
    page.wait_for_selector("#groups-table")
    assert page.url == board.url + "/"


def test_studies_are_listed_with_their_progress(new_page, board):
    page = new_page()
    page.goto(board.url)
    study = page.locator(f"#studies .study-row[data-study-id='{board.fill['study']}']")
    assert "kd temperature sweep" in study.inner_text() and "0/" in study.inner_text()
    assert study.locator("a").first.get_attribute("href") == f"/studies/{board.fill['study']}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", SIZES)
def test_screenshots(new_page, board, size, scheme):
    page = new_page(SIZES[size], scheme)
    page.goto(board.url)
    key = board.fill["kd_key"]
    group_row(page, key).locator("button.expand").click()
    page.wait_for_selector(f"#runs-{key} .group-runs-table tbody tr")
    page.evaluate("window.scrollTo(0, 0)")  # the click scrolled: the sticky bar would land mid-page
    shoot(page, "leaderboard-groups", size, scheme)
    page.goto(board.url + "/?view=runs")
    shoot(page, "leaderboard-runs", size, scheme)


def test_the_board_refreshes_when_a_replicate_completes(new_page, board):
    # Last: it changes the data the other tests read.
    page = new_page()
    page.goto(board.url)
    page.click("#view-groups")  # a refresh must keep the view shown, whichever it is
    key = board.fill["kd_key"]
    assert group_row(page, key).get_attribute("data-n") == "3"
    with new_session(board.fill["engine"]) as db:
        run = db.get(Run, board.fill["pending"])
        run.status, run.final_accuracy, run.best_accuracy, run.finished_at = "completed", 0.686, 0.69, utcnow()
        run.parameters = 268_000
        db.commit()
    # The queue's poll (every 2 s) sees one more completed run and tells the board to refresh.
    page.wait_for_function(f"() => document.querySelector(\"tr.group-row[data-group='{key}']\").dataset.n === '4'",
                           timeout=15_000)
    assert group_row(page, key).locator(".sig, .ns").count() == 1
