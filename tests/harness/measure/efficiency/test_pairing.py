"""Paired timing: the alternation, the block figures, the results-file record and measure(reference=...) on the tiny model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("scipy")

from efficiency_sections import validate_in_a_results_file  # noqa: E402
from harness.measure.efficiency import PairedReference, PairedRule, RepeatRule, measure  # noqa: E402
from harness.measure.efficiency.bandwidth import Bandwidth  # noqa: E402
from harness.measure.efficiency.pairing import (  # noqa: E402
    Block, describe, ProcessSide, block_figures, blocks_from_json, blocks_to_json, choose_loading, earlier_from_raw, kept, paired_record, pass_rule, time_blocks,
)
from kompakt.profiles import Profile  # noqa: E402

BW = Bandwidth(bytes_per_s=10e9, median_bytes_per_s=9e9, device="test", method="fixed for tests", repeats=1)
#: Three pairs of blocks, one timed run each after one warm-up: enough for an interval, quick on the tiny model; at most
#: 12 pairs where a contended memory bus makes the rule wait for pairs at full bandwidth.
SHORT = PairedRule(blocks=RepeatRule(warmup=1, min_runs=3, min_seconds=0.0, max_runs=12), repeats=1)


def profile(budget: int = 16 * 2**30, batch_sizes: list[int] | None = None) -> Profile:
    return Profile(
        name="tiny", label="tiny", description="tests", device="cpu", dtype="float32", memory_budget_bytes=budget,
        batch_sizes=batch_sizes or [1], prompt_tokens=16, new_tokens=8, context_length=64,
    )


class FakeSide:
    """A side whose blocks take a fixed time per token, noting when it ran."""

    def __init__(self, name: str, log: list[str], step_s: float):
        self.name, self.log, self.step_s = name, log, step_s

    def block(self, prompt, new_tokens, repeats, warmup) -> Block:
        self.log.append(self.name)
        t = 100.0 * len(self.log)
        stamps = [[t] + [t + 0.5 * self.step_s + i * self.step_s for i in range(new_tokens)] for _ in range(repeats)]
        return Block(prefill_s=[self.step_s * 4] * repeats, stamps=stamps)


def test_blocks_alternate_reference_first_until_the_rule_is_met() -> None:
    log: list[str] = []
    rule = PairedRule(blocks=RepeatRule(warmup=1, min_runs=4, min_seconds=0.0), repeats=2)
    ref, var = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, rule)
    assert log == ["ref", "var"] * 4
    assert len(ref) == len(var) == 4


def test_the_time_minimum_counts_the_slower_side() -> None:
    """Each block of either side times 2 x 4 decode steps of 0.01 s plus two prefills: the rule asks for 0.5 s per side."""
    log: list[str] = []
    rule = PairedRule(blocks=RepeatRule(warmup=0, min_runs=2, min_seconds=0.5), repeats=2)
    ref, var = time_blocks(FakeSide("ref", log, 0.01), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, rule)
    per_block = 2 * (0.045 + 0.04)  # two generations of 4.5 steps after the call, two prefills of 0.04 s
    assert len(var) == int(0.5 // per_block) + 1


class FakeProbe:
    """Bandwidth readings in a fixed order (GB/s), the highest so far as the peak, as BandwidthProbe keeps it."""

    def __init__(self, readings: list[float]):
        self.readings, self.calls, self.peak = list(readings), 0, 0.0

    def __call__(self) -> float:
        value = self.readings[min(self.calls, len(self.readings) - 1)] * 1e9
        self.calls += 1
        self.peak = max(self.peak, value)
        return value


def test_pairs_timed_on_a_contended_memory_bus_do_not_count() -> None:
    """Probes run before every block and after every variant block; the second pair reads 45 GB/s before and after its
    variant block (median of its three probes: 45), below the floor (0.7 x 80 = 56 GB/s), so a fourth pair is timed to reach the three the rule asks for."""
    log: list[str] = []
    rule = PairedRule(blocks=RepeatRule(warmup=0, min_runs=3, min_seconds=0.0), repeats=1)
    # probe order: first, then for each pair: before the variant block, after it (= before the next reference block)
    probe = FakeProbe([80, 80, 80, 45, 45, 80, 80, 80, 80])
    ref, var = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe)
    assert len(var) == 4 and probe.calls == 9
    assert [b.bandwidth_before / 1e9 for b in ref] == [80, 80, 45, 80]  # the probe after a variant block is the next one's before
    assert [(b.bandwidth_before / 1e9, b.bandwidth_after / 1e9) for b in var] == [(80, 80), (45, 45), (80, 80), (80, 80)]
    record = paired_record(ref, var, 1, 4, PairedReference(Path("ref"), "reference (test)", rule=rule), "same_process", None, probe.peak)
    assert record.left_out_pairs == 1 and record.decode_tokens_per_s.blocks == 3
    assert record.bandwidth_gbps == [80.0, 80.0, 80.0] and record.bandwidth_floor_gbps == pytest.approx(56.0)
    assert record.left_out_decode_speedup is None  # one left-out pair is no figure
    assert not record.bandwidth_contended


def test_a_bus_contended_throughout_gives_no_speedup_and_says_why() -> None:
    """Only the first pair reaches the floor before the cap of four pairs: no speed-up (the contended pairs never stand
    in for it), every pair left out with their own ratio, the reason in the record and in the notes; the record validates."""
    from kompakt.results import PairedSpeed

    log: list[str] = []
    rule = PairedRule(blocks=RepeatRule(warmup=0, min_runs=3, min_seconds=0.0, max_runs=4), repeats=1)
    probe = FakeProbe([80, 80, 80] + [45] * 10)
    ref, var = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe)
    assert len(var) == 4
    reference = PairedReference(Path("ref"), "reference (test)", rule=rule)
    record = paired_record(ref, var, 1, 4, reference, "same_process", None, probe.peak)
    assert record.bandwidth_contended and record.left_out_pairs == 4
    assert record.decode_tokens_per_s is None and record.prefill_tokens_per_s is None and record.time_to_first_token_ms is None
    assert record.left_out_decode_speedup == pytest.approx(2.0) and record.bandwidth_gbps is None
    assert record.speedup_absent_reason == ("1 of 4 pairs reached 56 GB/s of memory bandwidth before the timing cap, fewer than the 3 "
                                            "a speed-up needs: the memory bus was contended throughout")
    text = describe(reference, "both loaded", 4, record)
    assert "no speed-up: 1 of 4 pairs reached 56 GB/s" in text and "(they read 2.00x on the contended bus)" in text
    assert PairedSpeed.model_validate_json(record.model_dump_json()) == record
    # with the whole rule's three pairs at the floor, the same cap gives a speed-up over them alone
    probe = FakeProbe([80, 80, 80, 80, 80, 80, 80, 45, 45])
    ref, var = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe)
    record = paired_record(ref, var, 1, 4, reference, "same_process", None, probe.peak)
    assert not record.bandwidth_contended and record.decode_tokens_per_s.blocks == 3 and record.speedup_absent_reason is None


def test_an_extra_pass_times_a_contended_measurement_again_under_the_whole_rule() -> None:
    """Two passes under a cap of 4 pairs end with one pair at the floor; an extra pass (index 2 of 2) has the whole rule,
    its cap counted over its own blocks: it may time 4 more pairs, wants 3 at the floor over all of them, and stops once
    it has them, so the record has a speed-up over those 3 and counts 3 passes. Without the fresh caps it would time none."""
    log: list[str] = []
    rule = PairedRule(blocks=RepeatRule(warmup=0, min_runs=3, min_seconds=0.0, max_runs=4), repeats=1)
    assert pass_rule(rule, 2, 2) == rule == pass_rule(rule, 5, 2)
    probe = FakeProbe([80, 80, 80] + [45] * 6 + [80] * 10)
    earlier = None
    for index in range(2):
        earlier = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, pass_rule(rule, index, 2),
                              probe=probe, earlier=earlier, pass_index=index)
    assert len(earlier[1]) == 4
    before = paired_record(*earlier, 1, 4, PairedReference(Path("ref"), "r", rule=rule, passes=2, pass_index=1), "same_process", None, probe.peak)
    assert before.bandwidth_contended
    assert time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1]], 5, rule, earlier=earlier, pass_index=2)[1] == earlier[1]
    ref, var = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, pass_rule(rule, 2, 2),
                           probe=probe, earlier=earlier, pass_index=2, fresh_caps=True)
    assert len(var) == 6 and [b.pass_index for b in var] == [0, 0, 1, 1, 2, 2]
    after = paired_record(ref, var, 1, 4, PairedReference(Path("ref"), "r", rule=rule, passes=2, pass_index=2), "same_process", None, probe.peak)
    assert not after.bandwidth_contended and after.decode_tokens_per_s.blocks == 3 and after.passes == 3


def test_an_extra_pass_adds_its_own_pairs_even_when_the_pooled_minimum_is_met() -> None:
    """A measurement with enough pairs at the floor, but from too few passes: the extra pass times at least ``own_pairs``
    new pairs at the floor (another stretch of time for the batch-means interval), then stops."""
    log: list[str] = []
    rule = PairedRule(blocks=RepeatRule(warmup=0, min_runs=3, min_seconds=0.0, max_runs=12), repeats=1)
    earlier = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, rule, pass_index=0)
    assert len(earlier[1]) == 3
    ref, var = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, rule, earlier=earlier,
                           pass_index=3, fresh_caps=True, own_pairs=2)
    assert [b.pass_index for b in var] == [0, 0, 0, 3, 3]
    # on a contended bus its own pairs never reach the floor: it stops at the cap over its own blocks
    probe = FakeProbe([80] * 7 + [45] * 40)
    earlier = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe, pass_index=0)
    ref, var = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe, earlier=earlier,
                           pass_index=3, fresh_caps=True, own_pairs=2)
    assert len(var) == 3 + 12


def test_waiting_for_the_free_bus_stops_at_the_first_probe_above_the_floor_or_at_the_limit() -> None:
    from harness.measure.efficiency.pairing import wait_for_free_bus

    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    probe = FakeProbe([45, 46, 44, 82, 45])
    assert wait_for_free_bus(probe, 61e9, limit_s=60, poll_s=5, sleep=sleep, clock=lambda: now[0]) == (True, 15.0, 82e9)
    assert slept == [5, 5, 5] and probe.calls == 4
    now[0], slept[:] = 0.0, []
    assert wait_for_free_bus(FakeProbe([45]), 61e9, limit_s=12, poll_s=5, sleep=sleep, clock=lambda: now[0]) == (False, 12.0, 45e9)
    assert slept == [5, 5, 2]  # the last wait stops at the limit


def test_the_left_out_pairs_have_their_own_decode_speedup() -> None:
    """A memory-bound reference halves its speed on the contended bus, the variant does not: 2x there, 1x at full bandwidth."""

    class StateSide(FakeSide):
        def __init__(self, name, log, steps):
            super().__init__(name, log, steps[0])
            self.steps = steps

        def block(self, prompt, new_tokens, repeats, warmup):
            self.step_s = self.steps[min(sum(1 for x in self.log if x == self.name), len(self.steps) - 1)]
            return super().block(prompt, new_tokens, repeats, warmup)

    log: list[str] = []
    rule = PairedRule(blocks=RepeatRule(warmup=0, min_runs=2, min_seconds=0.0), repeats=1)
    # pairs 1 and 2 contended (45), 3 and 4 at full bandwidth (80)
    probe = FakeProbe([80, 45, 45, 45, 80, 80, 80, 80, 80])
    ref_side = StateSide("ref", log, [0.02, 0.02, 0.01, 0.01])
    var_side = StateSide("var", log, [0.01, 0.01, 0.01, 0.01])
    ref, var = time_blocks(ref_side, var_side, [[1, 2, 3, 4]], 5, rule, probe=probe)
    record = paired_record(ref, var, 1, 4, PairedReference(Path("ref"), "reference (test)", rule=rule), "same_process", None, probe.peak)
    assert record.left_out_pairs == 2 and record.decode_tokens_per_s.speedup == pytest.approx(1.0)
    assert record.left_out_decode_speedup == pytest.approx(2.0)


def test_each_pass_brings_the_pooled_blocks_up_to_its_share_of_the_rule() -> None:
    rule = PairedRule(blocks=RepeatRule(warmup=1, min_runs=10, min_seconds=10.0, max_runs=200, max_seconds=600.0), repeats=1)
    first, last = pass_rule(rule, 0, 2).blocks, pass_rule(rule, 1, 2).blocks
    assert (first.min_runs, first.min_seconds, first.max_runs, first.max_seconds) == (5, 5.0, 100, 300.0)
    assert last == rule.blocks and pass_rule(rule, 0, 1) == rule
    assert pass_rule(rule, 0, 3).blocks.min_runs == 4  # 10 / 3 rounded up
    tiny = PairedRule(blocks=RepeatRule(warmup=0, min_runs=3, min_seconds=0.0, max_runs=3), repeats=1)
    assert pass_rule(tiny, 0, 4).blocks.min_runs == 2  # never below the bootstrap's minimum of pairs
    for index, passes in ((-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="passes must be at least 1"):
            pass_rule(rule, index, passes)


def test_a_later_pass_adds_to_the_earlier_blocks_and_the_record_pools_them() -> None:
    """Pass 1 of 2 times 2 pairs (half of 4); pass 2 starts from them, times 2 more, and the record counts 4 pairs of 2 passes."""
    log: list[str] = []
    rule = PairedRule(blocks=RepeatRule(warmup=0, min_runs=4, min_seconds=0.0), repeats=1)
    ref1, var1 = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, pass_rule(rule, 0, 2))
    assert len(ref1) == len(var1) == 2
    earlier = (blocks_from_json(blocks_to_json(ref1)), blocks_from_json(blocks_to_json(var1)))  # as the next process gets them
    assert earlier == (ref1, var1)
    ref2, var2 = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, pass_rule(rule, 1, 2), earlier=earlier)
    assert log == ["ref", "var"] * 4 and ref2[:2] == ref1 and len(var2) == 4
    ref_pass2 = PairedReference(Path("ref"), "reference (test)", rule=rule, passes=2, pass_index=1)
    record = paired_record(ref2, var2, 1, 4, ref_pass2, "same_process", None)
    assert record.passes == 2 and record.decode_tokens_per_s.blocks == 4 and record.decode_tokens_per_s.speedup == pytest.approx(2.0)
    assert "in 2 passes minutes apart" in describe(ref_pass2, "both loaded", 4, record)
    # an earlier pass's record asks for its own share of the pairs at full bandwidth, not the whole rule's: pass 1 of 2
    # with 2 of its 3 pairs at full bandwidth leaves the first out (the whole rule's 4 would count all three as contended)
    log.clear()
    probe = FakeProbe([80, 45, 45, 80, 80, 80, 80])
    ref3, var3 = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, pass_rule(rule, 0, 2), probe=probe)
    first_pass = PairedReference(Path("ref"), "reference (test)", rule=rule, passes=2, pass_index=0)
    record = paired_record(ref3, var3, 1, 4, first_pass, "same_process", None, probe.peak)
    assert len(var3) == 3 and record.left_out_pairs == 1 and not record.bandwidth_contended and record.passes == 1
    with pytest.raises(ValueError, match="unpaired earlier blocks"):
        time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1]], 5, rule, earlier=(ref1, var1[:1]))


def test_three_passes_are_three_batches_of_the_interval() -> None:
    """Three passes in which the variant is 1.5x, 1.6x and 1.7x faster (its share of the host moved between them): every
    block carries its pass through the hand-over between processes, the record keeps each pass's own speed-up, and the
    interval covers their batch means (it names the method); a one-pass record has neither."""
    from kompakt.paired import METHOD_WITH_PASSES, batch_means_interval
    from kompakt.results import PairedSpeed

    log: list[str] = []
    rule = PairedRule(blocks=RepeatRule(warmup=0, min_runs=6, min_seconds=0.0), repeats=1)
    earlier = None
    for index, step in enumerate((0.02 / 1.5, 0.02 / 1.6, 0.02 / 1.7)):
        ref_b, var_b = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, step), [[1, 2, 3, 4]], 5, pass_rule(rule, index, 3),
                                   earlier=earlier, pass_index=index)
        earlier = (blocks_from_json(blocks_to_json(ref_b)), blocks_from_json(blocks_to_json(var_b)))
    assert [b.pass_index for b in earlier[1]] == [0, 0, 1, 1, 2, 2] == [b.pass_index for b in earlier[0]]
    last = PairedReference(Path("ref"), "reference (test)", rule=rule, passes=3, pass_index=2)
    record = paired_record(*earlier, 1, 4, last, "same_process", None)
    d = record.decode_tokens_per_s
    assert d.pass_speedups == pytest.approx([1.5, 1.6, 1.7])
    assert (d.ci_low, d.ci_high) == pytest.approx(batch_means_interval([1.5, 1.6, 1.7]), rel=1e-5)
    assert record.method == METHOD_WITH_PASSES and "batch-means" in describe(last, "both loaded", 6, record)
    assert PairedSpeed.model_validate_json(record.model_dump_json()) == record  # the schema takes the new field
    single = paired_record(earlier[0][:2], earlier[1][:2], 1, 4, PairedReference(Path("ref"), "reference (test)", rule=SHORT), "same_process", None)
    assert single.decode_tokens_per_s.pass_speedups is None and "ttest" not in single.method


def test_block_figures_and_the_record_from_known_timings() -> None:
    """The variant decodes every step in half the reference's time: 2.00x decode, prefill and time to first token."""
    log: list[str] = []
    ref = [FakeSide("ref", log, 0.02).block([[1] * 4], 5, 3, 0) for _ in range(4)]
    var = [FakeSide("var", log, 0.01).block([[1] * 4], 5, 3, 0) for _ in range(4)]
    figs = block_figures(ref, batch_size=1, prompt_tokens=4)
    assert figs["decode_tokens_per_s"] == pytest.approx([50.0] * 4)  # 1 token per 0.02 s
    assert figs["prefill_tokens_per_s"] == pytest.approx([4 / 0.08] * 4)
    assert figs["time_to_first_token_ms"] == pytest.approx([10.0] * 4)
    record = paired_record(ref, var, 1, 4, PairedReference(Path("ref"), "reference (test)", rule=SHORT), "same_process", 0.5)
    for fig in (record.decode_tokens_per_s, record.prefill_tokens_per_s, record.time_to_first_token_ms):
        assert fig.speedup == pytest.approx(2.0) and fig.ci_low == pytest.approx(2.0) and fig.ci_high == pytest.approx(2.0)
        assert fig.blocks == 4 == len(fig.variant_blocks) == len(fig.reference_blocks)
    assert record.decode_tokens_per_s.reference_blocks == pytest.approx([50.0] * 4)
    assert record.decode_tokens_per_s.variant_blocks == pytest.approx([100.0] * 4)
    assert record.loading == "same_process" and record.weights_ratio == 0.5 and record.repeats_per_block == 1
    assert record.confidence_level == 0.95 and "scipy.stats.bootstrap" in record.method
    assert record.passes == 1  # one stretch of time unless passes are asked for


