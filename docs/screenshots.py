"""The dashboard's screenshots for the docs site and the README, made from a real server.

    python docs/screenshots.py                  # every shot, into docs/images/
    python docs/screenshots.py --only study     # the shots of one page, or one shot by its name (repeatable)
    python docs/screenshots.py --out /tmp/shots # somewhere else
    python docs/screenshots.py --list           # the files it writes; nothing is started

It starts its own ``kd serve`` (one CPU worker, packing compatible runs) on a free port with a throw-away
database, data and runs folder, and trains through the REST API on the generated ``synthetic`` dataset: a
teacher, then a study (the student alone and KD at two temperatures, over 3 seeds), and times two networks'
latency. It drives Debian's Chromium (Playwright) through the pages at desk (1280 px) and phone (390 px)
width, in the light and the dark colour scheme; then it runs a small hyperparameter search (after the other
shots, whose leaderboard would show its trials) and takes its page. Each image is WebP, under 200 KB
(``tests/test_docs_images.py`` checks the images the pages show against ``SHOTS``). With ``--only`` it
trains only what the chosen pages show. On the 2-core development VM it took 243 s (2026-12-02, other jobs
sharing the machine lightly): the teacher 93 s, the study's 9 runs 29 s, 22 shots about 60 s; more under
load.

Needs Chromium at /usr/bin/chromium (``--chromium`` for another), Playwright (the ``test`` extra) and Pillow.
Importing this file starts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
CHROMIUM = Path("/usr/bin/chromium")
# As the browser tests launch it (tests/browser/browser_support.py): no sandbox in a container, no GPU, quiet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
MAX_BYTES = 200_000
# What the pages are made of: the templates and the app's own styles and scripts (not the vendored libraries).
# A full run records their hash beside the images; tests/test_docs_images.py fails once they change without it.
PAGE_SOURCES = ("templates/**/*.html", "static/*.css", "static/*.js", "static/*.svg")
FINGERPRINT = IMAGES / "pages.sha256"
VIEWPORTS = {"desk": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
# Phone shots at twice the pixels, so that the docs can show them at phone size and still sharp.
SCALES = {"desk": 1, "phone": 2}
SCHEMES = ("light", "dark")

# What the server trains, on the generated data (no download). The teacher: the tutorial's recipe on the
# whole training split (2,000 images) for 3 epochs. The students: 400 of those images for 5 epochs, at batch
# 16 and lr 2e-3, since these networks sit at chance for a few dozen steps before they learn. One recipe
# for every student, so the pages compare like with like.
TEACHER = {"kind": "teacher", "dataset": "synthetic", "epochs": 3, "device": "cpu"}
RECIPE = {"dataset": "synthetic", "subset": 400, "epochs": 5, "batch_size": 16, "lr": 0.002, "device": "cpu"}
STUDY = {**RECIPE, "name": "Soft targets vs the student alone", "methods": ["student", "kd"], "seeds": [1, 2, 3],
         "grid": {"kd.temperature": [1, 4]}}
SEARCH = {**RECIPE, "name": "KD: temperature and weight", "methods": ["kd"], "validation": 0.2,
          "space": ["kd.temperature=log:1:16", "kd.distill_weight=0.1:0.9"], "trials": 6, "parallelism": 2,
          "top_k": 1, "seeds": 2}
LATENCY = {"networks": ["tutorial_teacher", "tutorial_student"]}


@dataclass(frozen=True)
class View:
    """A page and the part of it a shot keeps."""

    path: str  # formatted with the ids the server gave: {study}, {run}, {search}
    needs: tuple[str, ...] = ()  # what must have been trained first: "study", "latency", "search"
    element: str | None = None  # the shot is this element alone
    until: str | None = None  # the shot runs from the page's top to this element's bottom
    max_height: int = 2000  # CSS pixels, at most
    prepare: str | None = None  # a name in PREPARE: what to do on the page before the shot


# What is shot: (what, width, view); each in both colour schemes, as WHAT-WIDTH-SCHEME.webp
# (leaderboard-desk-light.webp).
VIEWS: list[tuple[str, str, View]] = [
    ("leaderboard", "desk", View("/", ("study",), until="#configurations")),
    ("leaderboard", "phone", View("/", ("study",), element="#configurations")),
    ("study", "desk", View("/studies/{study}", ("study",), until="#study-sweeps")),
    ("study-curves", "desk", View("/studies/{study}", ("study",), element="#study-curves")),
    ("study", "phone", View("/studies/{study}", ("study",), element="#study-table-card")),
    ("run", "desk", View("/runs/{run}", ("study",), until="#run-live")),
    ("compare", "desk", View("/compare?study={study}", ("study",), max_height=1500)),
    ("launch", "desk", View("/launch", ("study",), until="#launch-form", prepare="kd")),
    ("launch-study", "desk", View("/launch", ("study",), element="#study-form", prepare="study_form")),
    ("networks", "desk", View("/networks", ("latency",))),
    ("reproduction", "desk", View("/reproduction", until="#reproduction")),
    ("search", "desk", View("/searches/{search}", ("study", "search"), until="#search-confirmation")),
]


@dataclass(frozen=True)
class Shot:
    what: str  # the page, or a part of it: study, study-curves
    size: str  # desk or phone
    scheme: str  # light or dark
    view: View

    @property
    def name(self) -> str:
        return f"{self.what}-{self.size}-{self.scheme}"

    @property
    def family(self) -> str:
        """The shot in both schemes: study-phone."""
        return f"{self.what}-{self.size}"

    @property
    def page(self) -> str:
        """The dashboard page it shows: ``--only study`` takes the study page's every shot."""
        return self.what.split("-")[0]

    @property
    def names(self) -> tuple[str, ...]:
        """What ``--only`` takes it by: its name, its family, what it shows (study-curves), its page."""
        return self.name, self.family, self.what, self.page

    @property
    def file(self) -> str:
        return f"{self.name}.webp"


