"""Leaderboard rows: latest figure per metric, means, borrowed accuracy, comparable deltas only."""

from __future__ import annotations

import json

from kompakt.results import ResultsFile
from leaderboard.flatten import metric_rows, run_row
from leaderboard.summary import frontier_rows
from leaderboard.synthetic import leaderboard_rows, make_result

all_rows = leaderboard_rows


def rows_of(*results):
    return {(row["variant_id"], row["profile"]): row for row in all_rows(*results)}


def test_mean_needs_all_four_tasks():
    full = make_result("m", "reference", "cpu")
    partial = make_result("m", "awq-4bit", "cpu")
    partial["metrics"]["accuracy"] = partial["metrics"]["accuracy"][:3]
    rows = rows_of(full, partial)
    values = [a["value"] for a in full["metrics"]["accuracy"]]
    assert abs(rows[("reference", "cpu")]["mean_accuracy"] - sum(values) / 4) < 1e-12
    assert rows[("awq-4bit", "cpu")]["mean_accuracy"] is None
    assert rows[("awq-4bit", "cpu")]["delta_mean_accuracy"] is None


def test_delta_and_keeps_against_reference():
    ref, awq = make_result("m", "reference", "cpu"), make_result("m", "awq-4bit", "cpu")
    rows = rows_of(ref, awq)
    row, reference = rows[("awq-4bit", "cpu")], rows[("reference", "cpu")]
    assert abs(row["delta_mean_accuracy"] - (row["mean_accuracy"] - reference["mean_accuracy"])) < 1e-12
    assert abs(row["keeps_mean_accuracy"] - row["mean_accuracy"] / reference["mean_accuracy"]) < 1e-12
    assert row["speedup"] == awq["metrics"]["throughput"][0]["decode_tokens_per_s"]["value"] / ref["metrics"]["throughput"][0]["decode_tokens_per_s"]["value"]


def test_no_delta_across_limits_or_versions():
    ref = make_result("m", "reference", "cpu")
    limited = make_result("m", "awq-4bit", "cpu")
    for a in limited["metrics"]["accuracy"]:
        a["limit"] = 100
        a["n"] = 100
    other_version = make_result("m", "prune-8", "cpu")
    other_version["software"]["lm_eval"] = "0.4.2"
    rows = rows_of(ref, limited, other_version)
    assert rows[("awq-4bit", "cpu")]["mean_accuracy"] is not None
    assert rows[("awq-4bit", "cpu")]["limit"] == 100
    assert rows[("awq-4bit", "cpu")]["delta_mean_accuracy"] is None
    assert rows[("prune-8", "cpu")]["delta_mean_accuracy"] is None


def _one_has_both_hellaswags(only_llamacpp: str, **extra):
    """A reference and a variant: the one named has only llama.cpp's HellaSwag text, the other both tasks."""
    ref, var = make_result("m", "reference", "cpu"), make_result("m", "awq-4bit", "cpu")
    narrow, both = (ref, var) if only_llamacpp == "reference" else (var, ref)
    hs = next(a for a in narrow["metrics"]["accuracy"] if a["task"] == "hellaswag")
    hs["task"] = "hellaswag_llamacpp"
    both["metrics"]["accuracy"].append({**hs, **extra})
    return ref, var


def test_a_variant_with_both_hellaswags_is_averaged_on_the_references():
    ref, var = _one_has_both_hellaswags("reference", value=0.30)
    rows = rows_of(ref, var)
    row, reference = rows[("awq-4bit", "cpu")], rows[("reference", "cpu")]
    assert row["mean_basis"] == reference["mean_basis"] and row["mean_basis"].endswith("hellaswag_llamacpp")
    assert abs(row["delta_mean_accuracy"] - (row["mean_accuracy"] - reference["mean_accuracy"])) < 1e-12
    alone = rows_of(var)[("awq-4bit", "cpu")]  # without a reference, lm-eval's HellaSwag fills the slot
    assert alone["mean_basis"].endswith("+hellaswag") and alone["mean_accuracy"] != row["mean_accuracy"]


