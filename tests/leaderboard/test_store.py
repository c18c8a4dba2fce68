"""The DuckDB database: tables and views, and atomic rebuilds."""

from __future__ import annotations

import json

import duckdb
import pytest

from kompakt.results import ResultsFile
from leaderboard.flatten import metric_rows, run_row
from leaderboard.store import IngestError, ingest, populate
from leaderboard.synthetic import make_result


def test_ingest_builds_tables_and_views(results_root, small_set, tmp_path):
    db = tmp_path / "k.duckdb"
    summary = ingest(results_root, db)
    assert summary.runs == 3
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert {"runs", "metrics", "leaderboard", "frontier", "latest_runs", "latest_metrics", "deltas"} <= tables
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 3
        assert con.execute("SELECT count(*) FROM leaderboard").fetchone()[0] == 3
        value = con.execute("SELECT value FROM metrics WHERE run_id = 'tiny-awq-4bit-cpu-0' AND key = 'acc:winogrande:acc'").fetchone()[0]
        assert value == small_set[1]["metrics"]["accuracy"][0]["value"]
        delta = con.execute("SELECT delta FROM deltas WHERE variant_id = 'awq-4bit' AND key = 'acc:winogrande:acc'").fetchone()[0]
        assert delta == pytest.approx(small_set[1]["metrics"]["accuracy"][0]["value"] - small_set[0]["metrics"]["accuracy"][0]["value"])
        assert con.execute("SELECT bool_and(lower_is_better) FROM metrics WHERE family = 'perplexity'").fetchone()[0]
    finally:
        con.close()


def test_bad_file_leaves_old_database_untouched(results_root, small_set, tmp_path, write):
    db = tmp_path / "k.duckdb"
    ingest(results_root, db)
    before = db.read_bytes()
    write("{broken", "tiny/reference/cpu/broken.json")
    with pytest.raises(IngestError) as err:
        ingest(results_root, db)
    assert any("broken.json" in str(p) for p in err.value.report.errors)
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.duckdb", "results"]  # no temporary file left


def test_bad_file_and_no_database_yet(results_root, write, tmp_path):
    write("[]")
    with pytest.raises(IngestError):
        ingest(results_root, tmp_path / "k.duckdb")
    assert not (tmp_path / "k.duckdb").exists()


def test_removing_a_file_removes_its_rows(results_root, small_set, tmp_path):
    db = tmp_path / "k.duckdb"
    ingest(results_root, db)
    (results_root / "tiny" / "prune-8" / "cpu" / "tiny-prune-8-cpu-0.json").unlink()
    ingest(results_root, db)
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM runs WHERE variant_id = 'prune-8'").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM metrics WHERE run_id = 'tiny-prune-8-cpu-0'").fetchone()[0] == 0
    con.close()


def test_empty_results_folder(results_root, tmp_path):
    summary = ingest(results_root, tmp_path / "k.duckdb")
    assert summary.runs == 0


def load(memdb, *results):
    runs, metrics = [], []
    for r in results:
        parsed = ResultsFile.model_validate(r)
        runs.append(run_row(parsed, "f"))
        metrics.extend(metric_rows(parsed))
    populate(memdb, runs, metrics)


def test_latest_views_prefer_newer_runs_and_skip_restated(memdb):
    old = make_result("m", "reference", "cpu", run_id="old")
    new = make_result("m", "reference", "cpu", run_id="new")
    new["provenance"]["date"] = "2026-12-01T00:00:00+00:00"
    new["metrics"]["accuracy"][0]["value"] = 0.5
    restated = make_result("m", "reference", "cpu", run_id="restated", duplicate_of="old")
    restated["provenance"]["date"] = "2027-01-01T00:00:00+00:00"
    load(memdb, old, new, restated)
    assert memdb.execute("SELECT run_id FROM latest_runs").fetchall() == [("new",)]
    assert memdb.execute("SELECT value FROM latest_metrics WHERE key = 'acc:winogrande:acc'").fetchone()[0] == 0.5


def test_deltas_view_skips_incomparable(memdb):
    ref = make_result("m", "reference", "cpu")
    var = make_result("m", "awq-4bit", "cpu")
    var["metrics"]["accuracy"][0]["num_fewshot"] = 5
    load(memdb, ref, var)
    keys = {r[0] for r in memdb.execute("SELECT key FROM deltas").fetchall()}
    assert "acc:winogrande:acc" not in keys
    assert "acc:arc_challenge:acc_norm" in keys


def test_deltas_view_skips_word_perplexity_of_another_window(memdb):
    ref, var = make_result("m", "reference", "cpu"), make_result("m", "awq-4bit", "cpu")
    ref["metrics"]["perplexity"][0]["context_length"] = 8192
    var["metrics"]["perplexity"][0]["context_length"] = 2048
    load(memdb, ref, var)
    assert memdb.execute("SELECT context_length FROM metrics WHERE key = 'word_perplexity' ORDER BY 1").fetchall() == [(2048,), (8192,)]
    keys = {r[0] for r in memdb.execute("SELECT key FROM deltas").fetchall()}
    assert "word_perplexity" not in keys and "acc:arc_challenge:acc_norm" in keys


