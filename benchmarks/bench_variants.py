"""Benchmark the harness on the embedded model: time and peak memory of each step, perplexity of each variant.

Builds the variants of one or more recipes (default: thesis) on the embedded
SmolLM2-135M-Instruct, by default in a fresh temporary cache so that every
step is really run and timed, then measures each variant's token perplexity
on the first windows of WikiText-2 test (``shared/benchmarks/wikitext2``,
evaluation only) and prints two markdown tables: one row per built step (wall
time and peak resident memory of the process during the step, as recorded in
the cache entry's ``artifact.json``) and one row per variant.

GGUF variants are scored by loading the GGUF file through transformers (its
weights dequantized), so the number reflects the GGUF quantization.

Run:  python benchmarks/bench_variants.py --recipe thesis --windows 8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _gib(n: int | None) -> str:
    return f"{n / 2**30:.2f}" if n else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", action="append", help="Recipe name or file (repeatable; default: thesis).")
    parser.add_argument("--variant", action="append", help="Only these variant ids (repeatable).")
    parser.add_argument("--windows", type=int, default=8, help="WikiText-2 windows of --context tokens to score (default 8).")
    parser.add_argument("--context", type=int, default=512, help="Context length of the perplexity windows (default 512).")
    parser.add_argument("--cache", type=Path, help="Artifact cache to use (default: a fresh temporary one, so every step is timed).")
    args = parser.parse_args(argv)

    if args.cache:
        os.environ["KOMPAKT_CACHE"] = str(args.cache)
    else:
        os.environ["KOMPAKT_CACHE"] = tempfile.mkdtemp(prefix="kompakt-bench-")
    from harness.requirements import require

    require("lora", "bnb", purpose="the benchmark")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    from harness.build import artifacts
    from harness.build.base_model import load_model, load_tokenizer, resolve
    from harness.measure.tasks.token_perplexity import token_perplexity, wikitext2_text
    from harness.build.recipes import find_recipe, load_recipe

    recipes = [load_recipe(find_recipe(r)) for r in (args.recipe or ["thesis"])]
    text = wikitext2_text()
    t0 = time.perf_counter()
    base = resolve(recipes[0].base_model, show_progress=False)
    convert_s = time.perf_counter() - t0

    step_rows: list[str] = []
    variant_rows: list[str] = []
    seen_keys: set[str] = set()
    for recipe in recipes:
        tokenizer = load_tokenizer(base.path)
        for vid, variant in recipe.variants.items():
            if args.variant and vid not in args.variant:
                continue
            print(f"building {recipe.name}/{vid} ...", file=sys.stderr, flush=True)
            artifact = artifacts.build(recipe, vid, base=base, show_progress=False)
            total_s, peak = 0.0, 0
            if not variant.is_reference:
                for key in artifacts.chain_keys(base, variant.steps):
                    entry = artifacts.read_entry(artifacts.entry_dir(base, key))
                    if entry is None:  # pragma: no cover
                        continue
                    secs, rss = entry.info.get("build_seconds", 0.0), entry.info.get("peak_rss_bytes", 0)
                    total_s += secs
                    peak = max(peak, rss)
                    if key not in seen_keys:
                        seen_keys.add(key)
                        step = entry.variant.steps[-1]
                        step_rows.append(f"| {recipe.name}/{vid} | {len(entry.variant.steps)} | {step.method} | {secs:.1f} | {_gib(rss)} |")
            print(f"scoring {recipe.name}/{vid} ...", file=sys.stderr, flush=True)
            if artifact.format == "gguf":
                from transformers import AutoModelForCausalLM

                model = AutoModelForCausalLM.from_pretrained(artifact.model_path.parent, gguf_file=artifact.model_path.name)
            else:
                model = load_model(artifact.model_path)
            t1 = time.perf_counter()
            ppl = token_perplexity(model, tokenizer, text, context_length=args.context, limit=args.windows, progress_desc=vid).perplexity
            eval_s = time.perf_counter() - t1
            chain = " > ".join(s.method for s in artifact.variant.steps) or "reference"
            size = artifact.info.get("disk_bytes")
            layers = getattr(model.config, "num_hidden_layers", "-")
            variant_rows.append(
                f"| {recipe.name}/{vid} | {chain} | {layers} | {total_s:.1f} | {_gib(peak)} | {_gib(size)} | {ppl:.3f} | {eval_s:.0f} |"
            )
            del model

    print(f"\nBase model: {base.info.name} ({base.info.id}), reference conversion {convert_s:.1f} s; "
          f"perplexity: WikiText-2 test, first {args.windows} windows of {args.context} tokens; torch threads: "
          f"{__import__('torch').get_num_threads()}.\n")
    print("| variant (first built by) | step | method | seconds | peak RSS GiB |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(step_rows) or "| (all cached) | | | | |")
    print()
    print("| variant | steps | layers | build s (all steps) | peak RSS GiB | disk GiB | token ppl | eval s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(variant_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
