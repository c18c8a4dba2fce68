"""Speed: the statistics of repeated timings and the rule for how often to repeat.

Everything here is pure (no torch, no clock of its own) so it is tested directly;
the backends (``pytorch_backend``, ``llamacpp_backend``) produce the samples.

The protocol, the same on every backend:

1. Fixed prompt token ids (:func:`prompt_ids`): the same ids for every variant of a
   base model and every run, so prompt content and length never differ.
2. Warm-up runs first (:data:`WARMUP_RUNS`), untimed: the first call pays for lazy
   initialisation (allocator pools, kernel selection, bitsandbytes' CPU repacking,
   llama.cpp's graph reservation) that a user pays once, not per request.
3. Timed runs until at least :data:`MIN_RUNS` runs *and* :data:`MIN_SECONDS` seconds
   (:func:`keep_going`), so a fast variant is repeated more often and a slow one at
   least ten times; a cap keeps a pathological case finite.
4. Each figure is summarised as median, p90, min and max (:func:`summarize`), stored as
   :class:`kompakt.results.Stat`; the spread (max - min) / median says how steady it was.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kompakt.results import Stat

#: Untimed runs before timing. Two, not one: the first run allocates, the second shows
#: whether anything is still being set up (e.g. a KV cache grown to a new size).
WARMUP_RUNS = 2
#: At least ten timed runs: with ten samples the median is stable to a few percent on a
#: quiet machine, and p90 is then the second-largest sample rather than the largest.
MIN_RUNS = 10
#: ... and at least ten seconds of timed work, so short runs of a fast variant average
#: over frequency scaling and scheduler noise instead of catching one lucky moment.
MIN_SECONDS = 10.0
#: A cap on the number of runs (a variant that takes a millisecond per run would
#: otherwise run ten thousand times for no better median).
MAX_RUNS = 200
#: A cap on the timed seconds once MIN_RUNS are done: ten runs of a very slow variant
#: take as long as they take, but no variant is repeated beyond this.
MAX_SECONDS = 120.0


@dataclass(frozen=True)
class RepeatRule:
    """How many times to run: warm-up first, then until both minimums are met."""

    warmup: int = WARMUP_RUNS
    min_runs: int = MIN_RUNS
    min_seconds: float = MIN_SECONDS
    max_runs: int = MAX_RUNS
    max_seconds: float = MAX_SECONDS

    def keep_going(self, runs: int, elapsed_s: float) -> bool:
        return keep_going(runs, elapsed_s, self.min_runs, self.min_seconds, self.max_runs, self.max_seconds)


def keep_going(runs: int, elapsed_s: float, min_runs: int = MIN_RUNS, min_seconds: float = MIN_SECONDS,
               max_runs: int = MAX_RUNS, max_seconds: float = MAX_SECONDS) -> bool:
    """Whether another timed run is needed after ``runs`` runs that took ``elapsed_s`` seconds.

    Runs until *both* minimums are met; stops at ``max_runs`` runs or, once ``min_runs``
    are done, at ``max_seconds``. ``min_runs`` always wins over the time caps: fewer than
    ten samples make no median worth recording.
    """
    if runs < min_runs:
        return True
    if runs >= max_runs or elapsed_s >= max_seconds:
        return False
    return elapsed_s < min_seconds


def repeat(run: Callable[[], float], rule: RepeatRule = RepeatRule()) -> list[float]:
    """Call ``run`` ``rule.warmup`` times untimed, then as ``rule`` says; return what each timed call returned.

    ``run`` returns the seconds its own timed section took (it times itself, so setup
    inside it, such as building inputs, is not counted); the rule adds those up.
    """
    for _ in range(rule.warmup):
        run()
    samples: list[float] = []
    elapsed = 0.0
    while rule.keep_going(len(samples), elapsed):
        seconds = run()
        samples.append(seconds)
        elapsed += seconds
    return samples


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between order statistics.

    numpy's default ("linear", type 7 of Hyndman and Fan), written out so that the
    figures do not depend on numpy: p50 of [1, 2, 3, 4] is 2.5, p90 of 1..10 is 9.1.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def spread(values: Sequence[float]) -> float:
    """(max - min) / median: how far apart the repeats lie, relative to the figure (0 = identical)."""
    m = median(values)
    if m == 0:
        raise ValueError("spread around a zero median")
    return (max(values) - min(values)) / abs(m)


def summarize(values: Sequence[float]) -> Stat:
    """Median, p90, min and max of ``values`` as a results-file :class:`Stat`.

    The median is the figure (robust against a run the OS interrupted); p90 says how
    bad a slow run gets. Note that for a rate (tokens/s) p90 is a *fast* run, for a
    duration (ms) a slow one; both are recorded as they are.
    """
    if not values:
        raise ValueError("no samples to summarize")
    return Stat(value=median(values), p90=percentile(values, 90), min=min(values), max=max(values), repeats=len(values))


def rates(counts: float, seconds: Sequence[float]) -> list[float]:
    """Per-run rates ``counts / seconds`` (e.g. tokens per second of each run).

    The statistics are taken over the per-run rates, not derived from the median time,
    so min/max of a rate are the rates of real runs.
    """
    return [counts / s for s in seconds]


def relative_difference(a: float, b: float) -> float:
    """|a - b| / mean(a, b): how far two measurements of one figure lie apart (0.05 = 5 %)."""
    mean = (a + b) / 2
    if mean == 0:
        raise ValueError("relative difference of two zeros")
    return abs(a - b) / abs(mean)


def prompt_ids(n_tokens: int, vocab_size: int, *, avoid: Sequence[int] = (), batch_size: int = 1, seed: int = 0) -> list[list[int]]:
    """Fixed prompt token ids: ``batch_size`` rows of ``n_tokens`` ids, the same on every call.

    Random ids from a seeded generator rather than tokenized text, so the prompt has
    exactly ``n_tokens`` tokens for every tokenizer and needs no text file; special
    tokens (``avoid``: BOS, EOS, padding) are left out so no row ends early or masks
    itself. Rows differ from each other (a batch of identical rows could be cached or
    deduplicated by a clever backend), and row ``i`` is the same at every batch size.
    """
    if n_tokens < 1 or batch_size < 1:
        raise ValueError("n_tokens and batch_size must be at least 1")
    banned = set(avoid)
    allowed = vocab_size - len(banned & set(range(vocab_size)))
    if allowed < 1:
        raise ValueError("every id of the vocabulary is avoided")
    rng = random.Random(seed)
    rows = []
    for _ in range(batch_size):
        row: list[int] = []
        while len(row) < n_tokens:
            t = rng.randrange(vocab_size)
            if t not in banned:
                row.append(t)
        rows.append(row)
    return rows
