"""A button's action that the server refuses for a read-only database: the page says so at its top
(static/app.js on htmx:responseError), instead of a button that seems to do nothing."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import event

from app.main import create_app
from app.settings import Settings
from browser_support import LAPTOP, SCREENSHOTS


def read_only_answer(tmp_path: Path) -> tuple[str, int, str]:
    """What the server answers a run page's "Save" (tags and note) when its database is read-only: a real
    answer of the application, from a database made read-only after the run was stored."""
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'kd.sqlite'}", runs_dir=tmp_path / "runs",
                        allowed_hosts=("testserver",))
    app = create_app(settings)
    with TestClient(app) as client:
        run_id = client.post("/api/runs", json={"kind": "student", "dataset": "synthetic", "subset": 100}).json()["id"]

        def read_only(connection, _record):
            connection.execute("PRAGMA query_only=ON")

        event.listen(app.state.engine, "connect", read_only)
        app.state.engine.dispose()
        answer = client.post(f"/runs/{run_id}/annotations", data={"tags": "final", "note": ""},
                             headers={"HX-Request": "true"})
    return answer.text, answer.status_code, answer.headers["content-type"]


def test_a_refused_save_is_said_at_the_top_of_the_page(browser, live_server, tmp_path):
    body, status, content_type = read_only_answer(tmp_path)
    assert status == 503
    run_id = live_server.pair["teacher"]
    context = browser.new_context(viewport=LAPTOP)
    failures: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: failures.append(str(error)))
        page.route(f"**/runs/{run_id}/annotations",
                   lambda route: route.fulfill(status=status, body=body, content_type=content_type))
        page.goto(f"{live_server.url}/runs/{run_id}")
        page.click("#annotations-edit summary")
        page.fill("#in-tags", "final")
        page.click("#save-annotations")
        banner = page.locator("#request-error")
        banner.wait_for()
        assert banner.get_attribute("role") == "alert"
        text = banner.inner_text()
        assert text.startswith("cannot write the database: read-only: ") and text.endswith(
            "kd.sqlite (attempt to write a readonly database)")
        assert page.locator("#annotations-saved").count() == 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "run-save-refused-read-only-laptop-light.png"))
    finally:
        context.close()
    assert failures == []
