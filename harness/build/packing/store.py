"""A quantizer's integers written as a packed checkpoint, checked by loading it back, and described for the lineage.

:func:`write_packed` is the last part of every weight-quantization step (RTN, AWQ, GPTQ):

1. the format is the one :func:`harness.build.packing.formats.format_for` gives for the grid
   (AWQ GEMM for 4 bit, GPTQ 8-bit per channel for 8 bit); the checkpoint is written into the
   step's ``model/`` folder from the integers the method computed (:mod:`~harness.build.packing.awq`,
   :mod:`~harness.build.packing.gptq`). What is not quantized (embeddings, the output layer,
   norms) stays in float32, the dtype kompakt builds in and the CPU profile measures in;
2. it is loaded back as transformers loads it (:func:`~harness.build.packing.loading.load_packed`),
   and the step fails unless every quantized linear is on the expected gptqmodel kernel and every
   code and zero point read back through gptqmodel's own unpacking equals the method's;
3. one forward pass on a short text: the largest logit difference from the fake-quantized float
   model (the method's ``(q - z) * s`` in float32; the kernels compute in bfloat16, so it is
   the size of bfloat16 rounding), and the weights' bytes after that pass (the kernels repack
   on first use), from which the bits per weight in memory follow.

The record says format, kernel, what the kernel computes in, bits per weight (over the quantized
linears and over the whole model, as stored and as loaded) and what stays floating point.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any, Mapping

from harness.build.methods import MODEL_DIR, MethodError, StepContext
from harness.build.packing.codes import LinearCodes, PackingError
from harness.build.packing.formats import AWQ_GEMM, GPTQ_INT8, PackedFormat, format_for, unsupported_grid

#: The float dtype of what is not quantized (kompakt builds in float32; the CPU profile measures in it).
FLOAT_DTYPE = "float32"
#: The text of the forward pass that checks the packed model against the fake-quantized one.
PROBE_TEXT = (
    "The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest structure in Paris. "
    "Its base is square, measuring 125 metres on each side."
)
#: Tensor names of a quantized linear in a packed checkpoint.
_PACKED_SUFFIXES = ("qweight", "qzeros", "scales", "g_idx", "bias")


def write_packed(model: Any, codes: Mapping[str, LinearCodes], config: Any, ctx: StepContext) -> tuple[dict[str, Any], str]:
    """Write ``codes`` as the packed checkpoint ``ctx.out_dir / model``, check it, and return (record, notes).

    ``model`` holds the fake-quantized weights (``(q - z) * s``); it may be consumed (GPTQ
    packing replaces its linears).
    """
    import torch
    from tqdm.auto import tqdm

    fmt = format_for(config.bits, config.group_size, config.symmetric)
    if fmt is None:  # pragma: no cover - the config refuses these grids
        raise MethodError(unsupported_grid(config.bits, config.group_size, config.symmetric))
    folder = ctx.out_dir / MODEL_DIR
    probe = ctx.tokenizer(PROBE_TEXT, return_tensors="pt").input_ids[:, :64]
    with torch.no_grad():
        fake_logits = model(input_ids=probe).logits[0].float()
    parts = float_parts(model, set(codes))
    progress = tqdm(total=2, desc=f"packing as {fmt.name}", disable=not ctx.show_progress, leave=False)
    try:
        if fmt is AWQ_GEMM:
            from harness.build.packing.awq import save_awq_checkpoint

            save_awq_checkpoint(model, codes, folder, tokenizer=ctx.tokenizer, float_dtype=FLOAT_DTYPE)
        else:
            from harness.build.packing.gptq import save_gptq_checkpoint

            save_gptq_checkpoint(model, codes, folder, tokenizer=ctx.tokenizer, float_dtype=FLOAT_DTYPE, backend=fmt.backend)
    except PackingError as err:
        raise MethodError(f"packing as {fmt.name} failed: {err}") from err
    stored = stored_bytes(folder, set(codes))
    progress.update()
    progress.set_description(f"checking the {fmt.name} checkpoint")
    checked = check_loaded(folder, codes, fmt, probe, fake_logits)
    progress.update()
    progress.close()

    n_linear = sum(c.codes.numel() for c in codes.values())
    n_all = parts["total_parameters"]
    record: dict[str, Any] = {
        "storage": "packed",
        "format": fmt.name,
        "format_config": _format_config(folder),
        "kernel": f"{fmt.kernel} (gptqmodel {_version('gptqmodel')} backend {fmt.backend}: {fmt.kernel_op})",
        "compute_dtype": FLOAT_DTYPE if fmt.compute_dtype == "model" else fmt.compute_dtype,
        "float_dtype": FLOAT_DTYPE,
        "packed_weight_bytes": stored["linears"],
        "bits_per_weight_linears": round(8 * stored["linears"] / n_linear, 3),
        "bits_per_weight_model": round(8 * stored["all"] / n_all, 3),
        "bits_per_weight_linears_loaded": round(8 * checked["linear_bytes"] / n_linear, 3),
        "bits_per_weight_model_loaded": round(8 * checked["weights_bytes"] / n_all, 3),
        "weights_bytes_loaded": checked["weights_bytes"],
        "stays_float": parts["stays_float"],
        "float_parameters": parts["float_parameters"],
        "float_parameter_share": round(parts["float_parameters"] / n_all, 4),
        "integer_mismatches": checked["mismatches"],
        "max_scale_rounding_rel": max(_fp16_rounding(c) for c in codes.values()),
        "max_logit_difference": round(checked["max_logit_difference"], 4),
        "file_bytes": stored["file"],
    }
    return record, packed_notes(fmt, config, parts)


def packed_notes(fmt: PackedFormat, config: Any, parts: dict[str, Any]) -> str:
    """The step's notes: format, kernel, compute dtype and what stays float, in words."""
    floats = "; ".join(parts["stays_float"])
    if fmt is AWQ_GEMM:
        how = (f"Stored packed as AWQ GEMM ({config.bits}-bit codes and zero points packed in int32, float16 scales per group of "
               f"{config.group_size}) from the method's own integers; transformers loads it on gptqmodel's {fmt.kernel}, which "
               "repacks on its first forward pass for aten's int4 kernel and computes in bfloat16 (activations and scales cast).")
    else:
        how = (f"Stored packed as GPTQ v1 8-bit, per output channel, symmetric, from the method's own integers (packed by optimum "
               f"{_version('optimum')}'s GPTQQuantizer.pack_model and checked weight by weight); its config names "
               f"backend {fmt.backend}, so transformers loads it on gptqmodel's {fmt.kernel} (aten's int8 weight-only kernel, "
               "computing in the model's float32). Without that key it would load on TorchLinear, which dequantizes to float16 "
               "on every call. On a CPU this kernel with float32 activations is slower than float32 matrix products.")
    check = ("gptqmodel's unpacking of the loaded layers" if fmt is AWQ_GEMM else "the int8 tensor the loaded kernel multiplies")
    return (f"{how} Every code and zero point was read back through {check}: 0 differ. Not quantized, "
            f"in {FLOAT_DTYPE}: {floats}. The fake-quantized float copy is only an internal step of the build.")


