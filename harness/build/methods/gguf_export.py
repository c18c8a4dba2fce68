"""GGUF export: any variant as a llama.cpp model file, with a llama.cpp quant type.

So the CPU profile can measure what people actually run on CPUs. Two stages,
as llama.cpp's own pipeline (``convert_hf_to_gguf.py`` then ``llama-quantize``):

1. **convert**: the checkpoint is written as GGUF with the ``gguf`` package
   (llama.cpp's own Python writer): Llama metadata, the tokenizer, and the
   tensors under llama.cpp's names, with q/k rows permuted to llama.cpp's
   rotary layout exactly as ``convert_hf_to_gguf.py`` does. ``F32``, ``F16``,
   ``BF16`` and ``Q8_0`` are written directly in this stage (the output types
   the convert script offers): 2-D weights in the type, norms in F32;
2. **quantize**: every other type (``Q4_K_M``, ``Q5_K_M``, ``Q6_K``, ``Q4_0``,
   ...) is made from an F32 conversion by llama.cpp's quantizer
   (``llama_model_quantize``, what ``llama-quantize`` runs), through
   llama-cpp-python; its mixes (e.g. Q6_K for the output layer in Q4_K_M, and
   fallbacks when a row length is not a multiple of 256) are llama.cpp's.

With ``from_codes: true`` the export follows a weight quantizer (RTN, AWQ, GPTQ) and writes
*its* integers instead: it reads the codes, scales and zero points from the parent's packed
checkpoint (gptqmodel's own unpacking, :func:`harness.build.packing.loading.read_packed_codes`)
and maps them losslessly onto llama.cpp's blocks of 32 (:mod:`harness.build.packing.gguf_blocks`):
asymmetric 4-bit as ``Q4_1`` (``d`` = the stored float16 scale, ``m = -z * d`` rounded to
float16, the format's limit), symmetric 4-bit as ``Q4_0``, symmetric 8-bit per channel as
``Q8_0``. Nothing is quantized again. The file is read back with ``gguf``'s reader and every
integer is compared (recorded as ``integer_mismatches``); the tensors that stay float
(embedding, norms) are written in F32, as the packed checkpoint holds them. llama.cpp's CPU
kernels also round the activations to 8 bits per block of 32 inside each quantized matrix
product (Q8_1 for Q4_1 and Q4_0, Q8_0 for Q8_0), which the packed PyTorch checkpoint does not.

The convert script itself is not shipped in any package, and this stage is
small, so it is written out here for the Llama family (Llama, Mistral,
SmolLM2 and others with the same layer layout). The tokenizer: when the base
model came from a GGUF file (the embedded SmolLM2), its ``tokenizer.*``
metadata is copied verbatim; otherwise a byte-level BPE ``tokenizer.json`` is
converted (``tokenizer.ggml.pre`` is then ``default``; llama.cpp warns about
that and uses its default pre-tokenizer regex).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Mapping

from pydantic import Field, field_validator, model_validator

from harness.build.methods import GGUF_FILE, Method, MethodConfig, MethodError, StepContext, StepOutcome

#: Types written directly by the convert stage (as ``convert_hf_to_gguf.py --outtype``).
DIRECT_TYPES = ("F32", "F16", "BF16", "Q8_0")
#: Types that hold a weight quantizer's integers unchanged (``from_codes``).
CODE_TYPES = ("Q4_1", "Q4_0", "Q8_0")
#: llama.cpp file types (``llama_ftype``) for the quantize stage, by the names ``llama-quantize`` accepts.
LLAMA_FTYPES = {
    "Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13,
    "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18, "IQ4_NL": 25, "IQ4_XS": 30,
}  # fmt: skip


class GGUFConfig(MethodConfig):
    quant_type: str = Field(
        default="Q8_0",
        description=f"llama.cpp quant type: {', '.join(DIRECT_TYPES)} (written directly) or {', '.join(LLAMA_FTYPES)} "
        "(quantized by llama.cpp, needs llama-cpp-python).",
    )
    threads: int = Field(default=0, ge=0, description="Threads for llama.cpp's quantizer (0: all cores).")
    from_codes: bool = Field(
        default=False,
        description="Write the integers of the weight quantizer before this step (rtn, awq, gptq) unchanged instead of "
        f"quantizing float weights: quant_type must be the type that holds them ({', '.join(CODE_TYPES)}: Q4_1 for "
        "asymmetric 4-bit, Q4_0 for symmetric 4-bit, Q8_0 for symmetric 8-bit per channel).",
    )

    @model_validator(mode="after")
    def _codes_type(self) -> "GGUFConfig":
        if self.from_codes and self.quant_type not in CODE_TYPES:
            raise ValueError(f"from_codes writes the quantizer's integers as {', '.join(CODE_TYPES)}; {self.quant_type} cannot "
                             "hold them unchanged")
        return self

    @field_validator("quant_type")
    @classmethod
    def _known(cls, v: str) -> str:
        from kompakt.registry import suggest

        name = v.upper()
        known = [*DIRECT_TYPES, *LLAMA_FTYPES]
        if name not in known:
            raise ValueError(f"unknown quant type {v!r}{suggest(name, known)}; known: {', '.join(known)}")
        return name

    def params(self) -> dict[str, Any]:
        out = super().params()
        if self.quant_type in DIRECT_TYPES or self.from_codes:
            out.pop("threads", None)  # not used
        if not self.from_codes:
            out.pop("from_codes")  # the lineage of the usual export stays as it was
        return out


def _permute(w: Any, n_head: int) -> Any:
    """HF's rotary layout to llama.cpp's (``LlamaModel.permute`` of convert_hf_to_gguf.py)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


