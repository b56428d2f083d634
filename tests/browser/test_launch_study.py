"""The launch page's study form in Chromium: the run count follows the form as it is filled, a submitted
study lands on its page, and a bad one shows its errors inline. Screenshots at laptop and phone width,
light and dark, go to test-output/screenshots/."""

from __future__ import annotations

import re

import pytest

from browser_support import LAPTOP, PHONE, SCREENSHOTS, LiveServer, press_slowly
from kdcore.registry import METHODS
from test_screenshots import shoot

SIZES = {"laptop": LAPTOP, "phone": PHONE}
KD = next(k for k, m in METHODS.items() if m.needs_teacher and "temperature" in m.param_names())
OTHER = next(k for k, m in METHODS.items() if m.needs_teacher and k != KD)
TEACHER = next(k for k, m in METHODS.items() if m.teaches)


@pytest.fixture(scope="module")
def study_server(tmp_path_factory):
    # No worker: submitted studies stay queued, so nothing trains while the tests look at the form.
    server = LiveServer(tmp_path_factory.mktemp("study-launch"), worker=False)
    server.teacher = server.api.post("/api/runs", json={"kind": TEACHER, "dataset": "synthetic", "subset": 100,
                                                        "epochs": 1}).json()["id"]
    yield server
    server.stop()


def _count(page) -> str:
    return page.locator("#study-count-text").get_attribute("data-count") or ""


def test_the_count_follows_the_form_and_the_study_lands_on_its_page(new_page, study_server):
    page = new_page(LAPTOP)
    page.goto(study_server.url + "/launch#study-form")
    form = page.locator("#study-form")
    assert _count(page) == "7"  # student and kd over seeds 1, 2, 3, and the teacher the study trains
    form.locator(f"input[name=methods][value={OTHER}]").check()
    page.wait_for_function("() => document.querySelector('#study-count-text').dataset.count === '10'")
    assert f"{OTHER}." in page.locator("#study-grid-help").inner_text()  # its hyperparameters, for the grid
    page.fill("#study-in-grid", f"{KD}.temperature = 1, 2, 4")
    page.wait_for_function("() => document.querySelector('#study-count-text').dataset.count === '16'")
    page.check("#study-in-teacher_per_seed")
    page.wait_for_function("() => document.querySelector('#study-count-text').dataset.count === '18'")
    page.fill("#study-in-seeds", "1, 2")
    page.wait_for_function("() => document.querySelector('#study-count-text').dataset.count === '12'")
    assert "12 runs" in page.locator("#study-count-text").inner_text()
    page.select_option("#study-in-dataset", "synthetic")
    page.fill("#study-in-subset", "100")
    page.fill("#study-in-epochs", "1")
    page.fill("#study-in-teacher_epochs", "1")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/studies/\d+$"))
    study_id = int(page.url.rsplit("/", 1)[1])
    assert page.locator("#study-progress").is_visible()
    study = study_server.api.get(f"/api/studies/{study_id}").json()
    assert study["progress"]["total"] == 12 and study["spec"]["seeds"] == [1, 2]
    assert study["spec"]["grid"] == {f"{KD}.temperature": [1, 2, 4]} and study["spec"]["teacher_per_seed"] is True
    assert sorted(m if isinstance(m, str) else m["method"] for m in study["spec"]["methods"]) == sorted(
        [next(k for k, m in METHODS.items() if m.baseline), KD, OTHER])


def test_a_bad_study_shows_its_errors_inline(new_page, study_server):
    page = new_page(LAPTOP)
    page.goto(study_server.url + "/launch#study-form")
    before = study_server.api.get("/api/studies").json()["total"]
    page.fill("#study-in-grid", f"{KD}.alpha = 1, 2")
    page.locator("#study-form button[type=submit]").click()
    page.wait_for_selector("#study-err-grid")
    assert "no hyperparameter 'alpha'" in page.inner_text("#study-err-grid")
    # The page comes back scrolled to the study form's message, not to the run form at its top.
    assert page.evaluate("document.activeElement.id") == "study-invalid"
    assert page.locator("#study-invalid").evaluate("el => el.getBoundingClientRect().top >= 0 && "
                                                   "el.getBoundingClientRect().bottom <= innerHeight")
    assert page.input_value("#study-in-grid") == f"{KD}.alpha = 1, 2"
    page.fill("#study-in-grid", "")
    page.fill("#study-in-seeds", "1, 1")
    # The count says why before the submit does. Waiting on the text itself: the count shown for the refused
    # grid has no number either, and the one for the cleared grid (a number) may land in between.
    page.wait_for_function("() => document.querySelector('#study-count-text').textContent.includes('distinct')")
    assert not page.evaluate("() => document.querySelector('#study-count-text').dataset.count")
    page.locator("#study-form button[type=submit]").click()
    page.wait_for_selector("#study-err-seeds")
    assert "distinct" in page.inner_text("#study-err-seeds") and page.locator("#study-err-grid").count() == 0
    assert study_server.api.get("/api/studies").json()["total"] == before


def test_the_button_stays_under_a_slow_press_while_the_count_redraws(new_page, study_server):
    # Typed into the grid, then "Launch" pressed at once: the run count and the time beside it redraw.
    page = new_page(LAPTOP)
    page.goto(study_server.url + "/launch#study-form")
    before = study_server.api.get("/api/studies").json()["total"]
    page.fill("#study-in-grid", f"{KD}.alpha = 1, 2")  # refused: the count becomes a line of text
    press_slowly(page, "#study-form button[type=submit]",
                 "() => !document.querySelector('#study-count-text').dataset.count")
    page.wait_for_selector("#study-err-grid")
    assert study_server.api.get("/api/studies").json()["total"] == before


def _shoot_form(page, name: str) -> None:
    # A clip of the full page scrolled to its top: scrolled, the sticky top bar would lie across the form.
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator("#study-form").bounding_box()
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True, clip=box)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", SIZES)
def test_study_form_screenshots(new_page, study_server, size, scheme):
    page = new_page(SIZES[size], scheme)
    page.goto(f"{study_server.url}/launch#study-form")
    page.locator(f"#study-form input[name=methods][value={OTHER}]").check()
    page.fill("#study-in-grid", f"{KD}.temperature = 1, 2, 4, 8\n{KD}.distill_weight = 0.25, 0.5, 0.9")
    page.wait_for_function("() => document.querySelector('#study-count-text').dataset.count === '43'")
    page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar at the top of the full-page shot
    shoot(page, "launch-study", size, scheme)
    _shoot_form(page, f"launch-study-form-{size}-{scheme}.png")
    page.fill("#study-in-seeds", "1, x")
    page.fill("#study-in-grid", f"{KD}.temperature 1, 2")
    page.locator("#study-form button[type=submit]").click()
    page.wait_for_selector("#study-err-seeds")
    _shoot_form(page, f"launch-study-invalid-{size}-{scheme}.png")