# --------------------------------------------------------------------------- what stays float


def float_parts(model: Any, quantized: set[str]) -> dict[str, Any]:
    """The parameters that stay float (tied tensors once), grouped for the record, and the parameter counts."""
    by_storage: dict[int, list[tuple[str, Any]]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        by_storage.setdefault(p.data_ptr(), []).append((name, p))
    total = sum(group[0][1].numel() for group in by_storage.values())
    big, small, small_kinds = [], 0, set()
    n_float = 0
    n_small = 0
    for group in by_storage.values():
        names = [n for n, _ in group]
        if any(n.removesuffix(".weight").removesuffix(".bias") in quantized for n in names):
            continue
        numel = group[0][1].numel()
        n_float += numel
        if numel >= 0.01 * total:
            tied = " (tied)" if len(names) > 1 else ""
            big.append(f"{' = '.join(names)}{tied}: {numel:,} parameters ({100 * numel / total:.1f} %)")
        else:
            small += numel
            n_small += 1
            small_kinds.add(names[0].rsplit(".", 2)[-2] if names[0].count(".") else names[0])
    out = list(big)
    if n_small:
        out.append(f"{n_small} smaller tensors ({', '.join(sorted(small_kinds))}): {small:,} parameters ({100 * small / total:.2f} %)")
    return {"stays_float": out, "float_parameters": n_float, "total_parameters": total}


# --------------------------------------------------------------------------- the checks


def stored_bytes(folder: Path, quantized: set[str]) -> dict[str, int]:
    """Bytes of the tensors in the checkpoint's safetensors files (from their headers): the quantized linears', all."""
    from harness.measure.efficiency.memory import safetensors_entries

    linears = total = 0
    for key, info in safetensors_entries(folder):
        start, end = info["data_offsets"]
        total += end - start
        module, _, leaf = key.rpartition(".")
        if module in quantized and leaf in _PACKED_SUFFIXES:
            linears += end - start
    files = sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))
    return {"linears": linears, "all": total, "file": files}