def test_loading_is_decided_by_the_budget() -> None:
    ref = PairedReference(Path("ref"), "reference")
    assert choose_loading(ref, 3 * 2**30, 2 * 2**30, profile(budget=8 * 2**30))[0] == "same_process"
    mode, why = choose_loading(ref, 5 * 2**30, 4 * 2**30, profile(budget=8 * 2**30))
    assert mode == "process_per_block" and "exceed the 8.00 GiB budget" in why
    forced = PairedReference(Path("ref"), "reference", loading="process_per_block")
    assert choose_loading(forced, 1, 1, profile())[0] == "process_per_block"


def test_an_aa_check_on_the_tiny_model_in_one_process(tiny_model_dir: Path, steady_bus: None) -> None:
    ref = PairedReference(tiny_model_dir, "reference (tiny)", aa_check=True, rule=SHORT)
    result = measure(tiny_model_dir, profile(batch_sizes=[1, 2]), rule=RepeatRule(warmup=1, min_runs=2, min_seconds=0.0), bandwidth=BW,
                     reference=ref)
    assert [t.batch_size for t in result.throughput] == [1, 2]
    for t in result.throughput:
        p = t.paired
        assert p is not None and p.aa_check and p.loading == "same_process" and p.reference == "reference (tiny)"
        # the probe reads a steady 80 GB/s (steady_bus): every pair counts, the floor is 70 % of it
        timed = p.decode_tokens_per_s.blocks + p.left_out_pairs
        assert p.left_out_pairs == 0 and p.bandwidth_floor_gbps == pytest.approx(56.0) and not p.bandwidth_contended
        for fig in (p.decode_tokens_per_s, p.prefill_tokens_per_s, p.time_to_first_token_ms):
            assert fig.blocks >= 3 and len(fig.variant_blocks) == len(fig.reference_blocks) == fig.blocks == len(p.bandwidth_gbps)
            assert fig.ci_low <= fig.ci_high
        assert p.weights_ratio == 1.0
        # only pairs at the free-bus floor count unless the rule asks for the bus's headroom (PairedRule.bus_headroom)
        assert p.bus_headroom_share is None and p.headroom_pairs is None
        # the variant's absolute figures pool its repeats over every block, left-out pairs included
        assert t.decode_tokens_per_s.repeats == timed
        assert "paired with a separately loaded copy of itself" in t.notes
    assert result.raw["batch1"]["blocks"] == result.throughput[0].decode_tokens_per_s.repeats
    assert len(result.raw["batch1"]["reference"]["decode_tps"]) == result.raw["batch1"]["blocks"]
    validate_in_a_results_file(result)


