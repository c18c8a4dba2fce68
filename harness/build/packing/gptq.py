"""GPTQ checkpoints from kompakt's own integers, packed by optimum's ``GPTQQuantizer.pack_model``.

optimum packs a model whose quantized linears hold the *dequantized* weights ``(q - z) * s`` from
``{name: (quantizer, scales [out, groups], zeros [out, groups], g_idx [in])}``: gptqmodel's
``pack()`` recovers each code as ``round((w + z * s) / s)``, which gives back exactly ``q`` for
weights on the grid (checked after packing with gptqmodel's own ``dequantize_weight``), then
stores ``scales`` in float16.

Formats (``quantization_config.format``), and the traps found on this stack (gptqmodel 7.6.0,
optimum 2.3.0, transformers 5.24.0):

- ``gptq_v2`` stores the true zero points. Asymmetric grids (kompakt's default) must use it:
  optimum's ``save()`` converts only *symmetric* models to v1, so an asymmetric model saved
  with ``format="gptq"`` keeps v2 zero points under a v1 label, and transformers then adds
  one to every zero point on load (every weight one grid step off, silently).
- ``gptq`` (v1, the widely read format) stores ``z - 1``. For symmetric grids optimum's
  ``save()`` converts v2 to v1 in place *and changes the quantizer's format to "gptq"*, after
  the model's ``config.json`` may already have been written: the config is therefore written
  here from ``quantizer.to_dict()`` after saving, never before.
- gptqmodel's ``gptq_torch_fused`` CPU kernel replaces asymmetric zero points with zeros when
  it repacks (``TorchFusedLinear.transform_cpu``); automatic kernel selection picks
  ``TorchAtenLinear`` instead, which keeps them. Never force ``gptq_torch_fused``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from harness.build.packing.codes import LinearCodes, PackingError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def is_symmetric(codes: LinearCodes) -> bool:
    """True when every zero point is the grid's middle ``2**(bits-1)`` (a symmetric grid shifted to unsigned)."""
    return bool((codes.zeros.to(int) == 2 ** (codes.bits - 1)).all())


def optimum_quantizers(linears: Mapping[str, LinearCodes]) -> dict[str, tuple[None, "torch.Tensor", "torch.Tensor", "torch.Tensor"]]:
    """The ``quantizers`` argument of ``GPTQQuantizer.pack_model``: ``(None, scales, zeros, g_idx)`` per linear."""
    import torch

    out = {}
    for name, c in linears.items():
        c.validate(name)
        g_idx = torch.arange(c.shape[1], dtype=torch.int32) // c.group_size
        out[name] = (None, c.scales.float(), c.zeros.to(torch.int32), g_idx)
    return out


def check_packed(model: Any, linears: Mapping[str, LinearCodes]) -> int:
    """Number of weights whose packed value differs from ``(q - z) * fp16(s)``, read with gptqmodel's ``dequantize_weight``.

    gptqmodel dequantizes in float16 (``scales * (q - z)``); the same product is formed here from
    kompakt's integers, so any code or zero point that moved in packing shows as a mismatch.
    """
    import torch

    bad = 0
    for name, c in linears.items():
        mod = model.get_submodule(name)
        deq = mod.dequantize_weight().t()
        s = c.scales.to(torch.float16).repeat_interleave(c.group_size, dim=1)
        diff = (c.codes.to(torch.int16) - c.zeros.to(torch.int16).repeat_interleave(c.group_size, dim=1))
        bad += int((deq != s * diff).sum())
    return bad


