"""Plots: axes, error bars, colours, labels and the home page's overview, on hand-made results."""

from __future__ import annotations

import math

from leaderboard.plots import (
    LABEL_LIMIT, OverviewPoint, axis_range, backend_symbols, family, family_colours, log_ticks, overview_caption,
    overview_figure, overview_points, pareto_caption, pareto_figure,
)
from leaderboard.summary import frontier_rows
from leaderboard.synthetic import VARIANT_STEPS, leaderboard_rows as rows_of, make_result


def figure_for(rows, plot):
    points = [f for f in frontier_rows(rows) if f["plot"] == plot]
    return points, pareto_figure(points, {(r["variant_id"], r["backend"]): r for r in rows}, plot)


def point_traces(figure):
    """Traces that draw points (not the frontier line, not legend-only entries)."""
    return [t for t in figure["data"] if t["mode"] == "markers" and any(x is not None for x in t["x"])]


SET = ("reference", "awq-4bit", "prune-8", "prune-8-lora")


def test_log_ticks_known_answers():
    assert log_ticks(math.log10(3), math.log10(500)) == [5, 10, 20, 50, 100, 200, 500]
    assert log_ticks(math.log10(20), math.log10(40)) == [20, 30, 40]
    assert log_ticks(0, 6) == [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]


def test_axis_range_pads_the_span_and_handles_one_value():
    assert axis_range([1, 3]) == [0.84, 3.16]
    assert axis_range([10, 1000], log=True) == [0.84, 3.16]
    lo, hi = axis_range([2, 2])
    assert lo < 2 < hi


def test_family_names_a_pipeline_in_lineage_order():
    assert family({"is_reference": True, "methods": "reference"}) == "reference"
    assert family({"is_reference": False, "methods": "awq"}) == "quantization"
    assert family({"is_reference": False, "methods": "prune_depth,lora,awq"}) == "pruning + healing + quantization"
    colours = family_colours(["quantization", "pruning + healing", "pruning + distillation"])
    assert colours["quantization"] == "#1f77b4"
    assert len(set(colours.values())) == 3


def test_backends_get_shapes():
    assert backend_symbols([None, "pytorch", "llama.cpp"]) == {None: "circle", "pytorch": "circle", "llama.cpp": "square"}
    assert backend_symbols(["onnx"]) == {"onnx": "diamond"}


def test_accuracy_plot_has_error_bars_labels_colours_and_a_frontier():
    rows = rows_of(*(make_result("m", v, "cpu") for v in SET))
    points, fig = figure_for(rows, "accuracy-memory")
    traces = point_traces(fig)
    assert sorted(t["name"] for t in traces) == ["pruning", "pruning + healing", "quantization", "reference"]
    by_variant = {r["variant_id"]: r for r in rows}
    for t in traces:
        # one standard error of the mean accuracy: sqrt(sum of the tasks' squared stderrs) / 4
        assert t["error_y"]["array"] == [(0.014**2 + 0.013**2 + 0.015**2 + 0.005**2) ** 0.5 / 4] * len(t["x"])
        assert t["marker"]["color"] == family_colours([t["name"]])[t["name"]]
    line = next(t for t in fig["data"] if t["name"] == "Pareto frontier")
    assert line["mode"] == "lines" and len(line["x"]) == sum(p["on_frontier"] for p in points)
    labels = {a["text"] for a in fig["layout"]["annotations"]}
    assert set(by_variant) <= labels and "Pareto frontier" in labels
    assert fig["layout"]["meta"]["unlabelled"] == 0
    # filled markers on the frontier, open ones dominated
    symbols = [s for t in traces for s in t["marker"]["symbol"]]
    assert sum(not s.endswith("-open") for s in symbols) == sum(p["on_frontier"] for p in points)
    assert fig["layout"]["title"]["xanchor"] == "left"  # the toolbar sits on the right
    caption = pareto_caption(points, 0)
    assert "standard error of the mean of the four tasks treating them as independent" in caption