def test_a_reference_with_both_hellaswags_is_averaged_on_the_variants_for_the_delta():
    ref, var = _one_has_both_hellaswags("awq-4bit", value=0.45)
    rows = rows_of(ref, var)
    row, reference = rows[("awq-4bit", "cpu")], rows[("reference", "cpu")]
    assert reference["mean_basis"].endswith("+hellaswag")  # the reference row keeps lm-eval's task
    others = [a["value"] for a in ref["metrics"]["accuracy"] if a["task"] in ("winogrande", "arc_challenge", "truthfulqa_mc2")
              and a["metric"] in ("acc", "acc_norm") and (a["task"], a["metric"]) != ("arc_challenge", "acc")]
    ref_on_llamacpp = (sum(others) + 0.45) / 4
    assert abs(row["delta_mean_accuracy"] - (row["mean_accuracy"] - ref_on_llamacpp)) < 1e-12


def test_no_mean_delta_when_the_rebased_figures_are_not_comparable():
    ref, var = _one_has_both_hellaswags("reference", value=0.30, limit=100, n=100)  # the variant's on fewer items
    row = rows_of(ref, var)[("awq-4bit", "cpu")]
    assert row["delta_mean_accuracy"] is None and row["mean_basis"].endswith("+hellaswag")  # its own mean is kept


def test_no_word_perplexity_delta_across_windows():
    ref, same, other = (make_result("m", v, "cpu") for v in ("reference", "awq-4bit", "prune-8"))
    for r, window in ((ref, 8192), (same, 8192), (other, 2048)):
        r["metrics"]["perplexity"][0]["context_length"] = window
    rows = rows_of(ref, same, other)
    assert rows[("awq-4bit", "cpu")]["delta_word_perplexity"] is not None
    assert rows[("awq-4bit", "cpu")]["word_perplexity_context"] == 8192
    assert rows[("prune-8", "cpu")]["delta_word_perplexity"] is None


def test_latest_run_wins_per_metric_and_partial_runs_do_not_hide_older_metrics():
    old = make_result("m", "reference", "cpu", run_id="old")
    new = make_result("m", "reference", "cpu", run_id="new")
    new["provenance"]["date"] = "2026-12-01T00:00:00+00:00"
    new["metrics"] = {"throughput": [{"backend": "pytorch", "batch_size": 1, "decode_tokens_per_s": {"value": 99.0}}]}
    rows = rows_of(old, new)
    row = rows[("reference", "cpu")]
    assert row["decode_tokens_per_s"] == 99.0
    assert row["mean_accuracy"] is not None  # still from the older run
    assert row["run_ids"] == ["old", "new"]


def test_restated_runs_are_not_ranked():
    ref = make_result("m", "reference", "cpu", run_id="a")
    dup = make_result("m", "reference", "cpu", run_id="b", duplicate_of="a")
    dup["metrics"]["accuracy"][0]["value"] = 0.99
    rows = rows_of(ref, dup)
    assert rows[("reference", "cpu")]["acc_winogrande_acc"] == ref["metrics"]["accuracy"][0]["value"]


def test_speed_only_row_borrows_accuracy_and_says_so():
    quality = make_result("m", "reference", "cpu")
    speed = make_result("m", "reference", "a100")
    speed["metrics"] = {"throughput": [{"generate_tokens_per_s": {"value": 27.35}}]}
    rows = rows_of(quality, speed)
    row = rows[("reference", "a100")]
    assert row["mean_accuracy"] == rows[("reference", "cpu")]["mean_accuracy"]
    assert row["quality_from"] == "CPU: Synthetic CPU, 2 cores"
    assert row["generate_tokens_per_s"] == 27.35


