"""Paired timing: a variant and its reference in alternating blocks on one backend, in one run.

The protocol (the statistics are :mod:`kompakt.paired`):

1. Both sides run on the same backend with the same settings (threads, device, dtype), the same
   fixed prompt ids, lengths and batch size.
2. Blocks alternate: reference, variant, reference, variant, ... Each block is ``warmup`` untimed
   generations and prefills (switching models evicts the other's weights from the caches), then
   ``repeats`` timed generations and ``repeats`` timed prefills.
3. The memory bandwidth is probed before every block and after every variant block
   (:class:`~harness.measure.efficiency.bandwidth.BandwidthProbe`, a few milliseconds); a pair whose
   median probe is below :data:`kompakt.paired.FULL_BANDWIDTH_SHARE` of the highest probe seen was
   timed while other work on the host drew on the memory bus, and does not count; with
   :attr:`PairedRule.bus_headroom` (off by default) it counts when neither side drew more than half of what its probe
   read (bytes read per decoding step, their weights, times steps per second; :data:`kompakt.paired.BUS_HEADROOM_SHARE`):
   then the bus, even contended, was not what limited it, though the host was busier and such pairs noisier.
4. Blocks continue until at least ``min_runs`` pairs count and the counted blocks of both sides hold
   ``min_seconds`` of timed work each (:class:`~harness.measure.efficiency.speed.RepeatRule`, the same
   rule as for unpaired repeats, counted in blocks), capped as that rule caps over all pairs; when the
   cap comes first, the bus was contended throughout and the record has no speed-up, only the contended
   pairs' own decode ratio beside the reason (:func:`kompakt.paired.free_bus`). A caller may time it again
   later in an *extra pass* (an index past the passes, ``fresh_caps``): the whole rule's minimums over the
   pooled pairs at full bandwidth and at least one pass's share of them (``own_pairs``) among its own, the
   whole rule's caps over its own blocks, so it may time as much as a whole measurement does and no more. The
   same serves a measurement whose pairs at full bandwidth come from too few passes for the batch-means
   interval (:data:`kompakt.paired.MIN_PASSES`): the extra pass adds one more stretch of time. Before it, the caller may wait a while for the bus to come
   free (:func:`wait_for_free_bus`), and within it, before every pair whose probe reads below the floor (``bus_wait_s``):
   the bus of the host switches between free and contended stretches of seconds to many minutes, and a pair timed on a
   contended bus is timed for nothing.
5. Both models stay loaded in this process when they fit the profile's memory budget together
   (``same_process``); otherwise every block runs in a process of its own that loads its model,
   runs the block and exits (``process_per_block``). Which one was used is recorded.
6. A pairing may be timed in several *passes*, minutes apart, each in a process of its own
   (:attr:`PairedReference.passes`; the efficiency benchmark's ``--passes``): each pass brings the
   pooled blocks up to its share of the rule (:func:`pass_rule`) and hands its blocks on
   (:func:`blocks_to_json`), and the figures of the last pass pool every pass's pairs. Why: the
   pairs of one pass lie within a few minutes, so their interval says nothing of a drift that
   moves one side against the other over tens of minutes (a compute-bound 4-bit file against the
   memory-bound float32 reference moved by 3 to 5 % between two runs, README, *Paired speed-ups*);
   pairs from two separate stretches of the run put that drift into the spread of the pairs.

Each block's figure is the median of its repeats; the speed-up is the ratio of the medians of the
two sides' block figures with a bootstrap interval over the pairs of blocks
(:func:`kompakt.paired.paired_speedup`). The variant's absolute figures (median, p90, min, max)
are taken over all its repeats in all blocks, as unpaired figures are over theirs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from harness.measure.efficiency.speed import RepeatRule, rates
from kompakt import paired as stats
from kompakt.profiles import Profile
from kompakt.results import PairedFigure, PairedSpeed

Loading = Literal["same_process", "process_per_block"]


@dataclass(frozen=True)
class PairedRule:
    """How many blocks, and what each block holds."""

    blocks: RepeatRule = RepeatRule(warmup=1, min_runs=10, min_seconds=10.0, max_runs=200, max_seconds=600.0)
    """Blocks per side: at least ``min_runs`` and ``min_seconds`` of timed work, capped like any repeat rule;
    ``warmup`` is the untimed generations (and prefills) at the start of *every* block."""
    repeats: int = 3
    """Timed generations (and prefills) in each block."""
    bus_headroom: bool = False
    """Also count pairs below the free-bus floor whose draw stayed within the bus's headroom (module docstring, 3). Off
    by default: in two runs of part 1 under it (efficiency-runs.md, *Part 1 under the headroom rule*) such pairs were two to six
    times as noisy as free-bus pairs and moved ``prune-8``'s speed-up by 5 %, so two runs agreed within 5 % for 8 of 12."""

    @property
    def warmup(self) -> int:
        return self.blocks.warmup


