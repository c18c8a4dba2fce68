"""Paired speed-ups: the statistics of a variant timed against its reference in alternating blocks.

On a shared machine the same model's speed drifts by tens of percent from one minute to the next,
so two figures measured minutes apart cannot be divided. The harness therefore times the variant
and its reference in alternating blocks within one run (reference, variant, reference, variant,
...; :mod:`harness.measure.efficiency.pairing`), and this module turns the blocks into a speed-up:

- each block's figure is the median of its repeats (:func:`block_figure`);
- block ``i`` of the reference is paired with block ``i`` of the variant, the two timed next to
  each other (:func:`pair_blocks`);
- the speed-up is the ratio of the medians of the two sides' block figures
  (:func:`ratio_of_medians`), oriented so that above 1 is faster: variant / reference for a rate
  (tokens/s), reference / variant for a time (ms);
- its 95 % confidence interval comes from a bootstrap over the *pairs* of blocks
  (:func:`bootstrap_interval`): ``scipy.stats.bootstrap`` with ``paired=True`` resamples block
  indices, so drift that moves both sides of a pair together stays together;
- when the pairs were timed in :data:`MIN_PASSES` or more *passes* spread over the run, the interval is widened to
  cover the batch-means interval over the passes (:func:`pass_speedups`, :func:`batch_means_interval`): see below;
- an interval that contains 1.0 is no measurable difference (:func:`contains_one`), and the
  leaderboard does not rank it as a number;
- pairs timed while other work on the host drew on the memory bus are left out
  (:func:`pair_bandwidth`, :func:`bandwidth_floor`, :func:`kept_pairs`), and a measurement with too few pairs
  left has no speed-up (:func:`free_bus`): see below.

Why pairs are filtered by memory bandwidth. Pairing cancels a drift that slows both sides alike.
It cannot cancel one that slows one side only. On the shared VM this was built on, the host's
memory bandwidth switches between two states (about 80 and about 45 GB/s in a copy probe, each
lasting tens of seconds to minutes); a memory-bound side (llama.cpp decoding the float32
reference) slows by a third in the low state, a compute-bound one (a 4-bit file) barely moves,
so the same Q8_0 file reads 1.5x in the high state and 2.2x in the low one, and two runs that
happen to sample the states in different proportions disagree by 20 % (README, *Paired
speed-ups*). The harness therefore probes the bandwidth before every block and after every
variant block; a pair's bandwidth is the median of the three probes around it, and the speed-ups are computed from the
pairs whose bandwidth reaches :data:`FULL_BANDWIDTH_SHARE` of the highest probe seen: the
machine undisturbed, which is what a hardware profile describes. The left-out pairs stay
counted in the results file with their own decode speed-up. When fewer pairs than the rule's minimum reach the
floor (the bus contended throughout), the measurement has no speed-up: the contended pairs' ratio is recorded
apart, as that state's figure, and never in the free-bus figure's place (:func:`free_bus`). On request only (the
harness's ``PairedRule.bus_headroom``, off by default since two runs under it agreed less well: efficiency-runs.md, *Part 1 under
the headroom rule*), a pair below the floor counts when neither side drew more than half the bandwidth its probe read (:func:`pair_draw`,
:data:`BUS_HEADROOM_SHARE`): a compute-bound side (PyTorch decoding these models draws a fifth of the free bus) runs
nearly alike in both states, its contended pairs reading the free pairs' speed-up within 5 %; a memory-bound side never
passes this test on a contended bus.

Why the interval looks at passes too. The bootstrap treats the pairs as independent draws from one machine. They are
not: the pairs of one stretch of a few minutes share the host's state, and a compute-bound variant against the
memory-bound reference moves with the host's share of compute over tens of minutes to hours, which no bandwidth
probe sees. In the two runs of two passes each over all 26 measurements (README, *Paired speed-ups*), the two
passes of one run gave speed-ups whose bootstrap intervals did not overlap for 6 of 52 (variant, backend, run),
where two intervals of one quantity miss each other far less than 5 % of the time; and 4 of 13 llama.cpp
speed-ups moved between the runs by more than their intervals. The pairs of a pass are therefore one *batch*:
a run times each measurement in several passes spread over the run, each pass gives its own speed-up (the ratio
of medians of its pairs), and the passes' log speed-ups give a t-interval (``scipy.stats.ttest_1samp``), the
method of batch means for autocorrelated measurements (Law & Kelton, *Simulation Modeling and Analysis*,
ch. 9, the method of batch means). The recorded interval is the union of that interval and the bootstrap's: each is the wider one in
some state of the machine (the batch means with few pairs in a pass, the bootstrap when the passes happen to
agree); the speed-up itself stays the ratio of medians over every pair. With fewer than :data:`MIN_PASSES`
passes the t-interval of 1 degree of freedom is too wide to say anything (its quantile is 12.7), and the
bootstrap interval stands alone, as in every file before passes were counted.

Everything here is pure (hand-made numbers in, numbers out) and tested directly; scipy is
imported only by :func:`bootstrap_interval`, so the leaderboard, which only reads intervals,
does not need it.

Why scipy's percentile interval and not BCa (scipy's default): BCa's acceleration comes from a
jackknife that is undefined when the block figures coincide (identical timings give a NaN
interval), while the percentile interval is defined for any data and is the textbook bootstrap
interval for a median. The resampling is seeded, so the same blocks always give the same
interval.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

#: The confidence level of every interval.
CONFIDENCE = 0.95
#: Bootstrap resamples (scipy's default).
RESAMPLES = 9999
#: The seed of the resampling: the same blocks give the same interval.
SEED = 0
#: At least this many pairs of blocks for an interval (a bootstrap of one pair says nothing).
MIN_BLOCKS = 2
#: A pair of blocks counts when its bandwidth is at least this share of the highest probe seen.
#: In 537 probes over five minutes here the high state read 69-87 GB/s and the low one 32-53 GB/s;
#: 0.70 of the peak (61 GB/s) lies between the two.
FULL_BANDWIDTH_SHARE = 0.70
#: A pair below the floor still counts when neither side drew more than this share of the bandwidth its probe read: the
#: bus, even contended, was not what limited it (:func:`kept_pairs`). Why half: the probe is read before and after the
#: blocks, not during them, and the bus moves between its states within a pair now and then, so the draw keeps a margin
#: of two. Measured: PyTorch decoding of these models draws 10 to 14 GB/s, and within the same runs its contended pairs
#: read the free pairs' speed-ups within 0 to 3 % (``prune-8``, ``rtn8``, ``prune-explicit-4``, the A/A check) and ``rtn4``
#: 2 to 5 % higher; llama.cpp's float32 reference draws 54 GB/s, more than the 40 to 45 GB/s a contended bus gives, and
#: the contended pairs of its quantized files read 25 to 45 % higher (README, *Paired speed-ups*). So the rule lets in a
#: shift of up to about 5 % where a run is mostly contended, where the floor alone left no speed-up at all. Used only on
#: request: two runs under it found such pairs 2 to 6 times as noisy and `prune-8` 5 % higher (efficiency-runs.md, *Part 1 under
#: the headroom rule*).
BUS_HEADROOM_SHARE = 0.5
#: Passes with pairs needed for the batch-means interval (2 passes leave 1 degree of freedom: a t quantile of 12.7).
MIN_PASSES = 3
#: How :func:`bootstrap_interval` computes its interval, as results files record it.
METHOD = f"scipy.stats.bootstrap over paired blocks, percentile interval, {RESAMPLES} resamples, seed {SEED}"
#: How the interval is computed when passes widen it (:func:`paired_speedup` with ``passes``).
METHOD_WITH_PASSES = (f"{METHOD}; widened to the batch-means t-interval over the passes' log speed-ups "
                      f"(scipy.stats.ttest_1samp, at least {MIN_PASSES} passes) where that is wider")


@dataclass(frozen=True)
class PairedRatio:
    """A speed-up with its interval, from paired blocks."""

    speedup: float
    """Ratio of medians, above 1 = the variant is faster."""
    low: float
    """Lower end of the confidence interval."""
    high: float
    """Upper end of the confidence interval."""
    blocks: int
    """Number of pairs of blocks."""
    pass_speedups: tuple[float, ...] = ()
    """Each pass's own speed-up, in pass order (empty when the pairs were not timed in passes)."""

    @property
    def measurable(self) -> bool:
        """False when the interval contains 1.0: no measurable difference from the reference."""
        return not contains_one(self.low, self.high)