def test_a_gpu_trained_variant_borrows_no_quality_from_the_cpu_built_one():
    """prune-8-lora trained on a GPU is another artifact than the CPU's of the same id: its speed row stays without
    accuracy, and its lineage says where it was trained."""
    quality = make_result("m", "lora-healed", "cpu")
    speed = make_result("m", "lora-healed", "a100")
    speed["metrics"] = {"throughput": [{"generate_tokens_per_s": {"value": 27.35}}]}
    speed["variant"]["steps"][-1]["record"] = {"build_device": "cuda:0 (NVIDIA H200)"}
    rows = rows_of(quality, speed)
    row = rows[("lora-healed", "a100")]
    assert row["mean_accuracy"] is None and row["quality_from"] is None
    assert row["trained_on"] == "cuda:0 (NVIDIA H200)" and row["lineage_short"].endswith("(trained on NVIDIA H200)")
    assert rows[("lora-healed", "cpu")]["trained_on"] is None
    del speed["variant"]["steps"][-1]["record"]
    assert rows_of(quality, speed)[("lora-healed", "a100")]["quality_from"] == "CPU: Synthetic CPU, 2 cores"


def test_a_row_borrows_quality_only_from_a_file_of_its_own_build_where_both_record_one():
    quality = make_result("m", "gptq-4bit", "cpu")
    speed = make_result("m", "gptq-4bit", "a100")
    speed["metrics"] = {"throughput": [{"generate_tokens_per_s": {"value": 27.35}}]}
    speed["variant"]["content_hash"] = "sha256:" + "b" * 64
    assert rows_of(quality, speed)[("gptq-4bit", "a100")]["quality_from"]  # the donor records no build: unchecked
    quality["variant"]["content_hash"] = "sha256:" + "a" * 64  # GPTQ rebuilt on another CPU: other weights
    row = rows_of(quality, speed)[("gptq-4bit", "a100")]
    assert row["mean_accuracy"] is None and row["quality_from"] is None
    quality["variant"]["content_hash"] = speed["variant"]["content_hash"]
    assert rows_of(quality, speed)[("gptq-4bit", "a100")]["quality_from"] == "CPU: Synthetic CPU, 2 cores"


def test_hellaswag_llamacpp_fills_the_slot_but_is_not_compared_with_hellaswag():
    ref = make_result("m", "reference", "cpu")
    other = make_result("m", "awq-4bit", "cpu")
    other["metrics"]["accuracy"][3]["task"] = "hellaswag_llamacpp"
    rows = rows_of(ref, other)
    assert rows[("awq-4bit", "cpu")]["mean_basis"].endswith("hellaswag_llamacpp")
    assert rows[("awq-4bit", "cpu")]["delta_mean_accuracy"] is None


def test_does_not_fit_row_keeps_status():
    ref = make_result("m", "reference", "cpu")
    dnf = make_result("m", "awq-4bit", "cpu", status={"code": "does_not_fit", "reason": "needs 20 GiB", "memory_needed_bytes": 20 * 2**30})
    dnf["metrics"] = {}
    rows = rows_of(ref, dnf)
    assert rows[("awq-4bit", "cpu")]["status"] == "does_not_fit"
    assert rows[("awq-4bit", "cpu")]["memory_needed_bytes"] == 20 * 2**30


def test_frontier_rows_per_plot():
    results = [make_result("m", v, "cpu") for v in ("reference", "awq-4bit", "prune-8", "rtn-int8")]
    rows = rows_of(*results)
    front = frontier_rows(list(rows.values()))
    plots = {f["plot"] for f in front}
    assert plots == {"accuracy-memory", "accuracy-speed", "perplexity-size"}
    memory = [f for f in front if f["plot"] == "accuracy-memory"]
    assert {f["x_key"] for f in memory} == {"peak_host_bytes"}
    on = {f["variant_id"] for f in memory if f["on_frontier"]}
    # the reference has the best accuracy, AWQ the smallest memory: both are on the frontier
    assert {"reference", "awq-4bit"} <= on


