#!/usr/bin/env python3
"""Where built quantized variants depart from the reference, layer by layer, on held-out text.

A diagnostic, not a leaderboard metric: it shows whether a quantizer reduces what it optimises
(GPTQ minimises each layer's output error on its calibration text) on text it never saw, and
whether that carries through the model. The README quotes its output for ``rtn4``, ``gptq4`` and
``awq4``. The variants must be built already (``kompakt variants build``); nothing is built here,
and they must keep all the reference's layers (no pruned variants).

    KOMPAKT_SHARED=../shared .venv/bin/python scripts/layer-error.py rtn4 gptq4 awq4
    .venv/bin/python scripts/layer-error.py rtn4 gptq4 --layers 0 29 --text some.txt --tokens 1024

Two tables:

1. Each linear's output error ``|X Wq^T - X W^T|^2 / |X W^T|^2``, with X the inputs the reference
   layer receives (each layer judged alone, without the errors of the layers before it), and the
   ratio to the first variant's. Only for variants made by ``rtn`` and ``gptq`` alone, whose linears
   keep the reference's meaning; AWQ moves its scales into the norms before them.
2. The whole model: the KL divergence of each variant's next-token distribution from the
   reference's, its mean token NLL, and the relative error of the residual stream after the
   layers named (the last one is after the final norm, as transformers returns it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Methods whose linears can be compared one to one with the reference's.
SAME_LINEARS = {"rtn", "gptq"}


def relative_output_error(x, weight, reference) -> float:
    """``|X Wq^T - X W^T|^2 / |X W^T|^2``: a linear's output error on inputs ``x`` (tokens x features)."""
    out = x @ reference.T
    return float(((x @ weight.float().T - out) ** 2).sum() / (out**2).sum())


def kl_from_reference(ref_logp, logp) -> float:
    """Mean over positions of KL(reference || variant), both given as log-probabilities (..., vocab)."""
    return float((ref_logp.exp() * (ref_logp - logp)).sum(-1).mean())


def stream_error(hidden, ref_hidden) -> float:
    """Relative error ``|h - h_ref| / |h_ref|`` of a residual stream over all positions."""
    return float((hidden - ref_hidden).norm() / ref_hidden.norm())


def token_nll(logp, ids) -> float:
    """Mean negative log-likelihood of each next token of ``ids`` (batch x length) under ``logp``."""
    return float(-logp[:, :-1].gather(-1, ids[:, 1:, None]).mean())