def test_latest_word_perplexity_is_one_figure_whatever_its_window(memdb):
    old = make_result("m", "reference", "cpu", run_id="old")
    new = make_result("m", "reference", "cpu", run_id="new")
    new["provenance"]["date"] = "2027-01-01T00:00:00+00:00"
    new["metrics"]["perplexity"][0].update(context_length=8192, word_perplexity=31.0)
    load(memdb, old, new)
    assert memdb.execute("SELECT value, context_length FROM latest_metrics WHERE key = 'word_perplexity'").fetchall() == [(31.0, 8192)]


def test_lists_are_stored_as_json(memdb):
    r = make_result("m", "reference", "cpu", notes=["first <b>note</b>"])
    load(memdb, r)
    assert json.loads(memdb.execute("SELECT notes FROM leaderboard").fetchone()[0]) == ["first <b>note</b>"]


def test_latest_metrics_keeps_the_most_complete_figure(memdb):
    full = make_result("m", "reference", "cpu", run_id="k")
    for a in full["metrics"]["accuracy"]:
        a["limit"] = 1000
    demo = make_result("m", "reference", "cpu", run_id="demo")
    demo["provenance"]["date"] = "2026-12-01T00:00:00+00:00"
    for a in demo["metrics"]["accuracy"]:
        a["limit"], a["value"] = 40, 0.99
    load(memdb, full, demo)
    assert memdb.execute("SELECT run_id, \"limit\" FROM latest_metrics WHERE key = 'acc:winogrande:acc'").fetchall() == [("k", 1000)]


def test_memory_deltas_stay_within_one_backend(memdb):
    ref = make_result("m", "reference", "cpu")
    var_pt = make_result("m", "awq-4bit", "cpu", run_id="pt")
    var_lc = make_result("m", "awq-4bit", "cpu", run_id="lc")
    var_lc["provenance"]["date"] = "2026-12-01T00:00:00+00:00"
    var_lc["metrics"]["throughput"][0]["backend"] = "llama.cpp"
    var_lc["metrics"]["memory"]["peak_host_bytes"] = 1
    load(memdb, ref, var_pt, var_lc)
    got = memdb.execute("SELECT backend, reference_value FROM deltas WHERE key = 'peak_host_bytes'").fetchall()
    # only the PyTorch figure has a reference on its backend; the llama.cpp one is not divided by PyTorch's
    assert got == [("pytorch", ref["metrics"]["memory"]["peak_host_bytes"])]
    latest = memdb.execute("SELECT backend, value FROM latest_metrics WHERE key = 'peak_host_bytes' AND variant_id = 'awq-4bit' ORDER BY backend").fetchall()
    assert latest == [("llama.cpp", 1.0), ("pytorch", float(var_pt["metrics"]["memory"]["peak_host_bytes"]))]


def test_run_dates_with_other_time_zones_order_by_instant(memdb):
    early = make_result("m", "reference", "cpu", run_id="early")
    early["provenance"]["date"] = "2026-12-01T23:00:00-05:00"  # 04:00 UTC on 2 December
    late = make_result("m", "reference", "cpu", run_id="late")
    late["provenance"]["date"] = "2026-12-02T03:00:00+00:00"
    late["metrics"]["accuracy"][0]["value"] = 0.5
    load(memdb, early, late)
    assert memdb.execute("SELECT run_id FROM latest_runs").fetchall() == [("early",)]


def test_paired_speedups_are_metric_rows_with_their_interval(memdb):
    var = make_result("m", "awq-4bit", "cpu", run_id="var")
    fig = {"speedup": 1.25, "ci_low": 1.2, "ci_high": 1.3, "blocks": 2, "variant_blocks": [25.0, 25.0], "reference_blocks": [20.0, 20.0]}
    var["metrics"]["throughput"] = [{
        "backend": "pytorch", "batch_size": 1, "decode_tokens_per_s": {"value": 25.0},
        "paired": {"reference": "reference (artifact 1)", "loading": "same_process", "repeats_per_block": 3, "warmup_per_block": 1,
                   "confidence_level": 0.95, "method": "m", "decode_tokens_per_s": fig, "time_to_first_token_ms": {**fig, "speedup": 0.9,
                   "ci_low": 0.85, "ci_high": 1.05}},
    }]
    load(memdb, make_result("m", "reference", "cpu", run_id="ref"), var)
    got = memdb.execute("SELECT key, value, ci_low, ci_high, blocks, batch_size, backend, lower_is_better FROM metrics "
                        "WHERE key LIKE '%speedup' ORDER BY key").fetchall()
    assert got == [("decode_speedup", 1.25, 1.2, 1.3, 2, 1, "pytorch", False), ("ttft_speedup", 0.9, 0.85, 1.05, 2, 1, "pytorch", False)]
    board = memdb.execute("SELECT speedup, speedup_low, speedup_high, speedup_paired, speedup_measurable FROM leaderboard "
                          "WHERE variant_id = 'awq-4bit'").fetchone()
    assert board == (1.25, 1.2, 1.3, True, True)