SHOTS: list[Shot] = [Shot(what, size, scheme, view) for what, size, view in VIEWS for scheme in SCHEMES]

# Charts draw after the page loads: wait until every visible one has its SVG (tests/browser/test_screenshots.py).
CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-chart]')]
    .every(el => el.hidden || el.querySelector('.main-svg'))"""
HTMX_IDLE = "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"


def choose(names: list[str] | None) -> list[Shot]:
    """The shots named (a shot, e.g. study-desk-dark; one in both schemes, e.g. study-phone; a part of a page,
    e.g. study-curves; or a page's every shot, e.g. study), in SHOTS' order."""
    if not names:
        return list(SHOTS)
    known = {name for shot in SHOTS for name in shot.names}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown shot {', '.join(unknown)}; choose among: {', '.join(sorted(known))}")
    return [shot for shot in SHOTS if set(shot.names) & set(names)]


# --- the server -------------------------------------------------------------------------------------------


class Server:
    """``python -m app.cli serve`` with one CPU worker on 127.0.0.1 and a free port, every folder under ``root``."""

    def __init__(self, root: Path, pack: int):
        import httpx

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # Nothing of the caller's configuration (a token, another database) reaches this server.
        env = {key: value for key, value in os.environ.items() if not key.startswith("KD_")}
        env.update(KD_DB_URL=f"sqlite:///{root / 'kd.sqlite'}", KD_DATA_DIR=str(root / "data"),
                   KD_RUNS_DIR=str(root / "runs"), KD_CACHE_DIR=str(root / "cache"), CUDA_VISIBLE_DEVICES="",
                   KD_PACK=str(pack))
        self.log_path = root / "server.log"
        self.log = self.log_path.open("w")
        command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--gpus", ""]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.api = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if self.api.get("/api/datasets").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("the server did not answer within 180 s")

    def post(self, path: str, body: dict) -> dict:
        response = self.api.post(path, json=body)
        if response.status_code >= 300:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        return response.json()

    def wait(self, what: str, done, timeout: float = 900) -> None:
        """Poll ``done()`` until it is true; say what is awaited, and fail after ``timeout`` seconds."""
        print(f"  waiting for {what}", flush=True)
        deadline = time.monotonic() + timeout
        while not done():
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not done after {timeout:.0f} s")
            time.sleep(1)

    def stop(self) -> None:
        self.api.close()
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


def _named(server: Server, path: str, name: str) -> dict | None:
    """The newest study or search called ``name`` (one a previous run trained in a kept folder), or None."""
    items = server.api.get(path, params={"limit": 100}).json()["items"]
    return max((item for item in items if item["name"] == name), key=lambda item: item["id"], default=None)


def train(server: Server, needs: set[str]) -> dict[str, int]:
    """Train what the chosen shots show (unless a kept folder has it already); returns the ids their
    addresses need."""
    ids: dict[str, int] = {}
    latency = "latency" in needs and not server.api.get("/api/latency").json()["items"]
    if latency:
        # Timed by the worker when it has no run to train: after the study.
        server.post("/api/latency", LATENCY)
    if "study" in needs or "search" in needs:
        teachers = server.api.get("/api/runs", params={"kind": "teacher", "limit": 1}).json()["items"]
        ids["teacher"] = (teachers[0] if teachers else server.post("/api/runs", TEACHER))["id"]
        study = (_named(server, "/api/studies", STUDY["name"])
                 or server.post("/api/studies", {**STUDY, "teacher_run_id": ids["teacher"]}))
        ids["study"] = study["id"]
        server.wait(f"study {study['id']}", lambda: server.api.get(
            f"/api/studies/{study['id']}").json()["status"] in ("completed", "cancelled"))
        runs = server.api.get("/api/runs", params={"study_id": study["id"], "limit": 100}).json()["items"]
        teacher = server.api.get(f"/api/runs/{ids['teacher']}").json()
        failed = [run["id"] for run in [teacher, *runs] if run["status"] != "completed"]
        if failed:
            raise RuntimeError(f"runs {failed} of the study did not complete: see {server.log_path}")
        # The run page shows a KD student of the higher temperature, seed 1.
        ids["run"] = next(run["id"] for run in runs if run["kind"] == "kd" and run["config"]["seed"] == 1
                          and run["config"]["params"]["temperature"] == max(STUDY["grid"]["kd.temperature"]))
    if latency:
        server.wait("the latency measurement", lambda: all(
            request["status"] not in ("queued", "running")
            for request in server.api.get("/api/latency").json()["requests"]))
    if "search" in needs:
        search = (_named(server, "/api/searches", SEARCH["name"])
                  or server.post("/api/searches", {**SEARCH, "teacher_run_id": ids["teacher"]}))
        ids["search"] = search["id"]
        server.wait(f"search {search['id']} ({SEARCH['trials']} trials, then their confirmation)", lambda: server.api.get(
            f"/api/searches/{search['id']}").json()["phase"] not in ("searching", "confirming"))
    return ids


# --- the browser ------------------------------------------------------------------------------------------


def _prepare_kd(page, ids: dict[str, int]) -> None:
    """The run form with a distilling method chosen (its teacher and hyperparameters show), filled in with
    the study's recipe, so that its estimate is measured from the study's runs."""
    form = page.locator("#launch-form")
    with page.expect_response(lambda response: "/fragments/launch-fields" in response.url):
        form.locator("#in-kind").select_option("kd")
    page.wait_for_function(HTMX_IDLE)
    form.locator("#in-dataset").select_option(RECIPE["dataset"])
    for name in ("subset", "epochs", "batch_size", "lr"):
        form.locator(f"#in-{name}").fill(str(RECIPE[name]))
    form.locator("#in-lr").blur()
    page.wait_for_timeout(800)  # the estimate asks the server 400 ms after the last keystroke
    page.wait_for_function(HTMX_IDLE)


def _prepare_study_form(page, ids: dict[str, int]) -> None:
    """The study form filled in as STUDY was, with its live count of runs and its estimate."""
    form = page.locator("#study-form")
    form.locator("#study-in-teacher_run_id").select_option(str(ids["teacher"]))
    form.locator("#study-in-dataset").select_option(STUDY["dataset"])
    for name in ("subset", "epochs"):
        form.locator(f"#study-in-{name}").fill(str(STUDY[name]))
    form.locator("#study-in-grid").fill("\n".join(f"{key} = {', '.join(map(str, values))}"
                                                  for key, values in STUDY["grid"].items()))
    form.locator("#study-in-name").fill(STUDY["name"])
    form.locator("#study-in-name").blur()
    page.wait_for_timeout(800)  # the count and the estimate ask the server 400 ms after the last keystroke
    page.wait_for_function(HTMX_IDLE)


PREPARE = {"kd": _prepare_kd, "study_form": _prepare_study_form}


def encode(png: bytes, limit: int = MAX_BYTES) -> bytes:
    """WebP: lossless when that fits under ``limit`` (crisp text), else lossy at the best quality that fits."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    attempts = [{"lossless": True, "quality": 100, "method": 6}]
    attempts += [{"quality": quality, "method": 6} for quality in (92, 85, 78, 70, 60)]
    for options in attempts:
        buffer = io.BytesIO()
        image.save(buffer, "WEBP", **options)
        if buffer.tell() < limit:
            return buffer.getvalue()
    raise RuntimeError(f"a {image.width}×{image.height} shot stays over {limit} bytes even at quality 60: "
                       "keep less of the page")


REGION = """([selector, margin]) => {
    const box = document.querySelector(selector).getBoundingClientRect();
    return {x: box.left + window.scrollX - margin, y: box.top + window.scrollY - margin,
            width: box.width + 2 * margin, height: box.height + 2 * margin}; }"""


def region(page, view: View, width: int) -> dict:
    """The part of the page a shot keeps, in the page's CSS pixels: an element with a margin, or the page
    from its top to an element's bottom (or its end), at most ``view.max_height`` tall."""
    if view.element:
        box = page.evaluate(REGION, [view.element, 6])
    else:
        bottom = page.evaluate("document.documentElement.scrollHeight")
        if view.until:
            found = page.evaluate(REGION, [view.until, 16])
            bottom = found["y"] + found["height"]
        box = {"x": 0, "y": 0, "width": width, "height": bottom}
    box = {key: max(0, round(value)) for key, value in box.items()}
    box["height"] = min(box["height"], view.max_height)
    return box


def take(browser, server: Server, shot: Shot, ids: dict[str, int]) -> bytes:
    """The shot as PNG."""
    size, view = shot.size, shot.view
    context = browser.new_context(viewport=VIEWPORTS[size], device_scale_factor=SCALES[size],
                                  color_scheme=shot.scheme)
    context.set_default_timeout(60_000)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(server.url + view.path.format(**ids))
        page.wait_for_load_state("load")
        if view.prepare:
            PREPARE[view.prepare](page, ids)
        page.wait_for_function(CHARTS_DRAWN)
        page.wait_for_function(HTMX_IDLE)
        page.evaluate("window.scrollTo(0, 0)")  # else the sticky navigation bar is drawn where it was
        page.wait_for_timeout(400)  # Plotly's responsive resize settles
        # A full-page shot clipped to the region: an element's own shot scrolls, and draws the sticky
        # navigation bar over its middle.
        png = page.screenshot(full_page=True, clip=region(page, view, VIEWPORTS[size]["width"]),
                              animations="disabled")
        if errors:
            raise RuntimeError(f"{shot.name}: errors on the page: {errors}")
    finally:
        context.close()
    return png


def shoot(shots: list[Shot], server: Server, ids: dict[str, int], out: Path, chromium: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)

    def save(shot: Shot, png: bytes) -> None:
        path = out / shot.file
        path.write_bytes(encode(png))
        print(f"  {path}  {path.stat().st_size / 1000:.0f} KB", flush=True)

    # The smallest WebP takes seconds to encode: one thread encodes while the browser takes the next shot.
    with ThreadPoolExecutor(1) as encoder, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            saved = [encoder.submit(save, shot, take(browser, server, shot, ids)) for shot in shots]
        finally:
            browser.close()
        for future in saved:
            future.result()


def pages_fingerprint(root: Path = ROOT) -> str:
    """The sha256 of every file the pages are drawn from, by path and content."""
    digest = hashlib.sha256()
    for path in sorted({p for pattern in PAGE_SOURCES for p in root.glob(pattern)}):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Shots: " + ", ".join(shot.name for shot in SHOTS))
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="a shot (e.g. study-desk-dark), a shot in both schemes (study-phone) or a page's "
                             "shots (study); repeatable")
    parser.add_argument("--out", type=Path, default=IMAGES, help=f"where the images go (default: {IMAGES})")
    parser.add_argument("--list", action="store_true", help="print the files the shots write, and stop")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help=f"the browser (default: {CHROMIUM})")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="the server's folder (database, runs, log), kept afterwards; what an earlier run "
                             "trained there is reused (default: a temporary folder, removed)")
    args = parser.parse_args(argv)
    shots = choose(args.only)
    if args.list:
        print("\n".join(shot.file for shot in shots))
        return 0
    if not args.chromium.exists():
        raise SystemExit(f"no browser at {args.chromium}: install Debian's chromium or pass --chromium")
    started = time.monotonic()
    root = args.keep or Path(tempfile.mkdtemp(prefix="kd-screenshots-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"serving from {root}", flush=True)
    # Every compatible run trains in one pack: one worker start-up instead of one per run.
    server = Server(root, pack=16)
    try:
        # The search's runs would crowd the leaderboard: the pages of the study are taken before it trains.
        for phase in (False, True):
            taken = [shot for shot in shots if ("search" in shot.view.needs) == phase]
            if not taken:
                continue
            ids = train(server, {need for shot in taken for need in shot.view.needs})
            print(f"{time.monotonic() - started:.0f} s: trained; {len(taken)} shots", flush=True)
            shoot(taken, server, ids, args.out, args.chromium)
        if shots == SHOTS and args.out.resolve() == IMAGES.resolve():
            FINGERPRINT.write_text(pages_fingerprint() + "\n")
    finally:
        server.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