TENSOR_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def _add_tokenizer(writer: Any, tokenizer: Any, gguf_source: Path | None) -> str:
    """Tokenizer metadata; returns how it was obtained (for the record)."""
    import gguf

    if gguf_source is not None:
        reader = gguf.GGUFReader(str(gguf_source))
        for key, field in reader.fields.items():
            if not key.startswith("tokenizer."):
                continue
            value = field.contents()
            vtype = field.types[0]
            if vtype == gguf.GGUFValueType.ARRAY:
                writer.add_array(key, value)
            elif vtype == gguf.GGUFValueType.STRING:
                writer.add_string(key, value)
            elif vtype == gguf.GGUFValueType.BOOL:
                writer.add_bool(key, value)
            elif vtype == gguf.GGUFValueType.UINT32:
                writer.add_uint32(key, value)
            elif vtype == gguf.GGUFValueType.INT32:
                writer.add_int32(key, value)
            elif vtype == gguf.GGUFValueType.FLOAT32:
                writer.add_float32(key, value)
            else:  # pragma: no cover - no such tokenizer key in llama.cpp
                raise MethodError(f"cannot copy tokenizer key {key} of type {vtype.name}")
        return f"copied from {gguf_source.name}"
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec.get("model", {})
    if model.get("type") != "BPE" or not any(
        (p or {}).get("type") == "ByteLevel" for p in [spec.get("pre_tokenizer")] + list((spec.get("pre_tokenizer") or {}).get("pretokenizers", []))
    ):
        raise MethodError(
            "GGUF export converts byte-level BPE tokenizers (GPT-2 style) only; this tokenizer is "
            f"{model.get('type')}. Use llama.cpp's convert_hf_to_gguf.py for it."
        )
    vocab = tokenizer.get_vocab()
    size = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = gguf.TokenType.NORMAL
    for i, added in tokenizer.added_tokens_decoder.items():
        types[i] = gguf.TokenType.CONTROL if added.special else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for attr, adder in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                        ("unk_token_id", writer.add_unk_token_id), ("pad_token_id", writer.add_pad_token_id)):  # fmt: skip
        value = getattr(tokenizer, attr, None)
        if value is not None:
            adder(value)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)
    return "converted from tokenizer.json (pre-tokenizer: default)"