def test_no_kl_plot_while_only_the_reference_has_a_kl():
    """The reference's KL is zero by definition: measured on PyTorch and on llama.cpp it is two points at zero, no plot."""
    ref = make_result("m", "reference", "cpu")
    ref["metrics"]["distribution_distance"] = [{  # as the embedded reference's committed file has it
        "task": "wikitext2_kl", "kl_mean": 0.0, "kl_stderr": 0.0, "kl_median": 0.0, "kl_p99": 0.0, "top1_agreement": 1.0, "tokens": 16384,
        "windows": 32, "context_length": 512, "top_k": 1024, "slice": "WikiText-2 raw test, the first 32 windows of 512 tokens"}]
    other = json.loads(json.dumps(ref))
    other["run_id"] = "llama"
    other["metrics"]["throughput"][0]["backend"] = "llama.cpp"
    assert not [f for f in frontier_rows(all_rows(ref, other)) if f["plot"] == "kl-memory"]
    var = json.loads(json.dumps(ref))
    var["variant"], var["run_id"] = make_result("m", "awq-4bit", "cpu")["variant"], "awq"
    var["metrics"]["distribution_distance"][0].update(kl_mean=0.3, kl_median=0.2)
    kl = [f for f in frontier_rows(all_rows(ref, other, var)) if f["plot"] == "kl-memory"]
    assert {f["variant_id"] for f in kl} == {"reference", "awq-4bit"}


def test_a_plot_only_holds_points_measured_alike():
    results = [make_result("m", v, "cpu") for v in ("reference", "awq-4bit", "prune-8", "rtn-int8")]
    results[1]["metrics"]["perplexity"][0]["context_length"] = 2048  # another rolling window
    for a in results[2]["metrics"]["accuracy"]:
        a["limit"] = a["n"] = 100  # a quick run
    front = frontier_rows(all_rows(*results))
    ppl = [f for f in front if f["plot"] == "perplexity-size"]
    assert {f["variant_id"] for f in ppl} == {"reference", "prune-8", "rtn-int8"}
    assert {f["left_out"] for f in ppl} == {"awq-4bit · pytorch"}
    memory = [f for f in front if f["plot"] == "accuracy-memory"]
    assert {f["variant_id"] for f in memory} == {"reference", "awq-4bit", "rtn-int8"}
    assert {f["left_out"] for f in memory} == {"prune-8 · pytorch"}


def test_without_a_reference_the_basis_most_points_share_is_plotted():
    results = [make_result("m", v, "cpu") for v in ("awq-4bit", "prune-8", "rtn-int8")]
    results[0]["metrics"]["perplexity"][0]["context_length"] = 2048
    ppl = [f for f in frontier_rows(all_rows(*results)) if f["plot"] == "perplexity-size"]
    assert {f["variant_id"] for f in ppl} == {"prune-8", "rtn-int8"} and {f["left_out"] for f in ppl} == {"awq-4bit · pytorch"}
    # nothing left out: no note
    ppl = [f for f in frontier_rows(all_rows(*results[1:])) if f["plot"] == "perplexity-size"]
    assert {f["left_out"] for f in ppl} == {None}


def test_a_plot_that_leaves_points_out_says_so():
    from leaderboard.plots import left_out_note, pareto_caption, pareto_figure

    results = [make_result("m", v, "cpu") for v in ("reference", "awq-4bit", "prune-8")]
    results[1]["metrics"]["perplexity"][0]["context_length"] = 2048
    rows = all_rows(*results)
    ppl = [f for f in frontier_rows(rows) if f["plot"] == "perplexity-size"]
    figure = pareto_figure(ppl, {(r["variant_id"], r["backend"]): r for r in rows}, "Word perplexity vs size")
    assert left_out_note("awq-4bit · pytorch") in pareto_caption(ppl, 0)
    drawn = [t for trace in figure["data"] for t in trace.get("text", [])] + [a["text"] for a in figure["layout"]["annotations"]]
    assert drawn and not any("awq" in t for t in drawn)


