"""A float artifact as an F32 GGUF file, so llama.cpp runs the same values (for timing on llama.cpp).

Speed on llama.cpp is paired with the reference on llama.cpp (:mod:`harness.measure.efficiency.pairing`),
and the float variants (pruned, healed, RTN/AWQ/GPTQ's dequantized weights) are timed there too. A
checkpoint folder is written unchanged as F32 by kompakt's GGUF writer
(:func:`harness.build.methods.gguf_export.write_gguf`). A reference dequantized from a GGUF file (the
embedded model's Q4_1) is written by llama.cpp's own quantizer from that file instead: Q4_1 -> F32 is
exact dequantization, the same values the PyTorch reference holds.

Files are written once, atomically, under ``<KOMPAKT_CACHE>/gguf-f32/<base model>/``, named by the
artifact's cache key, and reused by ``kompakt bench`` and ``benchmarks/bench_efficiency.py`` alike.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kompakt import paths

#: How a results file says that llama.cpp ran a float variant's weights.
F32_NOTE = ("the variant's float32 weights written unchanged as an F32 GGUF by kompakt's GGUF writer, so llama.cpp runs "
            "the same values")
#: ... and the reference's.
REFERENCE_F32_NOTE = ("the reference's weights as an F32 GGUF, written by llama.cpp's quantizer from the GGUF file the reference "
                      "was dequantized from (exact dequantization, as the PyTorch reference is)")


def folder(base: Any) -> Path:
    d = paths.cache_dir() / "gguf-f32" / base.info.id
    d.mkdir(parents=True, exist_ok=True)
    return d


def requantize(src: Path, dst: Path, ftype_name: str) -> Path:
    """Write GGUF ``src`` in another type with llama.cpp's own quantizer (once, atomically)."""
    if dst.is_file():
        return dst
    import llama_cpp
    from llama_cpp import _logger

    _logger.set_verbose(False)  # llama.cpp logs every tensor it converts otherwise
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype_name)
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    tmp = _temporary(dst)
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
    if rc != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama.cpp could not write {src.name} as {ftype_name} (return code {rc})")
    os.replace(tmp, dst)
    return dst


def _temporary(dst: Path) -> Path:
    return dst.with_name(f"{dst.stem}.{os.getpid()}.tmp.gguf")


def why_not(artifact: Any) -> str | None:
    """Why ``artifact`` cannot be written as an F32 GGUF (None: it can)."""
    if artifact.format == "gguf":
        return None
    from harness.build.base_model import saved_quantization_config

    qc = saved_quantization_config(artifact.model_path)
    if qc is None:
        return None
    if qc.get("quant_method") in ("awq", "gptq"):  # a packed AWQ GEMM / GPTQ checkpoint (harness.build.packing)
        return "a packed AWQ/GPTQ checkpoint; its integers run on llama.cpp as the recipe's *-gguf export of it"
    return "bitsandbytes' packed weights have no GGUF type"


def f32_gguf(artifact: Any, base: Any) -> tuple[Path, str]:
    """The float ``artifact`` (a checkpoint folder) as an F32 GGUF, and the note saying how it was written
    (a GGUF artifact is returned as it is, with no note)."""
    if artifact.format == "gguf":
        return artifact.model_path, ""
    reason = why_not(artifact)
    if reason:
        raise ValueError(f"{artifact.variant.id} cannot run on llama.cpp: {reason}")
    if artifact.variant.is_reference and base.gguf_path is not None:
        dst = folder(base) / f"reference-{artifact.key[:16]}-f32.gguf"
        return requantize(base.gguf_path, dst, "LLAMA_FTYPE_ALL_F32"), REFERENCE_F32_NOTE
    dst = folder(base) / f"{artifact.variant.id}-{artifact.key[:16]}-f32.gguf"
    if not dst.is_file():
        from harness.build.base_model import load_model, load_tokenizer
        from harness.build.methods.gguf_export import write_gguf

        model = load_model(artifact.model_path)
        tmp = _temporary(dst)
        try:
            write_gguf(model, load_tokenizer(base.path), tmp, "F32", name=artifact.variant.id, gguf_source=base.gguf_path)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
    return dst, F32_NOTE
