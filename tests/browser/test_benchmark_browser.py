"""The launch page's CIFAR-100 benchmark form in Chromium: its cost (runs, GPU-hours) is on the page before anything
is launched and follows the form as it is narrowed; the launched benchmark lands on its table. Screenshots of the
form and the page go to test-output/screenshots/."""

from __future__ import annotations

import re

import pytest

from browser_support import LAPTOP, SCREENSHOTS, LiveServer, press_slowly

KEPT = "resnet32x4:resnet8x4"


@pytest.fixture(scope="module")
def benchmark_server(tmp_path_factory):
    # No worker: the benchmark stays queued, so nothing trains while the test looks at it.
    server = LiveServer(tmp_path_factory.mktemp("benchmark-launch"), worker=False)
    # The first page describes the networks (a subprocess, seconds on a loaded machine): not the test's wait.
    assert server.api.get("/launch", timeout=180).status_code == 200
    assert server.api.get("/api/architectures", params={"num_classes": 100}, timeout=180).status_code == 200
    yield server
    server.stop()


def _runs(page) -> str:
    return page.locator("#benchmark-cost-text").get_attribute("data-runs") or ""


def test_the_cost_shows_before_launching_follows_the_narrowing_and_the_benchmark_lands_on_its_table(
        new_page, benchmark_server):
    page = new_page(LAPTOP)
    page.goto(benchmark_server.url + "/launch#benchmark-form")
    form = page.locator("#benchmark-form")
    # The whole preset: 6 teachers, 13 pairs × (student, kd, dkd) × 3 seeds.
    assert _runs(page) == "123" and "GPU-hours" in page.inner_text("#benchmark-cost-text")
    for box in form.locator("input[name=pairs]").all():
        if box.get_attribute("value") != KEPT:
            box.uncheck()
    form.locator("input[name=methods][value=dkd]").uncheck()
    page.fill("#benchmark-in-seeds", "1, 2")
    page.fill("#benchmark-in-epochs", "1")
    page.select_option("#benchmark-in-dataset", "synthetic100")
    # One teacher, and a student and a KD run per seed.
    page.wait_for_function("() => document.querySelector('#benchmark-cost-text').dataset.runs === '5'")
    assert "5 runs" in page.inner_text("#benchmark-cost-text")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "launch-benchmark-form-laptop-light.png"), full_page=True,
                    clip=form.bounding_box())
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/benchmarks/\d+$"))
    table = page.locator("#benchmark-table table")
    assert "resnet32x4→resnet8x4" in table.inner_text().lower()
    assert [row.get_attribute("data-method") for row in table.locator("tbody tr").all()] == ["teacher", "student", "kd"]
    assert "no published value for this dataset" in page.inner_text("#benchmark-published-note")
    benchmark = benchmark_server.api.get(page.url.replace(benchmark_server.url, "/api")).json()
    assert benchmark["spec"]["seeds"] == [1, 2] and len(benchmark["studies"]) == 1
    page.screenshot(path=str(SCREENSHOTS / "benchmark-page-laptop-light.png"), full_page=True)


def test_the_button_stays_under_a_slow_press_while_the_cost_redraws(new_page, benchmark_server):
    # Typed into a field, then "Launch" pressed at once: the cost beside it redraws.
    page = new_page(LAPTOP)
    page.goto(benchmark_server.url + "/launch#benchmark-form")
    before = len(benchmark_server.api.get("/api/benchmarks").json()["items"])
    page.fill("#benchmark-in-seeds", "1, x")  # refused: the cost becomes a shorter line of text
    press_slowly(page, "#benchmark-form button[type=submit]",
                 "() => !document.querySelector('#benchmark-cost-text').dataset.runs")
    page.wait_for_selector("#benchmark-err-seeds")
    assert len(benchmark_server.api.get("/api/benchmarks").json()["items"]) == before
