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
            if y_key == "mean_accuracy" and row.get("mean_at_chance"):
                lines.append(esc(f"at chance: {row['mean_at_chance']}"))
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


def language_figure(rows: list[dict[str, Any]], language: str, kind: str) -> dict[str, Any] | None:
    """German (``language``) against English quality kept, one point per variant, with the diagonal where both
    languages keep alike; below it the method costs ``language`` more. ``kind``: ``perplexity`` (the reference's
    parallel perplexity / the variant's, per language) or ``accuracy`` (the task pairs above chance). None: no point."""
    from kompakt.tasks import LANGUAGES, PIVOT_LANGUAGE

    name, pivot = LANGUAGES.get(language, language), LANGUAGES.get(PIVOT_LANGUAGE, PIVOT_LANGUAGE)
    points = []
    for r in rows:
        if kind == "perplexity":
            rel, rel_pivot = r.get(f"rel_parallel_ppl_{language}"), r.get(f"rel_parallel_ppl_{PIVOT_LANGUAGE}")
            xy = (1 / rel_pivot, 1 / rel) if rel and rel_pivot else None
        else:
            kept, kept_pivot = r.get(f"lang_keeps_{language}"), r.get(f"lang_keeps_{language}_pivot")
            xy = (kept_pivot, kept) if kept is not None and kept_pivot is not None else None
        if xy is not None:
            points.append((r, xy))
    if not points:
        return None
    points.sort(key=lambda p: (p[1][0], p[0]["variant_id"]))
    hover = []
    for r, (x, y) in points:
        lines = [f"<b>{esc(r['variant_id'])}</b>", esc(r["lineage"]), f"{esc(pivot)} kept: {100 * x:.1f} %", f"{esc(name)} kept: {100 * y:.1f} %"]
        ratio = r.get(f"parallel_ppl_ratio_{language}")
        if kind == "perplexity" and ratio is not None:
            lines.append(f"{esc(name)}/{esc(pivot)} perplexity ratio: {ratio:.3f}")
        if kind == "accuracy" and r.get(f"lang_pairs_{language}"):
            lines.append(esc(f"tasks: {r[f'lang_pairs_{language}']}"))
        hover.append("<br>".join(lines))
    xs, ys = [p[1][0] for p in points], [p[1][1] for p in points]
    lo, hi = min(*xs, *ys), max(*xs, *ys, 1.0)
    what = ("the reference's parallel perplexity / the variant's (Belebele's FLORES passages)" if kind == "perplexity"
            else "accuracy kept on the task pairs above chance in both languages")
    return {
        "data": [
            {"type": "scatter", "mode": "lines", "name": f"{name} kept as much as {pivot}", "x": [lo, hi], "y": [lo, hi],
             "line": {"color": "#b0b0b0", "dash": "dash"}, "hoverinfo": "skip"},
            {"type": "scatter", "mode": "markers+text", "name": "variants", "x": xs, "y": ys, "text": [esc(p[0]["variant_id"]) for p in points],
             "textposition": "top center", "hovertext": hover, "hoverinfo": "text", "marker": {"size": 10, "color": "#3f51b5"}},
        ],
        "layout": {
            "title": {"text": f"{esc(name)} against {esc(pivot)}: quality kept ({kind})<br><sup>{esc(what)}; below the diagonal, "
                              f"{esc(name)} loses more</sup>"},
            "xaxis": {"title": {"text": f"{esc(pivot)} kept, higher is better"}, "tickformat": ".0%"},
            "yaxis": {"title": {"text": f"{esc(name)} kept, higher is better"}, "tickformat": ".0%"},
            "hovermode": "closest",
            "showlegend": False,
            "margin": {"l": 60, "r": 20, "t": 70, "b": 50},
            "height": 380,
        },
    }
