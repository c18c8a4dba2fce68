"""llama.cpp blocks (Q4_1, Q4_0, Q8_0) from kompakt's own integers, written with ``gguf``'s writer.

llama.cpp stores a weight row (``in_features`` values) as blocks of 32 consecutive values:

- ``Q4_1``: float16 ``d``, float16 ``m``, 16 bytes of 4-bit codes; ``w = d * q + m``.
  kompakt's asymmetric group ``w = (q - z) * s`` is exactly that with ``d = s`` and
  ``m = -z * s``; a group of 64 is two blocks with the same ``d`` and ``m``.
- ``Q4_0``: float16 ``d``, 16 bytes of codes; ``w = d * (q - 8)``: the symmetric 4-bit grid.
- ``Q8_0``: float16 ``d``, 32 signed bytes; ``w = d * q``: the symmetric 8-bit grid
  (kompakt's ``rtn8``: per output channel, so every block of a row has the same ``d``).

The codes go in unchanged. What the format changes: ``d`` is the scale rounded to float16
(as in every packed format here), and ``m = -z * d`` is rounded to float16 as well
(:func:`q4_1_blocks` reports the largest rounding, in grid steps ``d``). Byte layouts are
ggml's (``block_q4_1`` etc. in ``ggml-common.h``); the low nibble of byte ``j`` holds value ``j``
of the block, the high nibble value ``j + 16``, as ``gguf.quants`` packs them. ``gguf``'s own
quantizers (``gguf.quants.quantize``) are not used: they choose their own grid per block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from harness.build.packing.codes import LinearCodes, PackingError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

#: Values per llama.cpp block for the types written here.
BLOCK = 32


@dataclass(frozen=True)
class PackedBlocks:
    """One linear's weight as llama.cpp blocks, with what the format rounded."""

    data: "np.ndarray"
    """``uint8 [out, in / 32 * bytes_per_block]``, ready for ``GGUFWriter.add_tensor(..., raw_dtype=qtype)``."""
    qtype: str
    """The ``GGMLQuantizationType`` name: ``Q4_1``, ``Q4_0`` or ``Q8_0``."""
    max_d_rounding: float
    """Largest relative change of a scale by its float16 rounding (``|d - s| / s``)."""
    max_m_rounding_steps: float
    """Largest float16 rounding of ``m`` in grid steps (``|m16 + z d| / d``); 0 for types without ``m``."""


def _fp16(values: "np.ndarray", what: str, name: str) -> "np.ndarray":
    import numpy as np

    with np.errstate(over="ignore"):
        out = values.astype(np.float16)
    if not np.isfinite(out).all():
        raise PackingError(f"{name}: a {what} overflows float16 (largest {float(np.abs(values).max()):.4g})")
    return out


def _check_blocks(codes: LinearCodes, name: str) -> None:
    codes.validate(name)
    if codes.group_size % BLOCK:
        raise PackingError(f"{name}: group_size {codes.group_size} is not a multiple of llama.cpp's block of {BLOCK}")


