"""The integer result of a weight quantizer: codes, scales and zero points of one linear layer.

kompakt's RTN, AWQ and GPTQ all round onto the same grid (:mod:`harness.build.methods.rtn`): per
output row and group of ``group_size`` consecutive input channels, a float scale ``s`` and
an integer zero point ``z``; each weight is the code ``q`` in ``[0, 2**bits - 1]`` with

    w = (q - z) * s

A symmetric grid (``q`` in ``[-2**(bits-1), 2**(bits-1) - 1]``, no zero point) is the same
thing with every code and zero point shifted by ``2**(bits-1)``, so one representation
covers both. This is the form every packed format below starts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


class PackingError(ValueError):
    """The integers cannot be written in the requested format; the message says which field and why."""


@dataclass(frozen=True)
class LinearCodes:
    """Codes, scales and zero points of one ``[out, in]`` linear weight on a grouped integer grid."""

    codes: "torch.Tensor"
    """``[out, in]`` integer codes in ``[0, 2**bits - 1]`` (any integer dtype)."""
    scales: "torch.Tensor"
    """``[out, in // group_size]`` float scales, one per output row and group."""
    zeros: "torch.Tensor"
    """``[out, in // group_size]`` integer zero points in ``[0, 2**bits - 1]``."""
    bits: int
    """Bits per code."""
    group_size: int
    """Input channels sharing one scale and zero point (never -1 here: per-channel is ``group_size = in``)."""

    @property
    def shape(self) -> tuple[int, int]:
        """``(out_features, in_features)`` of the weight."""
        return tuple(self.codes.shape)  # type: ignore[return-value]

    def validate(self, name: str = "linear") -> None:
        """Raise :class:`PackingError` naming ``name`` and the field when the tensors are inconsistent."""
        import torch

        if self.codes.dim() != 2:
            raise PackingError(f"{name}: codes must be 2-D [out, in], got shape {tuple(self.codes.shape)}")
        out_f, in_f = self.codes.shape
        if self.group_size < 1 or in_f % self.group_size:
            raise PackingError(f"{name}: group_size {self.group_size} does not divide in_features {in_f}")
        groups = in_f // self.group_size
        for field_name, t in (("scales", self.scales), ("zeros", self.zeros)):
            if tuple(t.shape) != (out_f, groups):
                raise PackingError(f"{name}: {field_name} must have shape {(out_f, groups)}, got {tuple(t.shape)}")
        if self.codes.is_floating_point() or self.zeros.is_floating_point():
            raise PackingError(f"{name}: codes and zeros must be integer tensors (got {self.codes.dtype}, {self.zeros.dtype})")
        top = 2**self.bits - 1
        for field_name, t in (("codes", self.codes), ("zeros", self.zeros)):
            lo, hi = int(t.min()), int(t.max())
            if lo < 0 or hi > top:
                raise PackingError(f"{name}: {field_name} must lie in [0, {top}] for {self.bits} bits, found [{lo}, {hi}]")
        if not torch.isfinite(self.scales).all() or (self.scales <= 0).any():
            raise PackingError(f"{name}: scales must be finite and positive")

    def dequantize(self) -> "torch.Tensor":
        """``(q - z) * s`` as float32 ``[out, in]``: the fake-quantized weight these integers stand for."""
        import torch

        s = self.scales.float().repeat_interleave(self.group_size, dim=1)
        z = self.zeros.to(torch.int32).repeat_interleave(self.group_size, dim=1)
        return (self.codes.to(torch.int32) - z).float() * s


def rtn_codes(weight: "torch.Tensor", bits: int, group_size: int, symmetric: bool = False) -> LinearCodes:
    """Round-to-nearest codes of ``weight`` on kompakt's grid (:func:`harness.build.methods.rtn.quantize_to_codes`).

    ``LinearCodes(...).dequantize()`` equals :func:`harness.build.methods.rtn.fake_quantize` of the same
    weight bit for bit (tested), so this is the integer form of RTN's result.
    """
    from harness.build.methods.rtn import quantize_to_codes

    return quantize_to_codes(weight.detach(), bits, group_size, symmetric)[1]


def round_scales_fp16(codes: LinearCodes) -> LinearCodes:
    """The same codes with their scales rounded to float16 (what every packed format stores)."""
    import torch

    return LinearCodes(codes.codes, codes.scales.to(torch.float16).float(), codes.zeros, codes.bits, codes.group_size)