@dataclass(frozen=True)
class PairedReference:
    """What to pair a variant's timings with."""

    path: Path
    """The reference as the backend runs it (a checkpoint folder, or a ``.gguf`` for llama.cpp)."""
    label: str
    """How the results file names it (variant id and artifact)."""
    aa_check: bool = False
    """The timed variant is the reference itself, loaded a second time (an A/A check)."""
    loading: Literal["auto", "same_process", "process_per_block"] = "auto"
    """``auto``: both models loaded at once when they fit the profile's budget together."""
    rule: PairedRule = PairedRule()
    """How many blocks, and what each holds."""
    bandwidth_peak: float = 0.0
    """The highest bandwidth probe (bytes/s) seen before this measurement, e.g. by earlier measurements of the same benchmark
    in processes of their own; the floor is a share of the higher of it and this measurement's own probes."""
    passes: int = 1
    """In how many passes, minutes apart and each in a process of its own, this pairing is timed (module docstring, 6)."""
    pass_index: int = 0
    """Which pass this is (0-based): it brings the pooled blocks up to ``(pass_index + 1) / passes`` of the rule."""
    earlier: dict[int, tuple[list[Block], list[Block]]] = field(default_factory=dict)
    """The (reference, variant) blocks of the earlier passes per batch size, pooled with this pass's."""


@dataclass
class Block:
    """The timings of one block of one side."""

    prefill_s: list[float]
    """Seconds of each timed prefill."""
    stamps: list[list[float]]
    """Each timed generation's ``[call, token 1, ..., token n]``."""
    energy: list[Any] = field(default_factory=list)
    """Energy readings around the timed generations (:class:`~harness.measure.efficiency.energy.EnergyReading`)."""
    bandwidth_before: float | None = None
    """The bandwidth probe just before the block (bytes/s); None when not probed."""
    bandwidth_after: float | None = None
    """The probe just after the block (variant blocks only; the next reference block's ``bandwidth_before``)."""
    pass_index: int = 0
    """The pass (0-based) the block was timed in; each pass is one batch of the interval (:mod:`kompakt.paired`)."""

    @property
    def seconds(self) -> float:
        return sum(self.prefill_s) + sum(ts[-1] - ts[0] for ts in self.stamps)


def blocks_to_json(blocks: list[Block]) -> list[dict[str, Any]]:
    """Blocks as plain data (for the next pass, in another process)."""
    return [dataclasses.asdict(b) for b in blocks]


def blocks_from_json(data: list[dict[str, Any]]) -> list[Block]:
    """The blocks :func:`blocks_to_json` wrote."""
    from harness.measure.efficiency.energy import EnergyReading

    return [Block(**{**d, "energy": [EnergyReading(**e) for e in d.get("energy", [])]}) for d in data]


def earlier_from_raw(raw: dict[str, Any] | None) -> dict[int, tuple[list[Block], list[Block]]]:
    """The blocks an earlier pass left in its result's ``raw`` figures (``batch<b>`` -> ``pairs``), per batch size, as
    :attr:`PairedReference.earlier` takes them."""
    return {int(k.removeprefix("batch")): (blocks_from_json(v["pairs"]["reference"]), blocks_from_json(v["pairs"]["variant"]))
            for k, v in (raw or {}).items() if k.startswith("batch") and "pairs" in v}


def pass_label(index: int, passes: int) -> str:
    """``", pass 2 of 2"`` for progress lines (``", extra pass 1"`` past the passes); empty when there is one pass."""
    if index >= passes:
        return f", extra pass {index - passes + 1}"
    return f", pass {index + 1} of {passes}" if passes > 1 else ""


