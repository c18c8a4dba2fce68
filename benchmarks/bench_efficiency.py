"""On-demand benchmark: memory, speed and paired speed-ups of the embedded model's variants on both backends.

Every (variant, backend) is timed paired with the reference on the same backend (issue 18): the
reference and the variant in alternating blocks within one process (reference, variant, reference,
...; each block one untimed and ``--repeats-per-block`` timed runs; at least 10 blocks each and 10 s),
the speed-up the ratio of the medians of the block figures with a 95 % bootstrap interval over the
paired blocks (:mod:`kompakt.paired`, :mod:`harness.measure.efficiency.pairing`). The reference itself
is timed against a separately loaded copy of itself (its own load, never the same model object twice):
an A/A check that must read 1.00x within its interval. Each run goes over every measurement in five passes
(``--passes``): pass 1 times a fifth of the pairs of each (variant, backend), pass 2 comes back to each tens of
minutes later, in a fresh process, and adds the next fifth to the earlier blocks, and so on, so the figures pool
pairs from five stretches of time spread over the run (:mod:`harness.measure.efficiency.pairing`, step 6), and the
interval covers the batch-means interval over the five passes' own speed-ups (:mod:`kompakt.paired`: the pairs of
one stretch share the host's state, so a bootstrap over pairs alone is too narrow). The whole benchmark runs twice back to back
(``--runs 2``) and prints both runs' batch-1 decode speed-ups, their intervals, whether the two
intervals overlap, the share within 5 % and the worst disagreement. ``--runs 1 --against STAMP`` compares one run with an
earlier run of the same options as the results files it wrote hold it (the agreement report's run 1), for when the two
runs cannot share one machine's lifetime (the variants are built anew and the state is lost between them).

The defaults keep a run of ``all-methods`` to about two hours on two cores (README, *Paired speed-ups*:
2 h 2 min and 2 h 12 min with two passes, on a host whose memory bus was contended for long stretches): a 128-token prompt and 32 new tokens instead of the profile's, one timed run per block,
batch 1; ``--full`` takes the profile's lengths and batch sizes and 3 timed runs per block. A measurement whose
pairs do not reach the free-bus floor stops at ``--max-blocks`` pairs or ``--max-seconds`` of timed work per side
(60 and 30 s), is timed again in an extra pass at the end of the run (``--extra-passes``; so is one whose pairs at
full bandwidth come from fewer than three passes, too few for the batch-means interval), and has no speed-up if it
is still short (its contended pairs read another ratio: :func:`kompakt.paired.free_bus`); under the earlier cap (200 pairs, 600 s) a host held at half its bandwidth
for over an hour made one pass of the reference's A/A check take 10 minutes and a run's estimate 22 h. Progress
and the time left are printed before each measurement, and the state is written after each one, so
``--resume`` (same options) continues a stopped benchmark.

    python benchmarks/bench_efficiency.py --write-results        # both runs; results files of the first under data/results/
    python benchmarks/bench_efficiency.py --write-results --resume   # continue after a stop
    python benchmarks/bench_efficiency.py --runs 1 --quick       # a smoke run (few short blocks), not figures to keep
    python benchmarks/bench_efficiency.py --only reference,gguf-q8_0
    python benchmarks/bench_efficiency.py --passes 1            # every pair of a measurement in one stretch
    python benchmarks/bench_efficiency.py --json /tmp/eff.json   # the state (every figure) in another file
    python benchmarks/bench_efficiency.py --runs 1 --quick --write-results --results-dir /tmp/results
    python benchmarks/bench_efficiency.py --runs 1 --against 20261130T214039   # this run against an earlier run's results files
    python benchmarks/bench_efficiency.py --passes 2 --compare 20261130T125147 20261130T214039   # two earlier runs, nothing timed

Variants: those of a recipe (``--recipe``, default ``all-methods``), built (or taken from the
artifact cache) exactly as ``kompakt bench`` builds them, each on every backend that can run the
artifact as it is:

- safetensors checkpoints on PyTorch (float variants, and bitsandbytes' packed int8/NF4);
- GGUF exports on llama.cpp;
- float safetensors variants (the reference, pruned, healed, distilled) on llama.cpp too, written
  unchanged as an F32 GGUF (the same values in another container; :mod:`harness.build.as_gguf`).
  The reference's F32 GGUF is written by llama.cpp's own quantizer from the shipped Q4_1 file
  (Q4_1 -> F32 is exact dequantization, as the PyTorch reference is), the others by kompakt's GGUF
  writer (``harness/build/methods/gguf_export.py``);
- packed RTN/AWQ/GPTQ checkpoints (AWQ GEMM, GPTQ int8) on PyTorch through gptqmodel's kernels,
  loaded by :func:`harness.build.packing.loading.load_packed` as ``kompakt bench`` loads them.

Not run, and said so: bitsandbytes' packed int8/NF4 on llama.cpp (GGUF has no such types),
the packed RTN/AWQ/GPTQ checkpoints on llama.cpp (their integers are the ``*-gguf`` variants),
and GGUF variants on PyTorch (transformers dequantizes them to float32, which is no longer
the artifact's memory or speed; their accuracy is measured that way by ``kompakt bench``).

Each (variant, backend) is measured in a fresh process (multiprocessing, spawn): the variant is
loaded, its peak memory measured while generating (first run only), then the reference is loaded
beside it for the paired timing, so the peak resident memory of one is not inflated by what an
earlier one left in the allocator, nor by the reference.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.measure.efficiency.pairing import FREE_BUS_WAIT_S, PairedRule, pass_label  # noqa: E402
from harness.measure.efficiency.speed import RepeatRule, relative_difference  # noqa: E402
from kompakt.paired import BUS_HEADROOM_SHARE, MIN_PASSES, batched, contains_one, intervals_overlap  # noqa: E402

#: The agreement issue 18 asks for between two back-to-back runs: batch-1 decode speed-ups within 5 % ...
AGREEMENT = 0.05
#: ... for at least this share of the (variant, backend) pairs, and intervals that overlap for all of them.
AGREEING_SHARE = 0.9


@dataclass
class Spec:
    variant: str
    backend: str
    path: Path
    reference: Path
    """The reference as this backend runs it (for the reference's own spec: the same file, loaded a second time)."""
    reference_label: str
    lineage: Any = None
    """The lineage (kompakt.results.Variant) as the artifact records it."""
    notes: str | None = None
    label: str = ""
    """Shown after the variant in the agreement report: the stamps of the part of a run taken in parts it comes from,
    where the variant was measured in several parts (``--compare``)."""

    @property
    def aa(self) -> bool:
        return self.variant == "reference"


def plan(only: set[str] | None, backends: set[str], recipe_name: str = "all-methods", also: tuple[str, ...] = ()
         ) -> tuple[list[Spec], list[str], Any]:
    """One spec per variant of the recipe and backend that can run it as it is (module docstring), plus the variants
    ``also`` names (``recipe:variant``, from another recipe on the same base model). Variants are built (or taken
    from the artifact cache) exactly as ``kompakt bench`` builds them, so the lineage is the same."""
    from harness.build import artifacts
    from harness.build.as_gguf import f32_gguf
    from harness.build.base_model import resolve
    from harness.build.recipes import find_recipe, load_recipe
    from harness.measure.backends.llamacpp import available

    notes = []
    base = resolve(show_progress=False)
    recipe = load_recipe(find_recipe(recipe_name))
    llama_ok, why = available()
    if "llama.cpp" in backends and not llama_ok:
        notes.append(f"llama.cpp rows skipped: {why}")
    use_llama = "llama.cpp" in backends and llama_ok
    ref_rv = next(rv for rv in recipe.variants.values() if rv.is_reference)
    ref_art = artifacts.reference_artifact(base, "reference", ref_rv.notes)
    refs: dict[str, tuple[Path, str]] = {"pytorch": (ref_art.model_path, "")}
    if use_llama:
        refs["llama.cpp"] = f32_gguf(ref_art, base)
    label = {b: f"reference (artifact {ref_art.key[:12]}, {path.name})" for b, (path, _) in refs.items()}
    wanted = [(recipe, vid) for vid in recipe.variants]
    for item in also:
        name, _, vid = item.partition(":")
        other = load_recipe(find_recipe(name))
        if vid not in other.variants:
            raise SystemExit(f"--also {item}: recipe {name} has no variant {vid!r}; its variants: {', '.join(other.variants)}")
        if vid not in recipe.variants:
            wanted.append((other, vid))
    selected, left_out = select_variants([vid for _, vid in wanted], only, also)
    if left_out:
        notes.append(left_out)
    specs: list[Spec] = []
    for r, vid in wanted:
        if vid not in selected:
            continue
        if r.variants[vid].is_reference:
            for backend in ("pytorch", "llama.cpp"):
                if backend in backends and backend in refs:
                    path, note = refs[backend]
                    lineage = ref_art.variant.model_copy(update={"notes": note or ref_rv.notes})
                    specs.append(Spec("reference", backend, path, path, label[backend], lineage=lineage))
            continue
        art = artifacts.build(r, vid, base=base, show_progress=False)
        specs += _variant_specs(vid, art, base, backends, use_llama, refs, label, notes)
    specs.sort(key=lambda s: spec_order(s.variant, s.backend))
    return specs, notes, base


def select_variants(available: list[str], only: set[str] | None, also: tuple[str, ...] = ()) -> tuple[list[str], str]:
    """The variant ids a run times, in the recipe's order: all of ``available`` (the recipe's and ``--also``'s), or
    those ``--only`` names; and a note naming the ``--also`` variants that ``--only`` leaves out (empty if none). An
    id in ``--only`` that is no variant raises ``SystemExit`` with the close matches, rather than timing less than was
    asked for without a word."""
    from kompakt.registry import suggest

    if not only:
        return list(available), ""
    unknown = sorted(only - set(available))
    if unknown:
        hints = [f"{u!r}{suggest(u, available)}" for u in unknown]
        raise SystemExit(f"--only names no variant of this run: {'; '.join(hints)}; the variants: {', '.join(available)}"
                         " (--also adds others as recipe:variant)")
    dropped = [vid for item in also if (vid := item.partition(":")[2]) in available and vid not in only]
    note = (f"--only leaves out {', '.join(dropped)} of --also (name it in --only to time it)" if dropped else "")
    return [vid for vid in available if vid in only], note


def spec_order(variant: str, backend: str) -> tuple[bool, bool, bool]:
    """Where a (variant, backend) comes in a run and its report: the reference (A/A) on both backends first, bitsandbytes
    (slow CPU kernels) last, PyTorch before llama.cpp within each group."""
    return variant != "reference", variant.startswith("bnb"), backend != "pytorch"


def _variant_specs(vid: str, art: Any, base: Any, backends: set[str], use_llama: bool, refs: dict[str, tuple[Path, str]],
                   label: dict[str, str], notes: list[str]) -> list[Spec]:
    """The specs of one built variant: GGUF on llama.cpp; a checkpoint on PyTorch and, where it is float, on llama.cpp
    as an F32 GGUF (why not, in ``notes``, where it is not)."""
    from harness.build.as_gguf import f32_gguf, why_not

    lineage = art.variant.model_copy(update={"id": vid, "content_hash": art.content_hash()})  # the build timed (kompakt bench records it too)
    if art.format == "gguf":
        return [Spec(vid, "llama.cpp", art.model_path, refs["llama.cpp"][0], label["llama.cpp"], lineage=lineage)] if use_llama else []
    out = []
    if "pytorch" in backends:
        out.append(Spec(vid, "pytorch", art.model_path, refs["pytorch"][0], label["pytorch"], lineage=lineage))
    if use_llama:
        reason = why_not(art)
        if reason:
            notes.append(f"{vid} not run on llama.cpp: {reason}")
        else:
            path, note = f32_gguf(art, base)
            out.append(Spec(vid, "llama.cpp", path, refs["llama.cpp"][0], label["llama.cpp"], lineage=lineage, notes=note))
    return out


def _worker(spec: Spec, profile_name: str, rule: RepeatRule, paired_rule: PairedRule, bw: Any, queue: Any, batch_sizes: list[int] | None,
            memory: bool, threads: int | None, lengths: dict[str, int], peak: float, passes: int, pass_index: int,
            earlier: dict[str, Any] | None) -> None:
    try:
        from harness.measure.efficiency import DoesNotFit, PairedReference, measure

        options = None
        if threads:
            import torch

            torch.set_num_threads(threads)
            options = {"threads": threads} if spec.backend == "llama.cpp" else None
        from kompakt.profiles import get_profile

        from harness.measure.efficiency.pairing import earlier_from_raw

        reference = PairedReference(spec.reference, spec.reference_label, aa_check=spec.aa, rule=paired_rule, bandwidth_peak=peak,
                                    passes=passes, pass_index=pass_index, earlier=earlier_from_raw(earlier))
        waited = _wait_before_extra_pass(spec, peak) if pass_index >= passes else None
        # the benchmark's timed lengths (prompt, new tokens) in place of the profile's; recorded in every throughput entry
        profile = get_profile(profile_name).model_copy(update=lengths)
        try:
            r = measure(spec.path, profile, spec.backend, rule=rule, bandwidth=bw, batch_sizes=batch_sizes, memory=memory,
                        backend_options=options, reference=reference,
                        log=lambda m: print(f"    {spec.variant} {m}", file=sys.stderr, flush=True))
        except DoesNotFit as err:
            queue.put({"does_not_fit": err.status().model_dump()})
            return
        queue.put({
            "memory": r.memory.model_dump(), "throughput": [t.model_dump() for t in r.throughput],
            "energy": [e.model_dump() for e in r.energy], "notes": r.notes + ([waited] if waited else []), "software": r.software,
            "weights_bytes": r.weights_bytes, "settings": r.settings, "raw": r.raw, "bandwidth_peak": r.bandwidth_peak,
        })
    except BaseException as err:  # report, do not hang the parent
        import traceback

        queue.put({"error": f"{type(err).__name__}: {err}\n{traceback.format_exc()[-2000:]}"})


def _wait_before_extra_pass(spec: Spec, peak: float) -> str | None:
    """Before an extra pass: wait up to :data:`~harness.measure.efficiency.pairing.FREE_BUS_WAIT_S` for a bandwidth probe to
    reach the free-bus floor (:func:`~harness.measure.efficiency.pairing.wait_for_free_bus`); what happened, as a note."""
    from harness.measure.efficiency.bandwidth import BandwidthProbe
    from harness.measure.efficiency.pairing import wait_for_free_bus
    from kompakt.paired import bandwidth_floor

    if peak <= 0:
        return None
    floor = bandwidth_floor(peak)
    probe = BandwidthProbe("cpu", peak=peak)
    try:
        free, waited, reading = wait_for_free_bus(probe, floor)
    finally:
        probe.close()
    what = "the bus read" if free else "the bus still read only"
    note = (f"extra pass after waiting {waited:.0f} s for the memory bus to come free: {what} {reading / 1e9:.0f} GB/s against "
            f"a floor of {floor / 1e9:.0f} GB/s")
    print(f"    {spec.variant} {note}", file=sys.stderr, flush=True)
    return note


def run_one(spec: Spec, profile: str, rule: RepeatRule, paired_rule: PairedRule, bw: Any, batch_sizes: list[int] | None = None,
            memory: bool = True, threads: int | None = None, lengths: dict[str, int] | None = None, peak: float = 0.0,
            passes: int = 1, pass_index: int = 0, earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """One measurement (one pass of it) in a process of its own; ``peak``: the highest bandwidth probe of the run so far (the
    floor of the paired timing is a share of it, so a measurement that falls wholly into a contended minute is recognised as
    such); ``earlier``: the ``raw`` figures of this measurement's earlier pass, whose pairs this pass adds to."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_worker, args=(spec, profile, rule, paired_rule, bw, q, batch_sizes, memory, threads, lengths or {}, peak,
                                          passes, pass_index, earlier))
    p.start()
    out = q.get()
    p.join()
    return out


# --------------------------------------------------------------------------- reporting


def fmt_mb(n: float | None) -> str:
    return "–" if n is None else f"{n / 1e6:,.1f}"


def fmt_speedup(fig: dict[str, Any] | None) -> str:
    """``1.32x [1.28–1.36]``, or ``≈ 1 [0.98–1.03]`` when the interval contains 1.0 (no measurable difference)."""
    if not fig:
        return "–"
    interval = f"[{fig['ci_low']:.2f}–{fig['ci_high']:.2f}]"
    if contains_one(fig["ci_low"], fig["ci_high"]):
        return f"≈ 1 ({fig['speedup']:.2f}x) {interval}"
    return f"{fig['speedup']:.2f}x {interval}"


def _throughput(run: dict[tuple[str, str], dict[str, Any]], s: Spec, batch: int) -> dict[str, Any] | None:
    r = run.get((s.variant, s.backend), {})
    return next((t for t in r.get("throughput", []) if t["batch_size"] == batch), None)


def table(specs: list[Spec], runs: list[dict[tuple[str, str], dict[str, Any]]], bws: list[Any]) -> str:
    head = ("| variant | backend | batch | weights MB | peak RSS MB | prefill tok/s | TTFT ms | decode tok/s (min–max) | share of bound "
            "| decode speed-up [95 % CI] | prefill speed-up | TTFT speed-up | blocks | decode speed-up, run 2 | Δ runs |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for s in specs:
        first = runs[0].get((s.variant, s.backend), {})
        if "throughput" not in first:
            reason = first.get("error") or json.dumps(first.get("does_not_fit"))
            lines.append(f"| {s.variant} | {s.backend} | – | | | | | {str(reason)[:80]} | | | | | | | |")
            continue
        m = first["memory"]
        for i, t in enumerate(first["throughput"]):
            d = t["decode_tokens_per_s"]
            share = t["bandwidth_bound_share"]
            p = t.get("paired") or {}
            dec = p.get("decode_tokens_per_s")
            t2 = _throughput(runs[1], s, t["batch_size"]) if len(runs) > 1 else None
            dec2 = ((t2 or {}).get("paired") or {}).get("decode_tokens_per_s")
            diff = f"{relative_difference(dec['speedup'], dec2['speedup']) * 100:.1f} %" if dec and dec2 else "–"
            lines.append(
                f"| {s.variant} | {s.backend} | {t['batch_size']} | {fmt_mb(m['weights_bytes']) if i == 0 else ''} | "
                f"{fmt_mb(m['peak_host_bytes']) if i == 0 else ''} | "
                f"{t['prefill_tokens_per_s']['value']:,.0f} | {t['time_to_first_token_ms']['value']:.0f} | "
                f"{d['value']:.1f} ({d['min']:.1f}–{d['max']:.1f}) | {'' if share is None else f'{share * 100:.1f} %'} | "
                f"{fmt_speedup(dec)}{' (A/A)' if p.get('aa_check') else ''} | {fmt_speedup(p.get('prefill_tokens_per_s'))} | "
                f"{fmt_speedup(p.get('time_to_first_token_ms'))} | {dec['blocks'] if dec else '–'} | {fmt_speedup(dec2)} | {diff} |"
            )
    return "\n".join(lines)


def _reference_rate(fig: dict[str, Any]) -> str:
    """The median of the reference's paired decode blocks (tokens/s), or a dash where the figure lacks them."""
    blocks = fig.get("reference_blocks") or []
    return f"{statistics.median(blocks):.1f}" if blocks else "–"


def _left_out(paired: dict[str, Any]) -> str:
    """How many pairs the bandwidth floor left out (with their own decode speed-up), ``all 60, contended throughout
    (1.84x)`` when too few reached it for a speed-up, ``none (contended throughout)`` for a record from before that rule
    (every pair counted), or a dash for a record timed before the probe existed."""
    if paired.get("bandwidth_floor_gbps") is None:
        return "–"
    n, x = paired.get("left_out_pairs", 0), paired.get("left_out_decode_speedup")
    if paired.get("bandwidth_contended"):
        return f"all {n}, contended throughout" + (f" ({x:.2f}x)" if x else "") if n else "none (contended throughout)"
    return f"{n} ({x:.2f}x)" if x else str(n)


Run = dict[tuple[str, str], dict[str, Any]]
"""One run's figures per (variant, backend), as the state keeps them."""


def agreement(specs: list[Spec], runs: list[Run], batch: int = 1) -> tuple[list[str], bool]:
    """The batch-``batch`` decode speed-ups of the first two runs side by side: overlap, difference, A/A checks.
    Returns the report's lines and whether issue 18's acceptance holds (which it does not while a (variant, backend)
    lacks its figure in either run: the acceptance is over every one of them)."""
    return agreement_of_parts([(specs, runs[0], runs[1] if len(runs) > 1 else {})], batch)


def agreement_of_parts(parts: list[tuple[list[Spec], Run, Run]], batch: int = 1) -> tuple[list[str], bool]:
    """:func:`agreement` over runs measured in parts (``--compare``): each part its specs and its two runs; one table and
    one verdict over every part's rows (each part times its own A/A check: all of them count)."""
    rows, missing = [], []
    for specs, *runs in parts:
        for s in specs:
            figs, left = [], []
            for run in runs:
                paired = (_throughput(run, s, batch) or {}).get("paired") or {}
                figs.append(paired.get("decode_tokens_per_s"))
                left.append(_left_out(paired))
            if all(figs):
                rows.append((s, figs, left))
            else:
                missing.append(f"{s.variant}{s.label} on {s.backend} (run {' and '.join(str(i + 1) for i, f in enumerate(figs) if not f)})")
    # The reference's own median decode rate in each pairing: where it moves between the runs while the variant's does
    # not, the ratio is not one number for this machine (a memory-bound F32 reference against a compute-bound
    # quantized variant follows the memory bandwidth the host leaves the VM; README, *Paired speed-ups*).
    lines = ["| variant | backend | run 1 decode speed-up [95 % CI] | run 2 | intervals overlap | Δ | reference tok/s run 1 / 2 "
             "| pairs left out run 1 / 2 |",
             "|---|---|---|---|---|---|---|---|"]
    diffs, overlaps, aa_ok = [], [], []
    for s, (a, b), left in rows:
        ov = intervals_overlap((a["ci_low"], a["ci_high"]), (b["ci_low"], b["ci_high"]))
        d = relative_difference(a["speedup"], b["speedup"])
        diffs.append((d, s))
        overlaps.append(ov)
        if s.aa:
            aa_ok += [contains_one(a["ci_low"], a["ci_high"]), contains_one(b["ci_low"], b["ci_high"])]
        lines.append(f"| {s.variant}{' (A/A)' if s.aa else ''}{s.label} | {s.backend} | {fmt_speedup(a)} | {fmt_speedup(b)} | "
                     f"{'yes' if ov else 'NO'} | {d * 100:.1f} % | {_reference_rate(a)} / {_reference_rate(b)} | {left[0]} / {left[1]} |")
    if not rows:
        return ["(no pair of runs to compare)"], False
    within = sum(d <= AGREEMENT for d, _ in diffs)
    worst = max(diffs, key=lambda x: x[0])
    ok = all(overlaps) and within >= AGREEING_SHARE * len(diffs) and bool(aa_ok) and all(aa_ok) and not missing
    lines += [
        "",
        *([f"No paired batch-{batch} decode speed-up to compare for: {', '.join(missing)}.", ""] if missing else []),
        f"Batch-{batch} decode speed-ups of the two runs: intervals overlap for {sum(overlaps)} of {len(rows)}; "
        f"{within} of {len(rows)} ({within / len(rows):.0%}) agree within {AGREEMENT:.0%}; the worst disagreement is "
        f"{worst[0]:.1%} ({worst[1].variant} on {worst[1].backend}). A/A checks reading 1.00 within their interval: "
        f"{sum(aa_ok)} of {len(aa_ok)}. Acceptance (all overlap, ≥ {AGREEING_SHARE:.0%} within {AGREEMENT:.0%}, every A/A "
        f"within{', every measurement in both runs' if missing else ''}): {'met' if ok else 'NOT met'}.",
    ]
    return lines, ok


#: A run's id stamp as ``write_results`` writes it (every file of one run shares it): what ``--against`` names.
RUN_STAMP = re.compile(r"\d{8}T\d{6}")


def protocol(how: str) -> list[str]:
    """The clauses of a benchmark's settings line (``Settings.describe``) that the timed figures depend on: lengths, blocks,
    passes. Left out: the batch sizes (only batch 1 is compared) and where memory was measured."""
    return [c for c in how.split("; ") if not c.startswith(("batch sizes", "peak memory"))]


def host_difference(theirs: Any, ours: Any, where: tuple[str, str] = ("there", "here")) -> str | None:
    """How the hosts of two runs differ, as their results files' ``hardware`` records them (None: no difference found).
    Compared: the CPU model, its cores, the kernel (a cloud VM that moves to another host shows a new kernel build), the
    accelerator and, where both record them, the instruction sets. Speed-ups of two hosts measure two machines: on
    2026-12-02 this VM moved to a host without AVX-512 (``os`` 6.18.44-fc-v657 to -v1045), where the float32 reference
    decoded at 9 tokens/s on PyTorch against 22–26 before. ``where`` names the two sides in the text."""
    fields = ["cpu_model", "cpu_cores", "os"] + (["cpu_isa"] if theirs.cpu_isa and ours.cpu_isa else [])
    a, b = where
    diff = [f"{f}: {getattr(theirs, f)!r} {a}, {getattr(ours, f)!r} {b}" for f in fields if getattr(theirs, f) != getattr(ours, f)]
    names = [h.accelerator.name if h.accelerator else None for h in (theirs, ours)]
    if names[0] != names[1]:
        diff.append(f"accelerator: {names[0]!r} {a}, {names[1]!r} {b}")
    return "; ".join(diff) or None


def earlier_run(stamp: str, root: Path, how: str, profile: str = "cpu", option: str = "--against",
                hardware: Any = None) -> tuple[Run, list[Path]]:
    """An earlier run of this benchmark as the results files it wrote hold it (``--against STAMP``): per (variant, backend)
    its throughput entries, paired records included, in the form a run's state keeps them. So the two runs the acceptance
    compares need not share a machine's lifetime: run 1's files are committed, run 2 is measured against them later.
    Raises ``SystemExit`` naming the file when one is not a results file of this benchmark under the same protocol and
    profile, or (``hardware``: the host to compare with) when it was timed on another host (:func:`host_difference`)."""
    from pydantic import ValidationError

    from kompakt.results import ResultsFile

    if not RUN_STAMP.fullmatch(stamp):
        raise SystemExit(f"{option} {stamp!r}: give the stamp the earlier run's results files start with, e.g. 20261130T214039 "
                         "(the part of the run id before '-efficiency-')")
    paths = sorted(root.rglob(f"{stamp}-efficiency-*.json"))
    if not paths:
        raise SystemExit(f"{option} {stamp}: no results files {stamp}-efficiency-*.json under {root}")
    run: Run = {}
    first_host = None
    for path in paths:
        try:
            rf = ResultsFile.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as err:
            raise SystemExit(f"{option}: {path} cannot be read as a results file: {str(err).splitlines()[0]}") from None
        theirs = next((n.removeprefix("efficiency benchmark: ") for n in rf.notes if n.startswith("efficiency benchmark: ")), None)
        if theirs is None:
            raise SystemExit(f"{option}: {path} has no 'efficiency benchmark:' note (field notes): not written by this benchmark")
        if rf.profile != profile:
            raise SystemExit(f"{option}: {path} was measured under profile {rf.profile!r} (field profile), this run under {profile!r}")
        moved = host_difference(rf.hardware, hardware) if hardware is not None else None
        if moved:
            raise SystemExit(f"{option}: {path} was timed on another host (field hardware: {moved}); speed-ups of two hosts "
                             "are not set side by side: time both runs on one host")
        split = host_difference(first_host, rf.hardware, (f"in {paths[0].name}", "in this one")) if first_host is not None else None
        if split:  # a run resumed over several sessions may have crossed a move of the VM
            raise SystemExit(f"{option}: {path} belongs to the run of {paths[0]} but was timed on another host (field hardware: "
                             f"{split}); that run's speed-ups measure two machines: time it again on one host")
        first_host = first_host or rf.hardware
        if protocol(theirs) != protocol(how):
            raise SystemExit(f"{option}: {path} was timed under another protocol (field notes):\n  there: {'; '.join(protocol(theirs))}\n"
                             f"  now:   {'; '.join(protocol(how))}\ngive the options that earlier run was given")
        for t in rf.metrics.throughput:
            run.setdefault((rf.variant.id, t.backend or ""), {"throughput": []})["throughput"].append(t.model_dump(mode="json"))
    return run, paths


def compare_runs(first: list[str], second: list[str], root: Path, how: str, profile: str) -> tuple[list[str], bool]:
    """The agreement report of two runs read from their results files alone (``--compare``), nothing measured. A run taken
    in parts (``--only``, each part with its own A/A check) is given as the stamps of its parts, the i-th part of the first
    run compared with the i-th of the second; a (variant, backend) in several parts (the reference) is shown with its
    parts' stamps."""
    if len(first) != len(second):
        raise SystemExit(f"--compare: the two runs have {len(first)} and {len(second)} parts; give as many stamps for each, "
                         "part by part in the same order")
    from kompakt.results import ResultsFile

    read = []
    for a, b in zip(first, second):
        run1, files = earlier_run(a, root, how, profile, "--compare")
        host = ResultsFile.model_validate_json(files[0].read_bytes()).hardware  # run 1's host: run 2 must share it
        read.append((a, b, run1, earlier_run(b, root, how, profile, "--compare", host)[0]))
    keys = [sorted(set(r1) | set(r2), key=lambda k: (*spec_order(*k), k[0])) for _, _, r1, r2 in read]
    parts_of = collections.Counter(k for part in keys for k in part)
    parts = []
    for (a, b, run1, run2), part in zip(read, keys):
        specs = [Spec(v, backend, Path(), Path(), "", label=f" [{a} / {b}]" if parts_of[(v, backend)] > 1 else "") for v, backend in part]
        parts.append((specs, run1, run2))
    return agreement_of_parts(parts)


def write_results(specs: list[Spec], run: dict[tuple[str, str], dict[str, Any]], base: Any, profile: str, command: str,
                  root: Path | None, how: str | None = None) -> list[Path]:
    """One results file per (variant, backend), through the harness's own writer (validated, atomic). Each throughput
    figure carries its paired record; the peak-memory ratio against the reference on the same backend is added to it
    (both peaks measured in this run, each in its own process)."""
    from harness.measure.hardware import detect_hardware, detect_software
    from harness.run.results_writer import write_results as write
    from kompakt.results import Energy, Measured, Memory, Metrics, ResultsFile, Status, Throughput, Variant

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    hardware = detect_hardware(use_accelerator=False)
    software = detect_software()
    ref_peak = {s.backend: (run.get((s.variant, s.backend), {}).get("memory") or {}).get("peak_host_bytes") for s in specs if s.aa}
    written = []
    for s in specs:
        r = run.get((s.variant, s.backend))
        if not r or "error" in r:
            continue
        variant = s.lineage or Variant(id=s.variant, is_reference=s.aa, steps=[], notes=s.notes)
        notes = list(r.get("notes", []))
        if s.notes and not s.aa:
            notes.insert(0, s.notes)  # how this backend got the artifact (the reference's goes in its variant notes)
        if how:
            notes.insert(0, f"efficiency benchmark: {how}")
        if "does_not_fit" in r:
            status, metrics = Status(**r["does_not_fit"]), Metrics()
        else:
            status = Status(code="ok")
            # One file per (variant, backend): the leaderboard gives each backend its own row, with the
            # memory measured in the same process as that backend's speed figures.
            memory = Memory(**r["memory"]) if r.get("memory") else None
            peak, peak_ref = (memory.peak_host_bytes if memory else None), ref_peak.get(s.backend)
            throughput = []
            for t in r["throughput"]:
                t = Throughput(**t)
                if t.paired is not None and peak and peak_ref:
                    t = t.model_copy(update={"paired": t.paired.model_copy(update={"peak_memory_ratio": peak / peak_ref})})
                throughput.append(t)
            metrics = Metrics(memory=memory, throughput=throughput, energy=[Energy(**e) for e in r["energy"]])
        other = {**software.other, **{k.replace("-", "_"): v for k, v in r.get("software", {}).items()}}
        digest = hashlib.sha256(f"{s.variant}{s.backend}{now.isoformat()}".encode()).hexdigest()[:6]
        run_id = f"{now:%Y%m%dT%H%M%S}-efficiency-{s.backend}-{digest}"
        rf = ResultsFile(
            schema_version=1, run_id=run_id, status=status, base_model=base.info, variant=variant, profile=profile,
            hardware=hardware, software=software.model_copy(update={"other": other}),
            provenance=Measured(kind="measured", command=command, date=now), metrics=metrics, notes=notes[:50],
        )
        written.append(write(rf, root))
    return written


# --------------------------------------------------------------------------- settings, state and progress


@dataclass(frozen=True)
class Settings:
    """What a benchmark's figures depend on; a state file is resumed only under the same settings."""

    profile: str
    """Profile name (device, dtype, batch sizes, context length of the memory run)."""
    recipe: str
    """Recipe whose variants are measured."""
    also: tuple[str, ...]
    """Variants of other recipes measured too (``recipe:variant``)."""
    only: tuple[str, ...]
    """Variant ids measured (empty: all of the recipe)."""
    backends: tuple[str, ...]
    """Backends measured."""
    batch_sizes: tuple[int, ...] | None
    """Batch sizes of the first run (None: the profile's)."""
    repeat_batch_sizes: tuple[int, ...] | None
    """Batch sizes of the runs after the first (None: as the first)."""
    prompt_tokens: int | None
    """Prompt length of the timed runs (None: the profile's)."""
    new_tokens: int | None
    """Tokens generated per timed run (None: the profile's)."""
    min_blocks: int
    """Pairs of blocks at least."""
    min_seconds: float
    """Seconds of timed work per side at least."""
    repeats_per_block: int
    """Timed runs per block after its untimed one."""
    runs: int
    """Back-to-back runs of the whole benchmark."""
    threads: int | None
    """Threads of both backends (None: PyTorch's default)."""
    passes: int = 1
    """Passes over every measurement within a run, each timing its share of the pairs (the figures pool them)."""
    max_blocks: int = 60
    """Pairs of blocks at most, counting those on a contended bus: the cap when too few pairs see the free bus."""
    max_seconds: float = 30.0
    """Seconds of timed work per side at most (once ``min_blocks`` pairs are timed), counting every pair."""
    extra_passes: int = 3
    """Extra passes at the end of a run for a measurement whose pairs at full memory bandwidth fell short of ``min_blocks``
    or come from too few passes (:func:`short`)."""
    bus_headroom: bool = False
    """Also count pairs below the free-bus floor within the bus's headroom (``PairedRule.bus_headroom``; off by default)."""

    def lengths(self) -> dict[str, int]:
        """The profile fields the timed runs override."""
        out = {}
        if self.prompt_tokens is not None:
            out["prompt_tokens"] = self.prompt_tokens
        if self.new_tokens is not None:
            out["new_tokens"] = self.new_tokens
        return out

    def sizes(self, run: int) -> list[int] | None:
        """Batch sizes of run ``run`` (0-based)."""
        chosen = self.repeat_batch_sizes if run > 0 and self.repeat_batch_sizes else self.batch_sizes
        return list(chosen) if chosen else None

    def describe(self, profile: Any) -> str:
        """One line for the report and the results files' notes."""
        prompt = self.prompt_tokens or profile.prompt_tokens
        new = self.new_tokens or profile.new_tokens
        first = list(self.batch_sizes or profile.batch_sizes)
        later = list(self.repeat_batch_sizes or first)
        differs = "" if (prompt, new) == (profile.prompt_tokens, profile.new_tokens) else (
            f" (the profile's: {profile.prompt_tokens} and {profile.new_tokens})")
        return (f"timed with a {prompt}-token prompt and {new} new tokens{differs}; paired blocks of 1 untimed and "
                f"{self.repeats_per_block} timed run(s), at least {self.min_blocks} pairs and {self.min_seconds:g} s of timed work "
                f"per side at full memory bandwidth"
                + (f" (or with neither side drawing more than {BUS_HEADROOM_SHARE:.0%} of the bandwidth the bus gave it)"
                   if self.bus_headroom else "")
                + f", at most {self.max_blocks} pairs and {self.max_seconds:g} s in all; "
                f"no speed-up where fewer pairs reach full memory bandwidth, after up to {self.extra_passes} extra pass(es) at the end of "
                f"the run, which also time again one whose pairs at full bandwidth come from fewer than {MIN_PASSES} passes, "
                f"and wait for the bus to come free, up to {FREE_BUS_WAIT_S:g} s before the pass and as long again before its pairs "
                f"that find it contended; "
                f"batch sizes {first} in run 1" + (f", {later} in the later runs" if self.runs > 1 else "")
                + (f"; each run in {self.passes} passes over every measurement, each pass timing its share of the pairs "
                   "in a process of its own, the figures pooling every pass's pairs" if self.passes > 1 else "")
                + "; peak memory in run 1 only")


def _state(settings: Settings, bws: list[Any], runs: list[dict[tuple[str, str], dict[str, Any]]], loads: list[float],
           seconds: dict[str, float]) -> dict[str, Any]:
    return {"settings": dataclasses.asdict(settings), "bandwidth": [dataclasses.asdict(b) for b in bws], "load_averages": loads,
            "seconds": seconds, "runs": [{f"{k[0]}|{k[1]}": v for k, v in r.items()} for r in runs]}


def dump(path: Path, state: dict[str, Any]) -> None:
    """Write the state atomically: a benchmark stopped at any point keeps what it measured."""
    from kompakt.atomic import write_text

    write_text(path, json.dumps(state, indent=1, default=str) + "\n")


def load_state(path: Path, settings: Settings) -> tuple[list[Any], list[dict[tuple[str, str], dict[str, Any]]], list[float], dict[str, float]]:
    """What an earlier benchmark under the same settings measured: bandwidths, runs (the last one possibly
    partial), load averages and seconds per measurement. Raises ``SystemExit`` with the reason when the file cannot
    be resumed."""
    from harness.measure.efficiency.bandwidth import Bandwidth

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        saved = data["settings"]
        bws = [Bandwidth(**b) for b in data["bandwidth"]]
        runs = [{tuple(k.split("|", 1)): v for k, v in r.items()} for r in data["runs"]]
    except FileNotFoundError:
        raise SystemExit(f"--resume: no state file at {path}; start without --resume") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"--resume: {path} is not a benchmark state file ({type(err).__name__}: {err}); start without --resume") from None
    ours = json.loads(json.dumps(dataclasses.asdict(settings)))
    changed = sorted(k for k in set(ours) | set(saved) if ours.get(k) != saved.get(k))
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {ours.get(k)!r} now" for k in changed)
        raise SystemExit(f"--resume: {path} was measured under other settings ({detail}); give the same options or start afresh")
    return bws, runs, list(data.get("load_averages", [])), dict(data.get("seconds", {}))


def remaining_seconds(todo: list[tuple[Any, ...]], seconds: dict[str, float]) -> float | None:
    """About how long the measurements in ``todo`` (run index, spec[, pass index]) take, from ``seconds``
    (``"run|variant|backend[|pass]"``: seconds taken). The first pass of the first run measures memory and its own batch
    sizes, the others only speed, so measurements are of two kinds. Each is estimated as the same (variant, backend) in a
    measurement of its kind; else as its first measurement times the mean ratio of the other kind to the first so far; else
    as the mean of its backend's measurements of its kind, else of all of its kind, else of all. None before anything was
    measured."""
    if not seconds:
        return None
    parsed = []
    for k, v in seconds.items():
        run, variant, backend, *rest = k.split("|")
        parsed.append((0 if int(run) == 0 and (not rest or int(rest[0]) == 0) else 1, f"{variant}|{backend}", v))

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    first = {key: v for run, key, v in parsed if run == 0}
    ratio = mean([v / first[key] for run, key, v in parsed if run > 0 and first.get(key)])
    total = 0.0
    for run, s, *rest in todo:
        key, later = f"{s.variant}|{s.backend}", run > 0 or bool(rest and rest[0] > 0)
        kind = [(k, v) for r, k, v in parsed if (r > 0) == later]
        guess = (mean([v for k, v in kind if k == key])
                 or (first[key] * ratio if later and key in first and ratio else None)
                 or mean([v for k, v in kind if k.endswith(f"|{s.backend}")])
                 or mean([v for _, v in kind])
                 or mean([v for _, _, v in parsed]))
        total += guess or 0.0
    return total


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown until the first measurement ends"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"


# --------------------------------------------------------------------------- main


#: Seconds of timed work per side at least (unless --quick): the minimum a pairing keeps timing for, and the least
#: --max-seconds may be.
MIN_SECONDS = 10.0

#: The fuller protocol (the profile's lengths and batch sizes, 3 timed runs per block, every batch size in every run):
#: about 8 hours for all-methods on two cores, against about 1.4 hours for the defaults (README, *Paired speed-ups*).
FULL = {"prompt_tokens": None, "new_tokens": None, "repeats_per_block": 3, "batch_sizes": "profile", "repeat_batch_sizes": "same"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--runs", type=int, default=2, help="back-to-back runs of the whole benchmark (2 to check agreement)")
    ap.add_argument("--recipe", default="all-methods", help="recipe whose variants to measure (built or taken from the cache)")
    ap.add_argument("--also", default="thesis:prune-8-lora-awq4", help="comma-separated recipe:variant from other recipes, measured "
                    "too (default: the thesis' pipeline of the committed set; '' for none)")
    ap.add_argument("--only", help="comma-separated variant ids (the reference's A/A check is one of them: 'reference')")
    ap.add_argument("--backends", default="pytorch,llama.cpp")
    ap.add_argument("--batch-sizes", default="1", help="comma-separated batch sizes of the first run (default 1, the ranked figure; "
                    "'profile' for the profile's, 1 and 4 on the cpu profile: the 8-bit packed kernel alone then adds half an hour)")
    ap.add_argument("--repeat-batch-sizes", default="1", help="comma-separated batch sizes of the runs after the first (default 1: the "
                    "ranked figure, whose agreement between the runs is checked); 'same' for the first run's")
    ap.add_argument("--prompt-tokens", type=int, default=128, help="prompt length of the timed runs (default 128; 0: the profile's)")
    ap.add_argument("--new-tokens", type=int, default=32, help="tokens generated per timed run (default 32; 0: the profile's)")
    ap.add_argument("--threads", type=int, help="threads for both backends and the bandwidth copy (default: PyTorch's, the physical cores)")
    ap.add_argument("--passes", type=int, default=5, help="passes over every measurement within a run (default 5): each pass times its "
                    "share of the pairs in a process of its own, minutes after the last, and the figures pool them; with 3 or more the "
                    "interval covers the batch-means interval over the passes' own speed-ups, so that a drift between the two sides over "
                    "tens of minutes shows in it (1: every pair in one stretch, bootstrap interval only)")
    ap.add_argument("--min-blocks", type=int, default=10, help="pairs of blocks at least (default 10; at least 10 unless --quick)")
    ap.add_argument("--max-blocks", type=int, default=60, help="pairs of blocks at most, contended ones included (default 60): "
                    "the cap when the memory bus stays contended and too few pairs reach the free-bus floor, so that a measurement "
                    "ends; it then has no speed-up unless an extra pass (--extra-passes) finds the free bus")
    ap.add_argument("--max-seconds", type=float, default=30.0, help="seconds of timed work per side at most, contended pairs "
                    "included, once --min-blocks pairs are timed (default 30, three times the minimum): with the earlier cap of 600 s "
                    "one pass of the reference's A/A check took 10 minutes on a host held at half its bandwidth, and a run's "
                    "estimate rose to 22 h")
    ap.add_argument("--extra-passes", type=int, default=3, help="extra passes at the end of each run for a measurement whose pairs at "
                    "full memory bandwidth fell short of --min-blocks when the cap stopped it, or come from fewer than 3 passes (default "
                    "3, one round over the short measurements after another, so that a bus contended for an hour or more still "
                    "leaves free stretches to find): each waits up to five minutes for the bus to come free, then times at least one pass's share of pairs at full "
                    "bandwidth, under the whole caps; a measurement still short has no speed-up and its results file says why (the "
                    "pairs of a contended bus read another ratio and are never counted in its place)")
    ap.add_argument("--bus-headroom", action="store_true", help="also count pairs below the free-bus floor where neither side drew "
                    "more than half of the bandwidth its probe read (off by default: such pairs were 2 to 6 times as noisy and moved "
                    "prune-8's speed-up by 5 %%, benchmarks/efficiency-runs.md); e.g. --bus-headroom --only prune-8")
    ap.add_argument("--repeats-per-block", type=int, default=1, help="timed runs in each block after its untimed one (default 1)")
    ap.add_argument("--full", action="store_true", help="the fuller protocol: the profile's prompt and generation lengths and batch "
                    "sizes, 3 timed runs per block, every batch size in every run (about six times as long)")
    ap.add_argument("--quick", action="store_true", help="3 short blocks and no time minimum: a smoke run, not figures to keep")
    ap.add_argument("--json", type=Path, help="the state file: every figure of every run, written after each measurement "
                    "(default: <KOMPAKT_CACHE>/bench-efficiency/state.json)")
    ap.add_argument("--resume", action="store_true", help="continue the benchmark the state file holds (same options), "
                    "measuring only what it lacks")
    ap.add_argument("--write-results", action="store_true", help="write results files of the first run (which also measures memory)")
    ap.add_argument("--results-dir", type=Path, help="where --write-results writes and --against reads (default: data/results/)")
    ap.add_argument("--against", metavar="STAMP", help="compare this run with an earlier one of the same options, read from the "
                    "results files it wrote (run ids STAMP-efficiency-*, e.g. 20261130T214039): the earlier run is run 1 of the "
                    "agreement report, this one run 2; needs --runs 1")
    ap.add_argument("--compare", nargs=2, metavar=("RUN1", "RUN2"), help="measure nothing: the agreement report of two earlier runs "
                    "read from their results files, each given by its stamp, or by its parts' stamps, comma-separated, when it was "
                    "taken in parts (--only), part by part in the same order for both; give the options those runs were given")
    args = ap.parse_args(argv)
    if args.against and args.compare:
        ap.error("--against measures a run to compare with an earlier one, --compare compares two earlier ones: give one of them")
    if args.against and args.runs != 1:
        ap.error("--against: the earlier run is run 1 of the comparison; give --runs 1")
    if args.full:
        for k, v in FULL.items():
            setattr(args, k, v)
    if not args.quick and args.min_blocks < 10:
        ap.error("--min-blocks: at least 10 pairs of blocks (fewer make no interval worth recording); --quick for a smoke run")
    if args.repeats_per_block is not None and args.repeats_per_block < 1:
        ap.error("--repeats-per-block: at least 1")
    if args.passes < 1:
        ap.error("--passes: at least 1")
    if args.extra_passes < 0:
        ap.error("--extra-passes: 0 or more")
    if args.max_blocks < args.min_blocks or args.max_seconds < MIN_SECONDS:
        ap.error(f"--max-blocks {args.max_blocks} / --max-seconds {args.max_seconds:g}: the caps must allow the minimums "
                 f"(at least --min-blocks, {args.min_blocks} pairs, and {MIN_SECONDS:g} s of timed work per side)")
    return args


def settings_of(args: argparse.Namespace) -> Settings:
    def sizes(text: str | None) -> tuple[int, ...] | None:
        return tuple(int(b) for b in text.split(",")) if text and text not in ("same", "profile") else None

    quick = args.quick
    return Settings(
        profile=args.profile, recipe=args.recipe, also=tuple(a for a in (args.also or "").split(",") if a),
        only=tuple(args.only.split(",")) if args.only else (),
        backends=tuple(args.backends.split(",")), batch_sizes=sizes(args.batch_sizes), repeat_batch_sizes=sizes(args.repeat_batch_sizes),
        prompt_tokens=args.prompt_tokens or None, new_tokens=args.new_tokens or None,
        min_blocks=3 if quick else args.min_blocks, min_seconds=0.0 if quick else MIN_SECONDS, repeats_per_block=1 if quick else args.repeats_per_block,
        runs=args.runs, threads=args.threads, passes=args.passes,
        max_blocks=3 if quick else args.max_blocks, max_seconds=args.max_seconds, extra_passes=args.extra_passes,
        bus_headroom=args.bus_headroom,
    )


def passes_done(result: dict[str, Any] | None, passes: int) -> int:
    """How many passes of a stored measurement are complete: 0 for none or an error, all of them for one that does not fit."""
    if not result or "error" in result:
        return 0
    if "does_not_fit" in result:
        return passes
    return int(result.get("pass", passes - 1)) + 1


def contended(result: dict[str, Any] | None) -> bool:
    """Whether a stored measurement has a paired record contended throughout (no speed-up: :func:`kompakt.paired.free_bus`)."""
    return any((t.get("paired") or {}).get("bandwidth_contended") for t in (result or {}).get("throughput", []))


def few_passes(result: dict[str, Any] | None, passes: int) -> bool:
    """Whether a stored measurement of a run of at least :data:`~kompakt.paired.MIN_PASSES` passes has a decode speed-up
    whose pairs at full bandwidth come from fewer passes than that: its interval is then the bootstrap's alone, which
    knows nothing of the drift between stretches of time (efficiency-runs.md, *Part 1 again*: ``gguf-q8_0``'s pairs of two passes
    gave an interval that missed the next run's)."""
    if not batched(passes):
        return False
    figures = [((t.get("paired") or {}).get("decode_tokens_per_s") or {}) for t in (result or {}).get("throughput", [])]
    return any(f and not batched(len(f.get("pass_speedups") or [])) for f in figures)


def short(result: dict[str, Any] | None, passes: int) -> str | None:
    """Why a stored measurement gets an extra pass (:func:`contended`, :func:`few_passes`), or None."""
    if contended(result):
        return "too few pairs at full memory bandwidth"
    if few_passes(result, passes):
        return f"pairs at full memory bandwidth from fewer than {MIN_PASSES} passes"
    return None


def merge_pass(earlier: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """A measurement after its latest pass: that pass's figures (which pool every pass's pairs), with the memory, notes and
    peak readings of the first pass, the only one that measured memory."""
    if not earlier or "throughput" not in earlier or "throughput" not in new:
        return new
    notes = list(earlier.get("notes", [])) + [n for n in new.get("notes", []) if n not in earlier.get("notes", [])]
    return {**new, "memory": earlier["memory"], "notes": notes, "raw": {**earlier.get("raw", {}), **new.get("raw", {})}}


def measure_all(specs: list[Spec], settings: Settings, state_path: Path, resume: bool, rule: RepeatRule, paired_rule: PairedRule
                ) -> tuple[list[dict[tuple[str, str], dict[str, Any]]], list[Any], list[float]]:
    """Every pass of every run of every spec, resuming from ``state_path`` when asked; progress and an estimate of the time
    left on stderr. Within a run, pass 1 goes over every spec, then pass 2, ..., so the passes of one (variant, backend)
    lie minutes apart; each pass's result replaces the earlier one's in the state, its figures pooling both. Then, up to
    ``settings.extra_passes`` times, every measurement still contended throughout, or with pairs at full bandwidth from too
    few passes, is timed again (an extra pass, :func:`short`)."""
    from harness.measure.efficiency.bandwidth import measure_bandwidth

    bws, runs, loads, seconds = load_state(state_path, settings) if resume else ([], [], [os.getloadavg()[0]], {})
    t_all = time.perf_counter()
    passes = settings.passes
    total = settings.runs * passes * len(specs)

    def time_pass(i: int, s: Spec, p: int, label: str) -> None:
        """Pass ``p`` of ``s`` in run ``i`` (a process of its own), merged into the run's state, which is then written."""
        results = runs[i]
        key = (s.variant, s.backend)
        print(label, file=sys.stderr)
        t0 = time.perf_counter()
        peak = max((x.get("bandwidth_peak", 0.0) for r in runs for x in r.values()), default=0.0)
        earlier = results.get(key) if p > 0 else None
        r = run_one(s, settings.profile, rule, paired_rule, bws[i], settings.sizes(i), memory=i == 0 and p == 0,
                    threads=settings.threads, lengths=settings.lengths(), peak=peak, passes=passes, pass_index=p,
                    earlier=(earlier or {}).get("raw"))
        r["pass"] = p
        results[key] = merge_pass(earlier, r)
        seconds[f"{i}|{s.variant}|{s.backend}|{p}"] = time.perf_counter() - t0
        status = "error: " + r["error"].splitlines()[0] if "error" in r else ("does not fit" if "does_not_fit" in r else
                                                                              "contended throughout" if contended(r) else "ok")
        loads.append(os.getloadavg()[0])
        print(f"  {s.variant} on {s.backend}{pass_label(p, passes)}: {status} ({time.perf_counter() - t0:.0f} s, load average "
              f"{loads[-1]:.1f})", file=sys.stderr)
        dump(state_path, _state(settings, bws, runs, loads, seconds))  # after every measurement: resumable

    for i in range(settings.runs):
        if i >= len(bws):
            bws.append(measure_bandwidth("cpu"))
        if i >= len(runs):
            runs.append({})
        results = runs[i]
        print(f"run {i + 1}: {bws[i].note()}; load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
        for p in range(passes):
            for s in specs:
                done_here = passes_done(results.get((s.variant, s.backend)), passes)
                if done_here > p:
                    print(f"  {s.variant} on {s.backend}{pass_label(p, passes)}: from {state_path.name}", file=sys.stderr)
                    continue
                if done_here < p:
                    continue  # an earlier pass failed: nothing to add to (resume measures it from its first pass)
                done = sum(min(passes, passes_done(x, passes)) for r in runs for x in r.values())
                todo = [(j, t, q) for j in range(i, settings.runs) for t in specs
                        for q in range(passes_done((runs[j] if j < len(runs) else {}).get((t.variant, t.backend)), passes), passes)]
                time_pass(i, s, p, f"  [{done + 1}/{total}] {s.variant} on {s.backend}{pass_label(p, passes)} (time left in all: "
                                   f"{fmt_duration(remaining_seconds(todo, seconds))})")
        for p in range(passes, passes + settings.extra_passes):
            for s in specs:
                result = results.get((s.variant, s.backend))
                if passes_done(result, passes) > p:
                    print(f"  {s.variant} on {s.backend}{pass_label(p, passes)}: from {state_path.name}", file=sys.stderr)
                elif passes_done(result, passes) == p and (why := short(result, passes)):
                    time_pass(i, s, p, f"  {s.variant} on {s.backend}{pass_label(p, passes)}: {why} after {p} passes, timed again")
    print(f"\nProfile `{settings.profile}`, {len(runs)} run(s) back to back, {time.perf_counter() - t_all:.0f} s in this session "
          f"({sum(seconds.values()):.0f} s of measurements in all).")
    return runs, bws, loads


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_of(args)
    from kompakt import paths
    from kompakt.profiles import get_profile

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # the bandwidth copy runs on the threads the backends get

    blocks = RepeatRule(warmup=1, min_runs=settings.min_blocks, min_seconds=settings.min_seconds,
                        max_runs=settings.max_blocks, max_seconds=settings.max_seconds)
    paired_rule = PairedRule(blocks, repeats=settings.repeats_per_block, bus_headroom=settings.bus_headroom)
    rule = RepeatRule(warmup=1, min_runs=3, min_seconds=0.0) if args.quick else RepeatRule()
    state_path = args.json or paths.cache_dir() / "bench-efficiency" / "state.json"
    how = settings.describe(get_profile(settings.profile))
    if args.compare:
        first, second = (stamps.split(",") for stamps in args.compare)
        lines, _ = compare_runs(first, second, args.results_dir or paths.results_dir(), how, settings.profile)
        print(f"Run 1: results files {', '.join(s + '-efficiency-*' for s in first)}; run 2: {', '.join(s + '-efficiency-*' for s in second)}.\n")
        print("\n".join(lines))
        return 0
    # read before building or timing anything: a wrong stamp or protocol should not cost a run
    if args.against:
        from harness.measure.hardware import detect_hardware

        against = earlier_run(args.against, args.results_dir or paths.results_dir(), how, settings.profile, hardware=detect_hardware())
    else:
        against = None
    specs, notes, base = plan(set(settings.only) or None, set(settings.backends), settings.recipe, settings.also)
    print(f"{len(specs)} measurements a run, {settings.runs} run(s): {how}; state in {state_path}", file=sys.stderr)
    for n in notes:  # before the hours of timing, not only in the report after them
        print(f"  note: {n}", file=sys.stderr)
    runs, bws, loads = measure_all(specs, settings, state_path, args.resume, rule, paired_rule)
    for i, bw in enumerate(bws):
        print(f"- run {i + 1}: {bw.note()}")
    # Other work on the machine shows up as spread: the 1-minute load average before the benchmark and after each
    # measurement, against the number of cores, says how quiet the machine was.
    print(f"- load average before and after each measurement: {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores")
    print(f"- {how}")
    for n in notes:
        print(f"- {n}")
    first = next((r for r in runs[0].values() if "notes" in r), None)
    if first:
        for n in first["notes"]:
            if n.startswith("no energy"):
                print(f"- {n}")
    print()
    print(table(specs, runs, bws))
    if against is not None:
        run1, files = against
        lines, _ = agreement(specs, [run1, runs[0]])
        print(f"\nRun 1: the earlier run whose {len(files)} results files are {args.against}-efficiency-* (`--against`); run 2: this run.\n")
        print("\n".join(lines))
    elif len(runs) > 1:
        lines, _ = agreement(specs, runs)
        print()
        print("\n".join(lines))
    if args.write_results:
        command = "python benchmarks/bench_efficiency.py " + " ".join(argv if argv is not None else sys.argv[1:])
        for p in write_results(specs, runs[0], base, settings.profile, command, args.results_dir, how):
            print(f"wrote {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