def test_a_second_pass_on_the_tiny_model_pools_the_first_passes_pairs(tiny_model_dir: Path, steady_bus: None) -> None:
    """As the efficiency benchmark runs it: pass 1 in one measurement, its blocks handed (as plain data) to pass 2 in another."""
    rule = PairedRule(blocks=RepeatRule(warmup=1, min_runs=4, min_seconds=0.0, max_runs=12), repeats=1)
    first = measure(tiny_model_dir, profile(), bandwidth=BW, memory=False,
                    reference=PairedReference(tiny_model_dir, "reference (tiny)", aa_check=True, rule=rule, passes=2, pass_index=0))
    pairs = first.raw["batch1"]["pairs"]
    n1 = len(pairs["variant"])
    assert first.throughput[0].paired.passes == 1 and n1 == first.throughput[0].paired.decode_tokens_per_s.blocks + first.throughput[0].paired.left_out_pairs
    earlier = earlier_from_raw(first.raw)
    assert list(earlier) == [1] and earlier[1] == (blocks_from_json(pairs["reference"]), blocks_from_json(pairs["variant"]))
    second = measure(tiny_model_dir, profile(), bandwidth=BW, memory=False,
                     reference=PairedReference(tiny_model_dir, "reference (tiny)", aa_check=True, rule=rule, passes=2, pass_index=1,
                                               bandwidth_peak=first.bandwidth_peak, earlier=earlier))
    (t,) = second.throughput
    assert t.paired.passes == 2 and "in 2 passes minutes apart" in t.notes
    assert len(second.raw["batch1"]["pairs"]["variant"]) > n1
    assert second.raw["batch1"]["pairs"]["variant"][:n1] == pairs["variant"]  # the first pass's blocks, unchanged, first
    assert t.decode_tokens_per_s.repeats == len(second.raw["batch1"]["pairs"]["variant"])  # absolute figures pool both passes
    validate_in_a_results_file(second)
    # an extra pass (index 2 of 2): the pooled minimum is met, so it adds one pass's share of pairs (2) and stops
    n2 = len(second.raw["batch1"]["pairs"]["variant"])
    extra = measure(tiny_model_dir, profile(), bandwidth=BW, memory=False,
                    reference=PairedReference(tiny_model_dir, "reference (tiny)", aa_check=True, rule=rule, passes=2, pass_index=2,
                                              bandwidth_peak=second.bandwidth_peak, earlier=earlier_from_raw(second.raw)))
    (t,) = extra.throughput
    assert len(extra.raw["batch1"]["pairs"]["variant"]) == n2 + 2 and t.paired.passes == 3
    assert [b["pass_index"] for b in extra.raw["batch1"]["pairs"]["variant"][n2:]] == [2, 2]
    validate_in_a_results_file(extra)