def block_figure(samples: Sequence[float]) -> float:
    """One block's figure: the median of its repeats."""
    if not samples:
        raise ValueError("a block without samples")
    return float(statistics.median(samples))


def pair_blocks(reference: Sequence[float], variant: Sequence[float]) -> list[tuple[float, float]]:
    """Block ``i`` of the reference with block ``i`` of the variant (timed next to each other).

    Both sides must have the same number of blocks, at least :data:`MIN_BLOCKS`, every figure > 0.
    """
    if len(reference) != len(variant):
        raise ValueError(f"unpaired blocks: {len(reference)} of the reference, {len(variant)} of the variant")
    if len(reference) < MIN_BLOCKS:
        raise ValueError(f"{len(reference)} pair(s) of blocks; at least {MIN_BLOCKS} are needed for an interval")
    if any(x <= 0 for x in (*reference, *variant)):
        raise ValueError("block figures must be positive (rates or times)")
    return list(zip(reference, variant, strict=True))


def ratio_of_medians(reference: Sequence[float], variant: Sequence[float], *, higher_is_faster: bool = True) -> float:
    """The speed-up: median(variant) / median(reference) for a rate, the inverse for a time (above 1 = faster)."""
    ref, var = float(statistics.median(reference)), float(statistics.median(variant))
    return var / ref if higher_is_faster else ref / var


