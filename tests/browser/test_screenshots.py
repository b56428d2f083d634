"""Every page at laptop and phone width, light and dark: no console errors, no sideways scrolling,
the colour scheme followed; screenshots go to test-output/screenshots/ for people to look at."""

from __future__ import annotations

import io
import tarfile

import pytest

from browser_support import KD_KIND, LAPTOP, PHONE, SCREENSHOTS, LiveServer

SIZES = {"laptop": LAPTOP, "phone": PHONE}
CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-chart]')]
    .every(el => el.hidden || el.querySelector('.main-svg'))"""


def shoot(page, name: str, size: str, scheme: str) -> None:
    page.wait_for_load_state("load")
    page.wait_for_function(CHARTS_DRAWN)
    page.wait_for_timeout(300)  # let Plotly's responsive resize settle
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{name} scrolls sideways by {overflow}px at {size} width"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    dark = sum(int(v) for v in background[background.index("(") + 1:-1].split(",")[:3]) < 3 * 128
    assert dark == (scheme == "dark"), f"{name} ignores the {scheme} colour scheme ({background})"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{size}-{scheme}.png"), full_page=True)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", SIZES)
def test_pages_at_each_width_and_scheme(new_page, live_server, trained_pair, size, scheme):
    page = new_page(SIZES[size], scheme)
    pages = {"home": "/", "launch": f"/launch?kind={KD_KIND}", "run": f"/runs/{trained_pair['student']}",
             "compare": f"/compare?run={trained_pair['teacher']}&run={trained_pair['student']}"}
    for name, path in pages.items():
        page.goto(live_server.url + path)
        shoot(page, name, size, scheme)
    page.goto(f"{live_server.url}/launch?kind={KD_KIND}")
    page.fill("#in-epochs", "0")
    page.click("#launch-form button[type=submit]")
    page.wait_for_selector("#err-epochs")
    shoot(page, "launch-invalid", size, scheme)


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("empty"), worker=False)
    yield server
    server.stop()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", SIZES)
def test_empty_states(new_page, empty_server, size, scheme):
    page = new_page(SIZES[size], scheme)
    for name, path, marker in (("home-empty", "/", "#no-runs"), ("compare-empty", "/compare", "#compare-empty")):
        page.goto(empty_server.url + path)
        assert page.locator(marker).is_visible()
        shoot(page, name, size, scheme)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("token")
    # A local ImageFolder archive, so the launch screenshots show the offline default dataset and its note.
    (root / "data").mkdir()
    with tarfile.open(root / "data" / "tiny-jpg.tar.xz", "w:xz") as tar:
        for name in ("train/cat/0.jpg", "train/dog/0.jpg", "test/cat/0.jpg", "test/dog/0.jpg"):
            tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    server = LiveServer(root, worker=False, token="browser-token")
    # The first launch page waits for the architecture catalog (a torch subprocess, seconds on a busy CPU):
    # take that wait here, so that the page the test signs in to loads within its timeout.
    assert server.api.get("/launch", timeout=180).status_code == 200
    yield server
    server.stop()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", SIZES)
def test_sign_in(new_page, token_server, size, scheme):
    page = new_page(SIZES[size], scheme)
    page.goto(token_server.url + "/launch")  # private: the sign-in page, which comes back here
    page.wait_for_selector("#signin-form")
    assert page.url == token_server.url + "/signin?next=/launch"
    shoot(page, "signin", size, scheme)
    page.fill("#in-token", "wrong")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signin-error")
    shoot(page, "signin-error", size, scheme)
    page.fill("#in-token", "browser-token")
    page.click("#signin-form button[type=submit]")
    page.wait_for_url(token_server.url + "/launch")
    assert page.locator("#signout").is_visible() and page.locator("#signin-notice").count() == 0
    assert page.input_value("#launch-form #in-dataset") == "tiny-jpg"
    shoot(page, "launch-signed-in", size, scheme)
    # The dataset's help follows the select.
    help_text = page.locator("#launch-form #field-dataset .help")
    page.select_option("#launch-form #in-dataset", "synthetic")
    assert "generated" in help_text.inner_text()
