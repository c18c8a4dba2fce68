"""AWQ 4-bit (Lin et al., 2024), implemented in torch after the authors' reference code.

Library choice: AutoAWQ, which the thesis used, is archived and does not
support transformers 5 (transformers now loads AWQ checkpoints through
gptqmodel); gptqmodel expects an accelerator for quantizing, and
llm-compressor pins transformers and torch to other versions than this
environment's (see :mod:`harness.build.methods.gptq` for the full comparison). So the
algorithm is written out here following llm-awq (``auto_scale.py``,
``auto_clip.py``, ``run_awq``), on the same weight grid as RTN and GPTQ
(:mod:`harness.build.methods.rtn`):

For each decoder layer, with the inputs the full-precision model gives it on
calibration text:

1. **scale search** for four groups of linears that share an input:
   q/k/v after the input norm (judged by the attention output), o after v
   (only when their shapes allow it, i.e. without grouped-query attention), gate/up after the
   post-attention norm (judged by the MLP output), and down after up. With
   ``s = mean|x|^alpha`` per input channel (normalised by
   ``sqrt(max s * min s)``), the weights are multiplied by ``s``, quantized,
   divided by ``s`` again, and the ``alpha`` in ``0, 1/n_grid, ...`` that gives the
   smallest output error is kept. The scale is then folded for real: the
   preceding norm (or linear) is divided by ``s`` and the linears multiplied
   by ``s``, which leaves the float model's function unchanged but protects
   the salient input channels from rounding;
2. **clip search** for every linear but q and k (as the reference code): per
   output channel and group, the largest magnitude is shrunk by up to
   ``max_shrink`` in ``n_grid`` steps, and the clip that minimises the error of
   the group's partial outputs on 512 sampled tokens is applied;
3. finally every linear is rounded to nearest on its (now scaled and clipped)
   min-max grid.

``duo_scaling`` adds AutoAWQ's later variant, ``s = mean|x|^alpha / mean|w|^(1-alpha)``; off
by default, as in the paper. Step 3 keeps each linear's integers (codes, scales, zero
points), which are stored as a packed AWQ GEMM checkpoint (see :mod:`harness.build.methods.rtn`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from pydantic import Field

from harness.build.methods import (
    CalibrationConfig,
    StepContext,
    calibrated_layers,
    layer_linears,
    round_float,
    run_layer,
)
from harness.build.methods.rtn import QuantConfig, Quantizer, check_group_size, fake_quantize, quantize_record, quantize_to_codes
from harness.build.packing.codes import LinearCodes

if TYPE_CHECKING:  # pragma: no cover
    import torch


class AWQConfig(QuantConfig, CalibrationConfig):
    n_grid: int = Field(default=20, ge=2, le=200, description="Grid points of the scale exponent alpha and of the clip search (the reference code's 20).")
    max_shrink: float = Field(default=0.5, ge=0, lt=1, description="Largest fraction by which the clip search may shrink a group's range.")
    clip: bool = Field(default=True, description="Run the clip search (step 2).")
    duo_scaling: bool = Field(default=False, description="Also divide the scales by mean|w|^(1-alpha), as AutoAWQ does (off in the paper).")
    clip_tokens: int = Field(default=512, ge=16, description="Tokens sampled for the clip search (the reference code's 512).")


def _quantizer(cfg: AWQConfig) -> Callable[["torch.Tensor"], "torch.Tensor"]:
    return lambda w: fake_quantize(w, cfg.bits, cfg.group_size, cfg.symmetric)


def _mean_abs(xs: list["torch.Tensor"]) -> "torch.Tensor":
    import torch

    total = torch.zeros(xs[0].shape[-1], dtype=torch.float64)
    count = 0
    for x in xs:
        flat = x.reshape(-1, x.shape[-1])
        total += flat.abs().double().sum(0)
        count += flat.shape[0]
    return (total / count).float()


def _weight_mean(linears: list[Any], group_size: int) -> "torch.Tensor":
    """AutoAWQ's per-input-channel mean of |w| normalised by each group's max (for duo scaling)."""
    import torch

    weight = torch.cat([fc.weight for fc in linears], dim=0)
    shape = weight.shape
    gs = group_size if group_size != -1 else shape[1]
    w = weight.reshape(-1, gs).abs()
    w = w / (w.amax(dim=1, keepdim=True) + 1e-6)
    return w.reshape(shape).mean(0)


def search_scale(
    block: Callable[["torch.Tensor", int], "torch.Tensor"],
    linears: list[Any],
    xs: list["torch.Tensor"],
    cfg: AWQConfig,
) -> tuple["torch.Tensor", float, float]:
    """Best per-input-channel scales for ``linears`` judged by ``block``'s output; (scales, alpha, error)."""
    import torch

    quantize = _quantizer(cfg)
    originals = [fc.weight.detach().clone() for fc in linears]
    reference = [block(x, i).detach() for i, x in enumerate(xs)]
    x_mean = _mean_abs(xs)
    w_mean = _weight_mean(linears, cfg.group_size) if cfg.duo_scaling else None
    best = (float("inf"), -1.0, None)
    for step in range(cfg.n_grid):
        alpha = step / cfg.n_grid
        if w_mean is not None:
            scales = (x_mean.pow(alpha) / w_mean.pow(1 - alpha).clamp(min=1e-4)).clamp(min=1e-4)
        else:
            scales = x_mean.pow(alpha).clamp(min=1e-4)
        scales = scales / (scales.max() * scales.min()).sqrt()
        for fc, w in zip(linears, originals):
            fc.weight.copy_(quantize(w * scales.view(1, -1)) / scales.view(1, -1))
        err = 0.0
        count = 0
        for i, x in enumerate(xs):
            out = block(x, i)
            err += float((reference[i] - out).float().pow(2).sum())
            count += out.numel()
        err /= count
        if err < best[0]:
            best = (err, alpha, scales.clone())
    for fc, w in zip(linears, originals):
        fc.weight.copy_(w)
    if best[2] is None:  # pragma: no cover - every error was NaN
        raise ValueError("AWQ scale search found no finite error; check the calibration data")
    return best[2], best[1], best[0]


