"""GPTQ 4-bit (Frantar et al., 2023), implemented in torch after the authors' reference code.

Why not a library. The candidates were checked against this setup (CPU only,
transformers 5, torch 2.13 pinned):

- AutoGPTQ and AutoAWQ are archived and do not support transformers 5;
  transformers 5 itself loads GPTQ and AWQ checkpoints through gptqmodel.
- gptqmodel builds CUDA kernels at install time and its quantization path
  expects an accelerator; it pins torch and transformers ranges of its own.
- llm-compressor (GPTQ and AWQ, compressed-tensors checkpoints) is maintained
  but pins transformers (and torch) to ranges that would replace the pinned
  versions of this environment.

The algorithm itself is short and well specified, so it is written out here
following the reference implementation (``gptq.py`` of IST-DASLab/gptq,
``fasterquant``), on the same weight grid as RTN and AWQ
(:mod:`harness.build.methods.rtn`), which keeps the three strictly comparable:

1. run calibration text through the model layer by layer; for each linear
   layer accumulate the Hessian of the layer-wise squared error,
   ``H = 2/n * sum x x^T`` over its inputs;
2. dampen ``H`` (``damp`` times its mean diagonal), take the upper Cholesky
   factor of its inverse;
3. quantize the weight columns left to right in blocks of ``block_size``;
   after each column, spread its rounding error over the columns not yet
   quantized, weighted by the inverse Hessian (the optimal brain surgeon
   update); group scales and zeros are fixed when a group's first column is
   reached, from the weights as updated so far;
4. with ``true_sequential`` the layer's linears are done in execution order
   (q/k/v, o, gate/up, down), each seeing the inputs of the already
   quantized ones, and the quantized layer's outputs feed the next layer.

``act_order`` (quantize columns by decreasing Hessian diagonal) is available;
with groups it uses static groups (scales fixed from the original weights
before the permutation) so the saved weights stay on an ordinary contiguous
group grid. The integers (codes, and the scale and zero point each group was given) are returned
alongside the dequantized weights: they cannot be recovered from the output alone, since a group's
grid comes from the weights as updated by the columns before it. They are stored as a packed
checkpoint (see :mod:`harness.build.methods.rtn`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from harness.build.methods import (
    CalibrationConfig,
    MethodError,
    StepContext,
    calibrated_layers,
    layer_linears,
    round_float,
    run_layer,
)
from harness.build.methods.rtn import (
    QuantConfig,
    Quantizer,
    check_group_size,
    code_zero,
    grid_codes,
    grid_params,
    grouped,
    quantize_record,
)
from harness.build.packing.codes import LinearCodes

if TYPE_CHECKING:  # pragma: no cover
    import torch


class GPTQConfig(QuantConfig, CalibrationConfig):
    block_size: int = Field(default=128, ge=1, description="Columns quantized together before the lazy error update (the paper's B = 128).")
    damp: float = Field(default=0.01, gt=0, lt=1, description="Dampening added to the Hessian diagonal, as a fraction of its mean (the paper's 1 %).")
    act_order: bool = Field(default=False, description="Quantize columns in order of decreasing Hessian diagonal (with static groups).")
    true_sequential: bool = Field(default=True, description="Quantize the linears of a layer in execution order, each on the inputs of the quantized ones before it.")


#: Execution order of a Llama layer's linears for true-sequential quantization.
SEQUENTIAL_GROUPS = [
    ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
    ["self_attn.o_proj"],
    ["mlp.gate_proj", "mlp.up_proj"],
    ["mlp.down_proj"],
]


def gptq_quantize(
    weight: "torch.Tensor",
    hessian: "torch.Tensor",
    *,
    bits: int,
    group_size: int,
    symmetric: bool,
    block_size: int = 128,
    damp: float = 0.01,
    act_order: bool = False,
) -> tuple["torch.Tensor", float, LinearCodes]:
    """GPTQ of one ``[out, in]`` weight matrix given its input Hessian; returns (dequantized weights, summed loss, the integers).

    The integers are the codes of every weight with the scale and zero point of its group as
    chosen during the column loop; ``codes.dequantize()`` equals the dequantized weights.
    """
    import torch

    W = weight.detach().clone().float()
    H = hessian.clone().float()
    columns = W.shape[1]
    dead = torch.diag(H) == 0  # inputs that were always zero: their weights do not matter
    H[dead, dead] = 1
    W[:, dead] = 0

    static: list[tuple[torch.Tensor, torch.Tensor]] = []
    if act_order and group_size != -1:
        for g in range(0, columns, group_size):
            static.append(grid_params(W[:, g : g + group_size], bits, symmetric))
    perm = invperm = None
    if act_order:
        perm = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]
        invperm = torch.argsort(perm)

    H = H + damp * torch.mean(torch.diag(H)) * torch.eye(columns, dtype=H.dtype)
    try:
        L = torch.linalg.cholesky(H)
        Hinv = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    except torch.linalg.LinAlgError:
        raise MethodError(f"the Hessian is not positive definite even with damp={damp}; raise params.damp (e.g. 0.1) or use more calibration samples") from None

    Q = torch.zeros_like(W)
    C = torch.zeros_like(W)  # the codes, in the (possibly permuted) column order of W
    losses = torch.zeros(W.shape[0], dtype=torch.float32)
    gs = columns if group_size == -1 else group_size
    scales = torch.zeros(W.shape[0], columns // gs, dtype=torch.float32)
    zeros = torch.zeros(W.shape[0], columns // gs, dtype=torch.float32)
    if group_size == -1:
        scale, zero = grid_params(W, bits, symmetric)
        scales[:, 0], zeros[:, 0] = scale[:, 0], code_zero(zero, bits, symmetric)[:, 0]
    elif act_order:
        for g, (s_g, z_g) in enumerate(static):
            scales[:, g], zeros[:, g] = s_g[:, 0], code_zero(z_g, bits, symmetric)[:, 0]
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        C1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            w = W1[:, i]
            d = Hinv1[i, i]
            if group_size != -1:
                if act_order:
                    g = int(perm[col]) // group_size  # type: ignore[index]
                    scale, zero = static[g]
                elif col % group_size == 0:
                    # As the reference code: the group's grid comes from W, which holds the
                    # updates of earlier blocks (not yet those inside this block).
                    scale, zero = grid_params(W[:, col : col + group_size], bits, symmetric)
                    g = col // group_size
                    scales[:, g], zeros[:, g] = scale[:, 0], code_zero(zero, bits, symmetric)[:, 0]
            c = grid_codes(w.unsqueeze(1), scale, zero, bits, symmetric)
            q = ((c - code_zero(zero, bits, symmetric)) * scale).flatten()
            C1[:, i] = c.flatten()
            Q1[:, i] = q
            losses += (w - q) ** 2 / d**2 / 2
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err
        Q[:, i1:i2] = Q1
        C[:, i1:i2] = C1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    if invperm is not None:
        Q, C = Q[:, invperm], C[:, invperm]
    codes = LinearCodes(C.to(torch.uint8), scales, zeros.to(torch.uint8), bits, gs)
    return Q.to(weight.dtype), float(losses.sum()), codes


class _Hessian:
    """Running ``2/n * sum x x^T`` of a linear layer's inputs (the reference code's ``add_batch``)."""

    def __init__(self, columns: int):
        import torch

        self.H = torch.zeros(columns, columns, dtype=torch.float32)
        self.n = 0

    def add(self, module: Any, args: tuple, output: Any) -> None:
        import math

        x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
        count = x.shape[0]
        self.H *= self.n / (self.n + count)
        self.n += count
        x = math.sqrt(2 / self.n) * x
        self.H += x.t() @ x


class GPTQ(Quantizer):
    name = "gptq"
    Config = GPTQConfig

    def quantize(self, model: Any, config: GPTQConfig, ctx: StepContext) -> tuple[dict[str, LinearCodes], dict[str, Any], str | None]:
        import torch
        from tqdm.auto import tqdm

        check_group_size(model, config.group_size)
        layers, inps, kwargs, source = calibrated_layers(model, config, ctx)
        groups = SEQUENTIAL_GROUPS if config.true_sequential else [sum(SEQUENTIAL_GROUPS, [])]
        total_loss = 0.0
        codes: dict[str, LinearCodes] = {}
        with torch.no_grad():
            for index, layer in enumerate(tqdm(layers, desc=f"gptq int{config.bits}", disable=not ctx.show_progress, leave=False)):
                linears = layer_linears(layer)
                for names in groups:
                    stats = {n: _Hessian(linears[n].in_features) for n in names}
                    handles = [linears[n].register_forward_hook(stats[n].add) for n in names]
                    try:
                        for x, kw in zip(inps, kwargs):
                            run_layer(layer, x, kw)
                    finally:
                        for h in handles:
                            h.remove()
                    for n in names:
                        q, loss, codes[f"model.layers.{index}.{n}"] = gptq_quantize(
                            linears[n].weight,
                            stats[n].H,
                            bits=config.bits,
                            group_size=config.group_size,
                            symmetric=config.symmetric,
                            block_size=config.block_size,
                            damp=config.damp,
                            act_order=config.act_order,
                        )
                        linears[n].weight.copy_(q)
                        total_loss += loss
                inps = [run_layer(layer, x, kw) for x, kw in zip(inps, kwargs)]
        record = quantize_record(model, config)
        record["gptq_loss"] = round_float(total_loss)
        record.update(source.record())
        return codes, record, source.notes() or None


__all__ = ["GPTQ", "GPTQConfig", "gptq_quantize", "grouped"]
