"""A built site served on localhost and a headless Debian Chromium driven by Playwright.

Playwright's own browser download cannot work on machines without general internet
access, so the tests drive the system Chromium (``scripts/setup-browser.sh`` installs it).
Where it or Playwright is missing, every browser test is skipped with the reason shown.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kompakt import paths

CHROMIUM = os.environ.get("KOMPAKT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
#: Flags for a sandboxed, quiet, offline Chromium: without the background-networking
#: switches it tries to reach Google's services at every start.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions",
]
ARTIFACTS = paths.REPO_ROOT / "test-artifacts"
#: Strings from results files that must show as text everywhere: a base model's name, a step's parameter,
#: and a name a spreadsheet would run as a formula.
HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_PARAM = "<img src=x onerror=alert(2)>"
FORMULA_NAME = "=1+2"


def _why_no_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser tests need the Python package playwright (pip install -e '.[dev]')"
    if CHROMIUM is None:
        return "browser tests need Debian's chromium (scripts/setup-browser.sh installs it); not found on PATH"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _why_no_browser()
    if reason is None:
        return
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="session")
def served_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Build the site from data/results plus a hostile file, serve it on 127.0.0.1."""
    from leaderboard.site import build_site
    from leaderboard.synthetic import make_result, write_result

    work = tmp_path_factory.mktemp("browser-site")
    results = work / "results"
    shutil.copytree(paths.results_dir(), results)
    for variant in ("reference", "awq-4bit", "prune-8", "evil-gguf"):
        r = make_result("evil-model", variant, "cpu")
        r["base_model"]["name"] = HOSTILE_NAME
        if variant == "evil-gguf":
            r["variant"]["steps"] = [{"method": "gguf", "params": {"quant_type": HOSTILE_PARAM}}]
        write_result(results, r)
    for variant in ("reference", "awq-4bit"):
        r = make_result("formula-model", variant, "cpu")
        r["base_model"]["name"] = FORMULA_NAME
        write_result(results, r)
    site = build_site(results, work / "build" / "site").site_dir
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", results
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page whose console errors, dialogs and off-host requests are recorded."""

    def __init__(self, page, base: str):
        self.page = page
        self.base = base
        self.console_errors: list[str] = []
        self.dialogs: list[str] = []
        self.off_host: list[str] = []
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        page.on("dialog", self._dialog)
        page.route("**/*", self._route)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(self.base) or url.startswith("data:") or url.startswith("blob:"):
            route.continue_()
        else:
            self.off_host.append(url)
            route.abort()

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path, wait_until="networkidle")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        target = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(target), full_page=False)
        return target


@pytest.fixture
def watched(browser, served_site):
    base, _ = served_site
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    w = Watched(page, base)
    try:
        yield w
    finally:
        context.close()


@pytest.fixture(scope="session")
def hostile() -> dict[str, str]:
    """The hostile strings planted in the served site."""
    return {"name": HOSTILE_NAME, "param": HOSTILE_PARAM, "formula": FORMULA_NAME}
