"""The live server and browser settings shared by the browser tests and their fixtures."""

from __future__ import annotations

from pathlib import Path

from kdcore.registry import METHODS
from tests.live_server import LiveServer  # noqa: F401  (the browser tests' server)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
TEACHER_KIND = next(k for k, m in METHODS.items() if m.teaches)
# A KD kind with a temperature: the launch tests exercise a kind-specific field.
KD_KIND = next(k for k, m in METHODS.items() if m.needs_teacher and "temperature" in m.param_names())
LAPTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}
# What a person sees: the markers Plotly drew in the SVG of chart #id, per line trace (empty when nothing is drawn).
# Plotly's data arrays can hold points that were never drawn; these counts cannot.
DRAWN_POINTS = """id => [...document.querySelectorAll(`#${id} .scatterlayer .trace`)]
    .map(trace => trace.querySelectorAll('.points path').length)"""


def choose_kind(page, kind: str) -> None:
    """Choose a kind on the launch form and wait until its fields have landed: a field filled before the
    swap arrives (slow on a loaded machine) would be replaced by the kind's default."""
    with page.expect_response(lambda response: "/fragments/launch-fields" in response.url):
        page.select_option("#in-kind", kind)
    page.wait_for_function("() => !document.querySelector("
                           "'#launch-form .htmx-request, #launch-form .htmx-swapping, #launch-form .htmx-settling')")


def press_slowly(page, button: str, redrawn: str) -> None:
    """Press ``button`` near its lower edge, hold it until ``redrawn`` (a JS condition) holds, then release,
    as a person does who clicks "Launch" just after typing: the press blurs the field, whose change redraws
    the texts beside the button. Had the button moved meanwhile, the release lands beside it: no click."""
    locator = page.locator(button)
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] - 3)
    page.mouse.down()
    page.wait_for_function(redrawn)
    page.wait_for_timeout(300)  # the other texts beside it (the time) redraw too
    page.mouse.up()
