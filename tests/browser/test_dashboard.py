"""The dashboard in a real browser against a live server whose worker trains real runs (synthetic data, CPU)."""

from __future__ import annotations

import re
import time

import pytest

from kdcore.registry import METHODS

from browser_support import DRAWN_POINTS, KD_KIND, SCREENSHOTS, TEACHER_KIND, choose_kind

STUDENT_KIND = next(k for k, m in METHODS.items() if not m.teaches and not m.needs_teacher)
STATUS = "() => document.querySelector('#run-summary .badge').dataset.status"


def run_id_of(page) -> int:
    return int(re.search(r"/runs/(\d+)$", page.url).group(1))


def drawn(page, chart_id: str) -> int:
    """Epochs drawn on every curve of the chart (the fewest any curve shows), at the page's default settings."""
    return min(page.evaluate(DRAWN_POINTS, chart_id), default=0)


def test_launch_through_the_form_and_watch_the_curves_grow(page, live_server):
    page.goto(f"{live_server.url}/launch")
    choose_kind(page, STUDENT_KIND)
    page.wait_for_selector("#in-teacher_run_id", state="detached")
    page.select_option("#in-dataset", "synthetic")
    # Big enough that an epoch lasts longer than the page's polling below (400 images trained in 0.1 s).
    page.fill("#in-subset", "2000")
    page.fill("#in-epochs", "4")
    page.select_option("#in-device", "cpu")
    page.click("#launch-form button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = run_id_of(page)
    page.evaluate("window.__sameDocument = true")

    # Watch the page and the API side by side: each epoch must be drawn on the open page within 2 s.
    seen_api, seen_page, saw_progress = {}, {}, False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = time.monotonic()
        stored = len(live_server.api.get(f"/api/runs/{run_id}/epochs").json()["items"])
        seen_api.setdefault(stored, now)
        shown = drawn(page, "loss-chart")
        seen_page.setdefault(shown, now)
        saw_progress = saw_progress or page.locator("#run-progress [role=progressbar]").count() > 0
        # Stop once the run is over and its last epoch is drawn, or has had 3 s to be.
        if page.evaluate(STATUS) == "completed" and (shown == 4 or now - seen_api.get(4, now) > 3):
            break
        page.wait_for_timeout(200)
    assert page.evaluate(STATUS) == "completed"
    assert 0 in seen_page, seen_page  # the page was open before the first epoch
    assert any(0 < n < 4 for n in seen_page), (seen_page, seen_api)  # the chart grew while the run trained
    assert drawn(page, "loss-chart") == drawn(page, "accuracy-chart") == 4, (seen_page, seen_api)
    # From the moment the API holds epoch n to the moment the open page draws it.
    first_page = {n: min(t for count, t in seen_page.items() if count >= n) for n in range(1, 5)}
    first_api = {n: min(t for count, t in seen_api.items() if count >= n) for n in range(1, 5)}
    lags = {n: round(first_page[n] - first_api[n], 2) for n in range(1, 5)}
    assert max(lags.values()) < 2.0, lags
    assert saw_progress
    assert page.evaluate("window.__sameDocument") is True  # no reload
    assert page.locator("#run-summary a", has_text="Checkpoint").count() == 1


def test_cancel_a_running_run(page, live_server):
    response = live_server.api.post("/api/runs", json={"kind": STUDENT_KIND, "dataset": "synthetic", "epochs": 200,
                                                       "device": "cpu"})
    run_id = response.json()["id"]
    page.goto(f"{live_server.url}/runs/{run_id}")
    page.wait_for_function(f"() => ({STATUS})() === 'running'", timeout=120_000)  # the event stream redraws the summary
    page.click("#cancel-run")
    page.wait_for_selector("#run-summary .badge[data-status=cancelled]", timeout=30_000)
    assert page.locator("#run-summary .badge").inner_text() == "cancelled"
    assert page.locator("#cancel-run").count() == 0 and page.locator("#retry-run").count() == 1
    assert live_server.run(run_id)["status"] == "cancelled"


def test_a_refused_retry_says_why_beside_the_buttons(page, live_server):
    # A distilled run whose teacher was deleted cannot be retried: the page must say so rather than reload.
    long = {"dataset": "synthetic", "subset": 200, "epochs": 200, "device": "cpu"}
    teacher = live_server.api.post("/api/runs", json={"kind": TEACHER_KIND, **long}).json()["id"]
    student = live_server.api.post("/api/runs", json={"kind": KD_KIND, "teacher_run_id": teacher, **long}).json()["id"]
    live_server.api.post(f"/api/runs/{teacher}/cancel")
    live_server.wait_for(teacher, statuses=("cancelled",), timeout=60)
    live_server.wait_for(student, statuses=("cancelled",), timeout=30)  # its teacher was cancelled
    assert live_server.api.delete(f"/api/runs/{teacher}").status_code == 204
    page.goto(f"{live_server.url}/runs/{student}")
    page.evaluate("window.__sameDocument = true")
    page.click("#retry-run")
    message = page.wait_for_selector("#action-error")
    assert f"teacher run {teacher} no longer exists" in message.inner_text()
    page.wait_for_timeout(1000)  # a reload, had the response asked for one, would have happened by now
    assert page.evaluate("window.__sameDocument") is True and message.is_visible()
    # Beside the buttons: in the same row as Retry.
    box, button = message.bounding_box(), page.locator("#retry-run").bounding_box()
    assert box["y"] < button["y"] + button["height"] and button["y"] < box["y"] + box["height"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "run-retry-refused-laptop-light.png"))
    assert live_server.run(student)["status"] == "cancelled"