def test_a_block_in_a_process_of_its_own(tiny_model_dir: Path) -> None:
    """``process_per_block``: a fresh process loads the model, runs one block and reports its timings (one spawn:
    the child imports torch, seconds on a busy machine)."""
    side = ProcessSide("pytorch", tiny_model_dir, profile())
    block = side.block([[5, 6, 7, 8]], 4, 2, 1)
    assert len(block.prefill_s) == 2 and all(s > 0 for s in block.prefill_s)
    assert len(block.stamps) == 2 and all(len(ts) == 5 and ts == sorted(ts) for ts in block.stamps)
    with pytest.raises(RuntimeError, match="failed"):
        ProcessSide("pytorch", tiny_model_dir / "missing", profile()).block([[5, 6]], 2, 1, 0)


@pytest.mark.slow
def test_measure_with_each_block_in_its_own_process(tiny_model_dir: Path, steady_bus: None) -> None:
    """When the two do not fit together, every block loads its model in a fresh process (two pairs of blocks here)."""
    rule = PairedRule(blocks=RepeatRule(warmup=1, min_runs=2, min_seconds=0.0, max_runs=4), repeats=1)
    ref = PairedReference(tiny_model_dir, "reference (tiny)", loading="process_per_block", rule=rule)
    result = measure(tiny_model_dir, profile(), bandwidth=BW, reference=ref, memory=False)
    (t,) = result.throughput
    assert t.paired.loading == "process_per_block" and t.paired.decode_tokens_per_s.blocks >= 2
    assert t.paired.decode_tokens_per_s.blocks + t.paired.left_out_pairs <= 4
    assert "process per block as asked" in t.notes
    validate_in_a_results_file(result)


