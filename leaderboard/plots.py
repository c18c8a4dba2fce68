"""Pareto plots as plotly figures, embedded as JSON and drawn by the one shared plotly bundle.

Each figure has two traces: the frontier (coloured, joined by a line) and the
dominated points (grey). Hover text shows the variant and its lineage; it is
escaped, because plotly interprets a subset of HTML in hover labels.
"""

from __future__ import annotations

from typing import Any

from kompakt.metrics import info
from leaderboard.html import esc, fragment, json_for_script
from leaderboard.summary import row_label

#: Bytes are plotted in GiB so the axis reads naturally.
_SCALE = {"B": (2**30, "GiB")}


def _axis(key: str) -> tuple[float, str]:
    meta = info(key)
    scale, unit = _SCALE.get(meta.unit, (1, meta.unit))
    title = f"{meta.label} ({unit})" if unit else meta.label
    arrow = "lower is better" if meta.lower_is_better else "higher is better"
    return scale, f"{title}, {arrow}"


def pareto_figure(points: list[dict[str, Any]], rows_by_key: dict[tuple[str, str | None], dict[str, Any]], title: str) -> dict[str, Any]:
    """A plotly figure (as a plain dict) for one plot's frontier rows; ``rows_by_key`` maps (variant, backend) to its row.
    A variant measured on two backends is two points, labelled with the backend."""
    x_key, y_key = points[0]["x_key"], points[0]["y_key"]
    x_scale, x_title = _axis(x_key)
    y_scale, y_title = _axis(y_key)

    def trace(selected: list[dict[str, Any]], name: str, style: dict[str, Any], mode: str) -> dict[str, Any]:
        hover = []
        for p in selected:
            row = rows_by_key[(p["variant_id"], p["backend"])]
            lines = [f"<b>{esc(row_label(row))}</b>", esc(row["lineage"]), f"{esc(info(x_key).label)}: {p['x'] / x_scale:.4g}", f"{esc(info(y_key).label)}: {p['y'] / y_scale:.4g}"]
            if row.get("quality_from"):
                lines.append(esc(f"accuracy from {row['quality_from']}"))
            hover.append("<br>".join(lines))
        return {
            "type": "scatter",
            "mode": mode,
            "name": name,
            "x": [p["x"] / x_scale for p in selected],
            "y": [p["y"] / y_scale for p in selected],
            "text": [esc(row_label(rows_by_key[(p["variant_id"], p["backend"])])) for p in selected],
            "hovertext": hover,
            "hoverinfo": "text",
            "marker": style,
        }

    left_out = points[0].get("left_out")
    frontier = sorted((p for p in points if p["on_frontier"]), key=lambda p: p["x"])
    dominated = sorted((p for p in points if not p["on_frontier"]), key=lambda p: (p["x"], p["variant_id"], p["backend"] or ""))
    return {
        "data": [
            trace(frontier, "Pareto frontier", {"size": 11, "color": "#3f51b5"}, "lines+markers"),
            trace(dominated, "dominated", {"size": 9, "color": "#b0b0b0"}, "markers"),
        ],
        "layout": {
            "title": {"text": esc(title) + (f"<br><sup>{esc(left_out_note(left_out))}</sup>" if left_out else "")},
            "xaxis": {"title": {"text": x_title}},
            "yaxis": {"title": {"text": y_title}},
            "hovermode": "closest",
            "margin": {"l": 60, "r": 20, "t": 70 if left_out else 50, "b": 50},
            "height": 380,
        },
    }


def left_out_note(left_out: str) -> str:
    """The subtitle of a plot that leaves points out (another rolling window, other tasks or documents)."""
    return f"not drawn, measured on another basis: {left_out}"


def embed(figure: dict[str, Any], figure_id: str) -> str:
    """HTML placeholder + JSON; ``site/assets/kompakt.js`` draws it with the shared plotly bundle."""
    return fragment(
        f'<div class="kompakt-plot" data-figure="{esc(figure_id)}"></div>'
        f'<script type="application/json" id="{esc(figure_id)}">{json_for_script(figure)}</script>'
    )
