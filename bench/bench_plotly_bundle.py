"""Time to the first chart on a cold cache: the vendored cartesian Plotly bundle against the full one.

    python bench/bench_plotly_bundle.py [--repeat 9] [--full PATH] [--pixels]

Serves the dashboard (uvicorn, in this process, on a temporary SQLite database holding one finished run)
and opens its run page in Chromium, each time in a fresh browser context (an empty HTTP cache, so no
cached script or compiled code). The page's request for the Plotly bundle is answered, for both bundles
alike, by the same server from a folder holding the two files, alternately: one of each per repeat, so a
busy machine slows both. Measured from navigation to the first `.scatterlayer .trace` in the document,
and to the bundle's last byte. The full bundle: --full, else the copy in the `plotly` Python package when
it is installed (`npm pack plotly.js-dist-min@VERSION` gives the same file).

--pixels also draws every chart of page_snapshot.py's database (run pages, compare pages, study pages, the
leaderboard; light and dark) with each bundle and says which charts differ by a pixel.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import uvicorn  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from page_fixtures import add_run  # noqa: E402
from page_snapshot import _fill  # noqa: E402

from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.store.db import new_session  # noqa: E402
from kdcore.registry import METHODS  # noqa: E402

CARTESIAN = ROOT / "static" / "vendor" / "plotly-cartesian.min.js"
CHROMIUM = Path("/usr/bin/chromium")
# Installed before any page script: notes the moment the first trace enters the document.
FIRST_TRACE = """
new MutationObserver((_, observer) => {
  if (!document.querySelector('.scatterlayer .trace')) return;
  window.__firstTrace = performance.now();
  observer.disconnect();
}).observe(document, { childList: true, subtree: true });
"""
CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-chart]')]
    .every(el => el.hidden || el.querySelector('.main-svg'))"""


def full_bundle(given: str | None) -> Path:
    if given:
        return Path(given)
    try:
        import plotly
    except ImportError:
        sys.exit("no full bundle: pass --full PATH (npm pack plotly.js-dist-min@<the vendored version>)")
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def version(bundle: Path) -> str:
    match = re.search(r"plotly\.js[^\n]*?v(\d+\.\d+\.\d+)", bundle.read_text(errors="replace")[:400])
    return match.group(1) if match else "?"