def write_gguf(
    model: Any,
    tokenizer: Any,
    path: Path,
    out_type: str,
    *,
    name: str,
    gguf_source: Path | None = None,
    blocks: "Mapping[str, tuple[Any, Any]] | None" = None,
    file_type: Any = None,
) -> str:
    """Write a Llama-family ``model`` as GGUF of ``out_type`` (one of DIRECT_TYPES); returns the tokenizer provenance.

    ``blocks`` maps a linear's transformers name (``model.layers.0.mlp.up_proj``) to pre-packed
    ``(uint8 blocks [rows, bytes], GGMLQuantizationType)`` written as they are (already in
    llama.cpp's row order: q and k rows permuted by the caller); every other 2-D tensor is
    written in ``out_type``. ``file_type`` overrides the ``general.file_type`` key.
    """
    import gguf
    import numpy as np
    import torch

    cfg = model.config
    if getattr(cfg, "model_type", None) not in ("llama", "mistral"):
        raise MethodError(f"GGUF export supports Llama-family models (llama, mistral); this one is {cfg.model_type!r}")
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    rope = getattr(cfg, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise MethodError(f"GGUF export handles plain RoPE only; this model uses rope_type {rope.get('rope_type')!r}")
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))))
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_file_type(file_type if file_type is not None else {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
                          "BF16": gguf.LlamaFileType.MOSTLY_BF16, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[out_type])  # fmt: skip
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    how = _add_tokenizer(writer, tokenizer, gguf_source)

    qtype = {"F32": gguf.GGMLQuantizationType.F32, "F16": gguf.GGMLQuantizationType.F16,
             "BF16": gguf.GGMLQuantizationType.BF16, "Q8_0": gguf.GGMLQuantizationType.Q8_0}[out_type]  # fmt: skip

    def add(name: str, t: torch.Tensor) -> None:
        data = t.detach().float().cpu().numpy().astype(np.float32)
        if data.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, data)  # norms stay F32, as llama.cpp's convert script keeps them
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, data.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)

    inner = model.model
    add("token_embd.weight", inner.embed_tokens.weight)
    for i, layer in enumerate(inner.layers):
        for hf, ll in TENSOR_NAMES.items():
            packed = (blocks or {}).get(f"model.layers.{i}.{hf}")
            if getattr(layer.get_submodule(hf), "bias", None) is not None:
                raise MethodError(f"{hf} has a bias; GGUF export supports bias-free Llama layers only")
            if packed is not None:
                data, raw_type = packed
                writer.add_tensor(f"blk.{i}.{ll}.weight", data, raw_dtype=raw_type)
                continue
            w = layer.get_submodule(hf).weight
            if hf == "self_attn.q_proj":
                w = _permute(w, cfg.num_attention_heads)
            elif hf == "self_attn.k_proj":
                w = _permute(w, cfg.num_key_value_heads)
            add(f"blk.{i}.{ll}.weight", w)
    add("output_norm.weight", inner.norm.weight)
    if not getattr(cfg, "tie_word_embeddings", False):
        add("output.weight", model.lm_head.weight)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    return how


