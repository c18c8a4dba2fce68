"""Efficiency: memory, speed and energy of one variant on one backend under one profile.

This is the API ``kompakt bench`` calls to fill ``metrics.memory``,
``metrics.throughput`` and ``metrics.energy`` of a results file::

    from harness.measure.efficiency import measure, DoesNotFit, check_fits

    try:
        eff = measure(model_or_path, profile, backend="pytorch")      # or "llama.cpp" for a .gguf
    except DoesNotFit as err:
        status = err.status()            # kompakt.results.Status(code="does_not_fit", ...)
    else:
        metrics = Metrics(memory=eff.memory, throughput=eff.throughput, energy=eff.energy)
        software.other |= eff.software   # backend libraries and versions
        notes += eff.notes               # bandwidth, absent energy and why, settings

``measure(model_or_path, profile, backend="pytorch", *, tokenizer=None, rule=RepeatRule(),
bandwidth=None, artifact_path=None, memory=True, speed=True, log=None, reference=None) -> EfficiencyResult``

- ``model_or_path``: a loaded transformers model (PyTorch backend; used as it is, on
  the device it is on), a checkpoint folder or a ``.gguf`` file. A folder is loaded
  in ``profile.dtype`` on ``profile.device``; a ``.gguf`` file on the PyTorch backend
  is dequantized by transformers (noted); the llama.cpp backend needs a ``.gguf``.
- ``tokenizer`` is optional: prompts are fixed token ids (:func:`speed.prompt_ids`),
  so only the special ids to avoid are taken from it when given.
- ``artifact_path``: the artifact on disk, for ``disk_bytes`` when a loaded model is passed.
- ``bandwidth``: a :class:`bandwidth.Bandwidth` measured earlier; otherwise it is
  measured once per process and device (:func:`machine_bandwidth`).
- ``rule``: warm-up and repeat rule (:class:`speed.RepeatRule`); tests shorten it.
- ``reference``: a :class:`pairing.PairedReference` (the reference as this backend runs it): speed is then
  timed paired with it, in alternating blocks of one run, and every throughput figure carries the paired
  speed-ups with their confidence intervals (``Throughput.paired``); ``paired_rule`` shortens the blocks in tests.

:class:`EfficiencyResult` holds ``memory`` (:class:`kompakt.results.Memory`),
``throughput`` (one :class:`~kompakt.results.Throughput` per batch size, ``backend``
``"pytorch"`` or ``"llama.cpp"``; settings and versions in its ``notes``),
``energy`` (:class:`~kompakt.results.Energy` per batch size and counter; empty with a
note when no counter is readable), ``notes`` (for the results file), ``software``
(for ``Software.other``), ``bandwidth`` and ``weights_bytes``.

Memory budget (:mod:`harness.measure.fit`): :func:`check_fits` raises :class:`DoesNotFit`
before loading when the weights alone exceed it, and ``measure`` raises it after the memory
run when the measured peak does (``err.memory`` keeps what was measured). An out-of-memory
error is also a :class:`DoesNotFit`.

Modules: ``speed`` (repeat rule and statistics, pure), ``pairing`` (alternating blocks with the reference;
the statistics are :mod:`kompakt.paired`), ``bandwidth`` (the copy
benchmark and the decode bound, pure maths), ``memory`` (weights bytes, disk bytes,
peak RSS and device memory), ``energy`` (RAPL and NVML). The backends that load and
time one model are :mod:`harness.measure.backends` (``backend`` names one of them;
``backend_options`` is its ``Config`` or a dict of its settings).

Measuring order, per variant: weights bytes; the peak-memory run (batch 1, a prompt
of ``context_length - new_tokens`` tokens, then ``new_tokens`` generated, so the KV
cache reaches ``context_length``; capped at the model's maximum positions, and the
context actually used is recorded); then per batch size: prefill repeats, and
generation repeats with the energy counters read around them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.measure.efficiency.bandwidth import Bandwidth, BandwidthProbe, bound_share, measure_bandwidth
from harness.measure.efficiency.energy import EnergyMeter, joules_per_token
from harness.measure.efficiency.memory import PeakMemory
from harness.measure.efficiency.pairing import PairedReference, PairedRule
from harness.measure.efficiency.speed import RepeatRule, prompt_ids, rates, repeat, summarize
from harness.measure.fit import DoesNotFit, check_fits, fits, gib, is_out_of_memory, out_of_memory, peak_needed
from kompakt.profiles import Profile
from kompakt.results import Energy, Memory, Throughput

__all__ = [
    "DoesNotFit", "EfficiencyResult", "PairedReference", "PairedRule", "RepeatRule", "check_fits", "fits", "generation_samples",
    "machine_bandwidth", "measure",
]


@dataclass
class EfficiencyResult:
    memory: Memory
    throughput: list[Throughput]
    energy: list[Energy]
    notes: list[str] = field(default_factory=list)
    software: dict[str, str] = field(default_factory=dict)
    bandwidth: Bandwidth | None = None
    weights_bytes: int | None = None
    backend: str = "pytorch"
    settings: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    """Every sample, per batch size: for reports and the spread between two runs."""
    bandwidth_peak: float = 0.0
    """The highest bandwidth probe of the paired timing (bytes/s; 0 when unpaired): pass it on to the next measurement's
    :class:`PairedReference` when that runs in another process."""


# --------------------------------------------------------------------------- pure helpers


def generation_samples(timestamps: list[list[float]], batch_size: int) -> dict[str, list[float]]:
    """Per-run figures from ``generate`` timestamps ``[call, token 1, ..., token n]``.

    - time to first token: token 1 - call (prefill, first sampling and ``generate``'s setup);
    - decode: the ``n - 1`` steps after the first token, token n - token 1; its rate
      counts every sequence of the batch (``batch_size`` tokens per step);
    - ms per token: decode time per step (a step yields one token per sequence);
    - generate rate: all ``n * batch_size`` tokens over token n - call.
    """
    out: dict[str, list[float]] = {"ttft_ms": [], "decode_tps": [], "ms_per_token": [], "generate_tps": []}
    for ts in timestamps:
        n = len(ts) - 1
        if n < 2:
            raise ValueError("need at least two generated tokens to time decoding")
        call, first, last = ts[0], ts[1], ts[-1]
        decode_s = last - first
        out["ttft_ms"].append((first - call) * 1000)
        out["decode_tps"].append(batch_size * (n - 1) / decode_s)
        out["ms_per_token"].append(decode_s / (n - 1) * 1000)
        out["generate_tps"].append(batch_size * n / (last - call))
    return out


_BANDWIDTH: dict[str, Bandwidth] = {}


def machine_bandwidth(device: str = "cpu") -> Bandwidth:
    """The memory bandwidth of ``device``, measured once per process."""
    key = "cpu" if device == "cpu" else device
    if key not in _BANDWIDTH:
        _BANDWIDTH[key] = measure_bandwidth(key)
    return _BANDWIDTH[key]


# --------------------------------------------------------------------------- measuring


def _say(log: Callable[[str], None] | None, text: str) -> None:
    if log is not None:
        log(text)


def measure_memory(be: Any, profile: Profile, *, weights: int, disk: int | None, avoid: list[int]) -> tuple[Memory, list[str], Any]:
    """Peak memory while generating up to the profile's context length at batch 1."""
    context = profile.context_length
    notes = []
    if be.max_context and context > be.max_context:
        notes.append(f"peak memory measured at the model's maximum context of {be.max_context} tokens, not the profile's {context}")
        context = int(be.max_context)
    new = min(profile.new_tokens, max(2, context // 2))
    prompt = prompt_ids(context - new, be.vocab_size, avoid=avoid, seed=1)
    # llama.cpp's CUDA buffers are not PyTorch's: on a GPU its device memory comes from NVML.
    llama_gpu = be.name == "llama.cpp" and be.device.startswith("cuda")
    with PeakMemory(device=be.device, nvml_index=0 if llama_gpu else None) as pm:
        be.generate(prompt, new)
    peaks = pm.peaks
    notes += peaks.notes()
    allocated, reserved = peaks.device_allocated_bytes, peaks.device_reserved_bytes
    if llama_gpu:
        allocated, reserved = None, peaks.device_nvml_used_bytes
        notes.append("peak device memory of llama.cpp is NVML's used memory of the whole GPU (CUDA context included), sampled every 5 ms")
    memory = Memory(
        weights_bytes=weights or None,
        disk_bytes=disk or None,
        peak_device_allocated_bytes=allocated,
        peak_device_reserved_bytes=reserved,
        peak_host_bytes=peaks.host_bytes,
        context_length=context,
    )
    return memory, notes, peaks


def measure(
    model_or_path: Any,
    profile: Profile,
    backend: str = "pytorch",
    *,
    tokenizer: Any = None,
    rule: RepeatRule = RepeatRule(),
    bandwidth: Bandwidth | None = None,
    artifact_path: Path | None = None,
    memory: bool = True,
    speed: bool = True,
    batch_sizes: list[int] | None = None,
    log: Callable[[str], None] | None = None,
    backend_options: Any = None,
    reference: PairedReference | None = None,
    paired_rule: PairedRule | None = None,
) -> EfficiencyResult:
    """Memory, speed and energy of one model on one backend under ``profile`` (see the module docstring).

    With ``reference``, speed is timed paired with it (:mod:`harness.measure.efficiency.pairing`):
    each throughput figure then carries the paired speed-ups and their intervals. ``paired_rule`` replaces the
    reference's block rule (tests shorten it)."""
    if reference is not None and paired_rule is not None:
        reference = dataclasses.replace(reference, rule=paired_rule)
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        from harness.measure.efficiency.memory import checkpoint_weights_bytes, gguf_weights_bytes

        # Before loading: a variant whose weights alone exceed the budget cannot run at all.
        # A GGUF file runs as stored on llama.cpp; anything else is loaded in the profile's dtype.
        if path.suffix == ".gguf" and backend == "llama.cpp":
            check_fits(gguf_weights_bytes(path), profile)
        elif path.is_dir():
            check_fits(checkpoint_weights_bytes(path, profile.dtype), profile)
    from harness.measure.backends import open_backend

    try:
        be = open_backend(backend, model_or_path, profile, backend_options)
    except Exception as err:
        if is_out_of_memory(err):
            raise out_of_memory(err, profile, "while loading") from err
        raise
    try:
        source = Path(model_or_path) if isinstance(model_or_path, (str, Path)) else None
        pair = _Pair(reference, backend, backend_options, source) if reference is not None else None
        return _measure_loaded(be, profile, tokenizer=tokenizer, rule=rule, bandwidth=bandwidth, artifact_path=artifact_path,
                               memory=memory, speed=speed, batch_sizes=batch_sizes, log=log, pair=pair)
    except DoesNotFit:
        raise
    except Exception as err:
        if is_out_of_memory(err):
            raise out_of_memory(err, profile, "while measuring", getattr(be, "_weights", None)) from err
        raise
    finally:
        if isinstance(model_or_path, (str, Path)):
            be.close()


@dataclass
class _Pair:
    """A paired measurement's settings and, once the reference is opened, its two sides."""

    reference: PairedReference
    backend: str
    options: Any
    source: Path | None
    """The variant's path (None: a model loaded by the caller, which cannot run in another process)."""
    sides: tuple[Any, Any] | None = None
    loading: str = "same_process"
    reason: str = ""
    weights_ratio: float | None = None
    step_bytes: tuple[float, float] | None = None
    """Bytes read per decoding step, reference and variant (their weights): each pair's memory draw (pairing, ``kept``);
    None unless the rule counts pairs within the bus's headroom (``PairedRule.bus_headroom``)."""
    opened: list[Any] = field(default_factory=list)
    """Backends opened for the pairing, closed at the end."""


def _measure_loaded(be: Any, profile: Profile, *, tokenizer: Any, rule: RepeatRule, bandwidth: Bandwidth | None,
                    artifact_path: Path | None, memory: bool, speed: bool, batch_sizes: list[int] | None,
                    log: Callable[[str], None] | None, pair: _Pair | None = None) -> EfficiencyResult:
    notes = list(be.load_notes)
    weights = be.weights_bytes()
    be._weights = weights
    check_fits(weights, profile)
    disk = None
    if artifact_path is not None and Path(artifact_path).exists():
        from harness.measure.efficiency.memory import disk_bytes as _disk

        disk = _disk(Path(artifact_path))
    else:
        disk = be.disk_bytes()
    avoid = list(be.special_ids)
    if tokenizer is not None:
        avoid += [i for i in getattr(tokenizer, "all_special_ids", []) if isinstance(i, int)]
    settings = be.settings()
    describe = be.describe()
    result = EfficiencyResult(
        memory=Memory(weights_bytes=weights or None, disk_bytes=disk or None),
        throughput=[],
        energy=[],
        software={k: v for k, v in be.versions().items()},
        weights_bytes=weights,
        backend=be.name,
        settings=settings,
    )
    if memory:
        _say(log, f"[{be.name}] peak memory at context {profile.context_length}")
        notes += _measure_peak(be, profile, result, weights, disk, avoid)

    if speed:
        bw = bandwidth or machine_bandwidth("cpu" if be.device == "cpu" else be.device)
        result.bandwidth = bw
        notes.append(bw.note())
        meter = EnergyMeter(device=be.device)
        if not meter.available:
            notes.append("no energy figures: " + "; ".join(meter.reasons))
        wanted = batch_sizes or list(profile.batch_sizes)
        sizes, size_notes = be.supported_batch_sizes(wanted)
        notes += size_notes
        prompt_len = profile.prompt_tokens
        if be.max_context and prompt_len + profile.new_tokens > be.max_context:
            # A model with a short maximum context (a test model) gets the longest prompt it can take.
            prompt_len = max(1, int(be.max_context) - profile.new_tokens)
            notes.append(f"prompt shortened to {prompt_len} tokens: the model takes at most {be.max_context} positions")
        notes += _time_sizes(be, pair, profile, result, sizes, prompt_len, avoid, rule, meter, bw, weights, describe, log)
    result.notes = notes
    return result


def _time_sizes(be: Any, pair: _Pair | None, profile: Profile, result: EfficiencyResult, sizes: list[int], prompt_len: int,
                avoid: list[int], rule: RepeatRule, meter: EnergyMeter, bw: Bandwidth, weights: int, describe: str,
                log: Callable[[str], None] | None) -> list[str]:
    """Time every batch size, paired with the reference when ``pair`` is given; notes for the results file."""
    notes = _open_pair(be, pair, profile, result, weights, meter, log) if pair is not None else []
    try:
        for b in sizes:
            if pair is not None and pair.sides is not None:
                _time_batch_paired(be, pair, profile, result, b, prompt_len, avoid, bw, weights, describe, log)
            else:
                _time_batch(be, profile, result, b, prompt_len, avoid, rule, meter, bw, weights, describe, log)
    finally:
        for opened in pair.opened if pair is not None else []:
            opened.close()
    return notes


def _open_pair(be: Any, pair: _Pair, profile: Profile, result: EfficiencyResult, weights: int, meter: EnergyMeter,
               log: Callable[[str], None] | None) -> list[str]:
    """Open the reference side by side with the variant (or plan a process per block); notes for the results file."""
    from harness.measure.backends import open_backend
    from harness.measure.efficiency.pairing import LoadedSide, ProcessSide, choose_loading, reference_weights_bytes

    ref = pair.reference
    ref_weights = reference_weights_bytes(ref.path, profile)
    needed = peak_needed(result.memory, profile) if result.memory.peak_host_bytes or result.memory.peak_device_allocated_bytes else None
    pair.loading, pair.reason = choose_loading(ref, needed or weights, ref_weights, profile)
    energy = meter if meter.available else None
    if pair.loading == "process_per_block":
        if pair.source is None:
            pair.sides = None
            return [f"speed not paired with {ref.label}: the two do not fit together and the variant was passed loaded, "
                    "so its blocks cannot run in processes of their own"]
        be.close()  # free this process: every block loads its own model
        pair.sides = (ProcessSide(pair.backend, ref.path, profile, pair.options),
                      ProcessSide(pair.backend, pair.source, profile, pair.options, energy=energy is not None))
    else:
        _say(log, f"[{be.name}] loading the reference for paired timing: {ref.path.name}")
        ref_be = open_backend(pair.backend, ref.path, profile, pair.options)
        pair.opened.append(ref_be)
        pair.sides = (LoadedSide(ref_be), LoadedSide(be, energy))
        ref_weights = ref_be.weights_bytes()
    pair.weights_ratio = weights / ref_weights if weights and ref_weights else None
    pair.step_bytes = (float(ref_weights), float(weights)) if ref.rule.bus_headroom and weights and ref_weights else None
    return []


def _time_batch_paired(be: Any, pair: _Pair, profile: Profile, result: EfficiencyResult, b: int, prompt_len: int, avoid: list[int],
                       bw: Bandwidth, weights: int, describe: str, log: Callable[[str], None] | None) -> None:
    """Reference and variant in alternating blocks at batch size ``b``; the variant's figures with the paired record."""
    from harness.measure.efficiency.pairing import describe as describe_pairing
    from harness.measure.efficiency.pairing import FREE_BUS_WAIT_S, blocks_to_json, paired_record, pass_label, pass_rule, time_blocks

    prompt = prompt_ids(prompt_len, be.vocab_size, avoid=avoid, batch_size=b)
    ref = pair.reference
    _say(log, f"[{be.name}] batch {b}: paired with {ref.label} ({pair.loading.replace('_', ' ')}{pass_label(ref.pass_index, ref.passes)})")
    ref_side, var_side = pair.sides
    probe = BandwidthProbe(be.device, peak=ref.bandwidth_peak)
    extra = ref.pass_index >= ref.passes  # an extra pass (pairing module docstring, 4)
    try:
        ref_blocks, var_blocks = time_blocks(ref_side, var_side, prompt, profile.new_tokens, pass_rule(ref.rule, ref.pass_index, ref.passes),
                                             log=lambda m: _say(log, f"[{be.name}] batch {b}: {m}"), probe=probe, earlier=ref.earlier.get(b),
                                             pass_index=ref.pass_index, fresh_caps=extra,
                                             own_pairs=pass_rule(ref.rule, 0, ref.passes).blocks.min_runs,
                                             bus_wait_s=FREE_BUS_WAIT_S if extra else 0.0, step_bytes=pair.step_bytes)
        peak = probe.peak
    finally:
        probe.close()
    result.bandwidth_peak = max(result.bandwidth_peak, peak)
    prefill_s = [x for blk in var_blocks for x in blk.prefill_s]
    stamps = [ts for blk in var_blocks for ts in blk.stamps]
    record = paired_record(ref_blocks, var_blocks, b, prompt_len, pair.reference, pair.loading, pair.weights_ratio, peak,
                           pair.step_bytes)  # type: ignore[arg-type]
    note = describe + "; " + describe_pairing(pair.reference, pair.reason, len(var_blocks), record)
    gen = _add_throughput(be.name, profile, result, b, prompt_len, prefill_s, stamps, bw, weights, note, paired=record)
    joules: dict[str, float] = {}
    for blk in var_blocks:
        for r in blk.energy:
            joules[r.source] = joules.get(r.source, 0.0) + r.joules
    tokens = b * profile.new_tokens * len(stamps)
    for source, j in joules.items():
        result.energy.append(Energy(joules_per_token=joules_per_token(j, tokens), source=source, batch_size=b))  # type: ignore[arg-type]
    ref_prefill = [x for blk in ref_blocks for x in blk.prefill_s]
    ref_gen = generation_samples([ts for blk in ref_blocks for ts in blk.stamps], b)
    result.raw[f"batch{b}"] = {"prefill_s": prefill_s, **gen, "reference": {"prefill_s": ref_prefill, **ref_gen},
                               "blocks": len(var_blocks),
                               "pairs": {"reference": blocks_to_json(ref_blocks), "variant": blocks_to_json(var_blocks)}}


def _measure_peak(be: Any, profile: Profile, result: EfficiencyResult, weights: int, disk: int | None, avoid: list[int]) -> list[str]:
    """The peak-memory run into ``result``; raises :class:`DoesNotFit` when the peak exceeds the profile's budget."""
    mem, notes, peaks = measure_memory(be, profile, weights=weights, disk=disk, avoid=avoid)
    result.memory = mem
    result.raw["peaks"] = dataclasses.asdict(peaks)
    needed = peak_needed(mem, profile)
    if not fits(needed, profile):
        raise DoesNotFit(
            needed, profile.memory_budget_bytes,
            f"peak {'device' if profile.device == 'cuda' else 'host'} memory while generating at context {mem.context_length} "
            f"was {gib(needed)}, more than the {gib(profile.memory_budget_bytes)} of profile {profile.name}",
            memory=mem,
        )
    return notes


def _add_throughput(name: str, profile: Profile, result: EfficiencyResult, b: int, prompt_len: int, prefill_s: list[float],
                    stamps: list[list[float]], bw: Bandwidth, weights: int, describe: str, paired: Any = None) -> dict[str, list[float]]:
    """The throughput figures of batch size ``b`` from its timed prefills and generations, added to ``result``."""
    gen = generation_samples(stamps, b)
    decode = summarize(gen["decode_tps"])
    share = bound_share(decode.value, bw.bytes_per_s, weights) if b == 1 else None
    result.throughput.append(
        Throughput(
            backend=name,
            batch_size=b,
            prompt_tokens=prompt_len,
            generated_tokens=profile.new_tokens,
            prefill_tokens_per_s=summarize(rates(b * prompt_len, prefill_s)),
            decode_tokens_per_s=decode,
            generate_tokens_per_s=summarize(gen["generate_tps"]),
            time_to_first_token_ms=summarize(gen["ttft_ms"]),
            ms_per_token=summarize(gen["ms_per_token"]),
            bandwidth_bound_share=share,
            paired=paired,
            notes=(describe + (f"; bound: {bw.bytes_per_s / 1e9:.1f} GB/s / {weights} weight bytes" if share else ""))[:2000],
        )
    )
    return gen


def _time_batch(be: Any, profile: Profile, result: EfficiencyResult, b: int, prompt_len: int, avoid: list[int], rule: RepeatRule,
                meter: EnergyMeter, bw: Bandwidth, weights: int, describe: str, log: Callable[[str], None] | None) -> None:
    """Prefill and generation repeats at batch size ``b``, energy read around the generation; adds to ``result``."""
    prompt = prompt_ids(prompt_len, be.vocab_size, avoid=avoid, batch_size=b)
    _say(log, f"[{be.name}] batch {b}: prefill")
    prefill_s = repeat(lambda: be.prefill(prompt), rule)
    _say(log, f"[{be.name}] batch {b}: generate {profile.new_tokens} tokens")
    for _ in range(rule.warmup):
        be.generate(prompt, profile.new_tokens)
    stamps: list[list[float]] = []

    def one() -> float:
        ts = be.generate(prompt, profile.new_tokens)
        stamps.append(ts)
        return ts[-1] - ts[0]

    if meter.available:
        meter.start()
    repeat(one, dataclasses.replace(rule, warmup=0))
    readings = meter.stop() if meter.available else []
    gen = _add_throughput(be.name, profile, result, b, prompt_len, prefill_s, stamps, bw, weights, describe)
    tokens = b * profile.new_tokens * len(stamps)
    for r in readings:
        result.energy.append(Energy(joules_per_token=joules_per_token(r.joules, tokens), source=r.source, batch_size=b))  # type: ignore[arg-type]
    result.raw[f"batch{b}"] = {"prefill_s": prefill_s, **gen}
