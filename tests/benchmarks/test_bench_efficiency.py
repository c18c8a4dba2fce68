"""benchmarks/bench_efficiency.py without timing anything: its settings, the resumable state, the estimate of the time
left, and the report of two runs' paired speed-ups on hand-made figures."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from kompakt.profiles import get_profile

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_efficiency", ROOT / "benchmarks" / "bench_efficiency.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_efficiency"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _spec(bench, variant: str, backend: str = "pytorch"):
    return bench.Spec(variant, backend, Path(f"/x/{variant}"), Path("/x/reference"), "reference")


def _paired(speedup: float, low: float, high: float, aa: bool = False, reference_blocks: list[float] | None = None, **probed) -> dict:
    fig = {"speedup": speedup, "ci_low": low, "ci_high": high, "blocks": 10}
    if reference_blocks is not None:
        fig["reference_blocks"] = reference_blocks
    return {"batch_size": 1, "paired": {"aa_check": aa, "decode_tokens_per_s": fig, **probed}}


def test_the_defaults_are_the_budgeted_protocol_and_full_is_the_profiles(bench) -> None:
    s = bench.settings_of(bench.parse_args([]))
    assert (s.prompt_tokens, s.new_tokens, s.repeats_per_block, s.min_blocks, s.min_seconds, s.passes) == (128, 32, 1, 10, 10.0, 5)
    assert s.sizes(0) == [1] and s.sizes(1) == [1]  # batch 1, the ranked figure, in both runs
    assert s.lengths() == {"prompt_tokens": 128, "new_tokens": 32}
    assert s.also == ("thesis:prune-8-lora-awq4",)  # the committed set's pipeline from the thesis recipe
    assert bench.settings_of(bench.parse_args(["--also", ""])).also == ()
    full = bench.settings_of(bench.parse_args(["--full"]))
    assert (full.prompt_tokens, full.new_tokens, full.repeats_per_block, full.sizes(0), full.sizes(1)) == (None, None, 3, None, None)
    assert bench.settings_of(bench.parse_args(["--batch-sizes", "1,4"])).sizes(0) == [1, 4]
    assert full.lengths() == {}
    with pytest.raises(SystemExit):
        bench.parse_args(["--min-blocks", "5"])  # fewer than 10 pairs of blocks only for a smoke run
    assert bench.settings_of(bench.parse_args(["--quick"])).min_blocks == 3
    # the caps bound a measurement on a host whose bus stays contended (none of its pairs reach the free-bus floor)
    assert (s.max_blocks, s.max_seconds) == (60, 30.0)
    assert "at most 60 pairs and 30 s in all" in s.describe(get_profile("cpu"))
    for caps in (["--max-blocks", "9"], ["--max-seconds", "5"]):
        with pytest.raises(SystemExit):
            bench.parse_args(caps)  # below the minimums: the rule could never be met


def test_the_state_resumes_only_under_the_same_settings(bench, tmp_path: Path) -> None:
    from harness.measure.efficiency.bandwidth import Bandwidth

    settings = bench.settings_of(bench.parse_args(["--only", "reference,rtn8"]))
    bw = Bandwidth(4e10, 3.9e10, "cpu", "copy", 10, [4e10])
    runs = [{("reference", "pytorch"): {"throughput": [_paired(1.0, 0.98, 1.02, aa=True)]}, ("rtn8", "pytorch"): {"error": "boom"}}]
    path = tmp_path / "state.json"
    bench.dump(path, bench._state(settings, [bw], runs, [1.0, 1.2], {"0|reference|pytorch": 60.0}))
    bws, loaded, loads, seconds = bench.load_state(path, settings)
    assert bws == [bw] and loaded == runs and loads == [1.0, 1.2] and seconds == {"0|reference|pytorch": 60.0}
    other = bench.settings_of(bench.parse_args(["--only", "reference,rtn8", "--new-tokens", "64"]))
    with pytest.raises(SystemExit, match=r"new_tokens: 32 there, 64 now"):
        bench.load_state(path, other)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(SystemExit, match="not a benchmark state file"):
        bench.load_state(path, settings)
    with pytest.raises(SystemExit, match="no state file"):
        bench.load_state(tmp_path / "absent.json", settings)


def test_the_time_left_is_estimated_from_what_was_measured(bench) -> None:
    ref, a, b = _spec(bench, "reference"), _spec(bench, "a"), _spec(bench, "b", "llama.cpp")
    assert bench.remaining_seconds([(0, a)], {}) is None
    seconds = {"0|reference|pytorch": 100.0, "0|a|pytorch": 200.0, "1|reference|pytorch": 50.0}
    # a in run 2: its first run times the later/first ratio so far (50 / 100); b: no llama.cpp figure yet, so the mean of
    # its kind (the first run: 150); a in the first run again: as measured
    assert bench.remaining_seconds([(1, a)], seconds) == 100.0
    assert bench.remaining_seconds([(0, b)], seconds) == 150.0
    assert bench.remaining_seconds([(0, a), (1, ref)], seconds) == 250.0
    assert bench.fmt_duration(None).startswith("unknown") and bench.fmt_duration(30) == "1 min" and bench.fmt_duration(3900) == "1 h 05 min"
    # with passes: the first pass of the first run measures memory (first kind), every other pass is of the later kind
    passes = {"0|a|pytorch|0": 200.0, "0|a|pytorch|1": 80.0, "1|a|pytorch|0": 60.0}
    assert bench.remaining_seconds([(0, a, 1)], passes) == 70.0  # a's measurements of the later kind: (80 + 60) / 2
    assert bench.remaining_seconds([(0, a, 0)], passes) == 200.0


def test_each_run_goes_over_every_measurement_once_per_pass_and_pools_them(bench, tmp_path: Path, monkeypatch) -> None:
    """Pass 1 over every spec, then pass 2 with each spec's pass-1 figures; memory in run 1's first pass only; a resumed
    benchmark measures only the passes it lacks, and a failed first pass is not added to."""
    from harness.measure.efficiency.bandwidth import Bandwidth

    calls, failed = [], []

    def run_one(spec, profile, rule, paired_rule, bw, sizes, memory, threads, lengths, peak, passes, pass_index, earlier):
        calls.append((spec.variant, pass_index, memory, (earlier or {}).get("batch1", {}).get("tag")))
        if spec.variant == "broken" and not failed:
            failed.append(1)
            return {"error": "boom"}  # its first pass fails the first time only
        return {"memory": {"weights_bytes": 1, "peak_host_bytes": 5 if memory else None}, "throughput": [], "energy": [],
                "notes": [f"pass {pass_index}"], "raw": {"batch1": {"tag": f"{spec.variant}/{pass_index}"}, **({"peaks": 1} if memory else {})}}

    monkeypatch.setattr(bench, "run_one", run_one)
    monkeypatch.setattr("harness.measure.efficiency.bandwidth.measure_bandwidth", lambda device: Bandwidth(4e10, 4e10, "cpu", "copy", 1, [4e10]))
    settings = bench.settings_of(bench.parse_args(["--runs", "1", "--passes", "2", "--only", "reference,a,broken"]))
    assert settings.passes == 2
    specs = [_spec(bench, "reference"), _spec(bench, "a"), _spec(bench, "broken")]
    path = tmp_path / "state.json"
    runs, _, _ = bench.measure_all(specs, settings, path, False, None, None)
    assert calls == [("reference", 0, True, None), ("a", 0, True, None), ("broken", 0, True, None),
                     ("reference", 1, False, "reference/0"), ("a", 1, False, "a/0")]  # the failed pass 1 is not added to
    a = runs[0][("a", "pytorch")]
    assert a["pass"] == 1 and a["memory"]["peak_host_bytes"] == 5 and a["notes"] == ["pass 0", "pass 1"]
    assert a["raw"] == {"batch1": {"tag": "a/1"}, "peaks": 1}
    assert bench.passes_done(a, 2) == 2 and bench.passes_done(runs[0][("broken", "pytorch")], 2) == 0
    assert bench.passes_done({"does_not_fit": {}}, 2) == 2 and bench.passes_done(None, 2) == 0
    calls.clear()
    bench.measure_all(specs, settings, path, True, None, None)  # resumed: only the broken one, both passes
    assert calls == [("broken", 0, True, None), ("broken", 1, False, "broken/0")]


def test_the_agreement_report_counts_overlaps_the_share_within_5_percent_and_the_worst(bench) -> None:
    specs = [_spec(bench, "reference"), _spec(bench, "a"), _spec(bench, "b")]
    run1 = {("reference", "pytorch"): {"throughput": [_paired(1.0, 0.97, 1.03, aa=True)]},
            ("a", "pytorch"): {"throughput": [_paired(1.30, 1.25, 1.35, bandwidth_floor_gbps=61.0, left_out_pairs=4, left_out_decode_speedup=1.9)]},
            ("b", "pytorch"): {"throughput": [_paired(0.80, 0.78, 0.82, reference_blocks=[98.0, 100.0, 99.0])]}}
    run2 = {("reference", "pytorch"): {"throughput": [_paired(1.01, 0.98, 1.04, aa=True)]},
            ("a", "pytorch"): {"throughput": [_paired(1.32, 1.28, 1.36, bandwidth_floor_gbps=61.0, bandwidth_contended=True)]},
            ("b", "pytorch"): {"throughput": [_paired(0.90, 0.87, 0.93, reference_blocks=[75.0, 74.0])]}}
    lines, ok = bench.agreement(specs, [run1, run2])
    text = "\n".join(lines)
    assert "| reference (A/A) | pytorch | ≈ 1 (1.00x) [0.97–1.03] | ≈ 1 (1.01x) [0.98–1.04] | yes |" in text
    # the reference's own median rate in each run's pairing shows why b's ratio moved
    assert "| b | pytorch | 0.80x [0.78–0.82] | 0.90x [0.87–0.93] | NO | 11.8 % | 99.0 / 74.5 | – / – |" in text
    # pairs the bandwidth floor left out, with their own speed-up; a run contended throughout kept them all
    assert "| a | pytorch | 1.30x [1.25–1.35] | 1.32x [1.28–1.36] | yes | 1.5 % | – / – | 4 (1.90x) / none (contended throughout) |" in text
    assert "intervals overlap for 2 of 3" in text and "2 of 3 (67%) agree within 5%" in text
    assert "the worst disagreement is 11.8% (b on pytorch)" in text  # |0.8 - 0.9| / 0.85
    assert "A/A checks reading 1.00 within their interval: 2 of 2" in text and not ok
    run2[("b", "pytorch")] = {"throughput": [_paired(0.81, 0.79, 0.83)]}
    assert bench.agreement(specs, [run1, run2])[1]
    json.dumps(lines)  # plain text, ready for the README


def test_every_variant_is_paired_with_the_reference_on_each_backend_that_runs_it(bench, tmp_path: Path, monkeypatch) -> None:
    """GGUF on llama.cpp only; a float checkpoint on PyTorch and, as an F32 GGUF, on llama.cpp; a packed AWQ/GPTQ
    checkpoint and bitsandbytes on PyTorch only, with the reason for llama.cpp in the notes. Every spec names the
    reference as its backend runs it."""
    from types import SimpleNamespace

    import harness.build.as_gguf as as_gguf
    from kompakt.results import Variant

    monkeypatch.setattr(as_gguf, "f32_gguf", lambda art, base: (tmp_path / f"{art.variant.id}-f32.gguf", "as F32"))

    def artifact(vid: str, fmt: str = "hf", quantization: dict | None = None):
        folder = tmp_path / vid
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"quantization_config": quantization} if quantization else {}))
        path = folder / "model.gguf" if fmt == "gguf" else folder
        return SimpleNamespace(variant=Variant(id=vid, is_reference=False, steps=[]), format=fmt, model_path=path,
                               content_hash=lambda: f"sha256:{vid}")

    refs = {"pytorch": (tmp_path / "ref", ""), "llama.cpp": (tmp_path / "ref-f32.gguf", "note")}
    label = {"pytorch": "reference (pt)", "llama.cpp": "reference (gguf)"}
    both = {"pytorch", "llama.cpp"}
    notes: list[str] = []
    got = {}
    for vid, art in {"gguf-q8_0": artifact("gguf-q8_0", "gguf"), "prune-8": artifact("prune-8"),
                     "awq4": artifact("awq4", quantization={"quant_method": "awq"}),
                     "rtn8": artifact("rtn8", quantization={"quant_method": "gptq"}),
                     "bnb-nf4": artifact("bnb-nf4", quantization={"quant_method": "bitsandbytes"})}.items():
        specs = bench._variant_specs(vid, art, None, both, True, refs, label, notes)
        got[vid] = [(s.backend, s.path.name, s.reference.name, s.notes) for s in specs]
        assert {s.lineage.content_hash for s in specs} == {f"sha256:{vid}"}  # the build timed, on each backend
    assert got["gguf-q8_0"] == [("llama.cpp", "model.gguf", "ref-f32.gguf", None)]
    assert got["prune-8"] == [("pytorch", "prune-8", "ref", None), ("llama.cpp", "prune-8-f32.gguf", "ref-f32.gguf", "as F32")]
    assert got["awq4"] == [("pytorch", "awq4", "ref", None)] and got["rtn8"] == [("pytorch", "rtn8", "ref", None)]
    assert got["bnb-nf4"] == [("pytorch", "bnb-nf4", "ref", None)]
    assert notes == [
        "awq4 not run on llama.cpp: a packed AWQ/GPTQ checkpoint; its integers run on llama.cpp as the recipe's *-gguf export of it",
        "rtn8 not run on llama.cpp: a packed AWQ/GPTQ checkpoint; its integers run on llama.cpp as the recipe's *-gguf export of it",
        "bnb-nf4 not run on llama.cpp: bitsandbytes' packed weights have no GGUF type",
    ]
    # without llama.cpp (not built, or not asked for): PyTorch only, GGUF variants not at all
    assert bench._variant_specs("gguf-q4", artifact("gguf-q4", "gguf"), None, {"pytorch"}, False, refs, label, []) == []


def test_a_measurement_missing_from_either_run_fails_the_acceptance_and_is_named(bench) -> None:
    specs = [_spec(bench, "reference"), _spec(bench, "a")]
    run1 = {("reference", "pytorch"): {"throughput": [_paired(1.0, 0.97, 1.03, aa=True)]},
            ("a", "pytorch"): {"throughput": [_paired(1.30, 1.25, 1.35)]}}
    run2 = {("reference", "pytorch"): {"throughput": [_paired(1.0, 0.98, 1.02, aa=True)]},
            ("a", "pytorch"): {"error": "RuntimeError: out of memory"}}
    lines, ok = bench.agreement(specs, [run1, run2])
    assert not ok and "No paired batch-1 decode speed-up to compare for: a on pytorch (run 2)." in lines
    assert bench.agreement(specs, [run1, run1])[1]


def test_a_measurement_contended_throughout_is_timed_again_at_the_end_of_the_run_and_else_has_no_speedup(bench, tmp_path: Path,
                                                                                                        monkeypatch) -> None:
    """After the passes, each measurement still contended throughout gets an extra pass (pass index = passes), once per
    --extra-passes; one that stays contended reaches the agreement report as missing, its contended ratio beside it."""
    from harness.measure.efficiency.bandwidth import Bandwidth

    calls = []
    stays = {"a": 9, "b": 1}  # the passes after which each variant's bus is free again: a never, b after its pass 2

    def run_one(spec, profile, rule, paired_rule, bw, sizes, memory, threads, lengths, peak, passes, pass_index, earlier):
        calls.append((spec.variant, pass_index))
        bad = pass_index < stays.get(spec.variant, 0)
        paired = ({"aa_check": False, "decode_tokens_per_s": None, "bandwidth_floor_gbps": 61.0, "left_out_pairs": 6,
                   "left_out_decode_speedup": 1.84, "bandwidth_contended": True, "speedup_absent_reason": "too few"} if bad
                  else _paired(1.4, 1.3, 1.5)["paired"])
        return {"memory": {}, "throughput": [{"batch_size": 1, "paired": paired}], "notes": [], "raw": {}}

    monkeypatch.setattr(bench, "run_one", run_one)
    monkeypatch.setattr("harness.measure.efficiency.bandwidth.measure_bandwidth", lambda device: Bandwidth(4e10, 4e10, "cpu", "copy", 1, [4e10]))
    settings = bench.settings_of(bench.parse_args(["--runs", "1", "--passes", "1", "--extra-passes", "2", "--only", "reference,a,b"]))
    assert "after up to 2 extra pass(es) at the end of the run" in settings.describe(get_profile("cpu"))
    specs = [_spec(bench, "reference"), _spec(bench, "a"), _spec(bench, "b")]
    path = tmp_path / "state.json"
    runs, _, _ = bench.measure_all(specs, settings, path, False, None, None)
    assert calls == [("reference", 0), ("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)]
    assert bench.contended(runs[0][("a", "pytorch")]) and not bench.contended(runs[0][("b", "pytorch")])
    calls.clear()
    bench.measure_all(specs, settings, path, True, None, None)  # resumed: every pass, the extra ones too, is in the state
    assert calls == []
    run1 = {k: {"throughput": [_paired(1.0, 0.97, 1.03, aa=True) if k[0] == "reference" else _paired(1.4, 1.3, 1.5)]} for k in runs[0]}
    lines, ok = bench.agreement(specs, [run1, runs[0]])
    assert not ok and "No paired batch-1 decode speed-up to compare for: a on pytorch (run 2)." in lines
    assert bench._left_out(runs[0][("a", "pytorch")]["throughput"][0]["paired"]) == "all 6, contended throughout (1.84x)"
    assert bench._left_out({"bandwidth_floor_gbps": 61.0, "bandwidth_contended": True}) == "none (contended throughout)"  # an older file
    with pytest.raises(SystemExit):
        bench.parse_args(["--extra-passes", "-1"])


def test_a_speedup_from_pairs_of_fewer_than_three_passes_gets_an_extra_pass(bench) -> None:
    """gguf-q8_0 in part 1 (efficiency-runs.md, *Part 1 again*): free-bus pairs from two of five passes gave a bootstrap-only interval."""
    two = {"throughput": [{"paired": {"decode_tokens_per_s": {"speedup": 1.7, "pass_speedups": [1.67, 1.72]}}}]}
    three = {"throughput": [{"paired": {"decode_tokens_per_s": {"speedup": 1.6, "pass_speedups": [1.65, 1.6, 1.62]}}}]}
    assert bench.short(two, 5) == "pairs at full memory bandwidth from fewer than 3 passes"
    assert bench.short(three, 5) is None
    assert bench.short(two, 2) is None  # a run of two passes never has the batch-means interval: nothing to gain
    assert bench.short({"throughput": [{"paired": {"bandwidth_contended": True}}]}, 5) == "too few pairs at full memory bandwidth"
    assert bench.short({"error": "boom"}, 5) is None
    assert "fewer than 3 passes" in bench.settings_of(bench.parse_args([])).describe(get_profile("cpu"))


def test_an_extra_pass_waits_for_the_free_bus_and_says_so_in_a_note(bench, monkeypatch) -> None:
    class Probe:
        def __init__(self, device, peak=0.0):
            self.peak = peak

        def close(self):
            pass

    seen = []

    def wait(probe, floor):
        seen.append((probe.peak, floor))
        return False, 300.0, 45e9

    monkeypatch.setattr("harness.measure.efficiency.bandwidth.BandwidthProbe", Probe)
    monkeypatch.setattr("harness.measure.efficiency.pairing.wait_for_free_bus", wait)
    note = bench._wait_before_extra_pass(_spec(bench, "a"), 80e9)
    assert seen == [(80e9, pytest.approx(56e9))]
    assert note == "extra pass after waiting 300 s for the memory bus to come free: the bus still read only 45 GB/s against a floor of 56 GB/s"
    assert bench._wait_before_extra_pass(_spec(bench, "a"), 0.0) is None and len(seen) == 1  # no peak yet: nothing to wait for


#: A committed run of the benchmark (benchmarks/efficiency-runs.md, 2026-11-30, evening): its reference (A/A) and awq4 files on PyTorch.
COMMITTED = "20261130T214039"


def _committed_run(tmp_path: Path) -> tuple[Path, str]:
    """The committed run's reference and awq4 files on PyTorch, copied into a results folder of their own; and the
    benchmark settings line they record."""
    import shutil

    data = ROOT / "data" / "results"
    for path in [*data.glob(f"*/reference/cpu/{COMMITTED}-efficiency-pytorch-*.json"), *data.glob(f"*/awq4/cpu/{COMMITTED}-efficiency-pytorch-*.json")]:
        target = tmp_path / path.relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    note = next(n for n in json.loads(target.read_text())["notes"] if n.startswith("efficiency benchmark: "))
    return tmp_path, note.removeprefix("efficiency benchmark: ")


def test_against_reads_an_earlier_run_from_its_results_files_and_compares_this_run_with_it(bench, tmp_path: Path) -> None:
    root, how = _committed_run(tmp_path)
    run, files = bench.earlier_run(COMMITTED, root, how)
    assert len(files) == 2 and set(run) == {("reference", "pytorch"), ("awq4", "pytorch")}
    specs = [_spec(bench, "reference"), _spec(bench, "awq4")]
    aa = bench._throughput(run, specs[0], 1)["paired"]
    assert aa["aa_check"] and aa["decode_tokens_per_s"]["ci_low"] <= 1 <= aa["decode_tokens_per_s"]["ci_high"]
    # the same figures as "this run": everything agrees; only batch 1 and the timing protocol have to match, so a
    # settings line that differs in the batch sizes of later runs or in where memory was measured still compares
    lines, ok = bench.agreement(specs, [run, run])
    assert ok and "intervals overlap for 2 of 2" in "\n".join(lines)
    # a run of a subset against the full earlier run: the earlier run's other figures are left out
    lines, ok = bench.agreement(specs[:1], [run, run])
    assert ok and "intervals overlap for 1 of 1" in "\n".join(lines)
    assert set(bench.earlier_run(COMMITTED, root, how.replace("[1] in the later runs", "[1, 4] in the later runs"))[0]) == set(run)


def test_against_refuses_another_protocol_a_bad_stamp_and_a_broken_file_naming_it(bench, tmp_path: Path) -> None:
    root, how = _committed_run(tmp_path)
    with pytest.raises(SystemExit, match="another protocol .field notes.") as err:
        bench.earlier_run(COMMITTED, root, how.replace("in 2 passes", "in 5 passes"))
    assert f"{COMMITTED}-efficiency-pytorch-" in str(err.value) and "in 5 passes" in str(err.value)
    with pytest.raises(SystemExit, match="under profile 'cpu' .field profile., this run under 't4'"):
        bench.earlier_run(COMMITTED, root, how, "t4")
    with pytest.raises(SystemExit, match="give the stamp"):
        bench.earlier_run("20261130", root, how)
    with pytest.raises(SystemExit, match="no results files 20991231T000000-efficiency"):
        bench.earlier_run("20991231T000000", root, how)
    broken = next(root.rglob(f"{COMMITTED}-efficiency-*.json"))
    broken.write_text(broken.read_text()[:-40])
    with pytest.raises(SystemExit, match="cannot be read as a results file") as err:
        bench.earlier_run(COMMITTED, root, how)
    assert str(broken) in str(err.value)
    with pytest.raises(SystemExit):
        bench.parse_args(["--against", COMMITTED])  # two runs by default: the earlier run is run 1 of the comparison
    assert bench.parse_args(["--against", COMMITTED, "--runs", "1"]).against == COMMITTED


def test_runs_on_two_hosts_are_not_set_side_by_side(bench, tmp_path: Path) -> None:
    """The committed run's files record their host; --against refuses a run on another one (here: the kernel build a
    VM shows after moving, and the instruction sets), naming the file and the field, and --compare refuses two runs
    whose hosts differ. Files without instruction sets compare on the rest."""
    from kompakt.results import Hardware

    root, how = _committed_run(tmp_path)
    path = next(root.rglob(f"reference/cpu/{COMMITTED}-efficiency-pytorch-*.json"))
    theirs = Hardware.model_validate(json.loads(path.read_text())["hardware"])
    assert theirs.cpu_isa is None and bench.host_difference(theirs, theirs.model_copy(update={"cpu_isa": "avx2 fma"})) is None
    moved = theirs.model_copy(update={"os": "Linux 6.18.44-fc-v1045"})
    assert bench.host_difference(theirs, moved) == f"os: {theirs.os!r} there, 'Linux 6.18.44-fc-v1045' here"
    assert "cpu_isa" in bench.host_difference(theirs.model_copy(update={"cpu_isa": "avx2 avx512f"}), theirs.model_copy(update={"cpu_isa": "avx2"}))
    assert bench.earlier_run(COMMITTED, root, how, hardware=theirs)[0]
    with pytest.raises(SystemExit, match="was timed on another host .field hardware: os: ") as err:
        bench.earlier_run(COMMITTED, root, how, hardware=moved)
    assert f"{COMMITTED}-efficiency-pytorch-" in str(err.value)
    later = "20261203T000000"  # the same run, its files as if timed after a move
    for f in list(root.rglob(f"{COMMITTED}-efficiency-*.json")):
        data = json.loads(f.read_text())
        data["hardware"]["os"] = moved.os
        (f.parent / f.name.replace(COMMITTED, later)).write_text(json.dumps(data))
    assert bench.compare_runs([COMMITTED], [COMMITTED], root, how, "cpu")[1]
    with pytest.raises(SystemExit, match=f"{later}-efficiency-.*another host"):
        bench.compare_runs([COMMITTED], [later], root, how, "cpu")
    split = sorted(root.rglob(f"{later}-efficiency-*.json"))  # one run resumed across a move: its last file on the old host
    data = json.loads(split[-1].read_text())
    data["hardware"]["os"] = theirs.os
    split[-1].write_text(json.dumps(data))
    with pytest.raises(SystemExit, match=f"{split[-1].name} belongs to the run of .*{split[0].name} but was timed on another "
                       f"host .field hardware: os: 'Linux 6.18.44-fc-v1045' in {split[0].name}, {theirs.os!r} in this one"):
        bench.earlier_run(later, root, how)


def test_compare_reports_two_earlier_runs_taken_in_parts_from_their_files_alone(bench, tmp_path: Path) -> None:
    """A run in two parts (``--only``), each with its own A/A check: the i-th part of one run against the i-th of the
    other; the reference, in both parts, is shown with each part's stamps and both parts' A/A checks count."""
    root, how = _committed_run(tmp_path)
    part = "20261201T000000"  # a second part: the committed reference file alone, under a stamp of its own
    ref = next(root.rglob(f"reference/cpu/{COMMITTED}-efficiency-pytorch-*.json"))
    (ref.parent / ref.name.replace(COMMITTED, part)).write_text(ref.read_text())
    lines, ok = bench.compare_runs([COMMITTED, part], [COMMITTED, part], root, how, "cpu")
    text = "\n".join(lines)
    assert ok and "intervals overlap for 3 of 3" in text and "A/A checks reading 1.00 within their interval: 4 of 4" in text
    assert f"| reference (A/A) [{COMMITTED} / {COMMITTED}] | pytorch |" in text and f"| reference (A/A) [{part} / {part}] | pytorch |" in text
    assert "| awq4 | pytorch |" in text  # measured in one part only: no stamps
    with pytest.raises(SystemExit, match="2 and 1 parts"):
        bench.compare_runs([COMMITTED, part], [COMMITTED], root, how, "cpu")
    with pytest.raises(SystemExit):
        bench.parse_args(["--compare", COMMITTED, part, "--against", COMMITTED])  # one or the other
    assert bench.parse_args(["--compare", f"{COMMITTED},{part}", f"{COMMITTED},{part}"]).compare == [f"{COMMITTED},{part}"] * 2


def test_pairs_within_the_bus_headroom_count_only_with_bus_headroom(bench) -> None:
    """Off by default (efficiency-runs.md, *Part 1 under the headroom rule*); the settings line, which decides which runs may be set
    side by side, says which rule a run was timed under."""
    cpu = get_profile("cpu")
    default = bench.settings_of(bench.parse_args([]))
    assert not default.bus_headroom and default.extra_passes == 3
    assert "neither side drawing" not in default.describe(cpu) and "after up to 3 extra pass(es)" in default.describe(cpu)
    on = bench.settings_of(bench.parse_args(["--bus-headroom"]))
    assert on.bus_headroom and "(or with neither side drawing more than 50% of the bandwidth the bus gave it)" in on.describe(cpu)


def test_only_selects_in_the_recipes_order_names_what_it_leaves_out_of_also_and_refuses_an_unknown_id(bench) -> None:
    """Part 2b's --only once left out the thesis' variant that the default --also adds, without a word; a typo in
    --only timed less than was asked for the same way."""
    available = ["reference", "rtn8", "prune-8", "prune-8-lora-awq4"]
    also = ("thesis:prune-8-lora-awq4",)
    assert bench.select_variants(available, None, also) == (available, "")
    assert bench.select_variants(available, {"prune-8-lora-awq4", "reference"}, also) == (["reference", "prune-8-lora-awq4"], "")
    assert bench.select_variants(available, {"reference", "prune-8"}, also) == (
        ["reference", "prune-8"], "--only leaves out prune-8-lora-awq4 of --also (name it in --only to time it)")
    with pytest.raises(SystemExit, match=r"'prune8' \(did you mean 'prune-8'"):
        bench.select_variants(available, {"reference", "prune8"}, also)
    with pytest.raises(SystemExit, match="'zzz'; the variants: reference, rtn8"):
        bench.select_variants(available, {"zzz"}, ())