def test_a_later_partial_run_does_not_displace_a_full_one(memdb):
    import copy

    from leaderboard.store import populate

    full = make_result("m", "reference", "cpu", run_id="full")
    quick = copy.deepcopy(make_result("m", "reference", "cpu", run_id="quick"))
    quick["provenance"]["date"] = "2026-12-01T00:00:00+00:00"  # newer
    for a in quick["metrics"]["accuracy"]:
        a["value"], a["limit"], a["n"] = 0.01, 40, 40
    quick["metrics"]["perplexity"] = []
    row = rows_of(full, quick)[("reference", "cpu")]
    assert row["limit"] is None and row["mean_accuracy"] == rows_of(full)[("reference", "cpu")]["mean_accuracy"]
    # the database view agrees
    parsed = [ResultsFile.model_validate(r) for r in (full, quick)]
    populate(memdb, [run_row(p, "f") for p in parsed], [m for p in parsed for m in metric_rows(p)])
    limits = {r[0] for r in memdb.execute("SELECT \"limit\" FROM latest_metrics WHERE key LIKE 'acc%'").fetchall()}
    assert limits == {None}
    # a partial run with no full one behind it is shown, with its limit
    row = rows_of(quick)[("reference", "cpu")]
    assert row["limit"] == 40


def rows_by_backend(*results):
    rows = all_rows(*results)
    keyed = {(row["variant_id"], row["backend"]): row for row in rows}
    assert len(keyed) == len(rows), "row keys are unique"
    return keyed, rows


def efficiency_only(variant: str, backend: str, decode: float, peak: int, run_id: str) -> dict:
    r = make_result("m", variant, "cpu", run_id=run_id)
    r["metrics"] = {
        "memory": {"peak_host_bytes": peak},
        "throughput": [{"backend": backend, "batch_size": 1, "decode_tokens_per_s": {"value": decode}}],
    }
    return r


def test_the_same_variant_on_two_backends_is_two_rows():
    quality = make_result("m", "reference", "cpu", run_id="quality")
    quality["metrics"].pop("memory")
    quality["metrics"].pop("throughput")
    rows, all_rows = rows_by_backend(
        quality,
        efficiency_only("reference", "pytorch", 20.0, 900_000_000, "ref-pt"),
        efficiency_only("reference", "llama.cpp", 70.0, 800_000_000, "ref-cpp"),
        efficiency_only("gguf-q4", "llama.cpp", 140.0, 400_000_000, "q4-cpp"),
    )
    assert set(rows) == {("reference", "pytorch"), ("reference", "llama.cpp"), ("gguf-q4", "llama.cpp")}
    pt, cpp = rows[("reference", "pytorch")], rows[("reference", "llama.cpp")]
    # accuracy belongs to the artifact: both rows show it; memory and speed belong to the backend
    assert pt["mean_accuracy"] is not None and pt["mean_accuracy"] == cpp["mean_accuracy"]
    assert (pt["decode_tokens_per_s"], pt["peak_host_bytes"]) == (20.0, 900_000_000)
    assert (cpp["decode_tokens_per_s"], cpp["peak_host_bytes"]) == (70.0, 800_000_000)
    # ratios only against the reference on the same backend
    q4 = rows[("gguf-q4", "llama.cpp")]
    assert q4["speedup"] == 2.0 and q4["memory_ratio"] == 0.5
    # the frontier has each backend's row as a point of its own
    speed = [f for f in frontier_rows(all_rows) if f["plot"] == "accuracy-speed"]
    assert {(f["variant_id"], f["backend"]) for f in speed} == {("reference", "pytorch"), ("reference", "llama.cpp")}


def test_speedup_is_against_the_reference_on_the_same_backend():
    ref = make_result("m", "reference", "cpu")
    ref["metrics"]["throughput"] = [
        {"backend": "llama.cpp", "batch_size": 1, "decode_tokens_per_s": {"value": 70.0}},
        {"backend": "pytorch", "batch_size": 1, "decode_tokens_per_s": {"value": 20.0}},
    ]
    pt = make_result("m", "awq-4bit", "cpu")
    pt["metrics"]["throughput"] = [{"backend": "pytorch", "batch_size": 1, "decode_tokens_per_s": {"value": 22.0}}]
    gguf = make_result("m", "gguf-q4", "cpu")
    gguf["metrics"]["throughput"] = [{"backend": "llama.cpp", "batch_size": 1, "decode_tokens_per_s": {"value": 140.0}}]
    other = make_result("m", "prune-8", "cpu")
    other["metrics"]["throughput"] = [{"backend": "onnx", "batch_size": 1, "decode_tokens_per_s": {"value": 50.0}}]
    rows, _ = rows_by_backend(ref, pt, gguf, other)
    assert abs(rows[("awq-4bit", "pytorch")]["speedup"] - 1.1) < 1e-12
    assert abs(rows[("gguf-q4", "llama.cpp")]["speedup"] - 2.0) < 1e-12
    other_row = rows[("prune-8", "onnx")]
    assert other_row["speedup"] is None and other_row["memory_ratio"] is None  # no reference on that backend: no ratio
    assert other_row["delta_mean_accuracy"] is not None  # accuracy is compared all the same