def test_the_real_probe_reads_a_bandwidth_and_remembers_the_highest(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.measure.efficiency import bandwidth
    from harness.measure.efficiency.bandwidth import BandwidthProbe, highest_probe

    monkeypatch.setattr(bandwidth, "_HIGHEST", {})  # this process's memory of peaks, restored afterwards

    probe = BandwidthProbe("cpu", nbytes=8 * 2**20)
    try:
        reading = probe()
        assert reading > 1e8  # more than 0.1 GB/s on any machine that runs this
        assert probe.peak == highest_probe("cpu") >= reading
    finally:
        probe.close()
    seeded = BandwidthProbe("cpu", nbytes=2**20, peak=1e15)  # a peak seen in another process counts here too
    try:
        assert seeded.peak == highest_probe("cpu") == 1e15
    finally:
        seeded.close()


def test_an_extra_pass_waits_for_the_free_bus_before_a_pair_instead_of_timing_it_contended() -> None:
    """The bus reads 80, drops to 45 during the second pair and stays there for four probes. With ``bus_wait_s`` the
    third pair waits (two polls of 5 s) until a probe reads 80 and is timed on the free bus; without it, the third pair
    is timed contended too and a fifth is needed. On a bus contended for good the waiting stops at its budget (12 s over
    the whole call), then the pairs are timed and the cap ends it without enough at the floor."""
    log: list[str] = []
    rule = PairedRule(blocks=RepeatRule(warmup=0, min_runs=3, min_seconds=0.0, max_runs=6), repeats=1)
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    said: list[str] = []
    readings = [80, 80, 80, 45, 45, 45, 45] + [80] * 20
    probe = FakeProbe(readings)
    ref, var = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe,
                           log=said.append, bus_wait_s=60, sleep=sleep, clock=lambda: now[0])
    assert kept(ref, var, probe.peak) == [True, False, True, True] and now[0] == 10.0
    assert said == ["waited 10 s for the memory bus to come free (10 of 60 s): it read 80 GB/s"]
    assert ref[2].bandwidth_before == 80e9
    # without waiting (every regular pass): the third pair is timed on the contended bus and does not count
    probe = FakeProbe(readings)
    ref, var = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe)
    assert kept(ref, var, probe.peak) == [True, False, False, True, True]
    # a bus contended for good: the budget runs out, then it times (and the cap ends it without a speed-up)
    now[0], said[:] = 0.0, []
    probe = FakeProbe([80, 80, 80] + [45] * 100)
    ref, var = time_blocks(FakeSide("ref", log, 0.02), FakeSide("var", log, 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe,
                           log=said.append, bus_wait_s=12, sleep=sleep, clock=lambda: now[0])
    assert now[0] == 12.0 and len(var) == 6 and sum(kept(ref, var, probe.peak)) == 1
    assert said == ["waited 12 s for the memory bus to come free (12 of 12 s): it read 45 GB/s, timing anyway",
                    "5 pairs of blocks, 1 at full memory bandwidth"]


def test_a_pair_on_a_contended_bus_counts_when_neither_side_drew_more_than_half_of_what_it_had() -> None:
    """The reference decodes 50 steps/s, the variant 100 (FakeSide). Reading 1e8 bytes a step, the pair draws 10 GB/s, under
    half the contended probe's 45 GB/s: the bus did not limit it, and it counts (no fourth pair, no waiting in an extra
    pass, a speed-up even on a bus contended throughout). Reading 1e9 bytes a step it draws 100 GB/s and is left out as
    before. The record says how many pairs counted by the headroom, and validates."""
    from kompakt.results import PairedSpeed

    rule = PairedRule(blocks=RepeatRule(warmup=0, min_runs=3, min_seconds=0.0, max_runs=4), repeats=1)
    reference = PairedReference(Path("ref"), "reference (test)", rule=rule)
    side = lambda name, step: FakeSide(name, [], step)  # noqa: E731
    light, heavy = (1e8, 1e8), (1e9, 1e9)
    probe = FakeProbe([80, 80, 80, 45, 45, 80, 80, 80, 80])
    ref, var = time_blocks(side("ref", 0.02), side("var", 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe, step_bytes=light)
    assert len(var) == 3 and kept(ref, var, probe.peak, light) == [True] * 3 and kept(ref, var, probe.peak, heavy) == [True, False, True]
    record = paired_record(ref, var, 1, 4, reference, "same_process", None, probe.peak, light)
    assert record.headroom_pairs == 1 and record.left_out_pairs == 0 and record.bus_headroom_share == 0.5
    assert record.decode_tokens_per_s.blocks == 3 and record.decode_tokens_per_s.speedup == pytest.approx(2.0)
    assert "1 below it counted (neither side drew more than 50% of the bandwidth its probe read)" in describe(reference, "x", 3, record)
    assert PairedSpeed.model_validate_json(record.model_dump_json()) == record
    probe = FakeProbe([80, 80, 80, 45, 45, 80, 80, 80, 80])
    ref, var = time_blocks(side("ref", 0.02), side("var", 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe, step_bytes=heavy)
    record = paired_record(ref, var, 1, 4, reference, "same_process", None, probe.peak, heavy)
    assert len(var) == 4 and record.headroom_pairs == 0 and record.left_out_pairs == 1
    # contended throughout: compute-bound sides still have their speed-up, memory-bound ones none
    for step_bytes, contended in ((light, False), (heavy, True)):
        probe = FakeProbe([80, 80, 80] + [45] * 20)
        ref, var = time_blocks(side("ref", 0.02), side("var", 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe, step_bytes=step_bytes)
        record = paired_record(ref, var, 1, 4, reference, "same_process", None, probe.peak, step_bytes)
        assert record.bandwidth_contended is contended and (record.decode_tokens_per_s is None) is contended
    assert record.speedup_absent_reason.startswith("1 of 4 pairs reached 56 GB/s of memory bandwidth or drew at most 50% of what the bus gave them")
    # an extra pass waits only where the pair would not count: after a light pair, 45 GB/s is enough
    now = [0.0]
    probe = FakeProbe([80, 80, 80, 45, 45, 45, 45] + [80] * 20)
    ref, var = time_blocks(side("ref", 0.02), side("var", 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe, bus_wait_s=60, step_bytes=light,
                           sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert now[0] == 0.0 and len(var) == 3
    probe = FakeProbe([80, 80, 80, 45, 45, 45, 45] + [80] * 20)
    ref, var = time_blocks(side("ref", 0.02), side("var", 0.01), [[1, 2, 3, 4]], 5, rule, probe=probe, bus_wait_s=60, step_bytes=heavy,
                           sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert now[0] == 10.0


def test_pairs_within_the_bus_headroom_count_only_when_the_rule_asks(tiny_model_dir: Path, monkeypatch) -> None:
    """Off by default (efficiency-runs.md, *Part 1 under the headroom rule*: such pairs were 2 to 6 times as noisy); with
    ``bus_headroom`` a bus held below the floor throughout still gives the tiny model, which draws next to nothing, its
    speed-up, and the record says how many pairs counted that way."""
    from harness.measure.efficiency import bandwidth

    # the free bus read 80 GB/s earlier in the run (the peak); every probe now reads a contended 30, below the floor of 56
    monkeypatch.setattr(bandwidth, "_HIGHEST", {})
    monkeypatch.setattr(bandwidth.BandwidthProbe, "__call__", lambda self: 30e9)
    off = measure(tiny_model_dir, profile(), bandwidth=BW, memory=False,
                  reference=PairedReference(tiny_model_dir, "reference (tiny)", aa_check=True, rule=SHORT, bandwidth_peak=80e9))
    p = off.throughput[0].paired
    assert p.bandwidth_contended and p.decode_tokens_per_s is None and p.bus_headroom_share is None
    on_rule = dataclasses.replace(SHORT, bus_headroom=True)
    on = measure(tiny_model_dir, profile(), bandwidth=BW, memory=False,
                 reference=PairedReference(tiny_model_dir, "reference (tiny)", aa_check=True, rule=on_rule, bandwidth_peak=80e9))
    q = on.throughput[0].paired
    assert not q.bandwidth_contended and q.decode_tokens_per_s is not None
    assert q.bus_headroom_share == 0.5 and q.headroom_pairs == q.decode_tokens_per_s.blocks
