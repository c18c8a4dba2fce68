"""The paired speed-up's statistics on hand-made blocks with known answers."""

from __future__ import annotations

import math

import pytest

from kompakt import paired
from kompakt.paired import (
    METHOD,
    METHOD_WITH_PASSES,
    PairedRatio,
    batch_means_interval,
    block_figure,
    bootstrap_interval,
    contains_one,
    intervals_overlap,
    pair_blocks,
    paired_speedup,
    pass_speedups,
    ratio_of_medians,
)

pytest.importorskip("scipy")


def test_block_figure_is_the_median_of_the_repeats() -> None:
    assert block_figure([3.0, 1.0, 2.0]) == 2.0
    assert block_figure([1.0, 2.0, 3.0, 10.0]) == 2.5
    with pytest.raises(ValueError, match="without samples"):
        block_figure([])


def test_pairs_are_block_i_with_block_i() -> None:
    assert pair_blocks([1.0, 2.0], [3.0, 4.0]) == [(1.0, 3.0), (2.0, 4.0)]
    with pytest.raises(ValueError, match="unpaired blocks: 2 of the reference, 3 of the variant"):
        pair_blocks([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 2"):
        pair_blocks([1.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        pair_blocks([1.0, 0.0], [1.0, 2.0])


def test_ratio_of_medians_is_oriented_so_that_above_one_is_faster() -> None:
    # rates: variant / reference
    assert ratio_of_medians([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == 2.0
    # times: reference / variant (half the time is twice as fast)
    assert ratio_of_medians([10.0, 20.0, 30.0], [5.0, 10.0, 15.0], higher_is_faster=False) == 2.0
    # the medians are divided, not the pairs: one wild block does not move it
    assert ratio_of_medians([10.0, 10.0, 10.0], [20.0, 20.0, 1000.0]) == 2.0


def test_a_constant_ratio_has_a_zero_width_interval() -> None:
    """Every resample of pairs (r, 2r) has a ratio of medians of exactly 2, whatever the blocks' drift."""
    ref = [55.0, 93.0, 60.0, 90.0, 65.0, 88.0, 70.0, 75.0, 80.0, 85.0]
    p = paired_speedup(ref, [2 * x for x in ref])
    assert p == PairedRatio(speedup=2.0, low=2.0, high=2.0, blocks=10)
    assert p.measurable


def test_two_blocks_give_the_percentile_interval_of_four_equally_likely_resamples() -> None:
    """Pairs (1, 1) and (1, 3): a resample takes each pair 0, 1 or 2 times, so the variant's median is 1, 2 or 3 with
    probabilities 1/4, 1/2, 1/4 against a reference median of 1; the 2.5th and 97.5th percentiles are 1 and 3."""
    assert bootstrap_interval([1.0, 1.0], [1.0, 3.0]) == (1.0, 3.0)
    p = paired_speedup([1.0, 1.0], [1.0, 3.0])
    assert (p.speedup, p.low, p.high, p.blocks) == (2.0, 1.0, 3.0, 2)
    assert not p.measurable  # the interval contains 1.0


def test_pairing_keeps_shared_drift_out_of_the_interval() -> None:
    """The machine drifts between 55 and 93 tok/s; the variant is always 10 % faster than the reference timed next to it.
    Resampling pairs keeps the two sides together, so the interval stays tight around 1.1; resampling the sides
    independently (as if unpaired) would let the drift in."""
    ref = [55.0, 93.0, 57.0, 91.0, 60.0, 88.0, 58.0, 92.0, 56.0, 90.0, 59.0, 89.0]
    var = [1.1 * x for x in ref]
    low, high = bootstrap_interval(ref, var)
    assert low == pytest.approx(1.1) and high == pytest.approx(1.1)
    # the same numbers, pairs broken (the variant's blocks in another order): a wide interval around 1.1
    shuffled = var[1:] + var[:1]
    low2, high2 = bootstrap_interval(ref, shuffled)
    assert high2 - low2 > 0.3


def test_the_interval_is_reproducible_and_oriented_for_times() -> None:
    ref_ms = [100.0, 110.0, 95.0, 105.0, 120.0, 98.0]
    var_ms = [50.0, 56.0, 47.0, 52.0, 61.0, 49.0]
    a = paired_speedup(ref_ms, var_ms, higher_is_faster=False)
    b = paired_speedup(ref_ms, var_ms, higher_is_faster=False)
    assert a == b  # seeded resampling
    assert a.speedup == pytest.approx(102.5 / 51.0)  # medians: (100 + 105) / 2 over (50 + 52) / 2
    assert 1.9 < a.low <= a.speedup <= a.high < 2.1


# --------------------------------------------------------------------------- passes as batches


def test_each_pass_has_its_own_ratio_of_medians() -> None:
    ref = [10.0, 10.0, 10.0, 20.0, 20.0, 10.0]
    var = [15.0, 15.0, 16.0, 32.0, 34.0, 17.0]
    # pass 0: pairs 0-2 (medians 10 and 15), pass 1: pairs 3-4 (20 and 33), pass 2: pair 5 alone; labels need not be sorted
    assert pass_speedups(ref, var, [0, 0, 0, 1, 1, 2]) == pytest.approx([1.5, 1.65, 1.7])
    assert pass_speedups(ref, var, [2, 2, 2, 0, 0, 1]) == pytest.approx([1.65, 1.7, 1.5])  # in pass order
    assert pass_speedups([10.0, 10.0], [5.0, 5.0], [0, 1], higher_is_faster=False) == [2.0, 2.0]  # times: reference / variant
    with pytest.raises(ValueError, match="5 pass labels for 6 pairs"):
        pass_speedups(ref, var, [0, 0, 0, 1, 1])


def test_the_batch_means_interval_is_the_t_interval_of_the_log_speedups() -> None:
    """Passes at e^-a, 1 and e^a: mean log 0, standard deviation a, standard error a / sqrt(3); with 2 degrees of freedom the
    97.5 % quantile of t is 4.302653 (any t table), so the interval is e^(+-4.302653 a / sqrt(3))."""
    a = 0.01
    low, high = batch_means_interval([math.exp(-a), 1.0, math.exp(a)])
    half = 4.302653 * a / math.sqrt(3)
    assert (low, high) == (pytest.approx(math.exp(-half)), pytest.approx(math.exp(half)))
    assert batch_means_interval([1.6, 1.6, 1.6]) == (1.6, 1.6)  # identical passes: the point itself
    with pytest.raises(ValueError, match="2 pass\\(es\\); the batch-means interval needs at least 3"):
        batch_means_interval([1.5, 1.7])
    with pytest.raises(ValueError, match="positive"):
        batch_means_interval([1.5, 0.0, 1.7])


def test_passes_that_disagree_widen_the_interval_the_pairs_alone_would_give() -> None:
    """Within each pass the variant is a steady 1.5x, 1.6x or 1.7x faster (the host's share of compute moved between the
    passes). The bootstrap over pairs sees 12 pairs and stays within [1.5, 1.7]; the passes are three batches whose spread
    says a fourth pass could land well outside that, and the interval says so."""
    ref = [100.0, 90.0, 95.0, 105.0] * 3
    var = [r * k for k in (1.5, 1.6, 1.7) for r in ref[:4]]
    passes = [0] * 4 + [1] * 4 + [2] * 4
    alone = paired_speedup(ref, var)
    with_passes = paired_speedup(ref, var, passes=passes)
    assert alone.pass_speedups == () and 1.5 <= alone.low and alone.high <= 1.7
    assert with_passes.pass_speedups == pytest.approx((1.5, 1.6, 1.7))
    assert (with_passes.low, with_passes.high) == pytest.approx(batch_means_interval([1.5, 1.6, 1.7]))
    assert with_passes.low < 1.45 and with_passes.high > 1.75 and with_passes.speedup == alone.speedup
    # passes that agree leave the bootstrap's interval as it was (the union of the two)
    steady = paired_speedup(ref, [r * 1.6 for r in ref], passes=passes)
    assert (steady.low, steady.high) == (pytest.approx(1.6), pytest.approx(1.6))
    # two passes: one degree of freedom says nothing; their speed-ups are reported, the bootstrap's interval stands
    two = paired_speedup(ref[:8], var[:8], passes=passes[:8])
    assert two.pass_speedups == pytest.approx((1.5, 1.6))
    assert (two.low, two.high) == (paired_speedup(ref[:8], var[:8]).low, paired_speedup(ref[:8], var[:8]).high)


def test_contains_one() -> None:
    assert contains_one(0.98, 1.02)
    assert contains_one(1.0, 1.2) and contains_one(0.8, 1.0)  # the ends count
    assert not contains_one(1.01, 1.1)
    assert not contains_one(0.5, 0.99)
    with pytest.raises(ValueError, match="empty"):
        contains_one(1.2, 1.1)


def test_method_names_scipy() -> None:
    assert "scipy.stats.bootstrap" in METHOD and "percentile" in METHOD
    assert METHOD_WITH_PASSES.startswith(METHOD) and "scipy.stats.ttest_1samp" in METHOD_WITH_PASSES and "batch-means" in METHOD_WITH_PASSES


def test_intervals_overlap() -> None:
    assert intervals_overlap((0.9, 1.1), (1.05, 1.2))
    assert intervals_overlap((0.9, 1.1), (1.1, 1.2))  # touching ends share a point
    assert intervals_overlap((0.9, 1.3), (1.0, 1.1))  # one inside the other
    assert not intervals_overlap((0.9, 1.0), (1.01, 1.2))
    assert not intervals_overlap((1.01, 1.2), (0.9, 1.0))
    with pytest.raises(ValueError, match="empty"):
        intervals_overlap((1.2, 1.1), (1.0, 1.3))


# --------------------------------------------------------------------------- memory-bandwidth states


def test_a_pairs_bandwidth_is_the_median_of_the_probes_around_it() -> None:
    assert paired.pair_bandwidth([80.0, 45.0], [79.0, 46.0], [82.0, 80.0]) == [80.0, 46.0]
    assert paired.pair_bandwidth([80.0], [81.0], [44.0]) == [80.0]  # one low probe does not mark the pair


def test_unaligned_or_non_positive_probes_are_refused() -> None:
    with pytest.raises(ValueError, match="unaligned"):
        paired.pair_bandwidth([80.0, 80.0], [80.0], [80.0])
    with pytest.raises(ValueError, match="positive"):
        paired.pair_bandwidth([0.0], [80.0], [80.0])


def test_the_floor_is_a_share_of_the_peak() -> None:
    assert paired.bandwidth_floor(87.0) == pytest.approx(87.0 * paired.FULL_BANDWIDTH_SHARE)
    assert paired.bandwidth_floor(100.0, 0.5) == 50.0
    for peak, share in ((0.0, 0.7), (80.0, 0.0), (80.0, 1.5)):
        with pytest.raises(ValueError):
            paired.bandwidth_floor(peak, share)


def test_the_two_states_measured_here_fall_on_either_side_of_the_floor() -> None:
    """The probe ranges that set FULL_BANDWIDTH_SHARE (69-87 and 32-53 GB/s, peak 87): each state on its own side."""
    floor = paired.bandwidth_floor(87.2)
    assert 53.0 < floor < 69.0


def test_pairs_below_the_floor_are_left_out_and_too_few_left_is_no_speedup() -> None:
    bw = [80.0, 45.0, 79.0, 44.0, 81.0]
    keep = paired.kept_pairs(bw, 61.0)
    assert keep == [True, False, True, False, True]
    assert paired.free_bus(keep, 3)
    # only three reach the floor but four are needed: the bus was contended throughout, no speed-up (the contended
    # pairs are never counted in its place)
    assert not paired.free_bus(keep, 4)
    assert paired.kept_pairs(bw, 40.0) == [True] * 5
    # never fewer than the bootstrap's two pairs, whatever the rule asks
    assert not paired.free_bus([True, False, False], 1) and paired.free_bus([True, True], 0)


def test_a_pair_below_the_floor_counts_when_neither_side_drew_more_than_half_of_what_its_probe_read() -> None:
    """The figures of part 1 (benchmarks/efficiency-runs.md): PyTorch decoding the 538 MB float32 reference at 25 steps/s
    draws 13.5 GB/s, under half of a contended probe's 40 GB/s, so its pair counts; llama.cpp decoding it at 78 steps/s
    draws 42 GB/s, more than half of it, so it does not. A pair at the floor counts whatever it drew."""
    pytorch = paired.pair_draw((538e6, 425e6), (25.0, 31.0))
    llama = paired.pair_draw((538e6, 143e6), (78.0, 180.0))
    assert pytorch == pytest.approx(538e6 * 25.0) and llama == pytest.approx(538e6 * 78.0)  # the larger side's draw
    bw = [40e9, 40e9, 80e9, 20e9]
    assert paired.kept_pairs(bw, 56e9, [pytorch, llama, llama, pytorch]) == [True, False, True, False]
    # exactly half still counts; the share is a parameter with the same checks as the floor's
    assert paired.kept_pairs([40e9], 56e9, [20e9]) == [True]
    assert paired.kept_pairs([40e9], 56e9, [20e9], headroom=0.25) == [False]
    with pytest.raises(ValueError, match="unaligned"):
        paired.kept_pairs(bw, 56e9, [pytorch])
    with pytest.raises(ValueError, match="headroom"):
        paired.kept_pairs(bw, 56e9, [pytorch] * 4, headroom=0.0)
    with pytest.raises(ValueError, match="negative"):
        paired.pair_draw((538e6, -1.0), (25.0, 31.0))