def _limited(result: dict, limit: int) -> dict:
    for a in result["metrics"]["accuracy"]:
        a["limit"] = limit
    return result


def test_a_later_run_on_fewer_documents_does_not_replace_one_on_more():
    thousand = _limited(make_result("m", "reference", "cpu", run_id="k"), 1000)
    demo = _limited(make_result("m", "reference", "cpu", run_id="demo"), 40)
    demo["provenance"]["date"] = "2026-12-01T00:00:00+00:00"
    demo["metrics"]["accuracy"][0]["value"] = 0.99
    row = rows_of(thousand, demo)[("reference", "cpu")]
    assert row["acc_winogrande_acc"] == thousand["metrics"]["accuracy"][0]["value"]
    assert row["limit"] == 1000
    # a later run on more documents does replace it
    more = _limited(make_result("m", "reference", "cpu", run_id="more"), 2000)
    more["provenance"]["date"] = "2026-12-02T00:00:00+00:00"
    more["metrics"]["accuracy"][0]["value"] = 0.6
    assert rows_of(thousand, demo, more)[("reference", "cpu")]["acc_winogrande_acc"] == 0.6


def test_the_limit_badge_names_the_limited_tasks():
    r = make_result("m", "reference", "cpu")
    r["metrics"]["accuracy"][3]["limit"] = 1000  # hellaswag only
    row = rows_of(r)[("reference", "cpu")]
    assert row["limit"] == 1000
    assert row["limited_tasks"] == "hellaswag (1000)"


def test_memory_and_energy_belong_to_the_backend_of_their_file():
    ref = make_result("m", "reference", "cpu")
    ref["metrics"]["energy"] = [{"joules_per_token": 0.5, "source": "rapl", "batch_size": 1}]
    lc = make_result("m", "reference", "cpu", run_id="lc")
    lc["metrics"]["throughput"][0]["backend"] = "llama.cpp"
    lc["metrics"]["memory"]["peak_host_bytes"] = 123_000_000
    rows, _ = rows_by_backend(ref, lc)
    assert set(rows) == {("reference", "pytorch"), ("reference", "llama.cpp")}  # no row for the energy counter
    assert rows[("reference", "pytorch")]["joules_per_token"] == 0.5
    assert rows[("reference", "llama.cpp")]["joules_per_token"] is None
    assert rows[("reference", "llama.cpp")]["peak_host_bytes"] == 123_000_000
    assert rows[("reference", "pytorch")]["peak_host_bytes"] == ref["metrics"]["memory"]["peak_host_bytes"]


def test_a_backends_own_memory_comes_before_memory_that_names_no_backend():
    ref = make_result("m", "reference", "cpu")
    bare = make_result("m", "reference", "cpu", run_id="bare")  # memory only: no backend to give it
    bare["provenance"]["date"] = "2026-12-01T00:00:00+00:00"
    bare["metrics"] = {"memory": {"peak_host_bytes": 1}}
    rows, _ = rows_by_backend(ref, bare)
    assert rows[("reference", "pytorch")]["peak_host_bytes"] == ref["metrics"]["memory"]["peak_host_bytes"]


