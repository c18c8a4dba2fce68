"""Integration tests on the embedded SmolLM2-135M-Instruct (no download): the quality claims.

Perplexity is measured on the first windows of WikiText-2 test (evaluation
data, read only here), calibration and training use the local corpora.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness.build import artifacts
from harness.build.base_model import load_model, load_tokenizer
from harness.measure.tasks.token_perplexity import token_perplexity, wikitext2_text
from harness.build.recipes import parse_recipe
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
    return token_perplexity(model, load_tokenizer(base.path), wikitext2_text(), context_length=CONTEXT, limit=WINDOWS).perplexity


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
    from harness.build.recipes import load_recipe

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


#: A short run of every task on the embedded reference: (task, metric) -> the range a 135M
#: instruction model scores on these first documents. Chance is 0.50 on WinoGrande, 0.25 on
#: ARC-Challenge and HellaSwag; the full sets give 0.504, 0.269, 0.448 and 0.420
#: (data/results/smollm2-135m-instruct/reference/cpu/20261123T164314Z-7df5d1.json). A broken
#: prompt, scoring or data path lands far outside: at 0 or 1, or at chance with no spread at all.
SHORT_LIMITS = {"winogrande": 100, "arc_challenge": 100, "truthfulqa_mc2": 50, "hellaswag_llamacpp": 100,
                "wikitext": 2, "wikitext2_tokens": 4}
ACCURACY_RANGE = {("winogrande", "acc"): (0.35, 0.70), ("arc_challenge", "acc_norm"): (0.12, 0.45),
                  ("truthfulqa_mc2", "acc"): (0.30, 0.65), ("hellaswag_llamacpp", "acc_norm"): (0.25, 0.65)}


def test_a_short_bench_on_the_embedded_reference_gives_real_numbers_in_range(embedded_base: Any, tmp_path: Path) -> None:
    """`kompakt bench` end to end on the real model: each task's figure comes back, in range."""
    needs_data()
    from harness.run import bench
    from harness.build.artifacts import reference_artifact
    from kompakt.profiles import get_profile
    from kompakt.results import ResultsFile

    config = bench.BenchConfig(profile=get_profile("cpu"), tasks=list(SHORT_LIMITS), task_limits=dict(SHORT_LIMITS),
                               results_root=tmp_path, command="pytest")
    job = bench.VariantJob("reference", artifact=reference_artifact(embedded_base), is_reference=True)
    [outcome] = bench.run_bench([job], config, say=print)
    assert outcome.status.code == "ok", outcome.status.reason
    results = ResultsFile.model_validate_json(outcome.path.read_text(encoding="utf-8"))
    acc = {(a.task, a.metric): a for a in results.metrics.accuracy}
    print({k: round(a.value, 4) for k, a in acc.items()})
    for key, (low, high) in ACCURACY_RANGE.items():
        a = acc[key]
        assert a.limit == SHORT_LIMITS[key[0]] and a.n == SHORT_LIMITS[key[0]]
        assert low <= a.value <= high, f"{key}: {a.value} outside [{low}, {high}]"
        assert a.stderr is not None and 0 < a.stderr < 0.1
    ppl = {p.task: p for p in results.metrics.perplexity}
    print({t: (p.word_perplexity, p.token_perplexity) for t, p in ppl.items()})
    # the full test set gives 30.7 (word) and 21.6 (token, 2048); the first documents are of that order
    assert 10 < ppl["wikitext"].word_perplexity < 80 and 0.6 < ppl["wikitext"].bits_per_byte < 1.3
    assert 8 < ppl["wikitext2_tokens"].token_perplexity < 60 and ppl["wikitext2_tokens"].context_length == 2048