def check_loaded(folder: Path, codes: Mapping[str, LinearCodes], fmt: PackedFormat, probe: Any, fake_logits: Any) -> dict[str, Any]:
    """Load the checkpoint as transformers does and check kernels and integers; logits and bytes after one forward pass.

    Raises :class:`~harness.build.methods.MethodError` when a linear is on another kernel or any
    integer differs: such a checkpoint is never cached.
    """
    import torch

    from harness.build.packing.loading import PackedCheckpointError, load_packed
    from harness.measure.efficiency.memory import weights_bytes

    try:
        loaded = load_packed(folder)
    except PackedCheckpointError as err:
        raise MethodError(f"the packed checkpoint just written does not load: {err}") from err
    wrong = {n: type(loaded.get_submodule(n)).__name__ for n in codes if type(loaded.get_submodule(n)).__name__ != fmt.kernel}
    if wrong:
        name, cls = next(iter(wrong.items()))
        raise MethodError(f"{len(wrong)} quantized linears loaded on another kernel than {fmt.kernel} (e.g. {name}: {cls})")
    mismatches = sum(integer_mismatches(loaded.get_submodule(n), c, fmt) for n, c in codes.items())
    if mismatches:
        raise MethodError(f"{mismatches} codes or zero points differ from the method's after loading the packed checkpoint")
    with torch.no_grad():
        logits = loaded(input_ids=probe).logits[0].float()
    return {
        "mismatches": 0,
        "max_logit_difference": float((logits - fake_logits).abs().max()),
        "weights_bytes": weights_bytes(loaded),
        "linear_bytes": sum(weights_bytes(loaded.get_submodule(n)) for n in codes),
    }


def integer_mismatches(module: Any, codes: LinearCodes, fmt: PackedFormat) -> int:
    """Codes and zero points of a loaded gptqmodel layer that differ from ``codes``, read through gptqmodel's own unpacking.

    AWQ GEMM (before the first forward pass): ``unpack_awq`` and ``reverse_awq_order`` on the
    layer's ``qweight`` and ``qzeros``, plus its float16 scales against the rounded scales.
    GPTQ 8-bit on ``TorchInt8Linear``: its int8 weight tensor (what the kernel multiplies)
    against ``codes - 128`` (the zero point of a symmetric 8-bit grid).
    """
    import torch

    if fmt is AWQ_GEMM:
        from gptqmodel.quantization.awq.utils.packing_utils import reverse_awq_order, unpack_awq

        iw, iz = reverse_awq_order(*unpack_awq(module.qweight, module.qzeros, codes.bits), codes.bits)
        bad = int((iw.t() != codes.codes.long()).sum()) + int((iz.t() != codes.zeros.long()).sum())
        return bad + int((module.scales != codes.scales.t().to(torch.float16)).sum())
    if fmt is GPTQ_INT8:
        offset = 2 ** (codes.bits - 1)
        bad = int((codes.zeros.long() != offset).sum())
        return bad + int((module.int8_weight_nk.to(torch.int16) != codes.codes.to(torch.int16) - offset).sum())
    raise MethodError(f"no integer check for format {fmt.name}")  # pragma: no cover


def _fp16_rounding(codes: LinearCodes) -> float:
    import torch

    s = codes.scales.double()
    return float(((s.to(torch.float16).double() - s).abs() / s).max())


def _format_config(folder: Path) -> str:
    qc = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))["quantization_config"]
    keys = ("quant_method", "version", "format", "bits", "group_size", "zero_point", "sym", "desc_act", "backend")
    return ", ".join(f"{k}: {qc[k]}" for k in keys if k in qc)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "?"


__all__ = ["FLOAT_DTYPE", "check_loaded", "float_parts", "integer_mismatches", "stored_bytes", "write_packed"]