def _d_per_block(codes: LinearCodes, name: str) -> tuple["np.ndarray", float]:
    """float16 ``d`` per block ``[out, in / 32]`` and the largest relative rounding of a scale."""
    import numpy as np

    s = codes.scales.double().numpy()
    d = _fp16(s, "scale", name)
    if (d == 0).any():
        raise PackingError(f"{name}: a scale underflows float16 to 0 (smallest {float(s.min()):.3g})")
    rounding = float((np.abs(d.astype(np.float64) - s) / s).max())
    return np.repeat(d, codes.group_size // BLOCK, axis=1), rounding


def _nibbles(q: "np.ndarray") -> "np.ndarray":
    """``[out, blocks, 32]`` 4-bit codes -> ``[out, blocks, 16]`` bytes: value j low nibble, j + 16 high nibble."""
    import numpy as np

    q = q.astype(np.uint8)
    return q[..., :16] | (q[..., 16:] << np.uint8(4))


def q4_1_blocks(codes: LinearCodes, name: str = "linear") -> PackedBlocks:
    """Asymmetric 4-bit codes as Q4_1 blocks (``d = s``, ``m = -z * d``)."""
    import numpy as np

    _check_blocks(codes, name)
    if codes.bits != 4:
        raise PackingError(f"{name}: Q4_1 holds 4-bit codes; got {codes.bits} bits")
    out_f, in_f = codes.shape
    nb = in_f // BLOCK
    d, d_round = _d_per_block(codes, name)
    z = np.repeat(codes.zeros.numpy().astype(np.float64), codes.group_size // BLOCK, axis=1)
    m_exact = -z * d.astype(np.float64)
    m = _fp16(m_exact, "offset m = -z * d", name)
    m_steps = float((np.abs(m.astype(np.float64) - m_exact) / d.astype(np.float64)).max())
    q = codes.codes.numpy().reshape(out_f, nb, BLOCK)
    data = np.concatenate(
        [d.reshape(out_f, nb, 1).view(np.uint8), m.reshape(out_f, nb, 1).view(np.uint8), _nibbles(q)], axis=-1
    )
    return PackedBlocks(data.reshape(out_f, nb * 20), "Q4_1", d_round, m_steps)


def q4_0_blocks(codes: LinearCodes, name: str = "linear") -> PackedBlocks:
    """Symmetric 4-bit codes (every zero point 8) as Q4_0 blocks (``d = s``)."""
    import numpy as np

    _check_blocks(codes, name)
    if codes.bits != 4 or bool((codes.zeros != 8).any()):
        raise PackingError(f"{name}: Q4_0 holds symmetric 4-bit codes (every zero point 8); use Q4_1 for asymmetric ones")
    out_f, in_f = codes.shape
    nb = in_f // BLOCK
    d, d_round = _d_per_block(codes, name)
    q = codes.codes.numpy().reshape(out_f, nb, BLOCK)
    data = np.concatenate([d.reshape(out_f, nb, 1).view(np.uint8), _nibbles(q)], axis=-1)
    return PackedBlocks(data.reshape(out_f, nb * 18), "Q4_0", d_round, 0.0)


def q8_0_blocks(codes: LinearCodes, name: str = "linear") -> PackedBlocks:
    """Symmetric 8-bit codes (every zero point 128) as Q8_0 blocks (``d = s``, ``q - 128`` as signed bytes)."""
    import numpy as np

    _check_blocks(codes, name)
    if codes.bits != 8 or bool((codes.zeros != 128).any()):
        raise PackingError(f"{name}: Q8_0 holds symmetric 8-bit codes (every zero point 128); llama.cpp has no 8-bit type with an offset")
    out_f, in_f = codes.shape
    nb = in_f // BLOCK
    d, d_round = _d_per_block(codes, name)
    q = (codes.codes.numpy().astype(np.int16) - 128).astype(np.int8).reshape(out_f, nb, BLOCK)
    data = np.concatenate([d.reshape(out_f, nb, 1).view(np.uint8), q.view(np.uint8)], axis=-1)
    return PackedBlocks(data.reshape(out_f, nb * 34), "Q8_0", d_round, 0.0)


def blocks_for(codes: LinearCodes, name: str = "linear") -> PackedBlocks:
    """The lossless llama.cpp type for these codes: Q8_0 (8-bit symmetric), Q4_0 (4-bit symmetric) or Q4_1 (4-bit)."""
    if codes.bits == 8:
        return q8_0_blocks(codes, name)
    if codes.bits == 4:
        return q4_0_blocks(codes, name) if bool((codes.zeros == 8).all()) else q4_1_blocks(codes, name)
    raise PackingError(f"{name}: no lossless llama.cpp block type for {codes.bits}-bit codes (4 and 8 are supported)")


def permute_rows(codes: LinearCodes, n_head: int) -> LinearCodes:
    """q/k rows from transformers' rotary layout to llama.cpp's (the permutation ``convert_hf_to_gguf.py`` applies)."""
    from harness.build.methods.gguf_export import _permute

    return LinearCodes(
        _permute(codes.codes, n_head), _permute(codes.scales, n_head), _permute(codes.zeros, n_head), codes.bits, codes.group_size
    )


def model_blocks(model: Any, linears: Mapping[str, LinearCodes]) -> dict[str, PackedBlocks]:
    """Blocks of every quantized linear of a Llama-family ``model``, q and k rows in llama.cpp's order."""
    cfg = model.config
    out = {}
    for name, c in linears.items():
        if name.endswith("self_attn.q_proj"):
            c = permute_rows(c, cfg.num_attention_heads)
        elif name.endswith("self_attn.k_proj"):
            c = permute_rows(c, cfg.num_key_value_heads)
        out[name] = blocks_for(c, name)
    return out


def write_gguf_from_codes(
    model: Any,
    tokenizer: Any,
    linears: Mapping[str, LinearCodes],
    path: Any,
    *,
    name: str,
    float_type: str = "F16",
    gguf_source: Any = None,
) -> dict[str, Any]:
    """A GGUF file whose quantized linears hold ``linears``' integers; every other matrix in ``float_type``.

    Metadata and tokenizer are written by :func:`harness.build.methods.gguf_export.write_gguf`.
    Returns a record: block types, the largest float16 roundings, file bytes.
    """
    import gguf

    from harness.build.methods.gguf_export import write_gguf

    blocks = model_blocks(model, linears)
    types = {b.qtype for b in blocks.values()}
    if len(types) != 1:
        raise PackingError(f"one file holds one block type for the quantized linears; got {sorted(types)}")
    (qtype,) = types
    file_type = {"Q4_1": gguf.LlamaFileType.MOSTLY_Q4_1, "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[qtype]
    raw = {n: (b.data, gguf.GGMLQuantizationType[b.qtype]) for n, b in blocks.items()}
    how = write_gguf(model, tokenizer, path, float_type, name=name, gguf_source=gguf_source, blocks=raw, file_type=file_type)
    return {
        "block_type": qtype,
        "float_type": float_type,
        "tokenizer": how,
        "max_scale_rounding_rel": max(b.max_d_rounding for b in blocks.values()),
        "max_m_rounding_steps": max(b.max_m_rounding_steps for b in blocks.values()),
    }


#: Bytes per block of 32 values, and where ``m`` sits (None: the type has none), of the types written here.
_LAYOUT = {"Q4_1": (20, True), "Q4_0": (18, False), "Q8_0": (34, False)}
#: The unsigned offset of each type's stored integers: ``Q4_0`` stores ``q - 8`` implicitly, ``Q8_0`` ``q - 128``.
_OFFSET = {"Q4_1": 0, "Q4_0": 8, "Q8_0": 128}


def check_file_codes(path: Any, model_config: Any, linears: Mapping[str, LinearCodes]) -> dict[str, Any]:
    """Read a GGUF file written from ``linears`` back with ``gguf``'s reader and count what differs.

    Per quantized tensor: its values through ``gguf``'s own dequantization, turned back into
    integers with the block's stored ``d`` and ``m`` (``rint((w - m) / d)``), against the codes;
    the stored ``d`` against the float16 scale; and the largest float16 rounding of ``m``
    against ``-z * d``, in grid steps. Returns ``integer_mismatches``, ``scale_mismatches``,
    ``max_m_rounding_steps`` and ``tensors_checked``.
    """
    import gguf
    import numpy as np

    from harness.build.methods.gguf_export import TENSOR_NAMES

    tensors = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    heads = {"self_attn.q_proj": model_config.num_attention_heads, "self_attn.k_proj": model_config.num_key_value_heads}
    mismatches = d_bad = checked = 0
    m_steps = 0.0
    for name, c in linears.items():
        layer, hf = int(name.split(".")[2]), name.split(".", 3)[3]
        t = tensors.get(f"blk.{layer}.{TENSOR_NAMES[hf]}.weight")
        qtype = t.tensor_type.name if t is not None else None
        if qtype not in _LAYOUT:
            raise PackingError(f"{path}: {name} is {qtype or 'missing'} in the file, not one of {', '.join(_LAYOUT)}")
        if hf in heads:
            c = permute_rows(c, heads[hf])
        out_f, in_f = c.shape
        size, has_m = _LAYOUT[qtype]
        raw = np.asarray(t.data).reshape(out_f, in_f // BLOCK, size)
        d = raw[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float64)
        m = raw[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float64) if has_m else np.zeros_like(d)
        values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(out_f, in_f).astype(np.float64)
        back = np.rint((values - np.repeat(m, BLOCK, axis=1)) / np.repeat(d, BLOCK, axis=1)) + _OFFSET[qtype]
        mismatches += int((back != c.codes.numpy()).sum())
        per_block = c.group_size // BLOCK
        s16 = np.repeat(c.scales.numpy().astype(np.float16).astype(np.float64), per_block, axis=1)
        d_bad += int((d != s16).sum())
        if has_m:
            z = np.repeat(c.zeros.numpy().astype(np.float64), per_block, axis=1)
            m_steps = max(m_steps, float((np.abs(m + z * d) / d).max()))
        checked += 1
    return {"integer_mismatches": mismatches, "scale_mismatches": d_bad, "max_m_rounding_steps": m_steps, "tensors_checked": checked}


__all__ = ["BLOCK", "check_file_codes", "PackedBlocks", "blocks_for", "model_blocks", "permute_rows", "q4_0_blocks", "q4_1_blocks", "q8_0_blocks", "write_gguf_from_codes"]