def pass_rule(rule: PairedRule, index: int, passes: int) -> PairedRule:
    """The rule of pass ``index`` (0-based) of ``passes``, counted over the pooled blocks of this pass and the earlier ones:
    its minimums and caps are ``(index + 1) / passes`` of the whole rule's (rounded up, at least the bootstrap's minimum
    of pairs), so every pass adds about an equal share and the last one ends under the whole rule.

    An index of ``passes`` or more is an *extra pass*, for a measurement whose pairs fell short of the minimum at full
    bandwidth, or came from too few passes (module docstring, 4): it has the whole rule, its caps counted over its own
    blocks (:func:`time_blocks` with ``fresh_caps`` and ``own_pairs``, one pass's share of the minimum)."""
    if passes < 1 or index < 0:
        raise ValueError(f"pass {index} of {passes}: passes must be at least 1 and the index at least 0")
    share = min(1.0, (index + 1) / passes)
    b = rule.blocks
    blocks = dataclasses.replace(b, min_runs=max(stats.MIN_BLOCKS, math.ceil(b.min_runs * share)), min_seconds=b.min_seconds * share,
                                 max_runs=max(stats.MIN_BLOCKS, math.ceil(b.max_runs * share)), max_seconds=b.max_seconds * share)
    return dataclasses.replace(rule, blocks=blocks)


def run_block(be: Any, prompt: list[list[int]], new_tokens: int, repeats: int, warmup: int, meter: Any = None) -> Block:
    """One block on a loaded backend: warm-up, then ``repeats`` timed generations and prefills."""
    for _ in range(warmup):
        be.generate(prompt, new_tokens)
        be.prefill(prompt)
    if meter is not None:
        meter.start()
    stamps = [be.generate(prompt, new_tokens) for _ in range(repeats)]
    energy = meter.stop() if meter is not None else []
    prefill = [be.prefill(prompt) for _ in range(repeats)]
    return Block(prefill, stamps, energy)


class Side(Protocol):
    """One side of a pair: runs a block when asked."""

    def block(self, prompt: list[list[int]], new_tokens: int, repeats: int, warmup: int) -> Block: ...


@dataclass
class LoadedSide:
    """A model loaded in this process (``same_process``)."""

    backend: Any
    meter: Any = None
    """An energy meter read around the timed generations (the variant's side only)."""

    def block(self, prompt: list[list[int]], new_tokens: int, repeats: int, warmup: int) -> Block:
        return run_block(self.backend, prompt, new_tokens, repeats, warmup, self.meter)


def _block_process(name: str, path: str, profile: Profile, options: Any, threads: int, prompt: list[list[int]], new_tokens: int,
                   repeats: int, warmup: int, energy: bool, queue: Any) -> None:
    """The body of a ``process_per_block`` block: load, run one block, report, exit."""
    try:
        if not Path(path).exists():  # before importing torch: a missing file is reported in a second
            raise FileNotFoundError(f"no model at {path}")
        import torch

        torch.set_num_threads(threads)
        from harness.measure.backends import open_backend
        from harness.measure.efficiency.energy import EnergyMeter

        be = open_backend(name, Path(path), profile, options)
        try:
            meter = EnergyMeter(device=be.device) if energy else None
            b = run_block(be, prompt, new_tokens, repeats, warmup, meter if meter is not None and meter.available else None)
        finally:
            be.close()
        queue.put({"prefill_s": b.prefill_s, "stamps": b.stamps, "energy": [dataclasses.asdict(e) for e in b.energy]})
    except BaseException as err:  # report, do not hang the parent
        import traceback

        queue.put({"error": f"{type(err).__name__}: {err}\n{traceback.format_exc()[-1500:]}"})


@dataclass
class ProcessSide:
    """A model loaded afresh for every block, in a process of its own (``process_per_block``)."""

    backend: str
    path: Path
    profile: Profile
    options: Any = None
    energy: bool = False

    def block(self, prompt: list[list[int]], new_tokens: int, repeats: int, warmup: int) -> Block:
        import multiprocessing as mp

        import torch

        from harness.measure.efficiency.energy import EnergyReading

        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_block_process, args=(self.backend, str(self.path), self.profile, self.options, torch.get_num_threads(),
                                                        prompt, new_tokens, repeats, warmup, self.energy, queue))
        proc.start()
        out = queue.get()
        proc.join()
        if "error" in out:
            raise RuntimeError(f"a block in its own process failed ({self.path}): {out['error']}")
        return Block(out["prefill_s"], out["stamps"], [EnergyReading(**e) for e in out["energy"]])


