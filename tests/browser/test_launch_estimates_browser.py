"""The launch forms' expected training times in Chromium, against the shared live server (a CPU worker that
has trained a teacher and a student on synthetic data): the run form's time, measured here, follows the
fields a person changes; the tutorial experiment's form offers a small subset on this CPU and says what the
whole dataset takes. Screenshots at laptop and phone width."""

from __future__ import annotations

import re

import pytest

from browser_support import KD_KIND, LAPTOP, PHONE, TEACHER_KIND
from kdcore.registry import METHODS
from test_screenshots import shoot

SECONDS = "id => Number(document.getElementById(id).dataset.seconds)"


def test_the_run_form_time_is_measured_here_and_follows_the_form(new_page, live_server, trained_pair):
    teacher = live_server.api.get(f"/api/runs/{trained_pair['teacher']}").json()["config"]
    page = new_page(LAPTOP)
    query = f"kind={TEACHER_KIND}&dataset=synthetic&subset={teacher['subset']}&epochs=2&device=cpu"
    page.goto(f"{live_server.url}/launch?{query}")
    text = page.locator("#run-estimate-text")
    assert text.get_attribute("data-basis") == "measured"
    assert text.inner_text().startswith("Expected training time: about ")
    two = page.evaluate(SECONDS, "run-estimate-text")
    page.fill("#in-epochs", "8")
    page.wait_for_function(f"() => ({SECONDS})('run-estimate-text') > {two}")
    # Each figure is rounded to the second: four times one may be two seconds off.
    assert page.evaluate(SECONDS, "run-estimate-text") == pytest.approx(4 * two, abs=2)
    page.fill("#in-subset", str(4 * teacher["subset"]))
    page.wait_for_function("() => document.getElementById('run-estimate-text').dataset.basis === 'scaled'")
    assert "scaled from" in page.locator("#run-estimate").inner_text()
    # Another kind brings its own fields (its epochs): the time follows them, not the fields it replaced.
    page.select_option("#in-kind", KD_KIND)
    page.wait_for_function(f"() => document.getElementById('in-epochs').value === '{METHODS[KD_KIND].default_epochs}'")
    fields = page.evaluate("() => new URLSearchParams(new FormData(document.getElementById('launch-form'))).toString()")
    answer = live_server.api.get(f"/fragments/launch-estimate?form=run&{fields}").text
    expected = int(re.search(r'data-seconds="(\d+)"', answer).group(1))
    page.wait_for_function(f"() => ({SECONDS})('run-estimate-text') === {expected}")
    assert f"{KD_KIND} run" in page.locator("#run-estimate").inner_text()
    kd = page.evaluate(SECONDS, "run-estimate-text")
    page.fill("#in-epochs", str(2 * METHODS[KD_KIND].default_epochs))
    page.wait_for_function(f"() => ({SECONDS})('run-estimate-text') > {kd}")
    # Twice the epochs, and the teacher's outputs computed once as before: less than twice the time.
    assert kd < page.evaluate(SECONDS, "run-estimate-text") <= 2 * kd + 1


@pytest.mark.parametrize("size, viewport", [("laptop", LAPTOP), ("phone", PHONE)])
def test_the_tutorial_experiment_form_offers_a_subset_on_this_cpu(new_page, live_server, size, viewport):
    page = new_page(viewport)
    page.goto(f"{live_server.url}/launch#experiment")
    assert page.locator("#exp-in-subset").input_value() == "5000"
    full = page.locator("#experiment-estimate-full")
    assert "all 50,000 images take about" in full.inner_text()
    small = page.evaluate(SECONDS, "experiment-estimate-text")
    page.fill("#exp-in-subset", "")
    page.wait_for_function(f"() => ({SECONDS})('experiment-estimate-text') > {small}")
    shoot(page, "launch-estimates", size, "light")


# Each launch form's submit button, beside texts redrawn as the form changes (time, run count, cost).
LAUNCH_BUTTONS = ["#launch-form", "#study-form", "#benchmark-form", "#experiment"]
GROW_TEXT_BESIDE = """form => {
    const button = document.querySelector(form + ' button[type=submit]');
    const top = () => button.getBoundingClientRect().top + scrollY;
    const before = top();
    for (const other of button.parentElement.children)
        if (other !== button) other.textContent = 'a redrawn text of several lines '.repeat(40);
    return [before, top()];
}"""


@pytest.mark.parametrize("size, viewport", [("laptop", LAPTOP), ("phone", PHONE)])
def test_each_launch_button_stays_put_when_the_text_beside_it_grows(new_page, live_server, size, viewport):
    page = new_page(viewport)
    page.goto(f"{live_server.url}/launch")
    for form in LAUNCH_BUTTONS:
        before, after = page.evaluate(GROW_TEXT_BESIDE, form)
        assert after == before, f"{form}'s button moved {after - before:+.0f} px"
