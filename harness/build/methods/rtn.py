"""Round-to-nearest (RTN) weight quantization: the baseline every smarter method must beat.

Each weight group (``group_size`` consecutive input channels of one output
row) gets its own scale and, asymmetric by default, zero point from its min
and max; every weight is rounded to the nearest of the ``2**bits`` levels.
No data is used. Embeddings and the LM head stay in float, as in AWQ and GPTQ,
so the three are compared on the same set of quantized weights.

The quantizer functions here are shared: AWQ and GPTQ quantize onto exactly
the same grid, and differ only in how they choose what to round.

Storage: every quantizer ends with the integers of each linear (codes, scales,
zero points: :class:`harness.build.packing.codes.LinearCodes`) and writes them as a
real packed checkpoint (:func:`harness.build.packing.store.write_packed`): AWQ GEMM for
4-bit grids, GPTQ 8-bit for the per-channel symmetric int8 grid
(:mod:`harness.build.packing.formats`). The fake-quantized float model (every weight
``(q - z) * s``) exists only inside the step, to compare the packed model's logits with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from harness.build.methods import MODEL_DIR, Method, MethodConfig, MethodError, StepContext, StepOutcome, module_linears
from harness.build.packing.codes import LinearCodes
from harness.build.packing.formats import format_for, unsupported_grid

if TYPE_CHECKING:  # pragma: no cover
    import torch


class QuantConfig(MethodConfig):
    """Weight grid shared by RTN, AWQ and GPTQ."""

    bits: int = Field(
        default=4, ge=2, le=8,
        description="Bits per weight: 4 (stored as AWQ GEMM) or 8 (per-channel symmetric, stored as GPTQ 8-bit); other widths "
        "have no packed format with a CPU kernel here and are refused.",
    )
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

    @model_validator(mode="after")
    def _packable(self) -> "QuantConfig":
        if format_for(self.bits, self.group_size, self.symmetric) is None:
            raise ValueError(unsupported_grid(self.bits, self.group_size, self.symmetric))
        return self


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


def grid_codes(w_rows: "torch.Tensor", scale: "torch.Tensor", zero: "torch.Tensor", bits: int, symmetric: bool) -> "torch.Tensor":
    """The unsigned integer codes (as floats) of ``w_rows`` rounded onto the grid given by ``scale`` and ``zero``.

    Asymmetric: ``q = clamp(round(w / s) + z, 0, 2**bits - 1)``. Symmetric: the signed
    ``clamp(round(w / s), -2**(bits-1), 2**(bits-1) - 1)`` shifted by ``2**(bits-1)``, so one
    unsigned form (zero point ``2**(bits-1)``) serves every packed format.
    """
    import torch

    if symmetric:
        offset = 2 ** (bits - 1)
        return torch.clamp(torch.round(w_rows / scale), -offset, offset - 1) + offset
    return torch.clamp(torch.round(w_rows / scale) + zero, 0, 2**bits - 1)


def code_zero(zero: "torch.Tensor", bits: int, symmetric: bool) -> "torch.Tensor":
    """The zero point of the unsigned codes: ``zero`` itself, or ``2**(bits-1)`` on a symmetric grid."""
    import torch

    return torch.full_like(zero, 2 ** (bits - 1)) if symmetric else zero


def quantize_rows(w_rows: "torch.Tensor", scale: "torch.Tensor", zero: "torch.Tensor", bits: int, symmetric: bool) -> "torch.Tensor":
    """Round ``w_rows`` onto the grid given by ``scale`` and ``zero`` and dequantize again: ``(q - z) * s``."""
    return (grid_codes(w_rows, scale, zero, bits, symmetric) - code_zero(zero, bits, symmetric)) * scale


def quantize_to_codes(w: "torch.Tensor", bits: int, group_size: int, symmetric: bool) -> tuple["torch.Tensor", LinearCodes]:
    """Round-to-nearest of a ``[out, in]`` weight matrix onto its own min-max grid: (dequantized weight, the integers)."""
    import torch

    out_f, in_f = w.shape
    rows = grouped(w.float(), group_size)
    scale, zero = grid_params(rows, bits, symmetric)
    q = grid_codes(rows, scale, zero, bits, symmetric)
    z = code_zero(zero, bits, symmetric)
    deq = ((q - z) * scale).reshape(w.shape).to(w.dtype)
    gs = in_f if group_size == -1 else group_size
    groups = in_f // gs
    codes = LinearCodes(
        codes=q.to(torch.uint8).reshape(out_f, in_f),
        scales=scale.reshape(out_f, groups),
        zeros=z.to(torch.uint8).reshape(out_f, groups),
        bits=bits,
        group_size=gs,
    )
    return deq, codes


def fake_quantize(w: "torch.Tensor", bits: int, group_size: int, symmetric: bool) -> "torch.Tensor":
    """Round-to-nearest of a ``[out, in]`` weight matrix onto its own min-max grid, dequantized."""
    rows = grouped(w.float(), group_size)
    scale, zero = grid_params(rows, bits, symmetric)
    return quantize_rows(rows, scale, zero, bits, symmetric).reshape(w.shape).to(w.dtype)


def quantize_record(model: Any, cfg: QuantConfig) -> dict[str, Any]:
    """What every quantizer records about its grid (the packing adds format, bits per weight and checks)."""
    linears = module_linears(model)
    return {"quantized_linears": len(linears), "quantized_parameters": sum(m.weight.numel() for _, m in linears)}


class Quantizer(Method):
    """Base of the weight quantizers: ``quantize`` finds the integers, ``apply`` stores them packed."""

    stage = "quantize"
    packs = True
    requires = ("packed",)
    distributions = ("torch", "gptqmodel")

    def quantize(self, model: Any, config: Any, ctx: StepContext) -> tuple[dict[str, LinearCodes], dict[str, Any], str | None]:
        """Quantize ``model``'s decoder linears in place (fake-quantized: ``(q - z) * s``); returns the integers of
        each linear by name, the step's record and notes."""
        raise NotImplementedError  # pragma: no cover - abstract

    def apply(self, model: Any, config: Any, ctx: StepContext) -> StepOutcome:
        from harness.build.packing.store import write_packed

        codes, record, notes = self.quantize(model, config, ctx)
        packed_record, packed_notes = write_packed(model, codes, config, ctx)
        record.update(packed_record)
        return StepOutcome(model=None, record=record, notes=" ".join(n for n in (packed_notes, notes) if n), files=[MODEL_DIR])


class RTN(Quantizer):
    name = "rtn"
    Config = RTNConfig

    def quantize(self, model: Any, config: RTNConfig, ctx: StepContext) -> tuple[dict[str, LinearCodes], dict[str, Any], str | None]:
        import torch
        from tqdm.auto import tqdm

        check_group_size(model, config.group_size)
        linears = module_linears(model)
        codes: dict[str, LinearCodes] = {}
        with torch.no_grad():
            for name, module in tqdm(linears, desc=f"rtn int{config.bits}", disable=not ctx.show_progress, leave=False):
                deq, codes[name] = quantize_to_codes(module.weight, config.bits, config.group_size, config.symmetric)
                module.weight.copy_(deq)
        return codes, quantize_record(model, config), None