def search_clip(weight: "torch.Tensor", xs: list["torch.Tensor"], cfg: AWQConfig) -> "torch.Tensor":
    """Per output channel and group, the clipping threshold that minimises the group's output error.

    The reference code forms ``(x * w).sum(-1)`` on ``[channels, tokens, groups, group_size]``
    broadcasts; the same per-group partial outputs are computed here as one batched
    matrix product per group (``[groups, tokens, gs] @ [groups, gs, out]``), which gives
    identical numbers at a fraction of the memory traffic on a CPU.
    """
    import torch

    quantize = _quantizer(cfg)
    out_f, in_f = weight.shape
    gs = cfg.group_size if cfg.group_size != -1 else in_f
    groups = in_f // gs
    x = torch.cat([t.reshape(-1, in_f) for t in xs], dim=0)
    step = max(1, x.shape[0] // cfg.clip_tokens)
    x = x[0::step][: cfg.clip_tokens]
    xg = x.reshape(-1, groups, gs).transpose(0, 1).contiguous()  # [groups, tokens, gs]
    w = weight.reshape(out_f, groups, gs)
    org_max = w.abs().amax(dim=-1, keepdim=True)  # [out, groups, 1]
    best_max = org_max.clone()
    min_err = torch.full_like(org_max, float("inf"))
    org_out = torch.bmm(xg, w.permute(1, 2, 0))  # [groups, tokens, out]
    for i_s in range(int(cfg.max_shrink * cfg.n_grid)):
        max_val = org_max * (1 - i_s / cfg.n_grid)
        cur = torch.clamp(w, -max_val, max_val)
        q = quantize(cur.reshape(out_f, in_f)).reshape(out_f, groups, gs)
        err = (torch.bmm(xg, q.permute(1, 2, 0)) - org_out).pow(2).mean(dim=1)  # [groups, out]
        err = err.t().unsqueeze(-1)  # [out, groups, 1]
        better = err < min_err
        min_err[better] = err[better]
        best_max[better] = max_val[better]
    return best_max  # [out, groups, 1]


def apply_clip(linear: Any, max_val: "torch.Tensor") -> None:
    import torch

    shape = linear.weight.shape
    w = linear.weight.reshape(*max_val.shape[:2], -1)
    linear.weight.copy_(torch.clamp(w, -max_val, max_val).reshape(shape))


class AWQ(Quantizer):
    name = "awq"
    Config = AWQConfig

    def quantize(self, model: Any, config: AWQConfig, ctx: StepContext) -> tuple[dict[str, LinearCodes], dict[str, Any], str | None]:
        import torch
        from tqdm.auto import tqdm

        check_group_size(model, config.group_size)
        layers, inps, kwargs, source = calibrated_layers(model, config, ctx)
        alphas: list[float] = []
        scale_err: list[float] = []
        codes: dict[str, LinearCodes] = {}
        with torch.no_grad():
            for index, layer in enumerate(tqdm(layers, desc=f"awq int{config.bits}", disable=not ctx.show_progress, leave=False)):
                fcs = layer_linears(layer)
                feats: dict[str, list[torch.Tensor]] = {n: [] for n in fcs}

                def grab(name: str):
                    def hook(module: Any, args: tuple, output: Any) -> None:
                        feats[name].append(args[0].detach())

                    return hook

                handles = [fcs[n].register_forward_hook(grab(n)) for n in fcs]
                try:
                    outs = [run_layer(layer, x, kw) for x, kw in zip(inps, kwargs)]
                finally:
                    for h in handles:
                        h.remove()

                attn, mlp = layer.self_attn, layer.mlp

                def attn_block(x: torch.Tensor, i: int) -> torch.Tensor:
                    kw = {k: v for k, v in kwargs[i].items() if k not in ("use_cache", "position_ids")}
                    out = attn(hidden_states=x, **kw)
                    return out[0] if isinstance(out, tuple) else out

                plan: list[tuple[Any, list[str], str, Callable[[torch.Tensor, int], torch.Tensor]]] = [
                    (layer.input_layernorm, ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], "self_attn.q_proj", attn_block),
                ]
                v, o = fcs["self_attn.v_proj"], fcs["self_attn.o_proj"]
                if v.weight.shape == o.weight.shape:  # v's outputs are o's inputs one to one only without GQA
                    plan.append((v, ["self_attn.o_proj"], "self_attn.o_proj", lambda x, i: o(x)))
                plan.append(
                    (layer.post_attention_layernorm, ["mlp.gate_proj", "mlp.up_proj"], "mlp.gate_proj", lambda x, i: mlp(x)),
                )
                down = fcs["mlp.down_proj"]
                plan.append((fcs["mlp.up_proj"], ["mlp.down_proj"], "mlp.down_proj", lambda x, i: down(x)))

                for prev, names, feat_name, block in plan:
                    linears = [fcs[n] for n in names]
                    scales, alpha, err = search_scale(block, linears, feats[feat_name], config)
                    alphas.append(alpha)
                    scale_err.append(err)
                    # Fold the scales: previous op / s, these linears * s (function unchanged).
                    if isinstance(prev, torch.nn.Linear):
                        prev.weight.div_(scales.view(-1, 1))
                        if prev.bias is not None:
                            prev.bias.div_(scales)
                    else:
                        prev.weight.div_(scales)
                        if getattr(prev, "bias", None) is not None:
                            prev.bias.div_(scales)
                    for fc in linears:
                        fc.weight.mul_(scales.view(1, -1))
                    for n in names:  # the recorded inputs of the scaled linears shrink accordingly
                        feats[n] = [x / scales.view(1, 1, -1) for x in feats[n]]
                if config.clip:
                    for n, fc in fcs.items():
                        if n in ("self_attn.q_proj", "self_attn.k_proj"):
                            continue  # the reference code leaves q and k unclipped (attention scores are sensitive)
                        apply_clip(fc, search_clip(fc.weight, feats[n], config))
                for n, fc in fcs.items():
                    deq, codes[f"model.layers.{index}.{n}"] = quantize_to_codes(fc.weight, config.bits, config.group_size, config.symmetric)
                    fc.weight.copy_(deq)
                del feats
                inps = outs
        record = quantize_record(model, config)
        record["mean_alpha"] = round_float(sum(alphas) / len(alphas))
        record["scale_search_groups"] = len(alphas)
        record.update(source.record())
        return codes, record, source.notes() or None
