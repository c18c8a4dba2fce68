"""Which packed format and kernel holds which weight grid (pure Python: recipes are validated with it).

kompakt's weight quantizers (RTN, AWQ, GPTQ) write their integers as a packed checkpoint that
transformers loads through gptqmodel. Two formats cover the grids kompakt builds; both were
checked on this stack (gptqmodel 7.6.0, optimum 2.3.0, transformers 5.24.0, torch 2.13 CPU):

- **4-bit, groups of 32, 64 or 128** (asymmetric or symmetric): **AWQ GEMM**
  (``quant_method: awq, version: gemm``), packed by gptqmodel's ``pack_awq`` from the codes
  themselves; loads on ``TorchAtenAwqLinear`` (backend ``awq_torch_aten``), which repacks on its
  first forward pass for ``aten::_weight_int4pack_mm_for_cpu`` and computes in bfloat16.
  Chosen over GPTQ v2 (which also works, with the same perplexity): no v1/v2 zero-point
  ambiguity, no C++ packer to compile, no ``g_idx`` to keep, and GPTQ's kernel gathers its
  input columns on every call.
- **8-bit, per output channel, symmetric** (``rtn8``): **GPTQ v1** (``quant_method: gptq``,
  ``format: gptq``, ``sym: true``, ``group_size: -1``), packed by optimum's ``pack_model``;
  the checkpoint names ``backend: gptq_torch_int8`` so transformers loads it on
  ``TorchInt8Linear`` (``aten::_weight_int8pack_mm``, computing in the model's float dtype).
  Left to itself transformers would pick ``TorchLinear``, which dequantizes to float16 on every
  call. It is the only 8-bit weight-only CPU format found that holds kompakt's integers; in a
  float32 model it is *slower* than float32 (measured 2.2x per decode step on SmolLM2-135M), and
  its prefill 16 to 21 times slower, so the quality measurements load the same checkpoint on
  ``TorchLinear`` (:attr:`PackedFormat.quality_backend`) and say so in the results file.

Everything else (other bit widths, grouped or asymmetric 8-bit, per-channel 4-bit) has no
packed format with a CPU kernel here, so a recipe asking for it is refused when it is read.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PackedFormat:
    """A packed checkpoint format and the kernel transformers runs it on."""

    name: str
    """The format as recorded in the lineage: ``awq-gemm`` or ``gptq``."""
    quant_method: str
    """``quantization_config.quant_method`` of the checkpoint (``awq`` or ``gptq``)."""
    kernel: str
    """The gptqmodel layer class the quantized linears load as on a CPU."""
    backend: str
    """gptqmodel's name of that kernel (``awq_torch_aten``, ``gptq_torch_int8``)."""
    kernel_op: str
    """The aten operator doing the matrix products."""
    compute_dtype: str
    """What the kernel computes in: ``bfloat16``, or ``model`` for the model's float dtype."""
    why: str
    """One sentence on why this format holds this grid."""
    quality_backend: str | None = None
    """gptqmodel's kernel for the quality measurements when it is not :attr:`backend` (None: the same kernel)."""
    quality_kernel: str | None = None
    """The layer class of :attr:`quality_backend`."""
    quality_why: str = ""
    """Why quality is measured on another kernel of the same stored checkpoint, and what differs."""


AWQ_GEMM = PackedFormat(
    name="awq-gemm",
    quant_method="awq",
    kernel="TorchAtenAwqLinear",
    backend="awq_torch_aten",
    kernel_op="aten::_weight_int4pack_mm_for_cpu",
    compute_dtype="bfloat16",
    why="AWQ GEMM stores w = (q - z) * s, kompakt's grid, so the codes and zero points go in unchanged (gptqmodel's pack_awq); "
    "only the scales are rounded to float16",
)
GPTQ_INT8 = PackedFormat(
    name="gptq",
    quant_method="gptq",
    kernel="TorchInt8Linear",
    backend="gptq_torch_int8",
    kernel_op="aten::_weight_int8pack_mm",
    compute_dtype="model",
    why="GPTQ v1 8-bit per output channel, symmetric, is the only 8-bit weight-only format with a CPU kernel that holds "
    "kompakt's integers (TorchInt8Linear's int8 tensor equals codes - 128)",
    # TorchInt8Linear takes about 36 ms a token at any prompt length on this CPU, 16 to 21 times float32's prefill
    # (README, Packed checkpoints): the quality suite would take about a day. TorchLinear reads the same stored
    # tensors and dequantizes them on every call, so a prompt costs what float32 costs.
    quality_backend="gptq_torch",
    quality_kernel="TorchLinear",
    quality_why="TorchInt8Linear prefills 16 to 21 times slower than float32 on this CPU (the quality suite would take about "
    "a day), so accuracy, perplexity and KL are measured on gptqmodel's TorchLinear, which reads the same stored "
    "integers and float16 scales and dequantizes them to float16 weights on every call (cast to the model's float32); "
    "memory and speed are TorchInt8Linear's",
)

#: Group sizes the 4-bit CPU kernel takes (gptqmodel's TorchAtenLinear and the aten int4pack operator).
INT4_GROUP_SIZES = (32, 64, 128)


def format_for(bits: int, group_size: int, symmetric: bool) -> PackedFormat | None:
    """The packed format holding this grid, or None where none exists on this stack."""
    if bits == 4 and group_size in INT4_GROUP_SIZES:
        return AWQ_GEMM
    if bits == 8 and group_size == -1 and symmetric:
        return GPTQ_INT8
    return None


def format_of(quantization_config: dict) -> PackedFormat | None:
    """The format of a checkpoint's ``quantization_config`` as kompakt writes it (None: not one of kompakt's formats)."""
    method, bits = quantization_config.get("quant_method"), quantization_config.get("bits")
    if method == AWQ_GEMM.quant_method and bits == 4:
        return AWQ_GEMM
    if method == GPTQ_INT8.quant_method and bits == 8 and quantization_config.get("backend") == GPTQ_INT8.backend:
        return GPTQ_INT8
    return None


def unsupported_grid(bits: int, group_size: int, symmetric: bool) -> str:
    """Why a grid cannot be stored packed, and what to use instead."""
    return (
        f"bits={bits}, group_size={group_size}, symmetric={str(symmetric).lower()} has no packed format with a CPU kernel "
        "on this stack; kompakt stores quantized weights only as packed checkpoints: use bits: 4 with group_size 32, 64 or "
        "128 (AWQ GEMM, aten int4 kernel) or bits: 8, group_size: -1, symmetric: true (GPTQ 8-bit, aten int8 kernel)"
    )


#: The llama.cpp block type that holds each packed grid's integers unchanged (see :mod:`harness.build.packing.gguf_blocks`).
def lossless_gguf_type(bits: int, symmetric: bool) -> str | None:
    """``Q4_1`` (asymmetric 4-bit), ``Q4_0`` (symmetric 4-bit), ``Q8_0`` (symmetric 8-bit); None otherwise."""
    if bits == 4:
        return "Q4_0" if symmetric else "Q4_1"
    if bits == 8 and symmetric:
        return "Q8_0"
    return None


__all__ = ["AWQ_GEMM", "GPTQ_INT8", "INT4_GROUP_SIZES", "PackedFormat", "format_for", "format_of", "lossless_gguf_type",
           "unsupported_grid"]