def test_perplexity_is_on_a_log_axis_and_speed_has_min_max_bars():
    rows = rows_of(*(make_result("m", v, "cpu") for v in SET))
    _, fig = figure_for(rows, "perplexity-size")
    assert fig["layout"]["yaxis"]["type"] == "log"
    assert fig["layout"]["yaxis"]["range"] == axis_range(
        [y for t in point_traces(fig) for y in t["y"]], log=True, pad=0.1
    )
    assert fig["layout"]["xaxis"]["title"]["text"].startswith("Weights (MiB)")
    _, speed = figure_for(rows, "accuracy-speed")
    assert speed["layout"]["xaxis"]["title"]["text"] == "Decode tok/s (paired), higher is better"  # the unit once, not "tok/s (tok/s)"
    ref = next(r for r in rows if r["variant_id"] == "reference")
    trace = next(t for t in point_traces(speed) if t["name"] == "reference")
    assert trace["error_x"]["array"] == [ref["decode_tokens_per_s_max"] - ref["decode_tokens_per_s"]]
    assert trace["error_x"]["arrayminus"] == [ref["decode_tokens_per_s"] - ref["decode_tokens_per_s_min"]]


def test_hover_text_and_labels_are_escaped():
    hostile = make_result("m", "awq-4bit", "cpu")
    hostile["variant"]["steps"] = [{"method": "gguf", "params": {"quant_type": "<img src=x onerror=alert(1)>"}}]
    rows = rows_of(make_result("m", "reference", "cpu"), hostile, make_result("m", "prune-8", "cpu"))
    _, fig = figure_for(rows, "accuracy-memory")
    text = str(fig)
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text


def overview_rows():
    measured = [make_result("m", v, "cpu") for v in SET]
    llama = [make_result("m", v, "cpu", run_id=f"m-{v}-cpp") for v in ("reference", "awq-4bit")]
    for r in llama:
        r["metrics"]["throughput"][0]["backend"] = "llama.cpp"
    reported = [make_result("r", v, "a100") for v in ("reference", "awq-4bit", "prune-8")]
    for r in reported:
        r["provenance"] = {"kind": "reported", "date": "2024-01-01", "citation": {"authors": "A", "title": "T", "year": 2024, "table": "1"}}
        del r["metrics"]["memory"]
        del r["hardware"]
    return rows_of(*measured, *llama, *reported)


def test_overview_has_one_point_per_variant_and_memory_saved_from_the_weights():
    rows = overview_rows()
    points = overview_points(rows)
    assert [(p.model, p.variant, p.provenance) for p in points] == [
        ("M", "awq-4bit", "measured"), ("M", "prune-8", "measured"), ("M", "prune-8-lora", "measured"),
        ("R", "awq-4bit", "reported"), ("R", "prune-8", "reported"),
    ]
    awq = points[0]
    assert awq.saved == 1 - int(540e6 * 0.25) / int(540e6)  # weights, whatever the backend
    ref = next(r for r in rows if r["variant_id"] == "awq-4bit" and r["base_model_id"] == "m")
    assert awq.kept == ref["keeps_mean_accuracy"]
    assert points[3].saved is None and points[4].saved is None


def test_overview_figure_tells_measured_and_reported_apart():
    points = overview_points(overview_rows())
    fig = overview_figure(points)
    drawn = point_traces(fig)
    assert sum(len(t["x"]) for t in drawn) == len(points) == fig["layout"]["meta"]["points"]
    symbols = {s for t in drawn for s in t["marker"]["symbol"]}
    assert symbols == {"circle", "diamond-open"}
    strip = [t for t in drawn if t["xaxis"] == "x2"]
    assert sum(len(t["x"]) for t in strip) == 2  # the reported variants have no weights figure
    assert fig["layout"]["xaxis2"]["domain"][1] == 1.0
    assert {a["text"] for a in fig["layout"]["annotations"]} >= {"awq-4bit", "prune-8", "prune-8-lora", "the reference"}
    caption = overview_caption(points, 0)
    assert "3 measured" in caption and "2 reported" in caption and "2 variants have no weights figure" in caption


