"""Round-to-nearest (RTN) weight quantization: the baseline every smarter method must beat.

Each weight group (``group_size`` consecutive input channels of one output
row) gets its own scale and, asymmetric by default, zero point from its min
and max; every weight is rounded to the nearest of the ``2**bits`` levels.
No data is used. Embeddings and the LM head stay in float, as in AWQ and GPTQ,
so the three are compared on the same set of quantized weights.

The quantizer functions here are shared: AWQ and GPTQ quantize onto exactly
the same grid, and differ only in how they choose what to round.

Storage: the weights are saved dequantized ("fake quantization"): every saved
float lies exactly on the quantization grid, so accuracy and perplexity are
those of the real low-bit model, but PyTorch runs them in float32. The bytes
the packed weights would take (low-bit codes plus a float16 scale and a
``bits``-bit zero point per group) are recorded as ``packed_weight_bytes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from harness.build.methods import Method, MethodConfig, MethodError, StepContext, StepOutcome, module_linears

if TYPE_CHECKING:  # pragma: no cover
    import torch


class QuantConfig(MethodConfig):
    """Weight grid shared by RTN, AWQ and GPTQ."""

    bits: int = Field(default=4, ge=2, le=8, description="Bits per weight (2 to 8); 4 and 8 are the usual choices.")
    group_size: int = Field(
        default=64,
        description="Input channels sharing one scale and zero point; -1 for one per output channel. Must divide every "
        "layer's input width (SmolLM2-135M: 576 and 1536, so 32, 64 or 192, not 128).",
    )
    symmetric: bool = Field(default=False, description="Symmetric grid around zero (no zero point) instead of min-max with a zero point.")

    @field_validator("group_size")
    @classmethod
    def _group(cls, v: int) -> int:
        if v != -1 and v < 2:
            raise ValueError("group_size must be -1 (per output channel) or at least 2, e.g. 64")
        return v


class RTNConfig(QuantConfig):
    """Round-to-nearest: no data, no search."""


# --------------------------------------------------------------------------- the grid


def check_group_size(model: Any, group_size: int) -> None:
    """Raise a clear error if ``group_size`` does not divide the input width of every quantized layer."""
    if group_size == -1:
        return
    for name, module in module_linears(model):
        if module.in_features % group_size:
            divisors = [g for g in (32, 64, 96, 128, 192, 256) if module.in_features % g == 0]
            raise MethodError(
                f"params.group_size: {group_size} does not divide the input width {module.in_features} of {name}; "
                f"use one of {divisors or [-1]} (or -1 for per-channel scales)"
            )


def grouped(w: "torch.Tensor", group_size: int) -> "torch.Tensor":
    """View ``[out, in]`` weights as ``[out * groups, group_size]`` rows (one row per group)."""
    if group_size == -1:
        return w.reshape(w.shape[0], -1)
    return w.reshape(-1, group_size)


def grid_params(w_rows: "torch.Tensor", bits: int, symmetric: bool) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Scale and zero point per row of ``w_rows`` (each ``[rows, 1]``), from the row's range."""
    import torch

    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = w_rows.abs().amax(dim=1, keepdim=True) / qmax
        # An all-zero row would give scale 0 and 0/0 below; any positive scale rounds it to 0 exactly.
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.zeros_like(scale)
    else:
        qmax = 2**bits - 1
        lo = w_rows.amin(dim=1, keepdim=True).clamp(max=0)
        hi = w_rows.amax(dim=1, keepdim=True).clamp(min=0)
        scale = (hi - lo) / qmax
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero = torch.round(-lo / scale).clamp(0, qmax)
    return scale, zero


def quantize_rows(w_rows: "torch.Tensor", scale: "torch.Tensor", zero: "torch.Tensor", bits: int, symmetric: bool) -> "torch.Tensor":
    """Round ``w_rows`` onto the grid given by ``scale`` and ``zero`` and dequantize again."""
    import torch

    if symmetric:
        q = torch.clamp(torch.round(w_rows / scale), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return q * scale
    q = torch.clamp(torch.round(w_rows / scale) + zero, 0, 2**bits - 1)
    return (q - zero) * scale


def fake_quantize(w: "torch.Tensor", bits: int, group_size: int, symmetric: bool) -> "torch.Tensor":
    """Round-to-nearest of a ``[out, in]`` weight matrix onto its own min-max grid, dequantized."""
    rows = grouped(w.float(), group_size)
    scale, zero = grid_params(rows, bits, symmetric)
    return quantize_rows(rows, scale, zero, bits, symmetric).reshape(w.shape).to(w.dtype)


def packed_bytes(model: Any, bits: int, group_size: int, symmetric: bool) -> int:
    """Bytes of the packed quantized linears: codes plus a float16 scale (and a zero point) per group."""
    total = 0
    for _, module in module_linears(model):
        out_f, in_f = module.weight.shape
        groups = out_f * (1 if group_size == -1 else in_f // group_size)
        zero_bits = 0 if symmetric else bits
        total += (out_f * in_f * bits + groups * (16 + zero_bits) + 7) // 8
        if module.bias is not None:
            total += module.bias.numel() * 2
    return total


def quantize_record(model: Any, cfg: QuantConfig) -> dict[str, Any]:
    linears = module_linears(model)
    return {
        "quantized_linears": len(linears),
        "quantized_parameters": sum(m.weight.numel() for _, m in linears),
        "packed_weight_bytes": packed_bytes(model, cfg.bits, cfg.group_size, cfg.symmetric),
        "storage": "dequantized float32 on the quantization grid",
    }


STORAGE_NOTE = (
    "Saved dequantized (fake quantization): every weight lies on the {bits}-bit grid, so quality is that of the "
    "quantized model, but PyTorch holds float32; packed_weight_bytes is what the packed weights would take."
)


class RTN(Method):
    name = "rtn"
    Config = RTNConfig
    stage = "quantize"

    def apply(self, model: Any, config: RTNConfig, ctx: StepContext) -> StepOutcome:
        import torch
        from tqdm.auto import tqdm

        check_group_size(model, config.group_size)
        linears = module_linears(model)
        with torch.no_grad():
            for _, module in tqdm(linears, desc=f"rtn int{config.bits}", disable=not ctx.show_progress, leave=False):
                module.weight.copy_(fake_quantize(module.weight, config.bits, config.group_size, config.symmetric))
        return StepOutcome(model=model, record=quantize_record(model, config), notes=STORAGE_NOTE.format(bits=config.bits))
