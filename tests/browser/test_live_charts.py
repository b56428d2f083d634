"""Charts that change while their page stays open draw what they hold: points counted in the SVG, at the
default settings, on the pages htmx refreshes (compare: its charts redrawn in place; the leaderboard: its
scatter swapped when a queued run ends). The run page's own live curves: test_dashboard.py."""

from __future__ import annotations

from browser_support import DRAWN_POINTS

EPOCHS = 3
# The run's curve on the compare page's first chart (its runs in the order the address gives them).
RUN_CURVE = f"() => ({DRAWN_POINTS})('compare-0')[1]"
SCATTER_POINTS = f"() => ({DRAWN_POINTS})('scatter').reduce((a, b) => a + b, 0)"


def test_compare_and_leaderboard_draw_a_run_that_ends_while_they_are_open(new_page, live_server, trained_pair):
    run_id = live_server.api.post("/api/runs", json={"kind": "student", "dataset": "synthetic", "subset": 1000,
                                                     "epochs": EPOCHS, "device": "cpu"}).json()["id"]
    compare, board = new_page(), new_page()
    compare.goto(f"{live_server.url}/compare?run={trained_pair['teacher']}&run={run_id}")
    board.goto(f"{live_server.url}/?view=runs")
    board.wait_for_selector("#scatter .main-svg")
    ranked_before = board.evaluate(SCATTER_POINTS)
    assert ranked_before == board.locator("#leaderboard-table tbody tr").count()
    # Both opened before the run ended: neither shows it whole yet.
    compare.wait_for_selector("#compare-0 .main-svg")
    assert (compare.evaluate(RUN_CURVE) or 0) < EPOCHS
    assert board.locator(f"#leaderboard-table tr[data-run-id='{run_id}']").count() == 0
    for page in (compare, board):
        page.evaluate("window.__sameDocument = true")

    assert live_server.wait_for(run_id, timeout=240)["status"] == "completed"
    # The compare page refreshes every 3 s while a run is active, the leaderboard polls the queue every 2 s.
    compare.wait_for_function(f"() => ({RUN_CURVE})() === {EPOCHS}", timeout=10_000)
    board.wait_for_function(f"() => ({SCATTER_POINTS})() === {ranked_before + 1}", timeout=10_000)
    assert board.locator(f"#leaderboard-table tr[data-run-id='{run_id}']").count() == 1
    assert all(page.evaluate("window.__sameDocument") is True for page in (compare, board))  # no reload