def test_a_large_overview_is_not_labelled_and_stays_small():
    points = [OverviewPoint(f"model {i // 5}", f"v{i % 5}", "measured", "quantization", 0.9 + (i % 7) / 100, (i % 11) / 12, "AWQ 4-bit g128", "CPU")
              for i in range(LABEL_LIMIT * 20)]
    fig = overview_figure(points)
    assert [a["text"] for a in fig["layout"]["annotations"]] == ["the reference"]
    assert all(d[3] == "" for t in point_traces(fig) for d in t["customdata"])  # no lineage in the hover of a large set
    assert "Too many points to label" in overview_caption(points, len(points))


def test_a_paired_variant_sits_at_the_reference_times_its_speedup_with_the_interval_as_its_bar():
    results = [make_result("m", v, "cpu") for v in SET]
    fig = {"speedup": 1.5, "ci_low": 1.4, "ci_high": 1.6, "blocks": 10, "variant_blocks": [1.0] * 10, "reference_blocks": [1.0] * 10}
    results[1]["metrics"]["throughput"][0]["paired"] = {
        "reference": "reference", "loading": "same_process", "repeats_per_block": 1, "warmup_per_block": 1, "confidence_level": 0.95,
        "method": "scipy.stats.bootstrap", "decode_tokens_per_s": fig}
    rows = rows_of(*results)
    points, speed = figure_for(rows, "accuracy-speed")
    assert {p["x_key"] for p in points} == {"decode_tokens_per_s_paired"}
    ref = next(r for r in rows if r["variant_id"] == "reference")
    awq = next(p for p in points if p["variant_id"] == "awq-4bit")
    assert abs(awq["x"] - 1.5 * ref["decode_tokens_per_s"]) < 1e-9
    trace = next(t for t in point_traces(speed) if "awq-4bit" in " ".join(t["text"]))
    i = trace["text"].index(next(x for x in trace["text"] if "awq-4bit" in x))
    assert abs(trace["error_x"]["array"][i] - 0.1 * ref["decode_tokens_per_s"]) < 1e-9  # 1.6 - 1.5 of the reference's figure
    assert abs(trace["error_x"]["arrayminus"][i] - 0.1 * ref["decode_tokens_per_s"]) < 1e-9
    assert "paired speed-up 1.50× [1.40–1.60]" in trace["hovertext"][i]
    caption = pareto_caption(points, 0)
    assert "times the paired speed-up" in caption and "95 % interval" in caption


def test_a_pipeline_has_one_colour_in_every_plot_of_a_page():
    """Pipeline colours are given out in the order of the families present: a plot that lacks one pipeline would
    colour the others differently from its neighbours, unless it takes the page's colours."""
    import json
    import re

    from leaderboard.pages import model_pages
    from leaderboard.plots import page_colours

    lora = VARIANT_STEPS["prune-8-lora"]
    steps = {"prune-8-distill": [VARIANT_STEPS["prune-8"][0], {"method": "distill", "params": {}}],
             "prune-8-lora-awq": [*lora, {"method": "awq", "params": {"bits": 4, "group_size": 128}}]}
    results = [make_result("m", v, "cpu") for v in SET]
    for v, s in steps.items():
        r = make_result("m", v, "cpu")
        r["variant"]["steps"] = s
        results.append(r)
    rows = rows_of(*results)
    colours = page_colours(rows)
    points = [p for p in frontier_rows(rows) if p["plot"] == "accuracy-memory" and p["variant_id"] != "prune-8-distill"]
    by_key = {(r["variant_id"], r["backend"]): r for r in rows}
    own = {t["name"]: t["marker"]["color"] for t in point_traces(pareto_figure(points, by_key, "t"))}
    paged = {t["name"]: t["marker"]["color"] for t in point_traces(pareto_figure(points, by_key, "t", colours=colours))}
    assert own["pruning + healing"] != colours["pruning + healing"]  # the subset alone gives it another colour
    assert paged == {name: colours[name] for name in paged}
    page = model_pages(rows, frontier_rows(rows), [], {})["models/m.md"]
    seen: dict[str, set[str]] = {}
    for blob in re.findall(r'<script type="application/json" id="[^"]+">(.*?)</script>', page, re.S):
        for t in json.loads(blob)["data"]:
            if t.get("marker", {}).get("color") and t.get("name"):
                seen.setdefault(t["name"], set()).add(t["marker"]["color"])
    assert seen and all(len(c) == 1 for c in seen.values()), seen
