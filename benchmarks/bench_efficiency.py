"""On-demand benchmark: memory, speed and energy of the embedded model's variants on both backends.

Issue 5: every variant on PyTorch and llama.cpp, each figure repeated (warm-up, then
at least 10 runs and 10 s), the whole benchmark run twice back to back; decode
tokens/s must agree within 5 % between the two runs. Each decode figure at batch 1 is
printed as a share of the memory-bandwidth bound, from the bandwidth measured at the
start of each run.

    python benchmarks/bench_efficiency.py                       # both runs, all variants, profile cpu
    python benchmarks/bench_efficiency.py --runs 1 --quick      # a smoke run (3 repeats, no time minimum)
    python benchmarks/bench_efficiency.py --only reference,gguf-q8_0
    python benchmarks/bench_efficiency.py --json /tmp/eff.json  # also keep every figure
    python benchmarks/bench_efficiency.py --write-results       # results files under data/results/ (first run)

Variants: those of a recipe (``--recipe``, default ``all-methods``), built (or taken from
the artifact cache) exactly as ``kompakt bench`` builds them, each on every backend that can
run the artifact as it is:

- safetensors checkpoints on PyTorch (float variants, and bitsandbytes' packed int8/NF4);
- GGUF exports on llama.cpp;
- float safetensors variants (the reference, pruned, healed, distilled) on llama.cpp too, written unchanged as an F32 GGUF (the same values in
  another container). The reference's F32 GGUF is written by llama.cpp's own quantizer
  from the shipped Q4_1 file (Q4_1 -> F32 is exact dequantization, as the PyTorch
  reference is), the others by kompakt's GGUF writer (``harness/build/methods/gguf_export.py``).

Not run, and said so: bitsandbytes' packed int8/NF4 on llama.cpp (GGUF has no such types),
the packed RTN/AWQ/GPTQ checkpoints on llama.cpp (their integers are the ``*-gguf`` variants),
and GGUF variants on PyTorch (transformers dequantizes them to float32, which is no longer
the artifact's memory or speed; their accuracy is measured that way by ``kompakt bench``).

Each (variant, backend) is measured in a fresh process (multiprocessing, spawn), so the
peak resident memory of one is not inflated by what an earlier one left in the
allocator. Built artifacts are cached under ``<KOMPAKT_CACHE>/bench-efficiency/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.measure.efficiency.speed import RepeatRule, relative_difference  # noqa: E402
from kompakt import paths  # noqa: E402

#: The agreement issue 5 asks for between two back-to-back runs.
AGREEMENT = 0.05


@dataclass
class Spec:
    variant: str
    backend: str
    path: Path
    lineage: Any = None
    """The lineage (kompakt.results.Variant) as the artifact records it."""
    notes: str | None = None


def cache() -> Path:
    d = paths.cache_dir() / "bench-efficiency"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _requantize(src: Path, dst: Path, ftype_name: str) -> Path:
    """Write ``src`` in another GGUF type with llama.cpp's own quantizer (once)."""
    if dst.is_file():
        return dst
    import llama_cpp
    from llama_cpp import _logger

    _logger.set_verbose(False)  # llama.cpp logs every tensor it converts otherwise
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype_name)
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    tmp = dst.with_suffix(".tmp.gguf")
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize {ftype_name} failed ({rc})")
    os.replace(tmp, dst)
    return dst


def _f32_gguf(variant_id: str, art: Any, base: Any) -> Path:
    """The float variant's weights, unchanged, as an F32 GGUF for llama.cpp (written once, atomically)."""
    dst = cache() / f"{variant_id}-{art.key[:16]}-f32.gguf"
    if dst.is_file():
        return dst
    from harness.build.base_model import load_model, load_tokenizer
    from harness.build.methods.gguf_export import write_gguf

    model = load_model(art.model_path)
    tmp = dst.with_suffix(".tmp.gguf")
    write_gguf(model, load_tokenizer(base.path), tmp, "F32", name=variant_id, gguf_source=base.gguf_path)
    os.replace(tmp, dst)
    return dst


F32_NOTE = ("the variant's float32 weights written unchanged as an F32 GGUF by kompakt's GGUF writer, so llama.cpp runs "
            "the same values")