class Probe(Protocol):
    """A bandwidth probe (:class:`~harness.measure.efficiency.bandwidth.BandwidthProbe`): bytes/s when called."""

    def __call__(self) -> float: ...

    @property
    def peak(self) -> float: ...


def pair_bandwidths(ref_blocks: list[Block], var_blocks: list[Block]) -> list[float] | None:
    """Each pair's bandwidth (bytes/s, :func:`kompakt.paired.pair_bandwidth`); None when the blocks were not probed."""
    before_r = [b.bandwidth_before for b in ref_blocks]
    before_v = [b.bandwidth_before for b in var_blocks]
    after_v = [b.bandwidth_after for b in var_blocks]
    if not var_blocks or any(x is None for x in (*before_r, *before_v, *after_v)):
        return None
    return stats.pair_bandwidth(before_r, before_v, after_v)  # type: ignore[arg-type]


def pair_draws(ref_blocks: list[Block], var_blocks: list[Block], step_bytes: tuple[float, float] | None) -> list[float] | None:
    """Each pair's memory draw (bytes/s, :func:`kompakt.paired.pair_draw`) from the two sides' bytes read per decoding step
    (``step_bytes``: reference, variant; their weights) and each block's median decoding steps per second; None without
    ``step_bytes``."""
    if step_bytes is None:
        return None
    from harness.measure.efficiency import generation_samples

    def steps_per_s(b: Block) -> float:  # a batch size of 1 turns decode tokens/s into steps/s at any batch size
        return stats.block_figure(generation_samples(b.stamps, 1)["decode_tps"])

    return [stats.pair_draw(step_bytes, (steps_per_s(r), steps_per_s(v))) for r, v in zip(ref_blocks, var_blocks, strict=True)]


def kept(ref_blocks: list[Block], var_blocks: list[Block], peak: float, step_bytes: tuple[float, float] | None = None) -> list[bool]:
    """Which pairs count (:func:`kompakt.paired.kept_pairs`, with each pair's draw when ``step_bytes`` is given); all of
    them when the blocks were not probed."""
    bw = pair_bandwidths(ref_blocks, var_blocks)
    if bw is None or peak <= 0:
        return [True] * len(var_blocks)
    return stats.kept_pairs(bw, stats.bandwidth_floor(peak), pair_draws(ref_blocks, var_blocks, step_bytes))


def _keep_going(rule: PairedRule, ref_blocks: list[Block], var_blocks: list[Block], peak: float, caps_from: int = 0,
                own_pairs: int = 0, step_bytes: tuple[float, float] | None = None) -> bool:
    """Another pair? Caps count every pair from ``caps_from`` on; the minimums count only the pairs at full bandwidth, and
    at least ``own_pairs`` of them must lie from ``caps_from`` on."""
    r = rule.blocks
    capped_r, capped_v = ref_blocks[caps_from:], var_blocks[caps_from:]
    total_s = min(sum(b.seconds for b in capped_r), sum(b.seconds for b in capped_v))
    if len(capped_v) >= r.max_runs or (len(capped_v) >= r.min_runs and total_s >= r.max_seconds):
        return False
    keep = kept(ref_blocks, var_blocks, peak, step_bytes)
    if sum(keep[caps_from:]) < own_pairs:
        return True
    kept_s = min(sum(b.seconds for b, k in zip(ref_blocks, keep) if k), sum(b.seconds for b, k in zip(var_blocks, keep) if k))
    return r.keep_going(sum(keep), kept_s)


#: How long an extra pass waits at most for the memory bus to come free before it times anyway (seconds), and how often it
#: looks. Why: on 2026-12-01 the bus read about 45 GB/s for most of an hour, with free stretches of one to several
#: minutes between (README, *Paired speed-ups*); an extra pass timed at once, right after the passes that found the bus
#: contended, most likely finds it contended again. Five minutes covers the gap between free stretches seen that day;
#: each look is one probe of a few milliseconds, so the waiting costs the machine nothing.
FREE_BUS_WAIT_S = 300.0
FREE_BUS_POLL_S = 5.0


def wait_for_free_bus(probe: Probe, floor: float, limit_s: float = FREE_BUS_WAIT_S, poll_s: float = FREE_BUS_POLL_S,
                      sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None) -> tuple[bool, float, float]:
    """Probe every ``poll_s`` seconds until a probe reads at least ``floor`` (bytes/s) or ``limit_s`` have passed; returns
    (whether the bus came free, the seconds waited, the last probe)."""
    import time

    sleep = sleep or time.sleep
    clock = clock or time.monotonic
    start = clock()
    while True:
        reading = probe()
        waited = clock() - start
        if reading >= floor or waited >= limit_s:
            return reading >= floor, waited, reading
        sleep(min(poll_s, max(0.0, limit_s - waited)))