def test_pairs_left_out_for_a_contended_memory_bus_are_named_in_the_notes_and_a_contended_record_is_no_speedup(memdb):
    var = make_result("m", "awq-4bit", "cpu", run_id="var")
    fig = {"speedup": 1.5, "ci_low": 1.4, "ci_high": 1.6, "blocks": 2, "variant_blocks": [30.0, 30.0], "reference_blocks": [20.0, 20.0]}
    paired = {"reference": "reference", "loading": "same_process", "repeats_per_block": 1, "warmup_per_block": 1, "confidence_level": 0.95,
              "method": "m", "decode_tokens_per_s": fig, "bandwidth_gbps": [80.0, 79.0], "bandwidth_floor_gbps": 61.0,
              "left_out_pairs": 3, "left_out_decode_speedup": 2.2}
    var["metrics"]["throughput"] = [{"backend": "llama.cpp", "batch_size": 1, "decode_tokens_per_s": {"value": 30.0}, "paired": paired}]
    contended = make_result("m", "rtn-4bit", "cpu", run_id="contended")
    contended["metrics"]["throughput"] = [{"backend": "llama.cpp", "batch_size": 1, "decode_tokens_per_s": {"value": 30.0},
                                           "paired": {**paired, "left_out_pairs": 0, "left_out_decode_speedup": None, "bandwidth_contended": True}}]
    two_passes = make_result("m", "gptq-4bit", "cpu", run_id="passes")
    two_passes["metrics"]["throughput"] = [{"backend": "llama.cpp", "batch_size": 1, "decode_tokens_per_s": {"value": 30.0},
                                            "paired": {**paired, "passes": 2}}]
    three_passes = make_result("m", "rtn-8bit", "cpu", run_id="batches")
    three_passes["metrics"]["throughput"] = [{"backend": "llama.cpp", "batch_size": 1, "decode_tokens_per_s": {"value": 30.0},
                                              "paired": {**paired, "passes": 3, "decode_tokens_per_s": {**fig, "pass_speedups": [1.45, 1.5, 1.62]}}}]
    # the form of the rule since speedup_absent_reason: no speed-ups, every pair left out
    absent = make_result("m", "bnb-int8", "cpu", run_id="absent")
    absent["metrics"]["throughput"] = [{"backend": "llama.cpp", "batch_size": 1, "decode_tokens_per_s": {"value": 30.0},
                                        "paired": {**paired, "decode_tokens_per_s": None, "bandwidth_gbps": None, "left_out_pairs": 5,
                                                   "bandwidth_contended": True, "speedup_absent_reason": "too few pairs"}}]
    # pairs below the floor that counted by the bus's headroom (kompakt.paired.BUS_HEADROOM_SHARE) are named too
    headroom = make_result("m", "prune-8", "cpu", run_id="headroom")
    headroom["metrics"]["throughput"] = [{"backend": "pytorch", "batch_size": 1, "decode_tokens_per_s": {"value": 30.0},
                                          "paired": {**paired, "bandwidth_gbps": [80.0, 42.0], "left_out_pairs": 0, "left_out_decode_speedup": None,
                                                     "bus_headroom_share": 0.5, "headroom_pairs": 1}}]
    load(memdb, make_result("m", "reference", "cpu", run_id="ref"), var, contended, two_passes, three_passes, absent, headroom)
    notes = dict(memdb.execute("SELECT run_id, notes FROM metrics WHERE key = 'decode_speedup'").fetchall())
    assert ("1 pair(s) below 61.0 GB/s counted: neither side drew more than 50% of the bandwidth its probe read" in notes["headroom"]
            and "counted" not in notes["var"])
    assert "in 3 passes minutes apart, pooled (the passes' own decode speed-ups 1.45x, 1.50x, 1.62x; interval covers their batch means)" in notes["batches"]
    assert "own decode speed-ups" not in notes["passes"]
    assert "3 pair(s) timed below 61.0 GB/s of memory bandwidth left out, their own decode speed-up 2.20x" in notes["var"]
    # a file from before the free-bus rule counted its contended pairs as the speed-up: not shown as one, nor the new form
    assert "contended" not in notes and "absent" not in notes
    assert "pairs timed in 2 passes minutes apart, pooled" in notes["passes"] and "passes" not in notes["var"]
