"""/docs and /redoc work offline: every file they load comes from the dashboard's own server, and they draw
the API under the Content-Security-Policy (a CSP violation is a console error, which fails a page test)."""

from __future__ import annotations

from urllib.parse import urlsplit


REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _watch(page) -> dict[str, list]:
    seen = {"loaded": [], "failed": []}
    page.on("requestfinished", lambda request: seen["loaded"].append(request.url))
    page.on("requestfailed", lambda request: seen["failed"].append((request.url, request.failure)))
    return seen


def test_swagger_ui_loads_nothing_from_another_host(page, live_server):
    seen = _watch(page)
    page.goto(live_server.url + "/docs")
    page.wait_for_selector(".swagger-ui .opblock-summary-path[data-path='/api/runs']", timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.click(".opblock-summary-path[data-path='/api/datasets']")  # open an operation: its parts draw too
    page.wait_for_selector(".opblock.is-open .try-out")
    assert {_origin(url) for url in seen["loaded"] if not url.startswith(("data:", "blob:"))} == {live_server.url}
    assert f"{live_server.url}/openapi.json" in seen["loaded"] and seen["failed"] == []


def test_redoc_loads_nothing_from_another_host(browser, live_server):
    # Its own context: ReDoc's bundle always asks for Redocly's logo from their CDN, and the policy refuses
    # it (a console error this test expects); any other error, or anything loaded from elsewhere, fails.
    context = browser.new_context()
    try:
        page = context.new_page()
        errors = []
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.on("pageerror", lambda error: errors.append(str(error)))
        seen = _watch(page)
        page.goto(live_server.url + "/redoc")
        page.wait_for_selector("[data-section-id^='tag/api'] h2", timeout=30_000)
        page.wait_for_load_state("networkidle")
        page.fill("input[placeholder='Search...']", "checkpoint")  # search runs in a blob: worker
        page.wait_for_selector("[data-role='search:results'] [data-item-id$='checkpoint_get']")
        assert {_origin(url) for url in seen["loaded"] if not url.startswith(("data:", "blob:"))} == {live_server.url}
        assert f"{live_server.url}/openapi.json" in seen["loaded"]
        assert [url for url, _ in seen["failed"]] in ([], [REDOCLY_LOGO])  # refused before it left the browser
        assert len(errors) == 1 and REDOCLY_LOGO in errors[0] and "img-src" in errors[0], errors
        assert page.locator(f"img[src='{REDOCLY_LOGO}']").count() == 0  # ReDoc drops the refused logo
    finally:
        context.close()