def time_blocks(reference: Side, variant: Side, prompt: list[list[int]], new_tokens: int, rule: PairedRule,
                log: Callable[[str], None] | None = None, probe: Probe | None = None,
                earlier: tuple[list[Block], list[Block]] | None = None, pass_index: int = 0,
                fresh_caps: bool = False, own_pairs: int = 0, bus_wait_s: float = 0.0,
                step_bytes: tuple[float, float] | None = None,
                sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None) -> tuple[list[Block], list[Block]]:
    """Alternate blocks, reference first, until ``rule`` says stop; returns (reference blocks, variant blocks).

    With a ``probe``, every block records the bandwidth before it (and every variant block the one after it), and
    only the pairs at full bandwidth count towards the rule's minimums, or, given ``step_bytes`` (reference, variant:
    bytes read per decoding step), also those whose draw stayed within the headroom of the probe
    (:data:`kompakt.paired.BUS_HEADROOM_SHARE`). ``earlier``: the blocks of earlier passes, which
    the rule counts and the returned lists begin with; ``pass_index``: the pass the new blocks belong to;
    ``fresh_caps``: the caps count only the new blocks, and at least ``own_pairs`` of the new pairs must reach full bandwidth
    (an extra pass, module docstring, 4); ``bus_wait_s``: before a pair whose probe reads below what would let it count
    (the floor, or the latest pair's draw over the headroom share, whichever is lower), wait for the bus
    (:func:`wait_for_free_bus`), up to this many seconds over the whole call (``sleep``, ``clock``: for tests).
    """
    ref_blocks: list[Block] = list(earlier[0]) if earlier else []
    var_blocks: list[Block] = list(earlier[1]) if earlier else []
    if len(ref_blocks) != len(var_blocks):
        raise ValueError(f"unpaired earlier blocks: {len(ref_blocks)} of the reference, {len(var_blocks)} of the variant")
    caps_from = len(var_blocks) if fresh_caps else 0
    bw = probe() if probe is not None else None
    waited = 0.0
    while _keep_going(rule, ref_blocks, var_blocks, probe.peak if probe is not None else 0.0, caps_from, own_pairs if fresh_caps else 0,
                      step_bytes):
        floor = stats.bandwidth_floor(probe.peak) if probe is not None and probe.peak > 0 else 0.0
        last = pair_draws(ref_blocks[-1:], var_blocks[-1:], step_bytes) if var_blocks else None  # the latest pair's draw
        enough = min(floor, last[0] / stats.BUS_HEADROOM_SHARE) if last else floor
        if bw is not None and waited < bus_wait_s and bw < enough:
            free, w, bw = wait_for_free_bus(probe, enough, bus_wait_s - waited, sleep=sleep, clock=clock)
            waited += w
            if log is not None:
                log(f"waited {w:.0f} s for the memory bus to come free ({waited:.0f} of {bus_wait_s:.0f} s): it read {bw / 1e9:.0f} GB/s"
                    + ("" if free else ", timing anyway"))
        r = reference.block(prompt, new_tokens, rule.repeats, rule.warmup)
        r.bandwidth_before = bw
        bw_v = probe() if probe is not None else None
        v = variant.block(prompt, new_tokens, rule.repeats, rule.warmup)
        bw = probe() if probe is not None else None
        v.bandwidth_before, v.bandwidth_after = bw_v, bw
        r.pass_index = v.pass_index = pass_index
        ref_blocks.append(r)
        var_blocks.append(v)
        if log is not None and len(var_blocks) % 5 == 0:
            n_kept = sum(kept(ref_blocks, var_blocks, probe.peak, step_bytes)) if probe is not None else len(var_blocks)
            which = "at full memory bandwidth" if step_bytes is None else "that count (at full memory bandwidth or within the bus's headroom)"
            log(f"{len(var_blocks)} pairs of blocks" + (f", {n_kept} {which}" if probe is not None else ""))
    return ref_blocks, var_blocks


# --------------------------------------------------------------------------- figures


