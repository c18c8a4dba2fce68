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

from pydantic import Field, field_validator

from harness.build.methods import GGUF_FILE, Method, MethodConfig, MethodError, StepContext, StepOutcome

#: Types written directly by the convert stage (as ``convert_hf_to_gguf.py --outtype``).
DIRECT_TYPES = ("F32", "F16", "BF16", "Q8_0")
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
        if self.quant_type in DIRECT_TYPES:
            out.pop("threads", None)  # not used
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


class GGUFExport(Method):
    name = "gguf"
    Config = GGUFConfig
    stage = "export"
    final = True
    distributions = ("gguf",)

    def apply(self, model: Any, config: GGUFConfig, ctx: StepContext) -> StepOutcome:

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