def test_a_measured_row_borrows_measured_accuracy_before_reported():
    measured = make_result("m", "awq-4bit", "cpu")
    reported = make_result("m", "awq-4bit", "cpu", run_id="paper")
    reported.update(profile="unspecified", hardware=None)
    reported["provenance"] = {"kind": "reported", "date": "2024-01-01", "citation": {"title": "A paper", "authors": "A. Author", "year": 2024, "table": "2"}}
    for a in reported["metrics"]["accuracy"]:
        a["value"] = 0.9
    speed = make_result("m", "awq-4bit", "a100", run_id="speed")
    speed["metrics"] = {"throughput": speed["metrics"]["throughput"]}
    rows = {(r["variant_id"], r["profile"]): r for r in all_rows(measured, reported, speed)}
    row = rows[("awq-4bit", "a100")]
    assert row["acc_winogrande_acc"] == measured["metrics"]["accuracy"][0]["value"]
    assert row["quality_from"] == rows[("awq-4bit", "cpu")]["hardware_label"]
    # with only the reported accuracy to borrow, the row says so
    rows = {(r["variant_id"], r["profile"]): r for r in all_rows(reported, speed)}
    assert rows[("awq-4bit", "a100")]["acc_winogrande_acc"] == 0.9
    assert rows[("awq-4bit", "a100")]["quality_from"] == "unspecified hardware (reported)"


def _paired(speedup: float, low: float, high: float, blocks: int = 10, aa: bool = False) -> dict:
    fig = {"speedup": speedup, "ci_low": low, "ci_high": high, "blocks": blocks,
           "variant_blocks": [70.0 * speedup] * blocks, "reference_blocks": [70.0] * blocks}
    return {"reference": "reference (artifact abc, ref.gguf)", "aa_check": aa, "loading": "same_process", "repeats_per_block": 3,
            "warmup_per_block": 1, "confidence_level": 0.95, "method": "scipy.stats.bootstrap", "decode_tokens_per_s": fig}


def test_a_paired_speedup_replaces_the_ratio_of_two_runs():
    """rtn8 reads the reference's bytes: a drifted run shows 0.7x by division, the paired figure 1.01 [0.98–1.03]; gguf-q8
    is paired at 2.00 [1.90–2.10]. The speed plot places each at the reference's figure times its paired speed-up."""
    ref = efficiency_only("reference", "llama.cpp", 93.0, 800_000_000, "ref")
    ref["metrics"]["throughput"][0]["paired"] = _paired(1.0, 0.97, 1.03, aa=True)
    rtn8 = efficiency_only("rtn8", "llama.cpp", 65.0, 800_000_000, "rtn8")
    rtn8["variant"]["steps"] = [{"method": "rtn", "params": {"bits": 8}}]
    rtn8["metrics"]["throughput"][0]["paired"] = _paired(1.01, 0.98, 1.03)
    q8 = efficiency_only("gguf-q8", "llama.cpp", 150.0, 200_000_000, "q8")
    q8["metrics"]["throughput"][0]["paired"] = _paired(2.0, 1.9, 2.1)
    old = efficiency_only("gguf-q4", "llama.cpp", 140.0, 100_000_000, "q4")  # a file from before paired timing
    rows, all_ = rows_by_backend(ref, rtn8, q8, old)
    r8, rq8, rq4, rref = rows[("rtn8", "llama.cpp")], rows[("gguf-q8", "llama.cpp")], rows[("gguf-q4", "llama.cpp")], rows[("reference", "llama.cpp")]
    assert (r8["speedup"], r8["speedup_low"], r8["speedup_high"], r8["speedup_blocks"]) == (1.01, 0.98, 1.03, 10)
    assert r8["speedup_paired"] and r8["speedup_measurable"] is False  # the interval contains 1: no measurable difference
    assert rq8["speedup"] == 2.0 and rq8["speedup_measurable"] is True
    assert abs(rq4["speedup"] - 140.0 / 93.0) < 1e-12 and not rq4["speedup_paired"] and rq4["speedup_measurable"] is None
    assert rref["speedup"] is None and rref["decode_speedup"] == 1.0  # the A/A figure is kept, not ranked
    assert abs(r8["decode_tokens_per_s_paired"] - 93.0 * 1.01) < 1e-9 and rq8["decode_tokens_per_s_paired"] == 186.0
    assert rq4["decode_tokens_per_s_paired"] == 140.0 and rref["decode_tokens_per_s_paired"] == 93.0
    # the speed plot's bars: the paired interval on the reference's figure; elsewhere the row's own min–max
    assert (rq8["decode_tokens_per_s_paired_min"], rq8["decode_tokens_per_s_paired_max"]) == (93.0 * 1.9, 93.0 * 2.1)
    assert rref["decode_tokens_per_s_paired_min"] == rref["decode_tokens_per_s_min"]
    # with accuracy on every row, the speed plot uses the paired figure as its x
    quality = []
    for v, steps in (("reference", []), ("rtn8", rtn8["variant"]["steps"]), ("gguf-q8", q8["variant"]["steps"])):
        qr = make_result("m", v, "cpu", run_id=f"quality-{v}")
        if steps:
            qr["variant"]["steps"] = steps
        qr["metrics"].pop("memory")
        qr["metrics"].pop("throughput")
        quality.append(qr)
    _, with_quality = rows_by_backend(*quality, ref, rtn8, q8)
    speed = {f["variant_id"]: f for f in frontier_rows(with_quality) if f["plot"] == "accuracy-speed"}
    assert set(speed) == {"reference", "rtn8", "gguf-q8"}
    assert {f["x_key"] for f in speed.values()} == {"decode_tokens_per_s_paired"}
    assert speed["gguf-q8"]["x"] == 186.0 and abs(speed["rtn8"]["x"] - 93.93) < 1e-9


