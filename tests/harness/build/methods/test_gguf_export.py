"""GGUF export: the files load in transformers and llama.cpp and compute what the checkpoint computes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.build import artifacts
from harness.build.base_model import BaseModelSpec, load_model, load_tokenizer, resolve
from harness.build.recipes import parse_recipe

HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
TEXT = "The quick brown fox jumps over the lazy dog."


def export(model_dir: Path, where: Path, quant_type: str) -> artifacts.Artifact:
    recipe = parse_recipe(
        where / "g.yaml",
        {"base_model": {"source": str(model_dir)}, "variants": [{"id": "g", "steps": [{"method": "gguf", "params": {"quant_type": quant_type}}]}]},
    )
    return artifacts.build(recipe, "g", show_progress=False)


def reference_logits(model_dir: Path) -> tuple[list[int], torch.Tensor]:
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    ids = tok(TEXT, return_tensors="pt").input_ids
    with torch.no_grad():
        return ids[0].tolist(), model(ids).logits[0]


def llama_cpp_logits(path: Path, tokens: list[int]) -> tuple[np.ndarray, list[int]]:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, logits_all=True, verbose=False)
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)]), llm.tokenize(TEXT.encode(), add_bos=False, special=False)
    finally:
        llm.close()


@pytest.mark.parametrize("quant_type, tolerance", [("F32", 1e-4), ("Q8_0", 0.05)])
def test_direct_export_round_trips(quant_type: str, tolerance: float, tiny_model_dir: Path, kompakt_env: Path) -> None:
    from transformers import AutoModelForCausalLM

    a = export(tiny_model_dir, kompakt_env, quant_type)
    assert a.format == "gguf" and a.model_path.name == "model.gguf"
    rec = a.variant.steps[0].record
    assert rec["file_bytes"] == a.model_path.stat().st_size
    assert rec["tensor_types"][0].startswith(quant_type)
    tokens, ref = reference_logits(tiny_model_dir)
    g = AutoModelForCausalLM.from_pretrained(a.model_path.parent, gguf_file=a.model_path.name)
    with torch.no_grad():
        got = g(torch.tensor([tokens])).logits[0]
    assert (got - ref).abs().max() <= tolerance * max(1.0, float(ref.abs().max())) * 10
    if HAS_LLAMA_CPP:
        logits, llama_tokens = llama_cpp_logits(a.model_path, tokens)
        assert llama_tokens == tokens  # the tokenizer survived the conversion
        assert np.abs(logits - ref.numpy()).max() <= tolerance * 10 * max(1.0, float(ref.abs().max()))


@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed: `make test` builds it (scripts/build-llamacpp.sh)")
def test_llama_cpp_quant_type(tiny_model_dir: Path, kompakt_env: Path) -> None:
    a = export(tiny_model_dir, kompakt_env, "Q4_K_M")
    rec = a.variant.steps[0].record
    assert rec["quantizer"].startswith("llama.cpp via llama-cpp-python")
    # 4-bit K-quant blocks need rows of 256; the tiny model's rows of 64 get llama.cpp's fallback types
    assert any(t.split()[0] in ("Q4_K", "Q5_K", "Q6_K", "Q5_0", "Q4_0") for t in rec["tensor_types"])
    tokens, ref = reference_logits(tiny_model_dir)
    logits, _ = llama_cpp_logits(a.model_path, tokens)
    assert np.isfinite(logits).all() and np.abs(logits - ref.numpy()).max() < 0.5


def test_gguf_file_as_base_model(tiny_model_dir: Path, kompakt_env: Path) -> None:
    """A GGUF file can itself be a base model: dequantized once into a cached reference."""
    a = export(tiny_model_dir, kompakt_env, "F32")
    base = resolve(BaseModelSpec(source=str(a.model_path), id="tiny-from-gguf"), show_progress=False)
    assert base.info.source == "gguf" and base.gguf_path == a.model_path
    assert "Dequantized from the GGUF file" in (base.info.notes or "")
    assert (base.path / "model.safetensors").is_file() and "quantization_config" not in (base.path / "config.json").read_text()
    tokens, ref = reference_logits(tiny_model_dir)
    with torch.no_grad():
        got = load_model(base.path)(torch.tensor([tokens])).logits[0]
    assert torch.allclose(got, ref, atol=1e-5)
    again = resolve(BaseModelSpec(source=str(a.model_path), id="tiny-from-gguf"), show_progress=False)
    assert again.info.content_hash == base.info.content_hash and again.path == base.path


def test_unsupported_models_are_refused(tiny_model_dir: Path, kompakt_env: Path, monkeypatch: Any) -> None:
    from harness.build.methods import MethodError
    from harness.build.methods.gguf_export import write_gguf

    model, tok = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    model.config.model_type = "gpt_neox"
    with pytest.raises(MethodError, match="Llama-family"):
        write_gguf(model, tok, kompakt_env / "x.gguf", "F32", name="x")
