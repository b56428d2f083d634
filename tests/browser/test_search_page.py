"""A search launched from the launch page in Chromium, trained by the live server's worker: the page lands on
the search, its trial table fills as trials end, and its charts draw a point per completed trial (counted in
the drawn SVG, not in the data). A screenshot goes to test-output/screenshots/."""

from __future__ import annotations

from browser_support import KD_KIND, LAPTOP, SCREENSHOTS


def _drawn_points(page, chart_id: str) -> int:
    return page.locator(f"#{chart_id} .scatterlayer .trace .points path.point").count()


def test_a_search_launched_from_the_page_shows_its_trials_and_charts(new_page, live_server, trained_pair):
    page = new_page(LAPTOP)
    page.goto(live_server.url + "/launch#search-form")
    form = page.locator("#search-form")
    form.locator("#search-in-methods").fill(KD_KIND)
    form.locator("#search-in-teacher").select_option(str(trained_pair["teacher"]))
    form.locator("#search-in-space").fill(f"{KD_KIND}.temperature=log:1:16\n{KD_KIND}.distill_weight=0.1:0.9")
    for name, value in {"trials": "2", "parallelism": "2", "dataset": "synthetic", "subset": "200", "epochs": "2",
                        "validation": "0.2", "top_k": "1", "seeds": "2"}.items():
        form.locator(f"#search-in-{name}").fill(value)
    form.locator("#launch-search").click()
    page.wait_for_url("**/searches/*")
    search_id = int(page.url.rsplit("/", 1)[1])
    assert page.locator("#search-phase").inner_text() == "searching"
    # The page refreshes itself until the confirmation is queued (every trial ended).
    page.wait_for_function("() => document.querySelector('#search-live').dataset.phase !== 'searching'",
                           timeout=240_000)
    search = live_server.api.get(f"/api/searches/{search_id}").json()
    live_server.api.post(f"/api/studies/{search['confirmation']['study_id']}/cancel")  # not needed here
    statuses = [t["status"] for t in search["trials"]]
    completed = statuses.count("completed")
    assert len(statuses) == 2 and set(statuses) <= {"completed", "pruned"} and completed >= 1, statuses
    rows = page.locator("#trials-table tr[data-trial]")
    assert [rows.nth(i).get_attribute("data-status") for i in range(rows.count())] == statuses
    assert page.locator("#confirmation-link").is_visible()
    page.wait_for_function("() => document.querySelectorAll('#search-history .scatterlayer .trace').length >= 2")
    # The trial markers, and the best-so-far line with no markers of its own.
    assert _drawn_points(page, "search-history") == completed
    assert _drawn_points(page, "search-slice-0") == completed
    assert _drawn_points(page, "search-parallel") == 3 * completed  # a point per axis: two parameters and the objective
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "search-laptop-light.png"), full_page=True)
