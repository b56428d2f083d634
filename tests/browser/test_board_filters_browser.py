"""The leaderboard's filters and pages in a real browser: choose a method and a page size, apply, page
forward, go back, reload; the address keeps up. Screenshots of a filtered page at laptop and phone width
(test-output/screenshots/leaderboard-filtered-*.png)."""

from __future__ import annotations

import pytest
from browser_support import LAPTOP, PHONE, LiveServer
from page_fixtures import KD_KINDS, STUDENT_KIND, TEACHER_KIND, add_run
from test_screenshots import shoot

from app.store.db import make_engine, new_session
from app.store.models import Run

KD = KD_KINDS[0]
STUDENT_CONFIGURATIONS = 30


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A server without a worker: 30 student configurations (1 to 30 epochs, two seeds each, the longer the
    better), a teacher and a KD configuration distilled from it; one student run tagged."""
    root = tmp_path_factory.mktemp("filters")
    server = LiveServer(root, worker=False)
    engine = make_engine(f"sqlite:///{root / 'kd.sqlite'}")
    with new_session(engine) as db:
        teacher = add_run(db, TEACHER_KIND, accuracy=0.9, seed=1)
        for seed in (1, 2):
            add_run(db, KD, accuracy=0.88 - seed / 1000, seed=seed, teacher=teacher.id)
            for epochs in range(1, STUDENT_CONFIGURATIONS + 1):
                add_run(db, STUDENT_KIND, accuracy=0.5 + epochs / 100 + seed / 1000, seed=seed, epochs=epochs)
        tagged = db.query(Run).filter(Run.kind == STUDENT_KIND, Run.epochs == 7).first().id
    assert server.api.patch(f"/api/runs/{tagged}", json={"tags": ["seven"]}).status_code == 200
    yield server
    server.stop()
    engine.dispose()


def position(page) -> str:
    return page.locator("#pager-top .position").inner_text()


def shown_epochs(page) -> list[int]:
    cells = page.locator("#groups-table tr.group-row td:last-child .settings").all_inner_texts()
    return [int(text.split(" · ")[-1].split()[0]) for text in cells]


def test_filter_by_method_then_page_forward_back_and_reload(new_page, board):
    page = new_page()
    page.goto(board.url)
    assert position(page) == f"1–{STUDENT_CONFIGURATIONS + 2} of {STUDENT_CONFIGURATIONS + 2}"
    page.select_option("#filter-kind", STUDENT_KIND)
    page.select_option("#filter-limit", "25")
    page.click("#apply-filters")
    page.wait_for_url(f"**/?kind={STUDENT_KIND}&limit=25")
    assert position(page) == f"1–25 of {STUDENT_CONFIGURATIONS}"
    assert page.locator("#board-count").inner_text() == \
        f"{STUDENT_CONFIGURATIONS} of {STUDENT_CONFIGURATIONS + 2} configurations match (60 completed runs)"
    # Only students, best (most epochs) first; the controls show the filter applied.
    kinds = page.locator("#groups-table tr.group-row .kind").evaluate_all("els => els.map(e => e.title)")
    assert kinds == [STUDENT_KIND] * 25
    assert shown_epochs(page) == list(range(30, 5, -1))
    assert page.locator("#filter-kind").input_value() == STUDENT_KIND
    # Forward, with the bottom pager (where a reader ends up).
    page.click("#page-next-bottom")
    page.wait_for_url(f"**/?kind={STUDENT_KIND}&offset=25&limit=25")
    assert position(page) == f"26–{STUDENT_CONFIGURATIONS} of {STUDENT_CONFIGURATIONS}"
    assert shown_epochs(page) == [5, 4, 3, 2, 1]
    ranks = page.locator("#groups-table tr.group-row td:nth-child(2)").all_inner_texts()
    assert ranks == ["26", "27", "28", "29", "30"]
    assert page.locator("#page-next-top").count() == 0
    # The address is the page: back goes to the first page, a reload keeps the second.
    page.go_back()
    page.wait_for_url(f"**/?kind={STUDENT_KIND}&limit=25")
    page.wait_for_function("() => document.querySelector('#pager-top .position').textContent.startsWith('1–25')")
    page.go_forward()
    page.wait_for_url(f"**/?kind={STUDENT_KIND}&offset=25&limit=25")
    page.reload()
    assert position(page) == f"26–{STUDENT_CONFIGURATIONS} of {STUDENT_CONFIGURATIONS}"
    assert page.locator("#filter-limit").input_value() == "25"


def test_a_tag_filter_in_the_single_run_view_and_clearing_it(new_page, board):
    page = new_page()
    page.goto(board.url + "/?view=runs")
    page.select_option("#filter-tag", "seven")
    page.click("#apply-filters")
    page.wait_for_url("**/?view=runs&tag=seven")
    rows = page.locator("#leaderboard-table tbody tr")
    assert rows.count() == 1 and rows.locator("a.tag").inner_text() == "seven"
    page.click("#clear-filters")
    page.wait_for_url("**/?view=runs")
    assert position(page) == "1–63 of 63"


@pytest.mark.parametrize("size", {"laptop": LAPTOP, "phone": PHONE})
def test_screenshots(new_page, board, size):
    page = new_page({"laptop": LAPTOP, "phone": PHONE}[size])
    page.goto(f"{board.url}/?kind={STUDENT_KIND}&limit=25&offset=25")
    shoot(page, "leaderboard-filtered", size, "light")
