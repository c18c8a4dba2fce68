"""Small HTML helpers for generated pages. Every string from a results file goes through ``esc``."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Column:
    header: str
    """Column heading."""
    cell: Callable[[dict[str, Any]], str]
    """Returns the cell's inner HTML (already escaped)."""
    sort: Callable[[dict[str, Any]], Any] | None = None
    """Returns the raw sort value (number or text); None: not sortable."""
    title: str = ""
    """Tooltip of the heading: what the column means."""
    numeric: bool = False


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], table_id: str, filters: dict[str, Callable[[dict[str, Any]], str]] | None = None) -> str:
    """A sortable, filterable HTML table (behaviour in ``site/assets/kompakt.js``).

    Its id is ``kt-<table_id>``: the prefix keeps it apart from the ids MkDocs gives headings.
    """
    filters = filters or {}
    head = "".join(
        f'<th{" data-sortable" if c.sort else ""}{" data-numeric" if c.numeric else ""} title="{esc(c.title)}">{esc(c.header)}</th>' for c in columns
    )
    body = []
    for r in rows:
        attrs = "".join(f' data-filter-{esc(name)}="{esc(get(r))}"' for name, get in filters.items())
        cells = []
        for c in columns:
            sort_attr = ""
            if c.sort is not None:
                value = c.sort(r)
                sort_attr = f' data-sort="{esc("" if value is None else value)}"'
            cells.append(f"<td{sort_attr}>{c.cell(r)}</td>")
        body.append(f"<tr{attrs}>{''.join(cells)}</tr>")
    return fragment(
        f'<div class="kompakt-table-wrap"><table class="kompakt-table" id="kt-{esc(table_id)}">'
        f"<thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table></div>"
    )


def fragment(block: str) -> str:
    """Mark generated HTML to bypass Markdown and the search index (see ``leaderboard.mkdocs_hooks``)."""
    return f"<!--kf-->{block}<!--/kf-->"


def filter_bar(table_id: str, options: dict[str, Sequence[str]], labels: dict[str, str]) -> str:
    """Select boxes that filter ``table_id``'s rows on their ``data-filter-*`` attributes."""
    parts = [f'<div class="kompakt-filters" data-table="kt-{esc(table_id)}">']
    for name, values in options.items():
        opts = '<option value="">all</option>' + "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
        parts.append(f'<label>{esc(labels.get(name, name))} <select data-filter="{esc(name)}">{opts}</select></label>')
    parts.append('<span class="kompakt-count" aria-live="polite"></span></div>')
    return "".join(parts)
