"""Integration tests on the embedded SmolLM2-135M-Instruct (no download): the quality claims.

Perplexity is measured on the first windows of WikiText-2 test (evaluation
data, read only here), calibration and training use the local corpora.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness import artifacts
from harness.base_model import load_model, load_tokenizer
from harness.calibration import token_perplexity, wikitext2_test_text
from harness.recipes import parse_recipe
from kompakt import paths

pytestmark = pytest.mark.slow

# 8 windows of 512 tokens: enough to separate 4-bit methods on a 135M model
# (their perplexities differ by several percent), short enough for a CPU.
WINDOWS = 8
CONTEXT = 512


def needs_data() -> None:
    if not (paths.benchmarks_dir() / "wikitext2" / "wiki.test.raw").is_file():
        pytest.skip("shared/benchmarks/wikitext2 is not present")
    if not (paths.corpora_dir() / "calib").is_dir():
        pytest.skip("shared/corpora is not present")


def ppl(artifact: artifacts.Artifact, base: Any) -> float:
    model = load_model(artifact.model_path)
    return token_perplexity(model, load_tokenizer(base.path), wikitext2_test_text(), context_length=CONTEXT, max_windows=WINDOWS)


def build(base: Any, variants: list[dict]) -> dict[str, artifacts.Artifact]:
    recipe = parse_recipe(Path("embedded-test.yaml"), {"variants": variants})
    return {v: artifacts.build(recipe, v, base=base, show_progress=False) for v in recipe.variants}


def test_embedded_reference(embedded_base: Any) -> None:
    info = embedded_base.info
    assert info.id == "smollm2-135m-instruct" and info.source == "gguf"
    assert "Q4_1" in (info.notes or "") and info.parameters == 134_515_008
    model = load_model(embedded_base.path)
    assert model.config.num_hidden_layers == 30
    assert not hasattr(model.config, "quantization_config")


def test_awq_and_gptq_beat_rtn(embedded_base: Any) -> None:
    """At 4 bits and the same group size, AWQ and GPTQ each give a lower WikiText-2 perplexity than round-to-nearest."""
    needs_data()
    grid = {"bits": 4, "group_size": 64}
    # 16 x 256 calibration tokens keep each build to minutes on two cores.
    cal = {"n_samples": 16, "seq_len": 256}
    built = build(
        embedded_base,
        [
            {"id": "rtn4", "steps": [{"method": "rtn", "params": grid}]},
            {"id": "awq4", "steps": [{"method": "awq", "params": {**grid, **cal}}]},
            {"id": "gptq4", "steps": [{"method": "gptq", "params": {**grid, **cal}}]},
        ],
    )
    result = {k: ppl(a, embedded_base) for k, a in built.items()}
    print("wikitext-2 token perplexity (8 x 512 tokens):", result)
    assert result["awq4"] < result["rtn4"]
    assert result["gptq4"] < result["rtn4"]


def test_lora_heals_the_pruned_model_within_15_minutes(embedded_base: Any) -> None:
    """Healing prune-8 with the thesis recipe's LoRA settings finishes within 15 minutes and lowers perplexity."""
    needs_data()
    from harness.recipes import load_recipe

    thesis = load_recipe(paths.REPO_ROOT / "data" / "recipes" / "thesis.yaml")
    pruned = artifacts.build(thesis, "prune-8", base=embedded_base, show_progress=False)
    start = time.perf_counter()
    healed = artifacts.build(thesis, "prune-8-lora", base=embedded_base, show_progress=False)
    seconds = time.perf_counter() - start
    before, after = ppl(pruned, embedded_base), ppl(healed, embedded_base)
    print(f"prune-8 perplexity {before:.2f} -> prune-8-lora {after:.2f} in {seconds:.0f} s")
    assert seconds < 15 * 60
    assert after < 0.9 * before
    rec = healed.variant.steps[-1].record
    assert rec["heldout_loss_after"] < rec["heldout_loss_before"]
