"""What the charts draw, in Chromium: each method's lines in its own colour on every page (its other
configurations in shades of it, dashed), legends naming hyperparameters and seeds, and intervals that end
at 100 %. A live server without a worker; a study finished in the database."""

from __future__ import annotations

import pytest
from browser_support import LAPTOP, PHONE, LiveServer
from sqlmodel import Session, create_engine
from test_screenshots import shoot

from app.studies import service as studies
from app.web.charts import kind_color, method_styles
from tests.study_fixtures import finish, submit

# The lines Plotly drew in chart #id: each trace's legend name, stroke colour and dash pattern.
DRAWN_LINES = """id => [...document.querySelectorAll(`#${id} .scatterlayer .trace`)].map(trace => {
    const line = trace.querySelector('.js-line');
    return line && { stroke: line.style.stroke, dash: line.style.strokeDasharray || '' };
  }).filter(Boolean)"""
# The legend a page draws for all its charts: each entry's text and its swatch's stroke.
LEGEND = """id => [...document.querySelectorAll(`#${id} li`)].map(li => [li.textContent.trim(),
    getComputedStyle(li.querySelector('line')).stroke])"""
# The top of each error bar Plotly drew in #id, and where 100 % is on its y axis (pixels from the plot's top).
ERROR_BARS = """id => {
  const el = document.getElementById(id), ya = el._fullLayout.yaxis;
  const tops = [...el.querySelectorAll('.errorbar path')].map(p => p.getBBox().y);
  return { tops, full: ya.l2p(1.0) };
}"""


def rgb(hex_colour: str) -> str:
    return "rgb({}, {}, {})".format(*(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)))


@pytest.fixture(scope="module")
def sweep_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("readable"), worker=False)
    engine = create_engine(f"sqlite:///{server.root / 'kd.sqlite'}")
    with Session(engine) as db:
        # Two seeds far apart near the top: the kd groups' 95 % intervals reach past 100 %.
        server.study = submit(server.api, methods=("student", "cosine", "kd"), seeds=(1, 2),
                              grid={"kd.temperature": [2, 4]})
        finish(db, server.study, lambda run: 0.8 if run.kind == "teacher" else {1: 0.88, 2: 0.99}[run.seed])
        server.groups = studies.study_groups(studies.study_runs(db, server.study))
    yield server
    server.stop()
    engine.dispose()


def test_each_method_draws_in_its_colour_with_legends_naming_hyperparameters(new_page, sweep_server):
    page = new_page()
    page.goto(f"{sweep_server.url}/compare?study={sweep_server.study}")
    page.wait_for_selector("#compare-group-0 .main-svg")
    legend = dict(page.evaluate(LEGEND, "compare-legend"))
    kd_styles = method_styles(["kd", "kd"])
    for name, colour in (("kd temperature=2 (mean of 2)", kd_styles[0]["color"]),
                         ("kd temperature=4 (mean of 2)", kd_styles[1]["color"]),
                         ("cosine (mean of 2)", kind_color("cosine")), ("student (mean of 2)", kind_color("student"))):
        entry = next((text for text in legend if text.endswith(name)), None)
        assert entry is not None and legend[entry] == rgb(colour), (name, legend)
    drawn = page.evaluate(DRAWN_LINES, "compare-group-0")
    strokes = {line["stroke"] for line in drawn}
    assert {rgb(kind_color(m)) for m in ("student", "cosine", "kd")} <= strokes
    assert rgb(kd_styles[1]["color"]) in strokes
    kd_lines = [line for line in drawn if line["stroke"] in (rgb(kd_styles[0]["color"]), rgb(kd_styles[1]["color"]))]
    assert sorted(bool(line["dash"]) for line in kd_lines) == [False, True]  # the second kd configuration dashed

    # The study page draws the same colours, and the board's scatter its kd points in kd's colour.
    page.goto(f"{sweep_server.url}/studies/{sweep_server.study}")
    page.wait_for_selector("#curve-0 .main-svg")
    assert {rgb(kind_color(m)) for m in ("student", "cosine", "kd")} <= {
        line["stroke"] for line in page.evaluate(DRAWN_LINES, "curve-0")}
    page.goto(sweep_server.url + "/")
    page.wait_for_selector("#scatter .main-svg")
    markers = page.evaluate("""() => [...document.querySelectorAll('#scatter .scatterlayer .trace')].map(t =>
        [t.querySelector('.point') && t.querySelector('.point').style.fill])""")
    assert [rgb(kind_color("kd"))] in markers


def test_error_bars_end_at_100_percent(new_page, sweep_server):
    page = new_page()
    page.goto(f"{sweep_server.url}/compare?study={sweep_server.study}")
    page.wait_for_selector("#finals-chart .main-svg")
    bars = page.evaluate(ERROR_BARS, "finals-chart")
    kd = [g for g in sweep_server.groups if g["method"] == "kd"]
    assert kd and all(g["ci95"][1] > 1 for g in kd)  # the intervals as computed reach past 100 %
    assert len(bars["tops"]) >= len(kd) and min(bars["tops"]) >= bars["full"] - 1.5


@pytest.mark.parametrize("size, viewport", [("laptop", LAPTOP), ("phone", PHONE)])
def test_screenshots_of_the_readable_pages(new_page, sweep_server, size, viewport):
    page = new_page(viewport)
    for name, path in (("readable-study", f"/studies/{sweep_server.study}"),
                       ("readable-compare", f"/compare?study={sweep_server.study}"), ("readable-runs", "/?view=runs")):
        page.goto(sweep_server.url + path)
        shoot(page, name, size, "light")