def linear_weights(model, path: Path) -> dict[str, torch.Tensor]:
    """The variant's weights by name; for a packed checkpoint (rtn, awq, gptq) its linears' integers dequantized as
    ``(q - z) * s`` with the stored float16 scales (gptqmodel's unpacking), the weights the kernels stand for."""
    from harness.build.packing.loading import packed_method, read_packed_codes

    state = dict(model.state_dict())
    if packed_method(path) is not None:
        codes, _ = read_packed_codes(path)
        state.update({f"{name}.weight": c.dequantize() for name, c in codes.items()})
    return state


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
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 10, 20, 29], help="decoder layers to check (0-based)")
    parser.add_argument("--text", type=Path, help="held-out text file (default: WikiText-2 validation from ../shared/corpora)")
    parser.add_argument("--tokens", type=int, default=2048, help="tokens of text, in sequences of 512")
    args = parser.parse_args()

    import torch

    from harness.build import artifacts
    from harness.build.base_model import load_model, load_tokenizer, resolve_cached
    from harness.build.recipes import find_recipe, load_recipe

    base = resolve_cached()
    if base is None:
        raise SystemExit("the embedded base model is not prepared yet: run `kompakt variants build` first")
    recipe = load_recipe(find_recipe(args.recipe))
    found = {}
    for vid in args.variants:
        try:
            variant = recipe.variant(vid)
        except KeyError as e:  # names the recipe's variants, with a did-you-mean
            raise SystemExit(e.args[0]) from None
        artifact = artifacts.cached(base, variant)
        if artifact is None or artifact.format != "hf":
            raise SystemExit(f"{vid}: not built as a transformers checkpoint (build it with `kompakt variants build --variant {vid}`)")
        found[vid] = (variant, artifact)

    ref, tok = load_model(base.path), load_tokenizer(base.path)
    n = args.tokens // 512
    ids = tok((args.text or default_text()).read_text(encoding="utf-8"), return_tensors="pt").input_ids[0]
    if ids.numel() < n * 512:
        raise SystemExit(f"the text has {ids.numel()} tokens, fewer than --tokens {args.tokens}")
    ids = ids[: n * 512].reshape(n, 512)

    inputs: dict[str, torch.Tensor] = {}
    hooks = []
    for li in args.layers:
        for name, mod in ref.model.layers[li].named_modules():
            if isinstance(mod, torch.nn.Linear):
                key = f"model.layers.{li}.{name}.weight"
                hooks.append(mod.register_forward_hook(lambda m, a, o, key=key: inputs.__setitem__(key, a[0].reshape(-1, a[0].shape[-1]).detach())))
    with torch.no_grad():
        ref_out = ref(ids, output_hidden_states=True)
    for h in hooks:
        h.remove()
    ref_logp = torch.log_softmax(ref_out.logits.float(), -1)
    depth = len(ref_out.hidden_states) - 1

    models = {vid: load_model(a.model_path) for vid, (_, a) in found.items()}
    for vid, m in models.items():
        if len(m.model.layers) != depth:
            raise SystemExit(f"{vid} has {len(m.model.layers)} layers, the reference {depth}: only variants of the full depth compare here")

    linear = [v for v, (variant, _) in found.items() if variant.steps and all(s.method in SAME_LINEARS for s in variant.steps)]
    if len(linear) >= 2:
        state = ref.state_dict()
        weights = {v: linear_weights(models[v], found[v][1].model_path) for v in linear}
        first, rest = linear[0], linear[1:]
        print(f"Each linear's output error on the reference's inputs ({n} x 512 tokens)\n")
        print(f"| linear | {' | '.join(linear)} |" + "".join(f" {v} / {first} |" for v in rest))
        print("|---|" + "---|" * (2 * len(linear) - 1))
        ratios: dict[str, list[float]] = {v: [] for v in rest}
        for key, x in inputs.items():
            err = {v: relative_output_error(x, w[key], state[key]) for v, w in weights.items()}
            for v in rest:
                ratios[v].append(err[v] / err[first])
            cells = " | ".join(f"{err[v]:.2e}" for v in linear) + "".join(f" | {err[v] / err[first]:.2f}" for v in rest)
            print(f"| {key.removeprefix('model.layers.').removesuffix('.weight')} | {cells} |")
        for v, r in ratios.items():
            print(f"\n{v} / {first}: median {statistics.median(r):.2f}, range {min(r):.2f}–{max(r):.2f} over {len(r)} linears")
        print()

    after = [li + 1 for li in args.layers]
    print(f"The whole model on the same text (reference NLL {token_nll(ref_logp, ids):.4f})\n")
    print("| variant | KL from the reference | token NLL | " + " | ".join(f"stream error after layer {a}" for a in after) + " |")
    print("|---|---|---|" + "---|" * len(after))
    for vid, m in models.items():
        with torch.no_grad():
            out = m(ids, output_hidden_states=True)
        logp = torch.log_softmax(out.logits.float(), -1)
        kl = kl_from_reference(ref_logp, logp)
        stream = [stream_error(out.hidden_states[a], ref_out.hidden_states[a]) for a in after]
        print(f"| {vid} | {kl:.4f} | {token_nll(logp, ids):.4f} | " + " | ".join(f"{e:.3f}" for e in stream) + " |")


if __name__ == "__main__":
    main()