def test_invalid_form_shows_the_error_inline(page, live_server):
    page.goto(f"{live_server.url}/launch")
    page.select_option("#in-kind", KD_KIND)
    page.wait_for_selector("#in-temperature")
    page.fill("#in-temperature", "-3")
    page.fill("#in-lr", "fast")
    page.click("#launch-form button[type=submit]")
    page.wait_for_selector("#err-temperature")
    assert page.url.endswith("/launch")
    assert page.locator("#field-temperature .error").is_visible()
    assert "greater than 0" in page.locator("#err-temperature").inner_text()
    assert page.locator("#err-lr").is_visible()
    assert page.input_value("#in-lr") == "fast" and page.input_value("#in-temperature") == "-3"
    # The error sits beside its field: inside the same box, right below the input.
    field, error = page.locator("#in-temperature").bounding_box(), page.locator("#err-temperature").bounding_box()
    assert 0 <= error["y"] - (field["y"] + field["height"]) < 30 and abs(error["x"] - field["x"]) < 5


def test_compare_two_runs(page, live_server, trained_pair):
    teacher_id, kd_id = trained_pair["teacher"], trained_pair["student"]
    page.goto(f"{live_server.url}/compare")
    page.check(f"#pick-runs input[value='{teacher_id}']")
    page.check(f"#pick-runs input[value='{kd_id}']")
    page.click("#pick-runs button[type=submit]")
    page.wait_for_selector("#compare-runs")
    rows = page.locator("#compare-runs tbody tr")
    assert rows.count() == 2
    page.wait_for_selector("#compare-0 .main-svg")
    chart = page.locator("#compare-0")
    traces = chart.evaluate("el => el.data.map(t => [t.name, t.line.color])")
    assert [t[0] for t in traces] == [f"#{teacher_id} {TEACHER_KIND}", f"#{kd_id} {KD_KIND}"]
    assert traces[0][1] != traces[1][1] and page.evaluate(DRAWN_POINTS, "compare-0") == [2, 2]
    differing = page.locator("#config-diff tbody tr td:first-child").all_inner_texts()
    assert "kind" in differing and "teacher run" in differing
    assert page.locator("#finals-chart .barlayer .point").count() == 2
    # Log scale and smoothing apply to every curve and survive as a preference.
    page.check("[data-control=log]")
    assert page.locator("#compare-1").evaluate("el => el.layout.yaxis.type") == "log"
    page.locator("[data-control=smooth]").fill("0.6")
    assert page.locator("#compare-1").evaluate("el => el.data.length") == 4  # raw (faint) + smoothed per run
    page.reload()
    page.wait_for_selector("#compare-1 .main-svg")
    assert page.locator("#compare-1").evaluate("el => el.layout.yaxis.type") == "log"
    page.evaluate("localStorage.clear()")


def test_compare_refresh_keeps_the_users_zoom(page, live_server, trained_pair):
    # A run that stays active for the test's length keeps the compare page refreshing every 3 s.
    active = live_server.api.post("/api/runs", json={"kind": STUDENT_KIND, "dataset": "synthetic", "epochs": 200,
                                                     "device": "cpu"}).json()["id"]
    try:
        page.goto(f"{live_server.url}/compare?run={trained_pair['teacher']}&run={trained_pair['student']}&run={active}")
        page.wait_for_selector("#compare-0 .main-svg")
        chart = page.locator("#compare-0")
        assert chart.evaluate("el => el.layout.uirevision") is not None
        chart.evaluate("el => { el.__beforeRefresh = true; return Plotly.relayout(el, {'xaxis.range': [1.2, 1.8]}); }")
        page.evaluate("window.__swaps = 0; document.body.addEventListener('htmx:afterSettle', () => window.__swaps++)")
        page.wait_for_function("() => window.__swaps >= 1", timeout=15_000)
        page.wait_for_timeout(100)  # the redraw follows the settle
        assert chart.evaluate("el => el.__beforeRefresh") is True  # the same element, redrawn in place
        assert chart.evaluate("el => el.layout.xaxis.range") == [1.2, 1.8]
        assert chart.evaluate("el => el.data.length") >= 2
        # Any redraw with a new spec (here: smoothing, which redraws every chart) keeps the zoom too.
        page.locator("[data-control=smooth]").fill("0.3")
        assert chart.evaluate("el => el.data.length") >= 4
        assert chart.evaluate("el => el.layout.xaxis.range") == [1.2, 1.8]
        page.evaluate("localStorage.clear()")
    finally:
        live_server.api.post(f"/api/runs/{active}/cancel")