def save_gptq_checkpoint(
    model: Any,
    linears: Mapping[str, LinearCodes],
    folder: Path,
    *,
    tokenizer: Any = None,
    float_dtype: str = "bfloat16",
    backend: str | None = None,
) -> dict[str, Any]:
    """Pack ``model`` in place with ``linears``' integers through optimum and save it as a GPTQ checkpoint.

    The model is consumed (its linears become gptqmodel layers). Symmetric grids are written as
    v1 (``format: gptq``, what every GPTQ loader reads), asymmetric ones as ``gptq_v2``.
    ``backend`` is written into the ``quantization_config`` (transformers then loads the
    checkpoint on that gptqmodel kernel, e.g. ``gptq_torch_int8``).
    """
    import torch
    from optimum.gptq import GPTQQuantizer

    if not linears:
        raise PackingError("no quantized linears given")
    kinds = {(c.bits, c.group_size) for c in linears.values()}
    if len(kinds) > 1 and all(c.group_size == c.shape[1] for c in linears.values()):
        kinds = {(c.bits, -1) for c in linears.values()}  # one group per row (per output channel)
    if len(kinds) != 1:
        raise PackingError(f"one checkpoint holds one bits/group_size (-1: per output channel); got {sorted(kinds)}")
    (bits, gptq_group), = kinds
    sym = all(is_symmetric(c) for c in linears.values())
    quantizer = GPTQQuantizer(bits=bits, group_size=gptq_group, sym=sym, desc_act=False, format="gptq_v2")
    quantizer.block_name_to_quantize = "model.layers"

    with torch.no_grad():
        for name, c in linears.items():
            weight = model.get_submodule(name).weight
            if tuple(weight.shape) != c.shape:
                raise PackingError(f"{name}: codes have shape {c.shape}, the model's weight {tuple(weight.shape)}")
            weight.copy_(c.dequantize().to(weight.dtype))
    model.float()
    quantizer.pack_model(model, optimum_quantizers(linears))
    bad = check_packed(model, linears)
    if bad:
        raise PackingError(f"{bad} weights changed in packing (expected 0); the checkpoint was not written")
    dtype = getattr(torch, float_dtype)
    quantized = set(linears)
    for name, module in model.named_modules():
        if name in quantized or any(name.startswith(q + ".") for q in quantized):
            continue
        for p in module.parameters(recurse=False):
            p.data = p.data.to(dtype)
    model.config.dtype = dtype
    folder = Path(folder)
    quantizer.save(model, str(folder))  # converts symmetric v2 to v1 in place and sets quantizer.format
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["quantization_config"] = quantizer.to_dict()
    if backend is not None:
        config["quantization_config"]["backend"] = backend
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return {
        "format": quantizer.format,
        "bits": bits,
        "group_size": gptq_group,
        "sym": sym,
        "quantized_linears": len(linears),
        "float_dtype": float_dtype,
        "file_bytes": sum(p.stat().st_size for p in folder.glob("*.safetensors")),
    }


def read_gptq_codes(folder: Path, tensors: Mapping[str, "torch.Tensor"], qc: Mapping[str, Any]) -> dict[str, LinearCodes]:
    """The integers of every linear of a GPTQ checkpoint (4 or 8 bit, groups in order), unpacked by gptqmodel's
    ``unpack_rows`` / ``unpack_cols`` (``gptqmodel.utils.model_dequant``); v1 zero points (stored ``z - 1``) get their 1 back."""
    import torch
    from gptqmodel.utils.model_dequant import unpack_cols, unpack_rows

    bits = int(qc["bits"])
    if bits not in (4, 8):
        raise PackingError(f"{folder}: reading {bits}-bit GPTQ codes is not supported (4 and 8 are)")
    v1 = qc.get("format", qc.get("checkpoint_format", "gptq")) == "gptq"
    out: dict[str, LinearCodes] = {}
    for key in sorted(k for k in tensors if k.endswith(".qweight")):
        name = key.removesuffix(".qweight")
        try:
            qweight, qzeros, scales, g_idx = (tensors[f"{name}.{t}"] for t in ("qweight", "qzeros", "scales", "g_idx"))
        except KeyError as err:
            raise PackingError(f"{folder}: {name} lacks a tensor: {err.args[0]}") from None
        iw = unpack_rows(qweight, bits).t().contiguous()  # [out, in]
        iz = unpack_cols(qzeros, bits).t().contiguous()  # [out, groups]
        if v1:
            iz = iz + 1
        in_f, groups = iw.shape[1], scales.shape[0]
        group_size = in_f // groups
        if not torch.equal(g_idx.long(), torch.arange(in_f) // group_size):
            raise PackingError(f"{folder}: {name}.g_idx is not the contiguous grouping (act-order checkpoints are not read here)")
        codes = LinearCodes(iw.to(torch.uint8), scales.t().float().contiguous(), iz.to(torch.uint8), bits, group_size)
        codes.validate(f"{folder}: {name}")
        out[name] = codes
    if not out:
        raise PackingError(f"{folder}: no packed linear (no *.qweight tensor) in the checkpoint")
    return out


__all__ = ["check_packed", "is_symmetric", "optimum_quantizers", "read_gptq_codes", "save_gptq_checkpoint"]