def plan(only: set[str] | None, backends: set[str], recipe_name: str = "all-methods") -> tuple[list[Spec], list[str], Any]:
    """One spec per variant of the recipe and backend that can run it as it is (module docstring).
    Variants are built (or taken from the artifact cache) exactly as ``kompakt bench`` builds them,
    so the lineage is the same."""
    from harness.build import artifacts
    from harness.build.base_model import embedded_gguf_path, resolve, saved_quantization_config
    from harness.measure.backends.llamacpp import available
    from harness.build.recipes import find_recipe, load_recipe

    notes = []
    base = resolve(show_progress=False)
    recipe = load_recipe(find_recipe(recipe_name))
    llama_ok, why = available()
    if "llama.cpp" in backends and not llama_ok:
        notes.append(f"llama.cpp rows skipped: {why}")
    specs: list[Spec] = []
    for vid, rv in recipe.variants.items():
        if only and vid not in only:
            continue
        if rv.is_reference:
            art = artifacts.reference_artifact(base)
        else:
            art = artifacts.build(recipe, vid, base=base, show_progress=False)
        lineage = art.variant.model_copy(update={"id": vid})
        if art.format == "gguf":
            if "llama.cpp" in backends and llama_ok:
                specs.append(Spec(vid, "llama.cpp", art.model_path, lineage=lineage))
            continue
        if "pytorch" in backends:
            specs.append(Spec(vid, "pytorch", art.model_path, lineage=lineage))
        if "llama.cpp" in backends and llama_ok and not rv.is_reference:
            qc = saved_quantization_config(art.model_path)
            if qc is not None and qc.get("quant_method") in ("awq", "gptq"):  # a packed AWQ/GPTQ checkpoint
                notes.append(f"{vid} not run on llama.cpp as such: its integers on llama.cpp are the variant {vid}-gguf")
            elif qc is not None:  # bitsandbytes' packed weights
                notes.append(f"{vid} not run on llama.cpp: bitsandbytes' packed weights have no GGUF type")
            else:
                specs.append(Spec(vid, "llama.cpp", _f32_gguf(vid, art, base), lineage=lineage, notes=F32_NOTE))
    if "llama.cpp" in backends and llama_ok and (not only or "reference" in only):
        f32 = _requantize(embedded_gguf_path(), cache() / "smollm2-135m-f32.gguf", "LLAMA_FTYPE_ALL_F32")
        specs.append(Spec("reference", "llama.cpp", f32, notes="the reference's weights as an F32 GGUF, written by llama.cpp's "
                          "quantizer from the shipped Q4_1 file (exact dequantization, as the PyTorch reference is)"))
    # The reference on both backends first, bitsandbytes (slow CPU kernels) last.
    specs.sort(key=lambda s: (s.variant != "reference", s.variant.startswith("bnb"), s.backend != "pytorch"))
    return specs, notes, base


def _worker(spec: Spec, profile_name: str, rule: RepeatRule, bw: Any, queue: Any, batch_sizes: list[int] | None, memory: bool,
            threads: int | None) -> None:
    try:
        from harness.measure.efficiency import DoesNotFit, measure

        options = None
        if threads:
            import torch

            torch.set_num_threads(threads)
            options = {"threads": threads} if spec.backend == "llama.cpp" else None
        from kompakt.profiles import get_profile

        try:
            r = measure(spec.path, get_profile(profile_name), spec.backend, rule=rule, bandwidth=bw, batch_sizes=batch_sizes, memory=memory, backend_options=options,
                        log=lambda m: print(f"    {spec.variant} {m}", file=sys.stderr, flush=True))
        except DoesNotFit as err:
            queue.put({"does_not_fit": err.status().model_dump()})
            return
        queue.put({
            "memory": r.memory.model_dump(), "throughput": [t.model_dump() for t in r.throughput],
            "energy": [e.model_dump() for e in r.energy], "notes": r.notes, "software": r.software,
            "weights_bytes": r.weights_bytes, "settings": r.settings, "raw": r.raw,
        })
    except BaseException as err:  # report, do not hang the parent
        import traceback

        queue.put({"error": f"{type(err).__name__}: {err}\n{traceback.format_exc()[-2000:]}"})


def run_one(spec: Spec, profile: str, rule: RepeatRule, bw: Any, batch_sizes: list[int] | None = None, memory: bool = True,
            threads: int | None = None) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_worker, args=(spec, profile, rule, bw, q, batch_sizes, memory, threads))
    p.start()
    out = q.get()
    p.join()
    return out


def fmt_mb(n: float | None) -> str:
    return "–" if n is None else f"{n / 1e6:,.1f}"


