#!/usr/bin/env python3
"""Each linear layer's output error of built quantized variants against the reference, on held-out text.

A diagnostic, not a leaderboard metric: it shows whether a quantizer reduces what it optimises
(GPTQ minimises each layer's output error on its calibration text) on text it never saw. The
README quotes its output for ``rtn4`` and ``gptq4``. Only variants whose linears keep the
reference's shapes and meaning can be compared (RTN, GPTQ; not AWQ, whose scales move into the
norms before them, and not pruned variants). The variants must be built already (``kompakt
variants build``); nothing is built here.

    KOMPAKT_SHARED=../shared .venv/bin/python scripts/layer-error.py rtn4 gptq4
    .venv/bin/python scripts/layer-error.py rtn4 gptq4 --layers 0 29 --text some.txt --tokens 1024

The error of a layer is ``|X Wq^T - X W^T|^2 / |X W^T|^2`` with X the inputs the reference
layer receives on the text (the reference's own inputs, so each layer is judged alone, without
the errors of the layers before it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def default_text() -> Path:
    # WikiText-2 *validation* text: neither the C4 calibration text nor the test set that is scored
    shared = Path(os.environ.get("KOMPAKT_SHARED", ROOT.parent / "shared"))
    files = sorted((shared / "corpora" / "wikitext2_valid").glob("*"))
    if not files:
        raise SystemExit(f"no held-out text under {shared / 'corpora' / 'wikitext2_valid'}: pass --text or set KOMPAKT_SHARED")
    return files[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", help="variant ids of the recipe, built already")
    parser.add_argument("--recipe", default="all-methods", help="recipe the variants come from")
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 10, 20, 29], help="decoder layers to check")
    parser.add_argument("--text", type=Path, help="held-out text file (default: WikiText-2 validation from ../shared/corpora)")
    parser.add_argument("--tokens", type=int, default=2048, help="tokens of text, in sequences of 512")
    args = parser.parse_args()

    import torch
    from safetensors.torch import load_file

    from harness import artifacts
    from harness.base_model import load_model, load_tokenizer, resolve_cached
    from harness.recipes import find_recipe, load_recipe

    base = resolve_cached()
    if base is None:
        raise SystemExit("the embedded base model is not prepared yet: run `kompakt variants build` first")
    recipe = load_recipe(find_recipe(args.recipe))
    weights = {}
    for vid in args.variants:
        try:
            variant = recipe.variant(vid)
        except KeyError as e:  # names the recipe's variants, with a did-you-mean
            raise SystemExit(e.args[0]) from None
        found = artifacts.cached(base, variant)
        if found is None or found.format != "hf":
            raise SystemExit(f"{vid}: not built as a transformers checkpoint (build it with `kompakt variants build --variant {vid}`)")
        weights[vid] = load_file(str(found.model_path / "model.safetensors"))

    model, tok = load_model(base.path), load_tokenizer(base.path)
    n = args.tokens // 512
    ids = tok((args.text or default_text()).read_text(encoding="utf-8"), return_tensors="pt").input_ids[0]
    if ids.numel() < n * 512:
        raise SystemExit(f"the text has {ids.numel()} tokens, fewer than --tokens {args.tokens}")
    ids = ids[: n * 512].reshape(n, 512)

    inputs: dict[str, torch.Tensor] = {}
    hooks = []
    for li in args.layers:
        for name, mod in model.model.layers[li].named_modules():
            if isinstance(mod, torch.nn.Linear):
                key = f"model.layers.{li}.{name}.weight"
                hooks.append(mod.register_forward_hook(lambda m, a, o, key=key: inputs.__setitem__(key, a[0].reshape(-1, a[0].shape[-1]).detach())))
    with torch.no_grad():
        model(ids)
    for h in hooks:
        h.remove()

    state = model.state_dict()
    first = args.variants[0]
    print(f"| linear | {' | '.join(args.variants)} |" + "".join(f" {v} / {first} |" for v in args.variants[1:]))
    print("|---|" + "---|" * (2 * len(args.variants) - 1))
    ratios: dict[str, list[float]] = {v: [] for v in args.variants[1:]}
    for key, x in inputs.items():
        ref = x @ state[key].T
        err = {v: float(((x @ w[key].float().T - ref) ** 2).sum() / (ref**2).sum()) for v, w in weights.items()}
        for v in ratios:
            ratios[v].append(err[v] / err[first])
        cells = " | ".join(f"{err[v]:.2e}" for v in args.variants) + "".join(f" | {err[v] / err[first]:.2f}" for v in ratios)
        print(f"| {key.removeprefix('model.layers.').removesuffix('.weight')} | {cells} |")
    for v, r in ratios.items():
        print(f"\n{v} / {first}: median {statistics.median(r):.2f}, range {min(r):.2f}–{max(r):.2f} over {len(r)} linears")


if __name__ == "__main__":
    main()
