"""Plots as plotly figures, embedded as JSON and drawn by the one shared plotly bundle.

A model page's Pareto plots: one trace per method family (colour, legend), points on the frontier
filled and dominated ones open, the frontier as a line with its name, every point labelled with its
variant where there is room (``leaderboard.labels``), error bars of one standard error (the mean
accuracy's is the standard error of the mean of its four tasks, treating them as independent) or the
min–max of the timed repeats, perplexity on a log axis. The home page's overview: quality kept against
memory saved for every variant of every base model, measured and reported told apart.

Every string goes through ``esc``: plotly interprets a subset of HTML in titles, labels and hover text.
Axis ranges are set here, so that the label placement (computed in pixels at a nominal size) matches
what is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kompakt.methods import METHODS
from kompakt.metrics import info
from leaderboard.html import esc, fragment, json_for_script
from leaderboard.labels import Box, place_labels
from leaderboard.marks import task_labels
from leaderboard.summary import row_label

Row = dict[str, Any]

#: Colours of the method families (a variant whose lineage has several families is a pipeline).
FAMILY_COLOURS: dict[str, str] = {
    "reference": "#212121",
    "quantization": "#1f77b4",
    "pruning": "#d62728",
    "healing": "#2ca02c",
    "distillation": "#9467bd",
    "export": "#ff7f0e",
    "runtime": "#8c564b",
}
#: Colours of pipelines (several families), given out in the order of their names.
PIPELINE_COLOURS = ("#17becf", "#e377c2", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173")
FRONTIER_COLOUR = "#3f51b5"
#: Marker shapes of the inference backends on a plot (a variant run by two backends is two points).
BACKEND_SYMBOLS = {None: "circle", "pytorch": "circle", "llama.cpp": "square"}
OTHER_SYMBOLS = ("diamond", "triangle-up", "triangle-down", "pentagon", "star")

#: The nominal size (pixels) at which labels are placed; the plots are drawn at least this wide.
WIDTH, HEIGHT = 560, 440
WIDE_WIDTH = 1100
MARGIN = {"l": 64, "r": 16, "t": 44, "b": 104}
#: Plotly's toolbar: only what helps reading a plot, so it stays narrow and clear of the left-aligned title.
CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines", "hoverClosestCartesian", "hoverCompareCartesian"],
}
PLOT_TITLES = {"accuracy-memory": "Mean accuracy vs memory", "accuracy-speed": "Mean accuracy vs tokens/s", "perplexity-size": "Word perplexity vs size",
               "kl-memory": "KL divergence from the reference vs weights memory"}


def family(row: Row) -> str:
    """The colour group of a row: ``reference``, one method family, or a pipeline of families in lineage
    order (``pruning + healing``)."""
    if row.get("is_reference"):
        return "reference"
    names = [m for m in (row.get("methods") or "").split(",") if m and m != "reference"]
    families = list(dict.fromkeys(METHODS[m].family if m in METHODS else "unknown" for m in names))
    return " + ".join(families) or "reference"


def family_colours(families: Sequence[str]) -> dict[str, str]:
    """A colour per family; pipelines get theirs from ``PIPELINE_COLOURS`` in the order of their names."""
    out = {f: FAMILY_COLOURS[f] for f in families if f in FAMILY_COLOURS}
    others = sorted(f for f in set(families) if f not in FAMILY_COLOURS)
    for i, f in enumerate(others):
        out[f] = PIPELINE_COLOURS[i % len(PIPELINE_COLOURS)]
    return out


def page_colours(rows: Sequence[Row]) -> dict[str, str]:
    """The colour of every family among ``rows`` (a whole page), for all of its plots: pipeline colours are given out
    in the order of the names present, so a plot of a subset would give the same pipeline another colour."""
    return family_colours([family(r) for r in rows])


def _colours_for(families: Sequence[str], colours: dict[str, str] | None) -> dict[str, str]:
    return colours if colours is not None and set(families) <= set(colours) else family_colours(families)


def backend_symbols(backends: Sequence[str | None]) -> dict[str | None, str]:
    """A marker shape per backend: PyTorch (or none named) circles, llama.cpp squares, others in turn."""
    out = {b: BACKEND_SYMBOLS[b] for b in backends if b in BACKEND_SYMBOLS}
    for i, b in enumerate(sorted(str(b) for b in set(backends) if b not in BACKEND_SYMBOLS)):
        out[b] = OTHER_SYMBOLS[i % len(OTHER_SYMBOLS)]
    return out


def log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values for a log axis from 10**lo to 10**hi: 1-2-5 steps, or only powers of ten over a wide range,
    or 1-9 steps over a narrow one."""
    def ticks(mantissas: Sequence[int]) -> list[float]:
        out = []
        for exp in range(math.floor(lo) - 1, math.ceil(hi) + 1):
            for m in mantissas:
                v = m * 10.0**exp
                if lo <= math.log10(v) <= hi:
                    out.append(float(f"{v:.6g}"))
        return out

    for mantissas in ((1, 2, 5), (1,), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        chosen = ticks(mantissas)
        if 3 <= len(chosen) <= 8:
            return chosen
    return ticks((1, 2, 3, 4, 5, 6, 7, 8, 9)) if len(ticks((1, 2, 5))) < 3 else ticks((1,))


def _axis_layout(axis: Axis, rng: list[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"title": {"text": esc(axis.title)}, "range": rng, "type": "log" if axis.log else "linear", "zeroline": False}
    if axis.log:
        vals = log_ticks(*rng)
        out.update(tickvals=vals, ticktext=[f"{v:g}" for v in vals])
    return out


def _family_order(families: Sequence[str]) -> list[str]:
    known = list(FAMILY_COLOURS)
    return sorted(set(families), key=lambda f: (known.index(f) if f in known else len(known), f))


# ------------------------------------------------------------------------------------------ axes


@dataclass(frozen=True)
class Axis:
    """One axis of a plot: how a raw value is drawn."""

    key: str
    """Metric key (or a name of the overview's own axes)."""
    title: str
    """Axis title."""
    scale: float = 1.0
    """Raw values are divided by this (bytes to MiB or GiB)."""
    log: bool = False
    """Logarithmic axis."""

    def to_plot(self, value: float) -> float:
        return value / self.scale

    def to_unit(self, value: float) -> float:
        """Where on the axis's own 0..1-free scale a plotted value lies (log10 on a log axis)."""
        return math.log10(value) if self.log else value


def metric_axis(key: str, values: Sequence[float]) -> Axis:
    meta = info(key)
    scale, unit = 1.0, meta.unit
    if meta.unit == "B":
        scale, unit = (2**30, "GiB") if max(values, default=0) >= 2**30 else (2**20, "MiB")
    title = f"{meta.label} ({unit})" if unit and unit not in meta.label else meta.label  # not "Decode tok/s (tok/s)"
    arrow = "lower is better" if meta.lower_is_better else "higher is better"
    return Axis(key, f"{title}, {arrow}", scale, log=meta.family == "perplexity")


def axis_range(values: Sequence[float], log: bool = False, pad: float = 0.08) -> list[float]:
    """A range around ``values`` (plotted units; log10 on a log axis) with ``pad`` of the span on each side."""
    finite = [math.log10(v) if log else v for v in values if v is not None and (v > 0 or not log)]
    if not finite:
        return [0.0, 1.0]
    lo, hi = min(finite), max(finite)
    span = hi - lo
    if span == 0:
        span = abs(hi) * 0.1 if hi else 1.0
    return [lo - pad * span, hi + pad * span]


def _pixels(x: float, y: float, xr: list[float], yr: list[float], area: Box) -> tuple[float, float]:
    px = area.left + (x - xr[0]) / (xr[1] - xr[0]) * (area.right - area.left)
    py = area.bottom - (y - yr[0]) / (yr[1] - yr[0]) * (area.bottom - area.top)
    return px, py


def plot_area(width: float = WIDTH, height: float = HEIGHT, margin: dict[str, int] = MARGIN, domain: tuple[float, float] = (0.0, 1.0)) -> Box:
    """The plotting area in pixels of a figure of this size (``domain``: the share of the width it takes)."""
    inner = width - margin["l"] - margin["r"]
    return Box(margin["l"] + domain[0] * inner, margin["t"], margin["l"] + domain[1] * inner, height - margin["b"])


def annotations(points: Sequence[tuple[float, float]], texts: Sequence[str], x_axis: Axis, y_axis: Axis, xr: list[float], yr: list[float],
                area: Box, order: Sequence[int] | None = None, xref: str = "x", yref: str = "y", reserved: Sequence[Box] = ()) -> tuple[list[dict[str, Any]], set[int]]:
    """Plotly annotations labelling ``points`` (plotted units) without overlaps, and the indexes of the points
    that have a label (each annotation's ``name`` is the index of the point its line points to)."""
    xy = [_pixels(x_axis.to_unit(x), y_axis.to_unit(y), xr, yr, area) for x, y in points]
    placed = place_labels(xy, texts, area, order, reserved)
    out = []
    for p in placed:
        x, y = points[p.points[0]]
        out.append(
            {
                "name": str(p.points[0]), "x": x_axis.to_unit(x), "y": y_axis.to_unit(y), "xref": xref, "yref": yref, "text": esc(p.text),
                "showarrow": True, "ax": p.dx, "ay": p.dy, "arrowhead": 0, "arrowwidth": 0.7, "arrowcolor": "#9e9e9e",
                "standoff": 5, "font": {"size": 10, "color": "#333"}, "bgcolor": "rgba(255,255,255,0.75)",
                "captureevents": False,
            }
        )
    return out, {i for p in placed for i in p.points}


def _legend() -> dict[str, Any]:
    return {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.2, "yanchor": "top", "font": {"size": 11}}


def _title(text: str) -> dict[str, Any]:
    # left-aligned, so the toolbar (top right) never covers it
    return {"text": esc(text), "x": 0, "xref": "paper", "xanchor": "left", "y": 0.98, "yref": "container", "yanchor": "top", "font": {"size": 15}}


def _layout(title: str, xaxis: dict[str, Any], yaxis: dict[str, Any], notes: list[dict[str, Any]], unlabelled: int) -> dict[str, Any]:
    """The layout every scatter plot shares; ``meta.unlabelled``: how many points carry no label (the caption says so)."""
    return {
        "title": _title(title),
        "xaxis": xaxis,
        "yaxis": yaxis,
        "hovermode": "closest",
        "showlegend": True,
        "legend": _legend(),
        "annotations": notes,
        "margin": MARGIN,
        "height": HEIGHT,
        "meta": {"unlabelled": unlabelled},
    }


# ------------------------------------------------------------------------------------------ model pages


#: Above this many points a plot takes the full width.
WIDE_ABOVE = 10


def pareto_figure(points: list[Row], rows_by_key: dict[tuple[str, str | None], Row], title: str, wide: bool = False,
                  colours: dict[str, str] | None = None) -> dict[str, Any]:
    """A plotly figure (as a plain dict) for one plot's frontier rows; ``rows_by_key`` maps (variant, backend)
    to its row. A variant measured on two backends is two points, told apart by their marker's shape.
    ``wide``: laid out for the full width of the page. ``colours``: the page's colour of each family
    (:func:`page_colours`), so that a pipeline has one colour in every plot of a page."""
    x_key, y_key = points[0]["x_key"], points[0]["y_key"]
    x_axis = metric_axis(x_key, [p["x"] for p in points])
    y_axis = metric_axis(y_key, [p["y"] for p in points])
    ordered = sorted(points, key=lambda p: (p["x"], p["variant_id"], p["backend"] or ""))
    rows = [rows_by_key[(p["variant_id"], p["backend"])] for p in ordered]
    xs = [x_axis.to_plot(p["x"]) for p in ordered]
    ys = [y_axis.to_plot(p["y"]) for p in ordered]
    y_err = [_stderr(r, y_key) for r in rows]
    x_lo, x_hi = zip(*[_spread(r, x_key, x_axis) for r in rows]) if rows else ((), ())
    extent_x = [*xs, *[x - lo for x, lo in zip(xs, x_lo)], *[x + hi for x, hi in zip(xs, x_hi)]]
    extent_y = [*ys, *[y - (e or 0) for y, e in zip(ys, y_err)], *[y + (e or 0) for y, e in zip(ys, y_err)]]
    xr, yr = axis_range(extent_x, x_axis.log, 0.1), axis_range(extent_y, y_axis.log, 0.1)
    families = [family(r) for r in rows]
    colours = _colours_for(families, colours)
    backends = [r.get("backend") for r in rows]
    shapes = backend_symbols(backends)

    data: list[dict[str, Any]] = []
    front = [i for i, p in enumerate(ordered) if p["on_frontier"]]
    data.append(
        {
            "type": "scatter", "mode": "lines", "name": "Pareto frontier", "x": [xs[i] for i in front], "y": [ys[i] for i in front],
            "line": {"color": FRONTIER_COLOUR, "width": 2, "dash": "dot"}, "hoverinfo": "skip",
        }
    )
    for fam in _family_order(families):
        idx = [i for i, f in enumerate(families) if f == fam]
        trace: dict[str, Any] = {
            "type": "scatter", "mode": "markers", "name": esc(fam), "legendgroup": esc(fam), "showlegend": False,
            "x": [xs[i] for i in idx], "y": [ys[i] for i in idx],
            "text": [esc(row_label(rows[i])) for i in idx],
            "hovertext": [_hover(rows[i], ordered[i], x_axis, y_axis) for i in idx], "hoverinfo": "text",
            "marker": {
                "size": 10, "color": colours[fam], "line": {"width": 1.5, "color": colours[fam]},
                "symbol": [shapes[backends[i]] + ("" if ordered[i]["on_frontier"] else "-open") for i in idx],
            },
        }
        if any(y_err[i] is not None for i in idx):
            trace["error_y"] = {"type": "data", "array": [y_err[i] or 0 for i in idx], "visible": True, "thickness": 1, "width": 3, "color": colours[fam]}
        if any(x_lo[i] or x_hi[i] for i in idx):
            trace["error_x"] = {"type": "data", "symmetric": False, "array": [x_hi[i] for i in idx], "arrayminus": [x_lo[i] for i in idx],
                                "visible": True, "thickness": 1, "width": 3, "color": colours[fam]}
        data.append(trace)
        data.append(_legend_entry(fam, colours[fam]))
    if len(set(shapes.values())) > 1:
        for backend in sorted(shapes, key=lambda b: (b is None, str(b))):
            data.append(_legend_entry(backend or "no backend named", "#757575", shapes[backend]))

    width = WIDE_WIDTH if wide else WIDTH
    area = plot_area(width)
    order = sorted(range(len(rows)), key=lambda i: (not rows[i]["is_reference"], not ordered[i]["on_frontier"], i))
    # The frontier's name goes on the middle of its longest segment, or of the next longest where points crowd that one.
    for mid in _frontier_middles([(xs[i], ys[i]) for i in front], x_axis, y_axis, xr, yr, area) or [None]:
        pts = list(zip(xs, ys)) + ([mid] if mid else [])
        texts = [r["variant_id"] for r in rows] + (["Pareto frontier"] if mid else [])
        notes, labelled = annotations(pts, texts, x_axis, y_axis, xr, yr, area, ([len(rows)] if mid else []) + order)
        if mid is None or len(rows) in labelled:
            break
    for n in notes:
        if mid and n["name"] == str(len(rows)):  # the frontier's name, not a point's
            n.update(name="frontier", font={"size": 10, "color": FRONTIER_COLOUR}, showarrow=False)
    unlabelled = len([i for i in range(len(rows)) if i not in labelled])
    return {
        "data": data,
        "layout": _layout(title, _axis_layout(x_axis, xr), _axis_layout(y_axis, yr), notes, unlabelled),
    }


def _legend_entry(name: str, colour: str, symbol: str = "circle") -> dict[str, Any]:
    """A legend-only trace (no point): the family's colour on a plain marker, whatever shapes its points have."""
    return {"type": "scatter", "mode": "markers", "name": esc(name), "legendgroup": esc(name), "x": [None], "y": [None], "hoverinfo": "skip",
            "marker": {"symbol": symbol, "size": 9, "color": colour}}


def _frontier_middles(line: list[tuple[float, float]], x_axis: Axis, y_axis: Axis, xr: list[float], yr: list[float], area: Box) -> list[tuple[float, float]]:
    """The middles (plotted units) of the frontier's segments, longest in pixels first: where its name may be placed.
    A frontier of one point (a variant that dominates every other) gets spots just below and above that point."""
    px = [_pixels(x_axis.to_unit(x), y_axis.to_unit(y), xr, yr, area) for x, y in line]
    out = []
    if len(line) == 1:
        ux, uy = x_axis.to_unit(line[0][0]), y_axis.to_unit(line[0][1])
        for shift in (-0.08, 0.08):
            vy = uy + shift * (yr[1] - yr[0])
            out.append(((10**ux if x_axis.log else ux), (10**vy if y_axis.log else vy)))
    for i in sorted(range(len(px) - 1), key=lambda k: -math.dist(px[k], px[k + 1])):
        (x0, y0), (x1, y1) = line[i], line[i + 1]
        ux = (x_axis.to_unit(x0) + x_axis.to_unit(x1)) / 2
        uy = (y_axis.to_unit(y0) + y_axis.to_unit(y1)) / 2
        out.append(((10**ux if x_axis.log else ux), (10**uy if y_axis.log else uy)))
    return out


def _stderr(row: Row, key: str) -> float | None:
    if key == "mean_accuracy":
        return row.get("mean_accuracy_stderr")
    return None


def _spread(row: Row, key: str, axis: Axis) -> tuple[float, float]:
    """(below, above) the value: the min–max of the timed repeats of a speed, or a paired speed's interval
    (``decode_tokens_per_s_paired``: the reference's tokens/s times the speed-up's interval), else nothing."""
    value, lo, hi = row.get(key), row.get(f"{key}_min"), row.get(f"{key}_max")
    if _is_speed(key) and value is not None and lo is not None and hi is not None:
        return axis.to_plot(value - lo), axis.to_plot(hi - value)
    return 0.0, 0.0


def _is_speed(key: str) -> bool:
    return key.endswith(("_tokens_per_s", "_tokens_per_s_paired"))


def _hover(row: Row, point: Row, x_axis: Axis, y_axis: Axis) -> str:
    lines = [f"<b>{esc(row_label(row))}</b>", esc(row.get("lineage_short") or row["lineage"])]
    for axis, value in ((x_axis, point["x"]), (y_axis, point["y"])):
        lines.append(f"{esc(info(axis.key).label)}: {axis.to_plot(value):.4g}")
    if row.get("mean_accuracy_stderr") is not None and y_axis.key == "mean_accuracy":
        lines[-1] += f" ± {row['mean_accuracy_stderr']:.4f}"
    if x_axis.key == "decode_tokens_per_s_paired" and row.get("speedup_paired"):
        verdict = "" if row.get("speedup_measurable") else ", no measurable difference"
        lines.append(f"paired speed-up {row['speedup']:.2f}× [{row['speedup_low']:.2f}–{row['speedup_high']:.2f}]{verdict}")
    lines.append("on the Pareto frontier" if point["on_frontier"] else "dominated")
    if row.get("quality_from"):
        lines.append(esc(f"accuracy from {row['quality_from']}"))
    if y_axis.key == "mean_accuracy" and row.get("mean_at_chance"):
        lines.append(esc(f"at chance: {row['mean_at_chance']}"))
    return "<br>".join(lines)


def pareto_caption(points: list[Row], unlabelled: int) -> str:
    """What the reader needs to read one Pareto plot (HTML, escaped)."""
    x_key, y_key = points[0]["x_key"], points[0]["y_key"]
    parts = ["Filled markers lie on the Pareto frontier (dotted line), open ones are dominated; colours are method families"
             + (", shapes the inference backend." if len({p["backend"] for p in points}) > 1 else ".")]
    if y_key == "mean_accuracy":
        parts.append("Vertical bars: ± one standard error of the mean accuracy, the standard error of the mean of the four tasks treating them as independent.")
    if x_key == "decode_tokens_per_s_paired":
        parts.append("Tokens/s of a variant timed side by side with its reference: the reference's tokens/s times the paired speed-up, "
                     "its horizontal bar the speed-up's 95 % interval; the reference's bar (and that of a variant without a paired figure): "
                     "min–max of its timed repeats.")
    elif x_key.endswith("_tokens_per_s"):
        parts.append("Horizontal bars: min–max of the timed repeats.")
    if info(y_key).family == "perplexity":
        parts.append("Perplexity on a log axis.")
    if unlabelled:
        parts.append(f"{unlabelled} point{'s' if unlabelled > 1 else ''} left unlabelled where labels would overlap; hover for the name.")
    left_out = points[0].get("left_out")
    if left_out:
        parts.append(esc(left_out_note(left_out)) + ".")
    return " ".join(parts)


def left_out_note(left_out: str) -> str:
    """The note of a plot that leaves points out (another rolling window, other tasks or documents)."""
    return f"Not drawn, measured on another basis: {left_out}"


# ------------------------------------------------------------------------------------------ overview


@dataclass(frozen=True)
class OverviewPoint:
    """One variant on the home page's overview."""

    model: str
    """Base model name."""
    variant: str
    """Variant id."""
    provenance: str
    """measured or reported."""
    family: str
    """Colour group (``family``)."""
    kept: float
    """Mean accuracy relative to the reference's (1 = as good)."""
    saved: float | None
    """Share of the reference's weights memory saved; None where either has no weights figure."""
    lineage: str
    """The lineage in one line."""
    hardware: str
    """Hardware of the row the point comes from."""


def overview_points(rows: Sequence[Row]) -> list[OverviewPoint]:
    """One point per base model, variant and provenance that has a quality kept against its reference.

    Memory saved is ``1 - weights / reference weights``: the weights as stored belong to the artifact, not to
    the hardware or backend, so every row of a variant gives the same figure. Rows are taken in order:
    a row with a weights figure before one without, then the first."""
    refs: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        if r["is_reference"] and r.get("weights_bytes"):
            refs.setdefault((r["base_model_id"], r["profile"], r["hardware_label"]), []).append(r)
    best: dict[tuple[str, str, str], OverviewPoint] = {}
    for r in rows:
        if r["is_reference"] or r.get("keeps_mean_accuracy") is None:
            continue
        saved = None
        ref = refs.get((r["base_model_id"], r["profile"], r["hardware_label"]))
        if ref and r.get("weights_bytes"):
            same = next((x for x in ref if x["backend"] == r["backend"]), ref[0])
            saved = 1.0 - r["weights_bytes"] / same["weights_bytes"]
        key = (r["base_model_id"], r["variant_id"], r["provenance"])
        point = OverviewPoint(r["base_model_name"], r["variant_id"], r["provenance"], family(r), r["keeps_mean_accuracy"], saved,
                              r.get("lineage_short") or r["lineage"], r["hardware_label"])
        if key not in best or (best[key].saved is None and saved is not None):
            best[key] = point
    return sorted(best.values(), key=lambda p: (p.model, p.variant, p.provenance))


#: Above this many points the overview labels none (the hover names each) and its hover text is short.
LABEL_LIMIT = 80

#: Share of the overview's width given to the strip of variants without a memory figure (on the right).
STRIP = 0.12
OVERVIEW_WIDTH, OVERVIEW_HEIGHT = 1000, 520


def overview_figure(points: Sequence[OverviewPoint]) -> dict[str, Any]:
    """Quality kept against memory saved, one marker per variant: filled circles measured, open diamonds
    reported; variants without a weights figure stand in a strip of their own on the left."""
    with_mem = [p for p in points if p.saved is not None]
    without = [p for p in points if p.saved is None]
    has_strip = bool(without)
    main_domain = (0.0, 1.0 - STRIP - 0.03) if has_strip else (0.0, 1.0)
    x_axis = Axis("saved", "Weights memory saved vs the reference (%)")
    y_axis = Axis("kept", "Mean accuracy kept vs the reference (%)")
    ys_all = [100 * p.kept for p in points] + [100.0]
    yr = axis_range(ys_all, pad=0.1)
    xr = axis_range([100 * p.saved for p in with_mem] + [0.0], pad=0.1)
    families = [p.family for p in points]
    colours = family_colours(families)
    strip_x = _strip_positions(without)

    data: list[dict[str, Any]] = []
    for fam in _family_order(families):
        for subset, xref, xs_of in ((with_mem, "x", lambda p: 100 * p.saved), (without, "x2", lambda p: strip_x[id(p)])):
            chosen = [p for p in subset if p.family == fam]
            if not chosen:
                continue
            data.append(
                {
                    "type": "scatter", "mode": "markers", "name": esc(fam), "legendgroup": esc(fam), "showlegend": False,
                    "xaxis": xref, "yaxis": "y",
                    "x": [xs_of(p) for p in chosen], "y": [100 * p.kept for p in chosen],
                    "customdata": [_overview_data(p, brief=len(points) > LABEL_LIMIT) for p in chosen],
                    "hovertemplate": OVERVIEW_HOVER,
                    "marker": {
                        "size": [10 if p.provenance == "measured" else 11 for p in chosen],
                        "symbol": ["circle" if p.provenance == "measured" else "diamond-open" for p in chosen],
                        "color": colours[fam], "line": {"width": 1.5, "color": colours[fam]},
                    },
                }
            )
        data.append(_legend_entry(fam, colours[fam]))
    for name, symbol in (("measured", "circle"), ("reported", "diamond-open")):
        data.append({"type": "scatter", "mode": "markers", "name": name, "x": [None], "y": [None], "hoverinfo": "skip",
                     "marker": {"symbol": symbol, "size": 10, "color": "#757575", "line": {"width": 1.5, "color": "#757575"}}})

    area = plot_area(OVERVIEW_WIDTH, OVERVIEW_HEIGHT, MARGIN, main_domain)
    ref_y = _pixels(0, 100, xr, yr, area)[1]
    ref_box = Box(area.right - 80, ref_y - 15, area.right, ref_y - 1)
    if len(with_mem) <= LABEL_LIMIT:
        notes, labelled = annotations([(100 * p.saved, 100 * p.kept) for p in with_mem], [p.variant for p in with_mem], x_axis, y_axis, xr, yr, area,
                                      reserved=[ref_box])
    else:
        notes, labelled = [], set()
    unlabelled = len(with_mem) - len(labelled)
    notes.append({"name": "reference", "x": xr[1], "y": 100, "xref": "x", "yref": "y", "text": "the reference", "showarrow": False, "xanchor": "right",
                  "yanchor": "bottom", "font": {"size": 10, "color": "#616161"}, "captureevents": False})
    layout: dict[str, Any] = {
        "title": _title("Quality kept vs memory saved, every variant against its own reference"),
        "xaxis": {"title": {"text": esc(x_axis.title)}, "range": xr, "domain": list(main_domain), "zeroline": False},
        "yaxis": {"title": {"text": esc(y_axis.title)}, "range": yr, "zeroline": False},
        "shapes": [
            {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": 100, "y1": 100, "line": {"color": "#9e9e9e", "width": 1, "dash": "dash"}},
            {"type": "line", "xref": "x", "x0": 0, "x1": 0, "yref": "paper", "y0": 0, "y1": 1, "line": {"color": "#9e9e9e", "width": 1, "dash": "dash"}},
        ],
        "hovermode": "closest",
        "legend": _legend(),
        "annotations": notes,
        "margin": MARGIN,
        "height": OVERVIEW_HEIGHT,
        "meta": {"unlabelled": unlabelled, "points": len(points)},
    }
    if has_strip:
        layout["xaxis2"] = {"domain": [1.0 - STRIP, 1.0], "range": [-0.6, 0.6], "showticklabels": False, "zeroline": False, "showgrid": False,
                            "title": {"text": "no memory<br>figure", "font": {"size": 11}}, "anchor": "y"}
    return {"data": data, "layout": layout}


def _strip_positions(points: Sequence[OverviewPoint]) -> dict[int, float]:
    """Spread the strip's points sideways where their quality kept is close, so that they do not hide each other."""
    out: dict[int, float] = {}
    placed: list[tuple[float, float]] = []
    ordered = sorted(points, key=lambda p: (p.kept, p.model, p.variant))
    if len(ordered) > LABEL_LIMIT:  # too many to separate one by one: spread them evenly (golden-ratio steps)
        return {id(p): round(((i * 0.618034) % 1.0 - 0.5) * 0.9, 4) for i, p in enumerate(ordered)}
    for p in ordered:
        y = 100 * p.kept
        for x in (0.0, -0.3, 0.3, -0.15, 0.15, -0.45, 0.45):
            if all(abs(x - px) > 0.12 or abs(y - py) > 0.6 for px, py in placed):
                break
        out[id(p)] = x
        placed.append((x, y))
    return out


#: The overview's hover text, filled from each point's ``customdata`` (escaped strings).
OVERVIEW_HOVER = ("<b>%{customdata[0]}</b> (%{customdata[1]})<br>%{customdata[2]}<br>%{customdata[3]}<br>"
                  "accuracy kept: %{y:.1f} %<br>%{customdata[4]}<extra></extra>")


def _overview_data(p: OverviewPoint, brief: bool = False) -> list[str]:
    """[variant, provenance, model, lineage, memory saved] for the hover text; ``brief``: no lineage (large sets)."""
    saved = f"weights memory saved: {100 * p.saved:.1f} %" if p.saved is not None else "no weights memory figure"
    return [esc(p.variant), esc(p.provenance), esc(p.model), "" if brief else esc(p.lineage), saved]


def overview_caption(points: Sequence[OverviewPoint], unlabelled: int) -> str:
    measured = sum(1 for p in points if p.provenance == "measured")
    reported = len(points) - measured
    no_mem = sum(1 for p in points if p.saved is None)
    parts = [
        f"{len(points)} variants of {len({p.model for p in points})} base models ({measured} measured, filled circles; {reported} reported, open diamonds), "
        "each against the reference of its own base model on the same hardware; colours are method families.",
        "Quality kept is the variant's mean accuracy over the reference's; memory saved compares the weights as stored, which belong to the artifact, not to the hardware.",
    ]
    if no_mem:
        parts.append(f"{no_mem} variants have no weights figure (the thesis reports none) and stand in the strip on the right at their quality kept.")
    if len([p for p in points if p.saved is not None]) > LABEL_LIMIT:
        parts.append("Too many points to label; hover a point for its name.")
    elif unlabelled:
        parts.append(f"{unlabelled} labels left out where they would overlap; hover a point for its name.")
    return " ".join(parts)


# ------------------------------------------------------------------------------------------ embedding


def embed(figure: dict[str, Any], figure_id: str, caption: str = "", wide: bool = False) -> str:
    """A figure: HTML placeholder + JSON (``site/assets/kompakt.js`` draws it with the shared plotly bundle),
    and its caption (already escaped HTML)."""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    figure = {**figure, "config": CONFIG}
    return fragment(
        f'<figure class="kompakt-figure{" kompakt-wide" if wide else ""}"><div class="kompakt-plot" data-figure="{esc(figure_id)}" '
        f'style="height:{figure["layout"].get("height", HEIGHT)}px"></div>'
        f'<script type="application/json" id="{esc(figure_id)}">{json_for_script(figure)}</script>{cap}</figure>'
    )


def language_figure(rows: list[dict[str, Any]], language: str, kind: str, colours: dict[str, str] | None = None) -> dict[str, Any] | None:
    """German (``language``) against English quality kept, one point per variant coloured by its method family, with
    the diagonal where both languages keep alike; below it the method costs ``language`` more. ``kind``:
    ``perplexity`` (the reference's parallel perplexity / the variant's, per language) or ``accuracy`` (the task
    pairs above chance). Labels are placed as on the Pareto plots (``annotations``); both axes share one range, so
    the diagonal runs at 45 degrees. ``colours``: as :func:`pareto_figure`'s. None: no variant but the reference has a point."""
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
    if not any(not r.get("is_reference") for r, _ in points):
        return None  # the reference alone sits at (1, 1) by definition: nothing to compare yet
    points.sort(key=lambda p: (p[1][0], p[0]["variant_id"]))
    prows = [r for r, _ in points]
    xs, ys = [xy[0] for _, xy in points], [xy[1] for _, xy in points]
    hover = []
    for r, (x, y) in points:
        lines = [f"<b>{esc(r['variant_id'])}</b>", esc(r["lineage"]), f"{esc(pivot)} kept: {100 * x:.1f} %", f"{esc(name)} kept: {100 * y:.1f} %"]
        ratio = r.get(f"parallel_ppl_ratio_{language}")
        if kind == "perplexity" and ratio is not None:
            lines.append(f"{esc(name)}/{esc(pivot)} perplexity ratio: {ratio:.3f}")
        if kind == "accuracy" and r.get(f"lang_pairs_{language}"):
            lines.append(esc(f"tasks: {task_labels(r[f'lang_pairs_{language}'])}"))
        hover.append("<br>".join(lines))
    rng = axis_range([*xs, *ys, 1.0], pad=0.06)
    x_axis, y_axis = Axis(f"{PIVOT_LANGUAGE}_kept", f"{pivot} kept, higher is better"), Axis(f"{language}_kept", f"{name} kept, higher is better")
    families = [family(r) for r in prows]
    colours = _colours_for(families, colours)
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines", "name": f"{esc(name)} kept as much as {esc(pivot)}", "x": rng, "y": rng,
         "line": {"color": "#b0b0b0", "dash": "dash"}, "hoverinfo": "skip"},
    ]
    for fam in _family_order(families):
        idx = [i for i, f in enumerate(families) if f == fam]
        data.append({"type": "scatter", "mode": "markers", "name": esc(fam), "legendgroup": esc(fam), "showlegend": False,
                     "x": [xs[i] for i in idx], "y": [ys[i] for i in idx], "text": [esc(prows[i]["variant_id"]) for i in idx],
                     "hovertext": [hover[i] for i in idx], "hoverinfo": "text", "marker": {"size": 10, "color": colours[fam]}})
        data.append(_legend_entry(fam, colours[fam]))
    order = sorted(range(len(prows)), key=lambda i: (not prows[i].get("is_reference"), i))
    notes, labelled = annotations(list(zip(xs, ys)), [r["variant_id"] for r in prows], x_axis, y_axis, rng, rng, plot_area(), order)
    axis = {"range": rng, "tickformat": ".0%", "zeroline": False}
    return {
        "data": data,
        "layout": _layout(
            f"{name} against {pivot}: quality kept ({kind})",
            {**axis, "title": {"text": esc(x_axis.title)}},
            {**axis, "title": {"text": esc(y_axis.title)}},
            notes,
            len([i for i in range(len(prows)) if i not in labelled]),
        ),
    }


def language_caption(figure: dict[str, Any], language: str, kind: str) -> str:
    """What the reader needs to read one plot of :func:`language_figure` (HTML, escaped)."""
    from kompakt.tasks import LANGUAGES, PIVOT_LANGUAGE

    name, pivot = LANGUAGES.get(language, language), LANGUAGES.get(PIVOT_LANGUAGE, PIVOT_LANGUAGE)
    what = ("the reference's perplexity on Belebele's FLORES passages divided by the variant's, in each language" if kind == "perplexity"
            else "the variant's mean accuracy divided by the reference's, in each language, over the task pairs at which the reference is "
                 "above chance in both languages")
    parts = [f"Quality kept: {what}. On the dashed diagonal both languages keep alike; below it the method costs {name} more "
             f"than {pivot}. Colours are method families; a variant run on two backends is one point (its quality is the same)."]
    unlabelled = figure["layout"]["meta"]["unlabelled"]
    if unlabelled:
        parts.append(f"{unlabelled} point{'s' if unlabelled > 1 else ''} left unlabelled where labels would overlap; hover for the name.")
    return esc(" ".join(parts))

