"""Token perplexity at a fixed context length (the quantization papers' protocol)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from harness.build.tiny_model import tiny_model_and_tokenizer  # noqa: E402
from harness.measure.tasks.token_perplexity import RAW_FILE, TASK_NAME, token_perplexity, wikitext2_text  # noqa: E402
from kompakt import paths  # noqa: E402


def test_text_is_joined_as_the_hub_dataset(tmp_path: Path):
    raw = tmp_path / RAW_FILE
    raw.parent.mkdir(parents=True)
    raw.write_text(" \n = Title = \n \n Body line .\n", encoding="utf-8")
    # hub rows: "", " = Title = \n", "", " Body line .\n"
    assert wikitext2_text(tmp_path) == "\n\n = Title = \n\n\n\n\n Body line .\n"


def test_missing_file_says_where(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="wiki.test.raw"):
        wikitext2_text(tmp_path)


@pytest.mark.skipif(not (paths.benchmarks_dir() / RAW_FILE).is_file(), reason="shared/benchmarks is not here")
def test_shared_text_starts_like_the_hub_split():
    text = wikitext2_text()
    assert text.startswith("\n\n = Robert Boulter = \n\n\n\n\n Robert Boulter is an English film")


def test_token_perplexity_matches_a_direct_computation():
    model, tokenizer = tiny_model_and_tokenizer(seed=3)
    text = "The quick brown fox jumps over the lazy dog. " * 40
    res = token_perplexity(model, tokenizer, text, context_length=32, limit=3, progress_desc="test")
    ids = tokenizer(text, return_tensors="pt").input_ids[0]
    assert res.windows == 3 and res.windows_total == ids.numel() // 32 and res.context_length == 32
    nlls = []
    with torch.no_grad():
        for i in range(3):
            w = ids[i * 32 : (i + 1) * 32]
            logp = torch.log_softmax(model(w[None]).logits[0, :-1], dim=-1)
            nlls.append(-logp.gather(1, w[1:, None]).mean().item())
    assert math.isclose(res.perplexity, math.exp(sum(nlls) / 3), rel_tol=1e-5)
    assert "first 3 of" in res.note and "Token perplexity" in res.note
    assert TASK_NAME == "wikitext2_tokens"


def test_context_longer_than_the_model_is_refused():
    model, tokenizer = tiny_model_and_tokenizer()
    with pytest.raises(ValueError, match="exceeds"):
        token_perplexity(model, tokenizer, "text " * 100, context_length=10_000)


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed (make llamacpp)")
def test_llama_cpp_scores_the_same_windows_as_pytorch(tmp_path: Path):
    """The same float32 weights as an F32 GGUF: llama.cpp's logits give the token perplexity PyTorch gives."""
    from harness.build.methods.gguf_export import write_gguf
    from harness.measure.tasks.token_perplexity import llamacpp_token_perplexity

    model, tokenizer = tiny_model_and_tokenizer(seed=3)
    path = tmp_path / "tiny-f32.gguf"
    write_gguf(model, tokenizer, path, "F32", name="tiny")
    text = "The quick brown fox jumps over the lazy dog. " * 40
    torch_res = token_perplexity(model, tokenizer, text, context_length=32, limit=3, progress_desc="test")
    cpp = llamacpp_token_perplexity(path, tokenizer, text, context_length=32, limit=3, threads=1, progress_desc="test")
    assert (cpp.windows, cpp.windows_total, cpp.tokens) == (torch_res.windows, torch_res.windows_total, torch_res.tokens)
    assert math.isclose(cpp.perplexity, torch_res.perplexity, rel_tol=1e-3)
    assert "llama.cpp's own logits" in cpp.note
    with pytest.raises(ValueError, match="exceeds the model's"):
        llamacpp_token_perplexity(path, tokenizer, text * 20, context_length=1024, limit=1)