def table(specs: list[Spec], runs: list[dict[tuple[str, str], dict[str, Any]]], bws: list[Any]) -> str:
    head = ("| variant | backend | batch | weights MB | disk MB | peak RSS MB | prefill tok/s | TTFT ms | decode tok/s (min–max) "
            "| ms/token | bound tok/s | share of bound | decode run 2 | Δ runs |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for s in specs:
        first = runs[0].get((s.variant, s.backend), {})
        if "throughput" not in first:
            reason = first.get("error") or json.dumps(first.get("does_not_fit"))
            lines.append(f"| {s.variant} | {s.backend} | – | | | | | | {str(reason)[:80]} | | | | | |")
            continue
        m = first["memory"]
        for i, t in enumerate(first["throughput"]):
            d = t["decode_tokens_per_s"]
            bound = bws[0].bytes_per_s / first["weights_bytes"] if t["batch_size"] == 1 else None
            second = runs[1].get((s.variant, s.backend), {}) if len(runs) > 1 else {}
            share = t["bandwidth_bound_share"]
            d2 = None
            if "throughput" in second:
                d2 = next((x["decode_tokens_per_s"]["value"] for x in second["throughput"] if x["batch_size"] == t["batch_size"]), None)
            diff = f"{relative_difference(d['value'], d2) * 100:.1f} %" if d2 else "–"
            lines.append(
                f"| {s.variant} | {s.backend} | {t['batch_size']} | {fmt_mb(m['weights_bytes']) if i == 0 else ''} | "
                f"{fmt_mb(m['disk_bytes']) if i == 0 else ''} | {fmt_mb(m['peak_host_bytes']) if i == 0 else ''} | "
                f"{t['prefill_tokens_per_s']['value']:,.0f} | {t['time_to_first_token_ms']['value']:.0f} | "
                f"{d['value']:.1f} ({d['min']:.1f}–{d['max']:.1f}) | {t['ms_per_token']['value']:.1f} | "
                f"{'' if bound is None else f'{bound:.1f}'} | "
                f"{'' if share is None else f'{share * 100:.1f} %'} | "
                f"{'–' if d2 is None else f'{d2:.1f}'} | {diff} |"
            )
    return "\n".join(lines)


def write_results(specs: list[Spec], run: dict[tuple[str, str], dict[str, Any]], base: Any, profile: str, command: str, bw: Any) -> list[Path]:
    """One results file per (variant, backend), through the harness's own writer (validated, atomic)."""
    from harness.measure.hardware import detect_hardware, detect_software
    from harness.run.results_writer import write_results as write
    from kompakt.results import Energy, Measured, Memory, Metrics, ResultsFile, Status, Throughput, Variant

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    hardware = detect_hardware(use_accelerator=False)
    software = detect_software()
    written = []
    for s in specs:
        r = run.get((s.variant, s.backend))
        if not r or "error" in r:
            continue
        variant = s.lineage or Variant(id=s.variant, is_reference=s.variant == "reference", steps=[], notes=s.notes)
        notes = list(r.get("notes", []))
        if s.notes and s.lineage is not None:
            notes.insert(0, s.notes)  # how this backend got the artifact (the reference's goes in its variant notes)
        if "does_not_fit" in r:
            status, metrics = Status(**r["does_not_fit"]), Metrics()
        else:
            status = Status(code="ok")
            # One file per (variant, backend): the leaderboard gives each backend its own row, with the
            # memory measured in the same process as that backend's speed figures.
            memory = Memory(**r["memory"]) if r.get("memory") else None
            metrics = Metrics(memory=memory, throughput=[Throughput(**t) for t in r["throughput"]], energy=[Energy(**e) for e in r["energy"]])
        other = {**software.other, **{k.replace("-", "_"): v for k, v in r.get("software", {}).items()}}
        digest = hashlib.sha256(f"{s.variant}{s.backend}{now.isoformat()}".encode()).hexdigest()[:6]
        run_id = f"{now:%Y%m%dT%H%M%S}-efficiency-{s.backend}-{digest}"
        rf = ResultsFile(
            schema_version=1, run_id=run_id, status=status, base_model=base.info, variant=variant, profile=profile,
            hardware=hardware, software=software.model_copy(update={"other": other}),
            provenance=Measured(kind="measured", command=command, date=now), metrics=metrics, notes=notes[:50],
        )
        written.append(write(rf))
    return written


def dump(path: Path, bws: list[Any], runs: list[dict[tuple[str, str], dict[str, Any]]]) -> None:
    data = {"bandwidth": [b.__dict__ for b in bws], "runs": [{f"{k[0]}|{k[1]}": v for k, v in r.items()} for r in runs]}
    path.write_text(json.dumps(data, indent=1, default=str))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--runs", type=int, default=2, help="back-to-back runs of the whole benchmark (2 to check agreement)")
    ap.add_argument("--recipe", default="all-methods", help="recipe whose variants to measure (built or taken from the cache)")
    ap.add_argument("--only", help="comma-separated variant ids")
    ap.add_argument("--backends", default="pytorch,llama.cpp")
    ap.add_argument("--batch-sizes", help="comma-separated batch sizes instead of the profile's")
    ap.add_argument("--repeat-batch-sizes", help="comma-separated batch sizes of the runs after the first (default: the same as the first); "
                    "e.g. 1 to check the agreement of batch-1 decode, the ranked figure, in less time")
    ap.add_argument("--threads", type=int, help="threads for both backends and the bandwidth copy (default: PyTorch's, the physical cores); "
                    "on a machine shared with other work, 1 thread avoids spinning thread barriers waiting for a descheduled peer")
    ap.add_argument("--quick", action="store_true", help="3 repeats and no time minimum: a smoke run, not figures to keep")
    ap.add_argument("--json", type=Path, help="write every figure of every run to this file")
    ap.add_argument("--write-results", action="store_true", help="write results files of the first run (which also measures memory) under data/results/")
    args = ap.parse_args(argv)

    from harness.measure.efficiency.bandwidth import measure_bandwidth

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # the bandwidth copy runs on the threads the backends get

    rule = RepeatRule(warmup=1, min_runs=3, min_seconds=0.0) if args.quick else RepeatRule()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else None
    repeat_sizes = [int(b) for b in args.repeat_batch_sizes.split(",")] if args.repeat_batch_sizes else None
    specs, notes, base = plan(set(args.only.split(",")) if args.only else None, set(args.backends.split(",")), args.recipe)
    runs: list[dict[tuple[str, str], dict[str, Any]]] = []
    bws = []
    loads: list[float] = []
    t_all = time.perf_counter()
    for i in range(args.runs):
        bw = measure_bandwidth("cpu")
        bws.append(bw)
        print(f"run {i + 1}: {bw.note()}; load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
        results = {}
        for s in specs:
            t0 = time.perf_counter()
            # Peak memory is measured in the first run only (the agreement check is on speed).
            sizes = repeat_sizes if i > 0 and repeat_sizes else batch_sizes
            results[(s.variant, s.backend)] = run_one(s, args.profile, rule, bw, sizes, memory=i == 0, threads=args.threads)
            r = results[(s.variant, s.backend)]
            status = "error: " + r["error"].splitlines()[0] if "error" in r else ("does not fit" if "does_not_fit" in r else "ok")
            load = os.getloadavg()[0]
            loads.append(load)
            print(f"  {s.variant} on {s.backend}: {status} ({time.perf_counter() - t0:.0f} s, load average {load:.1f})", file=sys.stderr)
            if args.json:  # after every measurement, so a long benchmark that is stopped keeps what it measured
                dump(args.json, bws, runs + [results])
        runs.append(results)
    print(f"\nProfile `{args.profile}`, {len(runs)} run(s) back to back, {time.perf_counter() - t_all:.0f} s in all.")
    for i, bw in enumerate(bws):
        print(f"- run {i + 1}: {bw.note()}")
    # Other work on the machine shows up as spread: the 1-minute load average after each
    # measurement, against the number of cores, says how quiet the machine was.
    print(f"- load average after each measurement: {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores")
    for n in notes:
        print(f"- {n}")
    first = next((r for r in runs[0].values() if "notes" in r), None)
    if first:
        for n in first["notes"]:
            if n.startswith("no energy"):
                print(f"- {n}")
    print()
    print(table(specs, runs, bws))
    if len(runs) > 1:
        diffs = []
        for key, r1 in runs[0].items():
            r2 = runs[1].get(key, {})
            for t1 in r1.get("throughput", []):
                t2 = next((t for t in r2.get("throughput", []) if t["batch_size"] == t1["batch_size"]), None)
                if t2:
                    diffs.append((relative_difference(t1["decode_tokens_per_s"]["value"], t2["decode_tokens_per_s"]["value"]), key, t1["batch_size"]))
        if diffs:
            worst = max(diffs)
            within = sum(d <= AGREEMENT for d, *_ in diffs)
            print(f"\nDecode tokens/s between the two runs: {within} of {len(diffs)} figures within {AGREEMENT:.0%}; "
                  f"largest difference {worst[0]:.1%} ({worst[1][0]} on {worst[1][1]}, batch {worst[2]}).")
    if args.write_results:
        command = "python benchmarks/bench_efficiency.py " + " ".join(argv if argv is not None else sys.argv[1:])
        for p in write_results(specs, runs[0], base, args.profile, command, bws[0]):
            print(f"wrote {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