def block_figures(blocks: list[Block], batch_size: int, prompt_tokens: int) -> dict[str, list[float]]:
    """Each block's figure (the median of its repeats): prefill tokens/s, decode tokens/s, time to first token."""
    from harness.measure.efficiency import generation_samples

    out: dict[str, list[float]] = {"prefill_tokens_per_s": [], "decode_tokens_per_s": [], "time_to_first_token_ms": []}
    for b in blocks:
        gen = generation_samples(b.stamps, batch_size)
        out["prefill_tokens_per_s"].append(stats.block_figure(rates(batch_size * prompt_tokens, b.prefill_s)))
        out["decode_tokens_per_s"].append(stats.block_figure(gen["decode_tps"]))
        out["time_to_first_token_ms"].append(stats.block_figure(gen["ttft_ms"]))
    return out


#: Whether a larger value of each paired figure is faster.
HIGHER_IS_FASTER = {"prefill_tokens_per_s": True, "decode_tokens_per_s": True, "time_to_first_token_ms": False}


def paired_record(ref_blocks: list[Block], var_blocks: list[Block], batch_size: int, prompt_tokens: int, ref: PairedReference,
                  loading: Loading, weights_ratio: float | None, peak: float = 0.0, step_bytes: tuple[float, float] | None = None
                  ) -> PairedSpeed:
    """The results file's paired record of one batch size: speed-ups over the pairs at full bandwidth (``peak``: the
    highest probe seen; 0 or unprobed blocks: every pair counts). With fewer such pairs than the rule's minimum (an
    earlier pass's record: its share of it) the record has no speed-up and says why (``speedup_absent_reason``); the
    decode ratio of its pairs, all timed on the contended bus, is ``left_out_decode_speedup``. ``step_bytes`` (reference,
    variant: bytes read per decoding step, at any batch size) lets pairs below the floor count whose draw stayed within
    the headroom (:func:`kept`)."""
    bw = pair_bandwidths(ref_blocks, var_blocks)
    probed_ok = bw is not None and peak > 0
    floor = stats.bandwidth_floor(peak) if probed_ok else 0.0
    minimum = max(stats.MIN_BLOCKS, pass_rule(ref.rule, ref.pass_index, ref.passes).blocks.min_runs)
    keep = kept(ref_blocks, var_blocks, peak, step_bytes) if probed_ok else [True] * len(var_blocks)
    contended = probed_ok and not stats.free_bus(keep, minimum)
    passes = [b.pass_index for b, k in zip(var_blocks, keep) if k]
    figures: dict[str, PairedFigure | None] = dict.fromkeys(HIGHER_IS_FASTER)
    if not contended:
        ref_fig = block_figures([b for b, k in zip(ref_blocks, keep) if k], batch_size, prompt_tokens)
        var_fig = block_figures([b for b, k in zip(var_blocks, keep) if k], batch_size, prompt_tokens)
        for key, faster in HIGHER_IS_FASTER.items():
            p = stats.paired_speedup(ref_fig[key], var_fig[key], higher_is_faster=faster, passes=passes)
            figures[key] = PairedFigure(speedup=p.speedup, ci_low=p.low, ci_high=p.high, blocks=p.blocks,
                                        variant_blocks=[round(x, 6) for x in var_fig[key]], reference_blocks=[round(x, 6) for x in ref_fig[key]],
                                        pass_speedups=[round(x, 6) for x in p.pass_speedups] if ref.passes > 1 else None)
    probed: dict[str, Any] = {}
    if probed_ok:
        # contended throughout: every pair is left out, the few at the floor too (too few to stand for the free bus), so
        # the left-out figure is over all of them, nearly all contended
        left = list(range(len(keep))) if contended else [i for i, k in enumerate(keep) if not k]
        left_out_speedup = None
        if len(left) >= stats.MIN_BLOCKS:
            out_ref = block_figures([ref_blocks[i] for i in left], batch_size, prompt_tokens)["decode_tokens_per_s"]
            out_var = block_figures([var_blocks[i] for i in left], batch_size, prompt_tokens)["decode_tokens_per_s"]
            left_out_speedup = round(stats.ratio_of_medians(out_ref, out_var), 6)
        probed = {
            "bandwidth_gbps": None if contended else [round(b / 1e9, 2) for b, k in zip(bw, keep) if k],  # type: ignore[arg-type]
            "bandwidth_floor_gbps": round(floor / 1e9, 2),
            "left_out_pairs": len(left),
            "bus_headroom_share": stats.BUS_HEADROOM_SHARE if step_bytes is not None else None,
            "headroom_pairs": None if step_bytes is None else (0 if contended else sum(k and b < floor for b, k in zip(bw, keep))),  # type: ignore[arg-type]
            "left_out_decode_speedup": left_out_speedup,
            "bandwidth_contended": contended,
            "speedup_absent_reason": (f"{sum(keep)} of {len(keep)} pairs reached {floor / 1e9:.0f} GB/s of memory bandwidth"
                                      + (f" or drew at most {stats.BUS_HEADROOM_SHARE:.0%} of what the bus gave them" if step_bytes is not None else "")
                                      + f" before the timing cap, fewer than the {minimum} a speed-up needs: the memory bus was contended throughout")
            if contended else None,
        }
    return PairedSpeed(
        reference=ref.label, aa_check=ref.aa_check, loading=loading, repeats_per_block=ref.rule.repeats, warmup_per_block=ref.rule.warmup,
        passes=ref.pass_index + 1, confidence_level=stats.CONFIDENCE,
        method=stats.METHOD_WITH_PASSES if stats.batched(len(set(passes))) and not contended else stats.METHOD, weights_ratio=weights_ratio,
        **figures, **probed,
    )


