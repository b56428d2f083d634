"""One live server (uvicorn + its CPU worker, training real runs on synthetic data) and one headless
Chromium, shared by every browser test. Each test gets a fresh page that fails on any console error."""

from __future__ import annotations

import os

import pytest

from browser_support import CHROMIUM, CHROMIUM_ARGS, KD_KIND, LAPTOP, TEACHER_KIND, LiveServer


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            if not CHROMIUM.exists():
                item.add_marker(pytest.mark.skip(reason=f"{CHROMIUM} is absent"))


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("live"), worker=True)
    # Queue a teacher and a student distilled from it at once: they train while the first tests run.
    small = {"dataset": "synthetic", "subset": 200, "epochs": 2, "device": "cpu"}
    teacher = server.api.post("/api/runs", json={"kind": TEACHER_KIND, **small}).json()
    student = server.api.post("/api/runs", json={"kind": KD_KIND, "teacher_run_id": teacher["id"], **small}).json()
    server.pair = {"teacher": teacher["id"], "student": student["id"]}
    yield server
    server.stop()


@pytest.fixture(scope="session")
def trained_pair(live_server) -> dict[str, int]:
    """Run ids of a finished teacher and of a finished KD student distilled from it."""
    for run_id in live_server.pair.values():
        assert live_server.wait_for(run_id, timeout=240)["status"] == "completed"
    return live_server.pair


@pytest.fixture(scope="session")
def browser(live_server):
    # Depends on the server so the browser closes first and no event stream holds the server open.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


class ConsoleErrors(list):
    def watch(self, page):
        page.on("console", lambda message: message.type == "error" and self.append(f"{page.url}: {message.text}"))
        page.on("pageerror", lambda error: self.append(f"{page.url}: {error}"))
        page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm: the user says yes
        return page


@pytest.fixture
def new_page(browser):
    """Open pages in fresh contexts (viewport, colour scheme); the test fails on any console error."""
    errors, contexts = ConsoleErrors(), []

    def open_page(viewport=LAPTOP, color_scheme="light"):
        context = browser.new_context(viewport=viewport, color_scheme=color_scheme)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return errors.watch(context.new_page())

    yield open_page
    for context in contexts:
        context.close()
    assert errors == [], "browser console errors:\n" + "\n".join(errors)


@pytest.fixture
def page(new_page, live_server):
    return new_page()
