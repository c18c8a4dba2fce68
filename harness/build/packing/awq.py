"""AWQ GEMM checkpoints from kompakt's own integers, packed by gptqmodel's ``pack_awq``.

The AWQ "GEMM" layout (AutoAWQ's, which transformers loads through gptqmodel) stores per
linear layer

- ``qweight``: ``int32 [in, out * bits / 32]``, the codes of ``W^T`` packed along the output
  dimension (for 4 bits in AWQ's interleaved order ``0 2 4 6 1 3 5 7``);
- ``qzeros``:  ``int32 [in / group_size, out * bits / 32]``, the zero points packed the same way;
- ``scales``:  ``float16 [in / group_size, out]``;

and dequantizes ``w = (q - z) * s``: exactly kompakt's asymmetric grid, so the codes and zero
points go in unchanged. The bit packing is gptqmodel's own
(``gptqmodel.quantization.awq.utils.packing_utils.pack_awq``), not written here. The only
change on the way is the scale's rounding to float16, which the format prescribes.

gptqmodel's ``pack()`` methods on its layer classes are not used: they re-derive the codes by
rounding float weights, ``round((w + z s) / s)``, an inverse that happens to be exact on this
grid; ``pack_awq`` takes the integers as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from harness.build.packing.codes import LinearCodes, PackingError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: The ``quantization_config`` transformers reads to load an AWQ GEMM checkpoint (AutoAWQ's keys).
AWQ_FORMAT = "gemm"


def awq_gemm_tensors(codes: LinearCodes, name: str = "linear") -> dict[str, "torch.Tensor"]:
    """``qweight``, ``qzeros`` and ``scales`` of one linear in the AWQ GEMM layout.

    ``codes`` are ``[out, in]`` as kompakt computes them; the layout wants ``[in, out]``.
    """
    import torch
    from gptqmodel.quantization.awq.utils.packing_utils import pack_awq

    codes.validate(name)
    out_f, _ = codes.shape
    if codes.bits != 4:
        raise PackingError(f"{name}: AWQ GEMM checkpoints hold 4-bit codes (transformers' AwqConfig accepts bits=4 only); got {codes.bits}")
    if out_f % (32 // codes.bits):
        raise PackingError(f"{name}: out_features {out_f} is not a multiple of {32 // codes.bits}, as the AWQ layout needs")
    iweight = codes.codes.to(torch.int32).t().contiguous()  # [in, out]
    izeros = codes.zeros.to(torch.int32).t().contiguous()  # [groups, out]
    qweight, qzeros = pack_awq(iweight, izeros, codes.bits)
    scales = codes.scales.t().contiguous().to(torch.float16)
    if not torch.isfinite(scales).all() or (scales == 0).any():
        raise PackingError(f"{name}: a scale over- or underflows float16 (range {float(codes.scales.min()):.3g} .. {float(codes.scales.max()):.3g})")
    return {"qweight": qweight.contiguous(), "qzeros": qzeros.contiguous(), "scales": scales}


def awq_quantization_config(bits: int, group_size: int, modules_to_not_convert: list[str] | None = None) -> dict[str, Any]:
    """The ``quantization_config`` of an AWQ GEMM checkpoint, as AutoAWQ writes it and transformers reads it."""
    return {
        "quant_method": "awq",
        "bits": bits,
        "group_size": group_size,
        "zero_point": True,
        "version": AWQ_FORMAT,
        "modules_to_not_convert": modules_to_not_convert or None,
    }


def packed_state_dict(
    state: Mapping[str, "torch.Tensor"],
    linears: Mapping[str, LinearCodes],
    *,
    float_dtype: "torch.dtype",
) -> dict[str, "torch.Tensor"]:
    """``state`` with every ``<name>.weight`` in ``linears`` replaced by its AWQ GEMM tensors.

    Every other tensor (embeddings, norms, the output layer, biases) is cast to ``float_dtype``
    (the dtype the kernels compute in). A bias of a quantized linear stays under ``<name>.bias``.
    """
    out: dict[str, "torch.Tensor"] = {}
    missing = [n for n in linears if f"{n}.weight" not in state]
    if missing:
        raise PackingError(f"no weight in the model for quantized linear(s) {', '.join(missing[:3])}")
    for key, tensor in state.items():
        name = key.removesuffix(".weight")
        if key.endswith(".weight") and name in linears:
            codes = linears[name]
            if tuple(tensor.shape) != codes.shape:
                raise PackingError(f"{name}: codes have shape {codes.shape}, the model's weight {tuple(tensor.shape)}")
            for suffix, t in awq_gemm_tensors(codes, name).items():
                out[f"{name}.{suffix}"] = t
        else:
            out[key] = tensor.detach().to(float_dtype).contiguous() if tensor.is_floating_point() else tensor.detach().contiguous()
    return out


def save_awq_checkpoint(
    model: Any,
    linears: Mapping[str, LinearCodes],
    folder: Path,
    *,
    tokenizer: Any = None,
    float_dtype: str = "bfloat16",
) -> dict[str, Any]:
    """Write ``model`` as an AWQ GEMM checkpoint whose quantized linears hold ``linears``' integers.

    ``model`` is a transformers causal LM (its float weights of the quantized linears are not
    read, only replaced). Tied weights are saved once, as ``save_pretrained`` does. Returns a
    record: format, bits, group size, tensors written, bytes.
    """
    import torch
    from safetensors.torch import save_file

    if not linears:
        raise PackingError("no quantized linears given")
    kinds = {(c.bits, c.group_size) for c in linears.values()}
    if len(kinds) != 1:
        raise PackingError(f"one checkpoint holds one bits/group_size; got {sorted(kinds)}")
    (bits, group_size), = kinds
    dtype = getattr(torch, float_dtype)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    state = model.state_dict()
    if getattr(model.config, "tie_word_embeddings", False):
        # save_pretrained drops the tied copy; do the same (transformers re-ties it on load).
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}
    tensors = packed_state_dict(state, linears, float_dtype=dtype)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})

    config = model.config.to_dict()
    quantized = set(linears)
    others = sorted(
        n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n not in quantized and n != "lm_head"
    )
    config["quantization_config"] = awq_quantization_config(bits, group_size, others)
    config["dtype"] = float_dtype
    config.pop("torch_dtype", None)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return {
        "format": f"awq-{AWQ_FORMAT}",
        "bits": bits,
        "group_size": group_size,
        "quantized_linears": len(linears),
        "float_dtype": float_dtype,
        "file_bytes": (folder / "model.safetensors").stat().st_size,
    }


def read_awq_codes(folder: Path, tensors: Mapping[str, "torch.Tensor"], qc: Mapping[str, Any]) -> dict[str, LinearCodes]:
    """The integers of every linear of an AWQ GEMM checkpoint, unpacked by gptqmodel's ``unpack_awq`` and ``reverse_awq_order``.

    ``tensors`` is the checkpoint's state (safetensors), ``qc`` its ``quantization_config``.
    Scales come back as stored (float16, here widened to float32 exactly).
    """
    import torch
    from gptqmodel.quantization.awq.utils.packing_utils import reverse_awq_order, unpack_awq

    bits, group_size = int(qc["bits"]), int(qc["group_size"])
    out: dict[str, LinearCodes] = {}
    for key in sorted(k for k in tensors if k.endswith(".qweight")):
        name = key.removesuffix(".qweight")
        try:
            qweight, qzeros, scales = tensors[key], tensors[f"{name}.qzeros"], tensors[f"{name}.scales"]
        except KeyError as err:
            raise PackingError(f"{folder}: {name} has no {err.args[0].rsplit('.', 1)[-1]} tensor") from None
        iw, iz = reverse_awq_order(*unpack_awq(qweight, qzeros, bits), bits)
        codes = LinearCodes(iw.t().contiguous().to(torch.uint8), scales.t().float().contiguous(), iz.t().contiguous().to(torch.uint8),
                            bits, group_size)
        codes.validate(f"{folder}: {name}")
        out[name] = codes
    if not out:
        raise PackingError(f"{folder}: no packed linear (no *.qweight tensor) in the checkpoint")
    return out


__all__ = ["AWQ_FORMAT", "awq_gemm_tensors", "awq_quantization_config", "packed_state_dict", "read_awq_codes", "save_awq_checkpoint"]