def test_stderr_of_the_mean_treats_the_tasks_as_independent():
    from leaderboard.summary import stderr_of_mean

    assert stderr_of_mean([0.03, 0.04]) == 0.025  # sqrt(0.0009 + 0.0016) / 2
    assert abs(stderr_of_mean([0.014, 0.013, 0.015, 0.005]) - (0.014**2 + 0.013**2 + 0.015**2 + 0.005**2) ** 0.5 / 4) < 1e-15
    assert stderr_of_mean([0.01, None]) is None
    assert stderr_of_mean([]) is None


def test_rows_carry_the_mean_accuracys_standard_error_and_a_short_lineage():
    rows = rows_of(make_result("m", "reference", "cpu"), make_result("m", "prune-8-lora", "cpu"))
    row = rows[("prune-8-lora", "cpu")]
    assert abs(row["mean_accuracy_stderr"] - (0.014**2 + 0.013**2 + 0.015**2 + 0.005**2) ** 0.5 / 4) < 1e-12
    assert row["lineage_short"] == "prune 8 layers → LoRA"  # the synthetic step names its rank `rank`, not LoRA's `r`
    assert row["lineage"] == "prune_depth(n_layers=8) → lora(rank=16)"
    assert rows[("reference", "cpu")]["lineage_short"] == "reference"
    no_stderr = make_result("m", "awq-4bit", "cpu")
    del no_stderr["metrics"]["accuracy"][0]["stderr"]
    assert rows_of(make_result("m", "reference", "cpu"), no_stderr)[("awq-4bit", "cpu")]["mean_accuracy_stderr"] is None


def test_a_packed_quantizer_names_its_format_and_carries_its_bits_per_weight():
    """A quantizer step that stored its integers packed (record.storage, record.format) says so in the short lineage;
    the bits per weight it recorded (over its linears and the whole model) become row fields; other rows have none."""
    packed = make_result("m", "awq-4bit", "cpu")
    packed["variant"]["steps"] = [{"method": "awq", "params": {"bits": 4, "group_size": 64},
                                   "record": {"storage": "packed", "format": "awq-gemm", "bits_per_weight_linears": 4.32,
                                              "bits_per_weight_model": 10.7}}]
    rows = rows_of(make_result("m", "reference", "cpu"), packed)
    row = rows[("awq-4bit", "cpu")]
    assert row["lineage_short"] == "AWQ 4-bit g64 (packed AWQ GEMM)"
    assert (row["bits_per_weight_linears"], row["bits_per_weight_model"]) == (4.32, 10.7)
    assert rows[("reference", "cpu")]["bits_per_weight_model"] is None
