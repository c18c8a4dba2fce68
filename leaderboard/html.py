"""Small HTML helpers for generated pages. Every string from a results file goes through ``esc``."""

from __future__ import annotations

import html
import json
import math
from typing import Any


def esc(value: Any) -> str:
    """Escape text for HTML content and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def json_for_script(data: Any) -> str:
    """JSON safe to embed in ``<script type="application/json">``: no ``<``, ``>`` or ``&`` survives."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return ""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f} B"


def fmt_num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:,.{digits}f}"


def fmt_fraction(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def fmt_signed(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:+.{digits}f}"


def fmt_percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f} %"


def fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}×"


def fragment(block: str) -> str:
    """Mark generated HTML to bypass Markdown and the search index (see ``leaderboard.mkdocs_hooks``)."""
    return f"<!--kf-->{block}<!--/kf-->"