def reference_weights_bytes(path: Path, profile: Profile) -> int:
    """The reference's weights bytes before loading it (for the memory decision)."""
    from harness.measure.efficiency.memory import checkpoint_weights_bytes, gguf_weights_bytes

    path = Path(path)
    return gguf_weights_bytes(path) if path.suffix == ".gguf" else checkpoint_weights_bytes(path, profile.dtype)


def choose_loading(ref: PairedReference, variant_needed: int | None, reference_weights: int, profile: Profile) -> tuple[Loading, str]:
    """``same_process`` when the variant's measured need plus the reference's weights fit the profile's budget; why, in words."""
    from harness.measure.fit import fits, gib

    if ref.loading != "auto":
        return ref.loading, f"{ref.loading.replace('_', ' ')} as asked"
    together = (variant_needed or 0) + reference_weights
    if fits(together, profile):
        return "same_process", f"both models loaded at once ({gib(together)} with the variant's peak, within the {gib(profile.memory_budget_bytes)} budget)"
    return "process_per_block", (f"each block in its own process: the variant's peak and the reference's weights ({gib(together)}) "
                                 f"exceed the {gib(profile.memory_budget_bytes)} budget together")


def describe(ref: PairedReference, loading_reason: str, blocks: int, record: PairedSpeed | None = None) -> str:
    rule = ref.rule
    what = "a separately loaded copy of itself (A/A check)" if ref.aa_check else ref.label
    passes = ref.pass_index + 1
    timed = f" in {passes} passes minutes apart (each in a process of its own, the pairs pooled)" if passes > 1 else ""
    text = (f"paired with {what}: {blocks} alternating blocks each (reference first){timed}, each block {rule.warmup} untimed and "
            f"{rule.repeats} timed runs; {loading_reason}; speed-ups are ratios of medians of the block medians, "
            f"{stats.CONFIDENCE:.0%} intervals by {record.method if record is not None else stats.METHOD}")
    if record is not None and record.bandwidth_floor_gbps is not None:
        if record.bandwidth_contended:
            own = f" (they read {record.left_out_decode_speedup:.2f}x on the contended bus)" if record.left_out_decode_speedup else ""
            text += f"; no speed-up: {record.speedup_absent_reason}{own}"
        else:
            text += (f"; {record.left_out_pairs} pair(s) timed below {record.bandwidth_floor_gbps:.0f} GB/s of memory bandwidth "
                     f"({stats.FULL_BANDWIDTH_SHARE:.0%} of the highest probe) left out")
            if record.headroom_pairs:
                text += (f", {record.headroom_pairs} below it counted (neither side drew more than {record.bus_headroom_share:.0%} of the "
                         "bandwidth its probe read)")
    return text


__all__ = [
    "Block", "LoadedSide", "PairedReference", "PairedRule", "Probe", "ProcessSide", "block_figures", "blocks_from_json", "blocks_to_json",
    "choose_loading", "earlier_from_raw", "kept", "pair_bandwidths", "paired_record", "pass_label", "pass_rule", "reference_weights_bytes", "run_block", "time_blocks",
    "wait_for_free_bus",
]
