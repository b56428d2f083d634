"""The README's 2-minute tour, followed in Chromium as a newcomer follows it: open the study form, check that it
starts as the README says, fill the fields the README's table names (found by their labels), press the button the
README names, watch the study's page, and read a verdict there. The README shows CIFAR-10; the test runs on
generated data (the docs' rule, tests/test_docs.py) and on 200 of its images, so that the 7 runs take seconds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser_support import LAPTOP, LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"
ON_GENERATED_DATA = {"Dataset": {"cifar10": "synthetic"}, "Subset (images)": {"1000": "200"}}


def tour() -> dict:
    """The tour as the README writes it: the fields of its table, the button it names, the runs it counts."""
    text = README.read_text()
    table = text[text.index("<!-- tour:"):]
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|$", table.split("\n\n")[0], re.M)
    fields = {name: value.strip("`") for name, value in rows if name not in ("field", "---")}
    button = re.search(r"press \*\*(.+?)\*\*", table).group(1)
    runs = int(re.search(r"its (\d+) runs", text).group(1))
    return {"fields": fields, "button": button, "runs": runs}


@pytest.fixture(scope="module")
def tour_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("tour"), worker=True)
    yield server
    server.stop()


def test_the_readme_names_its_fields_and_button():
    steps = tour()
    assert set(steps["fields"]) == {"Epochs (students)", "Teacher epochs", "Dataset", "Subset (images)"}
    assert steps["button"] == "Launch the study" and steps["runs"] == 7


@pytest.mark.timeout(420)
def test_a_newcomer_follows_the_tour_to_a_verdict(new_page, tour_server):
    steps = tour()
    page = new_page(LAPTOP)
    page.goto(tour_server.url + "/launch#study-form")
    form = page.locator("#study-form")
    # The README: "Student (baseline) and Soft targets (KD) checked and seeds 1, 2, 3".
    checked = form.locator("input[name=methods]:checked")
    assert sorted(checked.evaluate_all("inputs => inputs.map(i => i.value)")) == ["kd", "student"]
    assert form.get_by_label("Seeds").input_value() == "1, 2, 3"
    for label, value in steps["fields"].items():
        value = ON_GENERATED_DATA.get(label, {}).get(value, value)
        field = form.get_by_label(label, exact=True)
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.wait_for_function(f"() => document.querySelector('#study-count-text').dataset.count === '{steps['runs']}'")
    with page.expect_navigation():
        form.get_by_role("button", name=steps["button"]).click()
    page.wait_for_url(re.compile(r".*/studies/\d+$"))
    # Watched live: the page itself reports the end and draws the verdict, without a reload.
    page.wait_for_selector("#study-progress[data-status=completed]", timeout=360_000)
    verdict = page.locator("#study-verdict")
    page.wait_for_function("() => { const v = document.querySelector('#study-verdict');"
                           " return v && !v.textContent.includes('yet'); }", timeout=30_000)
    assert re.match(r"(Best: |No clear winner\.|No winner\.)", verdict.inner_text()), verdict.inner_text()
    table = page.locator("#study-results table").inner_text()
    assert "Soft targets (KD)" in table and "Student (baseline)" in table
    study = tour_server.api.get(page.url.replace(tour_server.url + "/studies/", "/api/studies/")).json()
    assert study["progress"]["completed"] == steps["runs"] and study["spec"]["subset"] == 200
