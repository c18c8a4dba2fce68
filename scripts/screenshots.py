"""Screenshots of the built site (build/site) for the README, taken with headless Chromium.

    .venv/bin/python scripts/screenshots.py   # after `make site`

Each shot is a 1400 x 860 window (the width the site is designed for) scrolled so that the part
the README talks about sits at the top, below the site's header.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "site"
OUT = ROOT / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: file name: (page, element scrolled to the top or None, what must be drawn before the shot)
SHOTS = {
    "home-overview.png": ("/", ".kompakt-figure", '.kompakt-plot[data-figure="overview"] .main-svg'),
    "leaderboard.png": ("/leaderboard/", ".kompakt-toolbar", ".kompakt-grid[data-ready]"),
    "model-page.png": ("/models/smollm2-135m-instruct/", ".kompakt-plots", ".kompakt-plot .main-svg"),
    "measured-model-page.png": ("/models/smollm2-135m-instruct/", "h2", ".kompakt-grid[data-ready]"),
}
HEADER = 64  # the site's sticky header, in pixels


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main() -> None:
    if not (SITE / "index.html").is_file():
        raise SystemExit(f"no built site in {SITE}: run `make site` first")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(SITE)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 860})
        for name, (path, scroll_to, ready) in SHOTS.items():
            page.goto(base + path, wait_until="networkidle")
            page.wait_for_selector(ready)
            if scroll_to:
                page.locator(scroll_to).first.evaluate(f"el => window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - {HEADER + 8})")
            page.wait_for_timeout(600)
            page.screenshot(path=str(OUT / name))
            print("wrote", OUT / name)
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()
