"""On-demand check of the packed quantized artifacts (issue 17) on the embedded model: bytes, perplexity, a quick speed.

For each quantizer variant of ``all-methods`` named (default ``rtn4,awq4,gptq4``), built or taken from the
artifact cache exactly as ``kompakt bench`` builds them, together with its lossless GGUF export (``<id>-gguf``):

- **weights**: bytes of the weights as held after one short forward pass (the kernels repack on first use),
  PyTorch for the packed checkpoint (``PytorchBackend.weights_bytes``), llama.cpp for the GGUF export (its tensor
  data), each as a share of the float32 reference's on PyTorch;
- **token perplexity** on WikiText-2 (``--windows`` windows of ``--context`` tokens, kompakt's protocol) of
  1. the fake-quantized float32 model: the method's ``(q - z) * s`` with its float32 scales, recomputed by the
     method itself (``Method.quantize``; for AWQ and GPTQ a calibration run) with ``--exact-fake``, else rebuilt
     from the packed checkpoint's integers with its float16 scales (the method's result up to the scales'
     float16 rounding), which is said in the output;
  2. the packed checkpoint on gptqmodel's kernels (``load_packed``, as ``kompakt bench`` loads it), and where its
     quality is measured on another kernel (``rtn8``: ``TorchLinear``), on that one too;
  3. the GGUF export from llama.cpp's own logits (``llamacpp_token_perplexity``);
- **speed** (``--speed``): a quick single-thread check, not the paired speed protocol: decode at batch 1
  (64 tokens after a 128-token prompt) of each GGUF export against the reference as an F32 GGUF on llama.cpp,
  alternated ``--rounds`` times, the median ratio of ms per token.

    KOMPAKT_SHARED=../shared .venv/bin/python benchmarks/bench_packed.py
    .venv/bin/python benchmarks/bench_packed.py --variants rtn4 --windows 2 --speed --json /tmp/packed.json
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _say(text: str) -> None:
    print(text, flush=True)


def fake_model(base: Any, artifact: Any, exact: bool, tokenizer: Any) -> tuple[Any, str]:
    """The fake-quantized float32 model of a packed variant, and how it was obtained."""
    import torch

    from harness.build.base_model import load_model
    from harness.build.methods import StepContext, get_method, set_seed
    from harness.build.packing.loading import read_packed_codes
    from safetensors.torch import load_file

    model = load_model(base.path)
    step = artifact.variant.steps[-1]
    if exact:
        from harness.build.recipes import load_recipe, find_recipe

        planned = load_recipe(find_recipe("all-methods")).variant(artifact.variant.id).steps[-1]
        method = get_method(planned.method)
        set_seed(getattr(planned.config, "seed", 0))
        ctx = StepContext(tokenizer=tokenizer, base=base, out_dir=Path("/nonexistent"), show_progress=False)
        method.quantize(model, planned.config, ctx)
        return model, f"{step.method}'s own result, float32 scales (recomputed)"
    codes, _ = read_packed_codes(artifact.model_path)
    floats = {}
    for f in sorted(Path(artifact.model_path).glob("*.safetensors")):
        floats.update({k: v for k, v in load_file(str(f)).items() if v.is_floating_point() and not k.endswith(".scales")})
    with torch.no_grad():
        model.load_state_dict(floats, strict=False)  # norms (AWQ folds its scales into them), embedding
        for name, c in codes.items():
            model.get_submodule(name).weight.copy_(c.dequantize())
    return model, "rebuilt from the packed integers, float16 scales"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="rtn4,awq4,gptq4")
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--threads", type=int, default=None, help="torch and llama.cpp threads for the perplexities")
    ap.add_argument("--exact-fake", action="store_true", help="recompute the fake-quantized model with the method itself")
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from harness.build.artifacts import build
    from harness.build.base_model import load_model, load_tokenizer, resolve
    from harness.build.methods.gguf_export import write_gguf
    from harness.build.packing.loading import load_packed
    from harness.run.loading import quality_format
    from harness.build.recipes import find_recipe, load_recipe
    from harness.measure.backends.llamacpp import LlamaCppBackend
    from harness.measure.backends.pytorch import PytorchBackend
    from harness.measure.tasks.token_perplexity import llamacpp_token_perplexity, token_perplexity, wikitext2_text
    from kompakt import paths

    recipe = load_recipe(find_recipe("all-methods"))
    base = resolve(recipe.base_model, show_progress=False)
    tok = load_tokenizer(base.path)
    text = wikitext2_text()
    ppl = {"context_length": args.context, "limit": args.windows}
    out: dict[str, Any] = {"windows": args.windows, "context": args.context, "variants": {}}

    ref = PytorchBackend.load_path(base.path)
    ref_bytes = ref.weights_bytes()
    ref.close()
    out["reference_weights_bytes"] = ref_bytes
    _say(f"reference (float32, PyTorch): weights {ref_bytes / 1e6:.2f} MB")
    f32 = paths.cache_dir() / "bench-packed" / f"reference-{base.digest[:16]}-f32.gguf"
    if not f32.is_file():
        f32.parent.mkdir(parents=True, exist_ok=True)
        write_gguf(load_model(base.path), tok, f32, "F32", name="reference (F32)", gguf_source=base.gguf_path)

    for vid in [v for v in args.variants.split(",") if v]:
        t0 = time.perf_counter()
        packed, gguf = build(recipe, vid, base=base, show_progress=False), build(recipe, f"{vid}-gguf", base=base, show_progress=False)
        row: dict[str, Any] = {"build_or_cache_s": round(time.perf_counter() - t0, 1), "record": packed.variant.steps[-1].record,
                               "gguf_record": gguf.variant.steps[-1].record}
        model, how = fake_model(base, packed, args.exact_fake or packed.variant.steps[-1].method == "rtn", tok)
        row["fake"] = {"how": how, "ppl": token_perplexity(model, tok, text, **ppl, progress_desc=f"{vid} fake").perplexity}
        del model
        gc.collect()
        be = PytorchBackend.load_path(packed.model_path)
        row["packed"] = {"weights_bytes": be.weights_bytes(), "kernels": be.settings().get("kernels"),
                         "ppl": token_perplexity(be.model, tok, text, **ppl, progress_desc=f"{vid} packed").perplexity}
        be.close()
        gc.collect()
        fmt = quality_format(packed)
        if fmt is not None:  # quality is measured on another kernel of the same checkpoint: how far apart are the two?
            model = load_packed(Path(packed.model_path), backend=fmt.quality_backend)
            q = token_perplexity(model, tok, text, **ppl, progress_desc=f"{vid} on {fmt.quality_kernel}").perplexity
            row["quality_kernel"] = {"kernel": fmt.quality_kernel, "ppl": q, "vs_packed_pct": 100 * (q / row["packed"]["ppl"] - 1)}
            _say(f"{vid}: quality kernel {fmt.quality_kernel} PPL {q:.4f} against {fmt.kernel}'s {row['packed']['ppl']:.4f} "
                 f"({row['quality_kernel']['vs_packed_pct']:+.4f} %)")
            del model
            gc.collect()
        ll = LlamaCppBackend(gguf.model_path)
        row["gguf"] = {"weights_bytes": ll.weights_bytes()}
        ll.close()
        row["gguf"]["ppl"] = llamacpp_token_perplexity(gguf.model_path, tok, text, threads=args.threads, **ppl,
                                                       progress_desc=f"{vid}-gguf llama.cpp").perplexity
        fake = row["fake"]["ppl"]
        for k in ("packed", "gguf"):
            row[k]["weights_ratio"] = row[k]["weights_bytes"] / ref_bytes
            row[k]["ppl_vs_fake_pct"] = 100 * (row[k]["ppl"] / fake - 1)
        out["variants"][vid] = row
        _say(f"{vid}: fake ({how}) PPL {fake:.4f}; packed PPL {row['packed']['ppl']:.4f} ({row['packed']['ppl_vs_fake_pct']:+.3f} %), "
             f"weights {row['packed']['weights_ratio']:.3f} of float32 [{row['packed']['kernels']}]; GGUF {gguf.variant.steps[-1].params['quant_type']} "
             f"on llama.cpp PPL {row['gguf']['ppl']:.4f} ({row['gguf']['ppl_vs_fake_pct']:+.3f} %), weights {row['gguf']['weights_ratio']:.3f}")

    if args.speed:
        out["speed"] = quick_speed(f32, {v: build(recipe, f"{v}-gguf", base=base, show_progress=False).model_path for v in out["variants"]},
                                   args.rounds)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")


def quick_speed(reference: Path, exports: dict[str, Path], rounds: int) -> dict[str, Any]:
    """Decode ms per token at one thread, each export and the F32 reference alternated; median ratio per export."""
    from harness.measure.backends.llamacpp import LlamaCppBackend

    backends = {"reference": LlamaCppBackend(reference, threads=1), **{v: LlamaCppBackend(p, threads=1) for v, p in exports.items()}}
    prompt = [[1000 + (i * 37) % 20000 for i in range(128)]]
    per_token: dict[str, list[float]] = {k: [] for k in backends}
    try:
        for b in backends.values():  # warm-up
            b.generate(prompt, 8)
        for _ in range(rounds):
            for name, b in backends.items():
                stamps = b.generate(prompt, 64)
                per_token[name].append(1000 * (stamps[-1] - stamps[1]) / 63)
    finally:
        for b in backends.values():
            b.close()
    result: dict[str, Any] = {"ms_per_token": per_token}
    for name in exports:
        ratios = [a / r for a, r in zip(per_token[name], per_token["reference"])]
        result[name] = {"ratio_median": statistics.median(ratios), "ratios": ratios}
        _say(f"speed {name}-gguf vs F32 reference, 1 thread: {statistics.median(per_token[name]):.1f} vs "
             f"{statistics.median(per_token['reference']):.1f} ms/token, ratio {statistics.median(ratios):.2f} (rounds {', '.join(f'{r:.2f}' for r in ratios)})")
    return result


if __name__ == "__main__":
    main()