def test_home_shows_the_leaderboard_and_scatter(page, live_server, trained_pair):
    # The single-run view, a toggle away from the configurations (tests/browser/test_leaderboard_groups.py).
    page.goto(live_server.url)
    page.click("#view-runs")
    page.wait_for_selector("#leaderboard-table")
    page.wait_for_selector("#scatter .main-svg")
    ranked = page.locator("#leaderboard-table tbody tr").evaluate_all("rows => rows.map(r => +r.dataset.runId)")
    assert set(trained_pair.values()) <= set(ranked)
    kinds = page.locator("#scatter").evaluate("el => el.data.map(t => t.name)")
    assert {METHODS[TEACHER_KIND].title, METHODS[KD_KIND].title} <= set(kinds)
    # The distilled student's compression against its teacher is shown.
    row = page.locator(f"#leaderboard-table tr[data-run-id='{trained_pair['student']}']")
    assert "×" in row.inner_text()
    page.locator("#leaderboard-table tbody tr").first.locator("input[type=checkbox]").check()
    page.locator("#leaderboard-table tbody tr").nth(1).locator("input[type=checkbox]").check()
    page.click("#leaderboard button[type=submit]")
    page.wait_for_selector("#compare-runs")
    assert page.locator("#compare-runs tbody tr").count() == 2


def test_launch_a_new_method_on_a_cifar_resnet_with_the_benchmark_preset(page, live_server, trained_pair):
    page.goto(f"{live_server.url}/launch")
    page.select_option("#in-kind", "dkd")
    page.wait_for_selector("#in-beta")  # the method's own hyperparameters follow the choice
    assert page.input_value("#in-beta") == "8.0" and page.input_value("#in-warmup") == "20"
    page.select_option("#in-teacher_run_id", str(trained_pair["teacher"]))
    page.select_option("#in-architecture", "resnet20")
    page.select_option("#in-preset", "crd-cifar")
    page.wait_for_function("() => document.querySelector('#in-optimizer').value === 'sgd'")
    assert page.input_value("#in-milestones") == "150,180,210" and page.is_checked("#in-augment")
    page.fill("#in-epochs", "1")
    page.fill("#in-beta", "6")
    page.fill("#in-batch_size", "100")
    page.select_option("#in-dataset", "synthetic")
    page.fill("#in-subset", "200")
    page.select_option("#in-device", "cpu")
    page.screenshot(path=str(SCREENSHOTS / "launch-dkd-resnet20-preset-laptop-light.png"), full_page=True)
    page.click("#launch-form button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run = live_server.wait_for(run_id_of(page), timeout=180)
    assert run["status"] == "completed", run["error"]
    assert run["architecture"] == "resnet20" and run["config"]["params"]["beta"] == 6.0
    assert (run["config"]["optimizer"], run["config"]["augment"], run["config"]["milestones"]) == (
        "sgd", True, [150, 180, 210])
    epochs = live_server.api.get(f"/api/runs/{run['id']}/epochs").json()["items"]
    assert set(epochs[0]["train_terms"]) == {"ce", "dkd"} and epochs[0]["train_loss"] is not None


@pytest.mark.parametrize("kind", ["at", "pkt", "rkd", "dist"])
def test_each_new_method_trains_when_launched_from_the_dashboards_form(live_server, trained_pair, kind):
    # The form's own post (what the browser sends, as the DKD test above does through the page).
    form = {"kind": kind, "teacher_run_id": str(trained_pair["teacher"]), "architecture": "resnet20",
            "dataset": "synthetic", "subset": "200", "epochs": "1", "batch_size": "100", "device": "cpu"}
    response = live_server.api.post("/launch", data=form, headers={"Origin": live_server.url},
                                    follow_redirects=False)
    assert response.status_code == 303, response.text[-500:]
    run = live_server.wait_for(int(response.headers["location"].rsplit("/", 1)[1]), timeout=180)
    assert run["status"] == "completed", run["error"]
    epochs = live_server.api.get(f"/api/runs/{run['id']}/epochs").json()["items"]
    assert set(epochs[0]["train_terms"]) == set(METHODS[kind].loss_terms)
    assert all(value is not None for value in epochs[0]["train_terms"].values())
