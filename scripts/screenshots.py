"""Screenshots of the built site (build/site) for the README, taken with headless Chromium.

    .venv/bin/python scripts/screenshots.py   # after `make site`
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
SHOTS = {
    "leaderboard.png": ("/leaderboard/", None),
    "model-page.png": ("/models/llama-3-8b-instruct/", ".kompakt-plots"),
    "measured-model-page.png": ("/models/smollm2-135m-instruct/", None),
}


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(SITE)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 860})
        for name, (path, scroll_to) in SHOTS.items():
            page.goto(base + path, wait_until="networkidle")
            if scroll_to:
                page.locator(scroll_to).first.scroll_into_view_if_needed()
                page.wait_for_timeout(500)
            page.screenshot(path=str(OUT / name))
            print("wrote", OUT / name)
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()
