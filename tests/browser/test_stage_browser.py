"""A method with a pre-stage, launched from the form: its run page draws the stage's losses apart from the
main stage's curves, one point per stage epoch (screenshot: test-output/screenshots/run-stage-*.png)."""

from __future__ import annotations

import re

from browser_support import DRAWN_POINTS, SCREENSHOTS


def test_a_staged_run_launched_from_the_form_shows_its_init_stage_apart(page, live_server, trained_pair):
    page.goto(f"{live_server.url}/launch")
    page.select_option("#in-kind", "ab")
    page.wait_for_selector("#in-init_epochs")
    page.select_option("#in-teacher_run_id", str(trained_pair["teacher"]))
    page.select_option("#in-dataset", "synthetic")
    page.fill("#in-subset", "200")
    page.fill("#in-epochs", "2")
    page.fill("#in-init_epochs", "3")
    page.select_option("#in-device", "cpu")
    page.click("#launch-form button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(re.search(r"/runs/(\d+)$", page.url).group(1))
    run = live_server.wait_for(run_id, timeout=240)
    assert run["status"] == "completed", run["error"]
    page.goto(f"{live_server.url}/runs/{run_id}")
    stage = page.locator("#stage-curves")
    assert "Stage “init”: 3/3 epochs before the main stage" in stage.inner_text()
    page.wait_for_function("() => document.querySelector('#stage-chart .main-svg')")
    assert page.evaluate(DRAWN_POINTS, "stage-chart") == [3]  # the ab term at init epochs 1, 2, 3
    assert min(page.evaluate(DRAWN_POINTS, "loss-chart")) == 2  # the main stage's epochs 1 and 2
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "run-stage-laptop-light.png"), full_page=True)
