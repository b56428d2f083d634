"""A page on another site cannot make the user's browser launch runs, by posting or by framing the dashboard
(real Chromium, real server)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from browser_support import TEACHER_KIND


def _attacker_page(target: str) -> str:
    # What a hostile site would serve: a form that posts itself, and a "simple" fetch that needs no preflight.
    return f"""<!doctype html><html><body>
<form id="f" method="post" action="{target}/launch/experiment"><input name="dataset" value="synthetic"></form>
<script>
  fetch("{target}/api/runs", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
        body: JSON.stringify({{kind: "{TEACHER_KIND}", dataset: "synthetic"}})}})
    .finally(() => document.getElementById("f").submit());
</script></body></html>"""


@contextmanager
def another_site(page: bytes):
    """Serve ``page`` as a site of its own: "localhost" is another site than the dashboard's 127.0.0.1, as
    any web site would be. Yields its address."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def attacker(live_server):
    with another_site(_attacker_page(live_server.url).encode()) as url:
        yield url


def test_a_cross_site_form_and_fetch_launch_nothing(browser, live_server, attacker):
    before = live_server.api.get("/api/runs").json()["total"]
    context = browser.new_context()
    try:
        page = context.new_page()
        with page.expect_response(lambda r: r.url.endswith("/launch/experiment")) as posted:
            page.goto(attacker)
        response = posted.value
        assert response.status == 403
        assert "another site" in response.text() or "another origin" in response.text()
    finally:
        context.close()
    assert live_server.api.get("/api/runs").json()["total"] == before


@pytest.fixture
def framing_site(live_server):
    """Another site whose page frames the pre-filled launch form, as a clickjacking page would (nearly transparent)."""
    target = f"{live_server.url}/launch?kind={TEACHER_KIND}&dataset=synthetic"
    page = (f'<!doctype html><html><body><p id="bait">Click here!</p>'
            f'<iframe id="victim" src="{target}" style="opacity:0.02" width="900" height="700"></iframe>'
            f'</body></html>').encode()
    with another_site(page) as url:
        yield url


def test_another_site_cannot_frame_the_dashboard(browser, live_server, framing_site):
    context = browser.new_context()
    console = []
    try:
        page = context.new_page()
        page.on("console", lambda message: console.append(message.text))
        with page.expect_response(lambda r: "/launch?" in r.url) as framed:
            page.goto(framing_site)
        assert framed.value.status == 200  # the server answered; the browser refuses to show it
        page.wait_for_load_state("load")
        frame = page.frame_locator("#victim")
        assert frame.locator("#launch-form").count() == 0
        victim = next(f for f in page.frames if f != page.main_frame)
        assert not victim.url.startswith(live_server.url)  # Chromium's error page, not the form
        assert any("frame-ancestors 'none'" in text for text in console), console
    finally:
        context.close()
    # The same page opened directly (same origin, no frame) shows the form.
    direct = browser.new_context()
    try:
        page = direct.new_page()
        page.goto(f"{live_server.url}/launch?kind={TEACHER_KIND}")
        assert page.locator("#launch-form").count() == 1
    finally:
        direct.close()
