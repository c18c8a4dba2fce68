"""MkDocs hook: put the generated tables and plots into the finished pages.

Big generated HTML (tables, figures) does not go through Markdown or the search index:
parsing hundreds of kilobytes of raw HTML per page with Python-Markdown's HTML parser,
and again in the search plugin, made most of the build time at 10,000 results files.
``leaderboard.pages.write_pages`` moves each block between ``<!--kf-->`` markers into
``<docs>/../fragments/`` and leaves a placeholder; this hook swaps the placeholder for
the block once the page is rendered (``on_post_page``, after search indexing). The blocks
were escaped when generated; nothing here inserts unescaped data.
"""

from __future__ import annotations

import re
from pathlib import Path

PLACEHOLDER = re.compile(r'<div data-kompakt-fragment="([0-9a-z_./-]+)"></div>')


def fragments_dir(docs_dir: str | Path) -> Path:
    return Path(docs_dir).parent / "fragments"


def on_post_page(output: str, page, config) -> str:
    root = fragments_dir(config["docs_dir"])

    def swap(match: re.Match) -> str:
        path = (root / match.group(1)).resolve()
        if root.resolve() not in path.parents:
            raise ValueError(f"fragment outside {root}: {match.group(1)}")
        return path.read_text(encoding="utf-8")

    return PLACEHOLDER.sub(swap, output)