def serve(app) -> tuple[uvicorn.Server, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def fresh_context(browser, bundle_url: str, color_scheme: str = "light"):
    context = browser.new_context(viewport={"width": 1366, "height": 860}, color_scheme=color_scheme)
    # The page asks for the vendored bundle; the same server answers from the bench's folder.
    context.route("**/static/vendor/plotly-cartesian.min.js", lambda route: route.continue_(url=bundle_url))
    return context


def one_load(browser, url: str, bundle_url: str) -> tuple[float, float, int]:
    """(ms to the first trace, ms to the bundle's last byte, bytes received) in a fresh context."""
    context = fresh_context(browser, bundle_url)
    try:
        context.add_init_script(FIRST_TRACE)
        page = context.new_page()
        page.goto(url, wait_until="commit")
        page.wait_for_function("window.__firstTrace !== undefined", timeout=60_000)
        first = page.evaluate("window.__firstTrace")
        entry = page.evaluate("""() => performance.getEntriesByType('resource')
            .filter(e => e.name.includes('plotly')).map(e => [e.responseEnd, e.encodedBodySize])[0]""")
        return first, entry[0], entry[1]
    finally:
        context.close()


def chart_images(browser, base: str, paths: list[str], bundle_url: str) -> dict:
    """A screenshot of every chart drawn on these pages, by (colour scheme, page, chart id)."""
    from PIL import Image

    images = {}
    for scheme in ("light", "dark"):
        for path in paths:
            context = fresh_context(browser, bundle_url, scheme)
            try:
                page = context.new_page()
                page.goto(base + path)
                page.wait_for_function(CHARTS_DRAWN)
                page.wait_for_timeout(500)  # Plotly's responsive resize
                for chart in page.query_selector_all("[data-chart]"):
                    if chart.is_visible():
                        png = chart.screenshot(animations="disabled")
                        images[scheme, path, chart.get_attribute("id")] = Image.open(io.BytesIO(png)).convert("RGB")
            finally:
                context.close()
    return images


def compare_pixels(browser, base: str, ids: dict, urls: dict[str, str]) -> int:
    from PIL import ImageChops

    runs = ids["runs"]
    paths = ["/", "/?view=runs", *(f"/runs/{runs[i]}" for i in (0, 3, 5)), f"/compare?experiment={ids['experiment']}",
             f"/compare?study={ids['study']}", f"/compare?group={ids['group']}", f"/studies/{ids['study']}",
             f"/studies/{ids['study2']}", f"/compare?run={runs[0]}&run={runs[1]}&run={runs[2]}"]
    cartesian, full = (chart_images(browser, base, paths, url) for url in urls.values())
    differ = []
    for key in sorted(cartesian.keys() | full.keys()):
        a, b = cartesian.get(key), full.get(key)
        if a is None or b is None or a.size != b.size or ImageChops.difference(a, b).getbbox() is not None:
            differ.append(key)
    print(f"pixels: {len(cartesian)} charts on {len(paths)} pages, light and dark: "
          f"{len(cartesian) - len(differ)} identical with both bundles, {len(differ)} differ {differ or ''}")
    return len(differ)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="page loads per bundle")
    parser.add_argument("--full", help="the full plotly.min.js (default: the plotly Python package's)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs on the run page's curves")
    parser.add_argument("--pixels", action="store_true", help="also compare every chart's pixels")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    bundles = {"cartesian (vendored)": CARTESIAN, "full": full_bundle(args.full)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bundles"
        folder.mkdir()
        files = {}
        for name, path in bundles.items():
            files[name] = f"{len(files)}-{path.name}"
            shutil.copyfile(path, folder / files[name])
        app = create_app(Settings(db_url=f"sqlite:///{tmp}/kd.sqlite", data_dir=Path(tmp) / "data",
                                  runs_dir=Path(tmp) / "runs", allowed_hosts=("testserver",)))
        ids = {}
        if args.pixels:
            with TestClient(app) as client:  # page_snapshot fills through the API, as "testserver"
                ids = _fill(client, app.state.engine)
        app.mount("/bench-bundles", StaticFiles(directory=folder), name="bench_bundles")
        student = next(k for k, m in METHODS.items() if not m.teaches and not m.needs_teacher)
        with new_session(app.state.engine, app.state.settings) as session:
            run_id = add_run(session, student, epochs=args.epochs).id
        server, base = serve(app)
        urls = {name: f"{base}/bench-bundles/{file}" for name, file in files.items()}
        samples, differ = {name: [] for name in bundles}, 0
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                                     args=["--no-sandbox", "--disable-gpu"])
                for url in urls.values():  # once each before timing: the server's and the browser's start-up
                    one_load(browser, f"{base}/runs/{run_id}", url)
                for _ in range(args.repeat):
                    for name, url in urls.items():
                        samples[name].append(one_load(browser, f"{base}/runs/{run_id}", url))
                if args.pixels:
                    differ = compare_pixels(browser, base, ids, urls)
                browser.close()
        finally:
            server.should_exit = True
    print(f"machine: {platform.machine()} {_cpu()}, {len(os.sched_getaffinity(0))} CPUs, "
          f"Chromium headless ({CHROMIUM}), Python {platform.python_version()}")
    print(f"run page with {args.epochs} epochs, cold cache each load, {args.repeat} loads per bundle, alternated")
    print(f"{'bundle':22} {'version':>8} {'MB':>6} {'first trace ms (median)':>24} {'min-max':>13} "
          f"{'bundle loaded ms':>17}")
    medians = {}
    for name, runs in samples.items():
        firsts = [r[0] for r in runs]
        medians[name] = statistics.median(firsts)
        print(f"{name:22} {version(bundles[name]):>8} {runs[0][2] / 1e6:6.2f} {medians[name]:24.0f} "
              f"{min(firsts):6.0f}-{max(firsts):<6.0f} {statistics.median(r[1] for r in runs):17.0f}")
    cartesian, full = medians.values()
    print(f"first chart {full / cartesian:.2f}x sooner with the cartesian bundle ({full - cartesian:.0f} ms less)")
    return 1 if differ else 0


def _cpu() -> str:
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        return names[0] if names else platform.processor()
    except OSError:
        return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