def bootstrap_interval(reference: Sequence[float], variant: Sequence[float], *, higher_is_faster: bool = True,
                       confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """The ``confidence`` interval of :func:`ratio_of_medians` from a bootstrap over the paired blocks."""
    import numpy as np
    from scipy.stats import bootstrap

    pairs = pair_blocks(reference, variant)
    ref = np.array([p[0] for p in pairs], dtype=float)
    var = np.array([p[1] for p in pairs], dtype=float)

    def statistic(r: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
        num, den = (np.median(v, axis=axis), np.median(r, axis=axis)) if higher_is_faster else (np.median(r, axis=axis), np.median(v, axis=axis))
        return num / den

    result = bootstrap((ref, var), statistic, paired=True, vectorized=True, n_resamples=resamples, confidence_level=confidence,
                       method="percentile", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return float(low), float(high)


def pass_speedups(reference: Sequence[float], variant: Sequence[float], passes: Sequence[int], *,
                  higher_is_faster: bool = True) -> list[float]:
    """Each pass's speed-up: the ratio of medians of the pairs timed in it (``passes[i]``: the pass of pair ``i``), in pass
    order; a pass without pairs has none."""
    pair_blocks(reference, variant)
    if len(passes) != len(reference):
        raise ValueError(f"{len(passes)} pass labels for {len(reference)} pairs of blocks")
    out = []
    for label in sorted(set(passes)):
        idx = [i for i, p in enumerate(passes) if p == label]
        out.append(ratio_of_medians([reference[i] for i in idx], [variant[i] for i in idx], higher_is_faster=higher_is_faster))
    return out


def batched(passes: int) -> bool:
    """Whether pairs from ``passes`` passes get the batch-means interval: at least :data:`MIN_PASSES`."""
    return passes >= MIN_PASSES


def batch_means_interval(speedups: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The ``confidence`` interval of the typical speed-up from independent batches (passes): a t-interval of the mean of
    the log speed-ups (``scipy.stats.ttest_1samp``), back on the ratio scale. At least :data:`MIN_PASSES` batches."""
    import numpy as np
    from scipy.stats import ttest_1samp

    if not batched(len(speedups)):
        raise ValueError(f"{len(speedups)} pass(es); the batch-means interval needs at least {MIN_PASSES}")
    if any(x <= 0 for x in speedups):
        raise ValueError("speed-ups must be positive")
    logs = np.log(np.asarray(speedups, dtype=float))
    if np.ptp(logs) == 0:  # identical batches: the t statistic is undefined, the interval is the point
        return float(speedups[0]), float(speedups[0])
    ci = ttest_1samp(logs, 0.0).confidence_interval(confidence_level=confidence)
    return float(np.exp(ci.low)), float(np.exp(ci.high))


def paired_speedup(reference: Sequence[float], variant: Sequence[float], *, higher_is_faster: bool = True,
                   confidence: float = CONFIDENCE, passes: Sequence[int] | None = None) -> PairedRatio:
    """Speed-up and interval of paired block figures (``reference[i]`` timed next to ``variant[i]``).

    ``passes``: the pass each pair was timed in. With pairs in at least :data:`MIN_PASSES` passes, the interval is the
    union of the bootstrap's and the batch-means interval over the passes (module docstring)."""
    pairs = pair_blocks(reference, variant)
    value = ratio_of_medians(reference, variant, higher_is_faster=higher_is_faster)
    low, high = bootstrap_interval(reference, variant, higher_is_faster=higher_is_faster, confidence=confidence)
    per_pass: tuple[float, ...] = ()
    if passes is not None:
        per_pass = tuple(pass_speedups(reference, variant, passes, higher_is_faster=higher_is_faster))
        if batched(len(per_pass)):
            b_low, b_high = batch_means_interval(per_pass, confidence)
            low, high = min(low, b_low), max(high, b_high)
    return PairedRatio(speedup=value, low=low, high=high, blocks=len(pairs), pass_speedups=per_pass)


def contains_one(low: float, high: float) -> bool:
    """Whether the interval [low, high] contains 1.0: no measurable difference from the reference."""
    if low > high:
        raise ValueError(f"interval [{low}, {high}] is empty")
    return low <= 1.0 <= high


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether intervals ``a`` and ``b`` (each ``(low, high)``) share at least one point (two runs that agree)."""
    for low, high in (a, b):
        if low > high:
            raise ValueError(f"interval [{low}, {high}] is empty")
    return a[0] <= b[1] and b[0] <= a[1]


def pair_bandwidth(before_reference: Sequence[float], before_variant: Sequence[float], after_variant: Sequence[float]) -> list[float]:
    """Each pair's bandwidth: the median of the probes before its reference block, before its variant block and after its
    variant block. The median and not the lowest: one probe in three dips below the floor now and then while the blocks
    around it run at full speed (2 of 25 pairs in a trial here), and a state lasts tens of seconds, far longer than a pair."""
    if not len(before_reference) == len(before_variant) == len(after_variant):
        raise ValueError(f"unaligned probes: {len(before_reference)}, {len(before_variant)} and {len(after_variant)}")
    if any(x <= 0 for x in (*before_reference, *before_variant, *after_variant)):
        raise ValueError("bandwidth probes must be positive")
    return [float(statistics.median(p)) for p in zip(before_reference, before_variant, after_variant, strict=True)]


def bandwidth_floor(peak: float, share: float = FULL_BANDWIDTH_SHARE) -> float:
    """The lowest bandwidth a pair may have to count: ``share`` of the highest probe seen."""
    if peak <= 0 or not 0 < share <= 1:
        raise ValueError("the peak must be positive and the share in (0, 1]")
    return peak * share


def kept_pairs(bandwidth: Sequence[float], floor: float, drawn: Sequence[float] | None = None,
               headroom: float = BUS_HEADROOM_SHARE) -> list[bool]:
    """Which pairs the speed-ups use: those at or above ``floor`` (the machine undisturbed), and, given each pair's
    ``drawn`` bandwidth (:func:`pair_draw`), those below it whose draw stayed within ``headroom`` of what the probe read
    (the bus, even contended, did not limit them: :data:`BUS_HEADROOM_SHARE`)."""
    if drawn is None:
        return [b >= floor for b in bandwidth]
    if len(drawn) != len(bandwidth):
        raise ValueError(f"unaligned pairs: {len(bandwidth)} bandwidth probes and {len(drawn)} draws")
    if not 0 < headroom <= 1:
        raise ValueError("the headroom must be in (0, 1]")
    return [b >= floor or d <= headroom * b for b, d in zip(bandwidth, drawn, strict=True)]


def pair_draw(step_bytes: tuple[float, float], steps_per_s: tuple[float, float]) -> float:
    """The memory bandwidth (bytes/s) a pair drew at most while decoding: the larger of its two sides' bytes read per
    decoding step (the weights; the KV cache of a short context is small beside them) times their steps per second.
    Each side's steps per second is its block's decode rate over the batch size: one step reads the weights once."""
    if any(x < 0 for x in (*step_bytes, *steps_per_s)):
        raise ValueError(f"bytes per step and steps per second must not be negative: {step_bytes}, {steps_per_s}")
    return max(b * s for b, s in zip(step_bytes, steps_per_s, strict=True))


def free_bus(kept: Sequence[bool], minimum: int) -> bool:
    """Whether enough pairs reached the floor for a speed-up: at least ``minimum`` of them, and never fewer than
    :data:`MIN_BLOCKS`. When fewer did, the memory bus was contended throughout and the measurement has no free-bus
    speed-up at all; the contended pairs are not counted in its place (module docstring).

    Why not: a variant whose speed follows the bandwidth differently from its reference's reads another ratio on a
    contended bus. In two runs of the same twelve measurements (README, *Paired speed-ups*), the three llama.cpp
    measurements that run 1 timed with no pair at the floor, every pair counted, read 1.84x, 1.92x and 1.12x against
    1.44x, 1.41x and 1.03x at the floor in run 2, while run 2's own contended pairs of the first two read 1.83x and
    1.91x: a second state of the machine, faithfully measured, that a hardware profile does not describe."""
    return sum(kept) >= max(MIN_BLOCKS, minimum)