def tensor_types(path: Path) -> list[str]:
    """``"TYPE xCOUNT"`` for each tensor type in a GGUF file (most frequent first)."""
    import gguf

    counts: dict[str, int] = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + 1
    return [f"{k} x{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]


def llama_quantize(src: Path, dst: Path, quant_type: str, threads: int) -> None:
    """llama.cpp's quantizer (what ``llama-quantize`` runs) through llama-cpp-python."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPES[quant_type]
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0 or not dst.is_file():
        raise MethodError(f"llama.cpp could not quantize to {quant_type} (return code {rc})")


#: Said on every export of a quantizer's integers.
ACTIVATION_NOTE = (
    "llama.cpp's CPU kernels also round the activations to 8 bits per block of 32 inside each quantized matrix product "
    "(Q8_1 for Q4_1 and Q4_0, Q8_0 for Q8_0); the packed PyTorch checkpoint computes them in bfloat16 (4-bit) or float32 "
    "(8-bit) instead."
)


class GGUFExport(Method):
    name = "gguf"
    Config = GGUFConfig
    stage = "export"
    final = True
    distributions = ("gguf",)

    @classmethod
    def order_problem(cls, prev: Any, prev_config: Any, config: GGUFConfig) -> str | None:
        packs = prev is not None and getattr(prev, "packs", False)
        if config.from_codes and not packs:
            what = f"{prev.name} leaves float weights" if prev is not None else "it is the first step"
            return f"from_codes exports the integers of a weight quantizer (rtn, awq, gptq) right before it, but {what}"
        if packs:
            from harness.build.packing.formats import lossless_gguf_type

            expected = lossless_gguf_type(prev_config.bits, prev_config.symmetric)
            if not config.from_codes:
                return (f"{prev.name} stores its integers packed; export them unchanged with from_codes: true and quant_type "
                        f"{expected} (exporting the dequantized weights as {config.quant_type} would round them a second time)")
            if config.quant_type != expected:
                grid = f"{prev_config.bits}-bit {'symmetric' if prev_config.symmetric else 'asymmetric'}"
                return f"quant_type {config.quant_type} cannot hold {grid} codes unchanged; use {expected}"
        return None

    def apply(self, model: Any, config: GGUFConfig, ctx: StepContext) -> StepOutcome:
        if config.from_codes:
            return self._from_codes(model, config, ctx)
        from harness.build.packing.loading import packed_method

        if ctx.parent_path is not None and packed_method(ctx.parent_path) is not None:
            raise MethodError("the parent is a packed checkpoint; export its integers with from_codes: true (Q4_1 for 4-bit, "
                              "Q8_0 for 8-bit) instead of quantizing its dequantized weights a second time")
        out = ctx.out_dir / GGUF_FILE
        name = f"{ctx.base.info.name} ({config.quant_type})"
        record: dict[str, Any] = {}
        if config.quant_type in DIRECT_TYPES:
            how = write_gguf(model, ctx.tokenizer, out, config.quant_type, name=name, gguf_source=ctx.base.gguf_path)
        else:
            from harness.requirements import require

            require("gguf_quant", purpose=f"GGUF quant type {config.quant_type}")
            with tempfile.TemporaryDirectory(prefix="gguf-", dir=ctx.out_dir.parent) as tmp:
                f32 = Path(tmp) / "model-f32.gguf"
                how = write_gguf(model, ctx.tokenizer, f32, "F32", name=name, gguf_source=ctx.base.gguf_path)
                llama_quantize(f32, out, config.quant_type, config.threads)
            import importlib.metadata

            record["quantizer"] = f"llama.cpp via llama-cpp-python {importlib.metadata.version('llama-cpp-python')}"
        record.update({"tokenizer": how, "tensor_types": tensor_types(out), "file_bytes": out.stat().st_size})
        return StepOutcome(model=None, record=record, files=[GGUF_FILE])

    def _from_codes(self, model: Any, config: GGUFConfig, ctx: StepContext) -> StepOutcome:
        """Write the parent packed checkpoint's integers as llama.cpp blocks, then read the file back and compare."""
        from harness.build.packing.codes import PackingError
        from harness.build.packing.gguf_blocks import check_file_codes, write_gguf_from_codes
        from harness.build.packing.loading import PackedCheckpointError, packed_method, read_packed_codes

        if ctx.parent_path is None or packed_method(ctx.parent_path) is None:
            raise MethodError(f"from_codes needs the packed checkpoint of a weight quantizer as parent; {ctx.parent_path} is none")
        out = ctx.out_dir / GGUF_FILE
        try:
            codes, qc = read_packed_codes(ctx.parent_path)
            written = write_gguf_from_codes(model, ctx.tokenizer, codes, out, name=f"{ctx.base.info.name} ({config.quant_type})",
                                            float_type="F32", gguf_source=ctx.base.gguf_path)
            if written["block_type"] != config.quant_type:
                raise MethodError(f"the parent's codes map onto {written['block_type']}, not the quant_type {config.quant_type}")
            check = check_file_codes(out, model.config, codes)
        except (PackingError, PackedCheckpointError) as err:
            raise MethodError(f"exporting the parent's integers failed: {err}") from err
        if check["integer_mismatches"] or check["scale_mismatches"] or check["tensors_checked"] != len(codes):
            raise MethodError(f"the GGUF file does not hold the parent's integers: {check}")
        record, notes = _codes_record(out, config.quant_type, qc, codes, check)
        record["tokenizer"] = written["tokenizer"]
        return StepOutcome(model=None, record=record, notes=notes, files=[GGUF_FILE])


#: How each block type holds a quantizer's integers (said in the lineage).
MAPPINGS = {
    "Q4_1": "Q4_1 blocks of 32: d = the parent's float16 scale, m = fp16(-z * d), the 4-bit codes unchanged; a group of "
            "{group_size} is {blocks} blocks with the same d and m",
    "Q4_0": "Q4_0 blocks of 32: d = the parent's float16 scale, the codes unchanged (llama.cpp subtracts 8)",
    "Q8_0": "Q8_0 blocks of 32: d = the parent's float16 per-channel scale, q - 128 as signed bytes",
}


def _codes_record(out: Path, quant_type: str, qc: Mapping[str, Any], codes: Mapping[str, Any], check: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The record and notes of an export of a quantizer's integers: mapping, measured exactness, bits per weight."""
    n_linear = sum(c.codes.numel() for c in codes.values())
    tensors = _tensor_bytes(out)
    group_size = int(qc.get("group_size") or 32)
    mapping = MAPPINGS[quant_type].format(group_size=group_size, blocks=max(group_size, 32) // 32)
    has_m = quant_type == "Q4_1"
    record: dict[str, Any] = {
        "source": f"the parent's packed {str(qc['quant_method']).upper()} checkpoint (read with gptqmodel's unpacking)",
        "mapping": mapping,
        "block_type": quant_type,
        "float_type": "F32",
        "integer_mismatches": check["integer_mismatches"],
        "scale_mismatches": check["scale_mismatches"],
        **({"max_m_rounding_steps": round(check["max_m_rounding_steps"], 5)} if has_m else {}),
        "tensors_checked": check["tensors_checked"],
        "bits_per_weight_linears": round(8 * sum(t["bytes"] for t in tensors.values() if t["quantized"]) / n_linear, 3),
        "bits_per_weight_model": round(8 * sum(t["bytes"] for t in tensors.values()) / sum(t["elements"] for t in tensors.values()), 3),
        "tensor_types": tensor_types(out),
        "file_bytes": out.stat().st_size,
    }
    m_rounding = f", the largest float16 rounding of m {check['max_m_rounding_steps']:.4f} grid steps" if has_m else ""
    notes = (f"The parent's integers written unchanged as {quant_type} ({mapping}); read back with gguf's reader: "
             f"{check['integer_mismatches']} integer mismatches of {n_linear:,}{m_rounding}. Embedding and norms in F32 (a "
             f"tied output layer is the embedding). {ACTIVATION_NOTE}")
    return record, notes


def _tensor_bytes(path: Path) -> dict[str, dict[str, Any]]:
    """Per tensor of a GGUF file: its data bytes, element count and whether it is a quantized block type."""
    import gguf

    float_types = {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16}
    return {t.name: {"bytes": int(t.n_bytes), "elements": int(t.n_elements), "quantized": t.tensor_type not in float_types}
            for t in gguf.GGUFReader(str(path)).tensors}

