"""``kompakt bench`` orchestration on a tiny random Llama: results files, resume, failures, memory budgets."""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lm_eval")

from harness.run import bench  # noqa: E402
from harness.build.artifacts import reference_artifact  # noqa: E402
from harness.build.base_model import BaseModelSpec, resolve, weights_hash  # noqa: E402
from harness.run.measurement_cache import measurement_key  # noqa: E402
from kompakt.hashing import sha256_file  # noqa: E402
from kompakt.profiles import get_profile  # noqa: E402
from kompakt.results import ResultsFile, Step, Variant  # noqa: E402

TASKS = ["arc_challenge", "wikitext2_tokens"]


@pytest.fixture
def data_dir(fake_data_dir: Path) -> Path:
    """Five hand-written ARC-Challenge questions and a little WikiText-like text (tests/harness/fake_benchmarks.py)."""
    return fake_data_dir


@pytest.fixture
def env(kompakt_env: Path, tiny_model_dir: Path, data_dir: Path) -> dict[str, Any]:
    base = resolve(BaseModelSpec(source=str(tiny_model_dir), id="tiny-llama"))
    return {"base": base, "data_dir": data_dir, "results": kompakt_env / "results"}


def _config(env: dict[str, Any], **overrides: Any) -> bench.BenchConfig:
    settings: dict[str, Any] = {
        "profile": get_profile("cpu"), "tasks": list(TASKS), "data_dir": env["data_dir"], "batch_size": 4,
        "ppl_context": 64, "results_root": env["results"], "command": "pytest",
    }
    return bench.BenchConfig(**{**settings, **overrides})


def _reference_job(env: dict[str, Any]) -> bench.VariantJob:
    return bench.VariantJob("reference", artifact=reference_artifact(env["base"]), is_reference=True)


def _files(env: dict[str, Any]) -> list[Path]:
    return sorted(env["results"].rglob("*.json"))


def test_bench_writes_a_valid_results_file_and_resumes(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = bench.run_bench([_reference_job(env)], _config(env), say=lambda _: None)
    assert [o.status.code for o in outcomes] == ["ok"]
    [path] = _files(env)
    assert path.relative_to(env["results"]).parts[:3] == ("tiny-llama", "reference", "cpu")
    results = ResultsFile.model_validate_json(path.read_text())
    assert results.variant.is_reference and results.provenance.kind == "measured"
    arc = {a.metric: a for a in results.metrics.accuracy if a.task == "arc_challenge"}
    assert set(arc) == {"acc", "acc_norm"}
    assert arc["acc"].n == 5 and 0.0 <= arc["acc"].value <= 1.0 and arc["acc"].stderr is not None
    [tok] = [p for p in results.metrics.perplexity if p.task == "wikitext2_tokens"]
    assert tok.token_perplexity > 1.0 and tok.context_length == 64 and tok.word_perplexity is None

    # a second run measures nothing again: every task comes from the cache, with the same numbers
    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a cached measurement was computed again")

    monkeypatch.setattr(bench, "_run_quality_task", boom)
    [again] = bench.run_bench([_reference_job(env)], _config(env), say=lambda _: None)
    assert again.status.code == "ok" and sorted(again.cached_tasks) == sorted(TASKS)
    assert again.results.metrics.accuracy == results.metrics.accuracy
    assert len(_files(env)) == 2  # a new run, a new file; the first is untouched
    assert ResultsFile.model_validate_json(path.read_text()) == results


def test_a_killed_run_resumes_without_redoing_finished_tasks(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    real = bench._run_quality_task
    calls: list[str] = []

    def killed_in_second_task(task: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(task)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user (or the machine) stops the run mid-way
        return real(task, *args, **kwargs)

    monkeypatch.setattr(bench, "_run_quality_task", killed_in_second_task)
    with pytest.raises(KeyboardInterrupt):
        bench.run_bench([_reference_job(env)], _config(env), say=lambda _: None)
    assert _files(env) == []  # no results file, not even a partial one
    assert not list(env["results"].rglob("*.tmp*")) if env["results"].exists() else True

    calls.clear()
    monkeypatch.setattr(bench, "_run_quality_task", lambda task, *a, **k: (calls.append(task), real(task, *a, **k))[1])
    [outcome] = bench.run_bench([_reference_job(env)], _config(env), say=lambda _: None)
    assert outcome.status.code == "ok"
    assert calls == [TASKS[1]] and outcome.cached_tasks == [TASKS[0]]
    assert len(_files(env)) == 1


def test_a_failed_build_is_recorded_and_the_run_goes_on(env: dict[str, Any]) -> None:
    def broken() -> Any:
        raise RuntimeError("calibration text is missing")

    planned = (env["base"].info, Variant(id="awq4", is_reference=False, steps=[Step(method="awq", params={"bits": 4})]))
    jobs = [bench.VariantJob("awq4", build=broken, planned=planned), _reference_job(env)]
    config = _config(env, tasks=["wikitext2_tokens"])
    outcomes = bench.run_bench(jobs, config, say=lambda _: None)
    assert [o.status.code for o in outcomes] == ["failed", "ok"]
    assert "calibration text is missing" in outcomes[0].status.reason
    failed = ResultsFile.model_validate_json(outcomes[0].path.read_text())
    assert failed.variant.steps[0].method == "awq" and failed.metrics.accuracy == []


def _tiny_budget(**update: Any) -> Any:
    return get_profile("cpu").model_copy(update={"memory_budget_bytes": 10_000, **update})


def test_a_variant_over_the_budget_does_not_fit(env: dict[str, Any]) -> None:
    config = _config(env, tasks=["wikitext2_tokens"], profile=_tiny_budget())
    [outcome] = bench.run_bench([_reference_job(env)], config, say=lambda _: None)
    assert outcome.status.code == "does_not_fit"
    assert outcome.status.memory_budget_bytes == 10_000
    assert outcome.status.memory_needed_bytes > 10_000
    assert "budget of profile cpu" in outcome.status.reason
    results = ResultsFile.model_validate_json(outcome.path.read_text())
    assert results.metrics.perplexity == []


def test_load_4bit_fallback_is_recorded_in_the_lineage(env: dict[str, Any], tiny_model_dir: Path) -> None:
    pytest.importorskip("bitsandbytes")
    from harness.run.loading import weights_bytes_on_load

    needed = weights_bytes_on_load(tiny_model_dir, "float32")
    # over the budget in float32, within it in 4 bit
    profile = _tiny_budget(memory_budget_bytes=needed // 2, on_does_not_fit="load_4bit")
    config = _config(env, tasks=["wikitext2_tokens"], profile=profile)
    [outcome] = bench.run_bench([_reference_job(env)], config, say=lambda _: None)
    assert outcome.status.code == "ok"
    variant = outcome.results.variant
    assert variant.id == "reference-4bit" and not variant.is_reference
    assert variant.steps[-1].method == "load_4bit" and variant.steps[-1].params["quant_type"] == "nf4"
    assert outcome.path.relative_to(env["results"]).parts[1] == "reference-4bit"
    assert outcome.results.metrics.perplexity[0].token_perplexity > 1.0


def test_a_gguf_variant_is_measured_on_its_dequantized_weights(env: dict[str, Any]) -> None:
    """A GGUF export (Q8_0, written without llama.cpp) is read back by transformers for accuracy and perplexity;
    the results say so, and its token perplexity is close to the float model's (Q8_0 is nearly lossless)."""
    from harness.build import artifacts
    from harness.build.recipes import parse_recipe

    recipe = parse_recipe(Path("g.yaml"), {"base_model": {"source": str(env["base"].path), "id": "tiny-llama"},
                                          "variants": [{"id": "gguf-q8_0", "steps": [{"method": "gguf", "params": {"quant_type": "Q8_0"}}]}]})
    art = artifacts.build(recipe, "gguf-q8_0", base=env["base"], show_progress=False)
    assert art.format == "gguf"
    config = _config(env, tasks=["wikitext2_tokens"], tokenizer_path=env["base"].path)
    [ref, gguf] = bench.run_bench([_reference_job(env), bench.VariantJob("gguf-q8_0", artifact=art)], config, say=lambda _: None)
    assert gguf.status.code == "ok", gguf.status.reason
    [p_ref], [p_gguf] = ref.results.metrics.perplexity, gguf.results.metrics.perplexity
    assert p_gguf.token_perplexity != p_ref.token_perplexity  # really the quantized weights
    assert abs(p_gguf.token_perplexity / p_ref.token_perplexity - 1) < 0.02
    assert any("dequantized to float32 by transformers' GGUF reader" in n for n in gguf.results.notes)
    # without the base model's tokenizer folder it is not measurable, and says why
    [bare] = bench.run_bench([bench.VariantJob("gguf-q8_0", artifact=art)], _config(env, tasks=["wikitext2_tokens"], use_cache=False), say=lambda _: None)
    assert bare.status.code == "failed" and "tokenizer folder" in bare.status.reason


def test_cli_rejects_unknown_tasks_and_stray_limits() -> None:
    from typer.testing import CliRunner

    from kompakt_cli import app

    import re

    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        res = runner.invoke(app, ["bench", *args])
        return res.exit_code, re.sub(r"[\s│╭╮╰╯─]+", " ", res.output)  # unwrap rich's error box

    code, out = run("--tasks", "arc_challange")
    assert code == 2 and "did you mean 'arc_challenge'" in out.lower()
    code, out = run("--tasks", "winogrande", "--limit", "hellaswag=10")
    assert code == 2 and "not among the tasks run" in out
    code, out = run("--limit", "many")
    assert code == 2 and "expected N or TASK=N" in out
    code, out = run("--tasks", "efficiency", "--build-device", "tpu")
    assert code == 2 and "KOMPAKT_BUILD_DEVICE='tpu': expected cpu, cuda or cuda:<index>" in out
    code, out = run("--tasks", "efficiency", "--repeats-per-block", "0")
    assert code == 2 and "--repeats-per-block" in out


def test_parse_limits() -> None:
    from kompakt_cli.bench import parse_limits

    assert parse_limits(["100", "hellaswag_llamacpp=1000"]) == (100, {"hellaswag_llamacpp": 1000})
    assert parse_limits(["wikitext=5,arc_challenge=20"]) == (None, {"wikitext": 5, "arc_challenge": 20})
    assert parse_limits(None) == (None, {})


def test_measurement_key_follows_limit_and_protocol(env: dict[str, Any]) -> None:
    art = reference_artifact(env["base"])
    a = measurement_key(art, _config(env), "arc_challenge")
    b = measurement_key(art, _config(env, limit=10), "arc_challenge")
    c = measurement_key(art, _config(env, task_limits={"arc_challenge": 10}), "arc_challenge")
    d = measurement_key(art, _config(env, profile=_tiny_budget()), "arc_challenge")
    assert a != b and b == c and a != d
    assert json.dumps(a)  # JSON-serialisable, as stored beside each measurement
    # the reference a variant's speed is paired with is part of the efficiency task's key, not of a quality task's
    assert measurement_key(art, _config(env), "arc_challenge", "ref-1") == a
    eff = measurement_key(art, _config(env), "efficiency")
    assert "reference" not in eff
    assert measurement_key(art, _config(env), "efficiency", "ref-1") == {**eff, "reference": "ref-1"}
    assert measurement_key(art, _config(env), "efficiency", "ref-2") != measurement_key(art, _config(env), "efficiency", "ref-1")
    # the same recipe key on other weights (a GPTQ rebuilt on another CPU) is another measurement
    other = types.SimpleNamespace(**{**vars(art)}, content_hash=lambda: "sha256:" + "0" * 64)
    assert measurement_key(other, _config(env), "arc_challenge") == {**a, "content": "sha256:" + "0" * 64} != a
    shutil.rmtree(env["results"], ignore_errors=True)


def test_the_batch_size_keys_the_batched_quality_tasks_only_where_it_is_not_the_default(env: dict[str, Any]) -> None:
    """LLM.int8()'s scores depend on the batch: a run at another batch size must not reuse a cached measurement. At the
    default the key has no batch entry, so measurements cached before it counted keep their keys."""
    from harness.measure.tasks.base import DEFAULT_BATCH_SIZE

    art = reference_artifact(env["base"])
    default = _config(env, batch_size=DEFAULT_BATCH_SIZE)
    for task in ("arc_challenge", "flores_ppl"):
        at_default = measurement_key(art, default, task)
        assert "batch_size" not in at_default
        assert measurement_key(art, _config(env, batch_size=1), task) == {**at_default, "batch_size": 1}
    # the token perplexity scores fixed windows one at a time: its key does not follow the batch size
    assert measurement_key(art, _config(env, batch_size=1), "wikitext2_tokens") == measurement_key(art, default, "wikitext2_tokens")


def test_a_variant_whose_outputs_depend_on_the_batch_says_at_which_batch_size_it_was_scored() -> None:
    from types import SimpleNamespace

    from harness.run.loading import batch_note

    def artifact(*methods: str) -> Any:
        return SimpleNamespace(variant=SimpleNamespace(steps=[SimpleNamespace(method=m) for m in methods]))

    note = batch_note(artifact("prune_depth", "bnb_int8"), 4)
    assert note is not None and "LLM.int8()" in note and "batches of 4 sequences" in note
    assert batch_note(artifact("rtn"), 4) is None
    assert batch_note(artifact("load_4bit"), 4) is None  # recorded by kompakt, never built: not a method to ask
    assert batch_note(artifact(), 8) is None


@pytest.mark.usefixtures("python_packer")
def test_packed_8bit_quality_runs_on_torchlinear_and_says_so(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """rtn8's packed checkpoint names TorchInt8Linear (its memory and speed); its quality loads the same stored tensors on
    TorchLinear (TorchInt8Linear prefills 16-21x slower), the results file says so and the cache keys tell them apart."""
    from harness.build import artifacts
    from harness.build.recipes import parse_recipe
    from harness.run import loading

    recipe = parse_recipe(Path("p.yaml"), {"base_model": {"source": str(env["base"].path), "id": "tiny-llama"}, "variants": [
        {"id": "rtn8", "steps": [{"method": "rtn", "params": {"bits": 8, "group_size": -1, "symmetric": True}}]},
        {"id": "rtn4", "steps": [{"method": "rtn", "params": {"bits": 4, "group_size": 32}}]},
    ]})
    rtn8 = artifacts.build(recipe, "rtn8", base=env["base"], show_progress=False)
    rtn4 = artifacts.build(recipe, "rtn4", base=env["base"], show_progress=False)
    assert loading.quality_format(rtn8).quality_kernel == "TorchLinear"
    assert loading.quality_format(rtn4) is None and loading.packed_quality_note(rtn4) is None  # AWQ: one kernel for all
    config = _config(env, tasks=["arc_challenge"])
    assert measurement_key(rtn8, config, "arc_challenge")["quality_kernel"] == "gptq_torch"
    assert "quality_kernel" not in measurement_key(rtn8, config, "efficiency")
    assert "quality_kernel" not in measurement_key(rtn4, config, "arc_challenge")

    loaded: list[Any] = []
    real = loading.load_for_eval
    monkeypatch.setattr(bench, "load_for_eval", lambda *a, **k: (loaded.append(r := real(*a, **k)), r)[1])
    [out] = bench.run_bench([bench.VariantJob("rtn8", artifact=rtn8)], config, say=lambda _: None)
    assert out.status.code == "ok", out.status.reason
    assert {type(m).__name__ for m in loaded[0][0].model.layers.modules()} >= {"TorchLinear"}
    assert "TorchInt8Linear" not in {type(m).__name__ for m in loaded[0][0].modules()}
    assert any("loaded on gptqmodel's TorchLinear (backend gptq_torch), not on its own TorchInt8Linear" in n
               for n in out.results.notes)
    assert out.results.variant.steps[-1].record["kernel"].startswith("TorchInt8Linear")  # the artifact itself is unchanged


@pytest.mark.usefixtures("python_packer")
def test_packed_variants_are_measured_as_stored(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """rtn4 is measured on its packed checkpoint through gptqmodel's kernel (not a float copy); its lossless GGUF
    export's token perplexity comes from llama.cpp's own logits where llama-cpp-python is installed (else it says so)."""
    import importlib.util

    from harness.build import artifacts
    from harness.build.recipes import parse_recipe
    from harness.run import loading

    recipe = parse_recipe(Path("p.yaml"), {"base_model": {"source": str(env["base"].path), "id": "tiny-llama"}, "variants": [
        {"id": "rtn4", "steps": [{"method": "rtn", "params": {"bits": 4, "group_size": 32}}]},
        {"id": "rtn4-gguf", "extends": "rtn4", "steps": [{"method": "gguf", "params": {"quant_type": "Q4_1", "from_codes": True}}]},
    ]})
    packed = artifacts.build(recipe, "rtn4", base=env["base"], show_progress=False)
    exported = artifacts.build(recipe, "rtn4-gguf", base=env["base"], show_progress=False)
    loaded: list[Any] = []
    real = loading.load_for_eval
    monkeypatch.setattr(bench, "load_for_eval", lambda *a, **k: (loaded.append(r := real(*a, **k)), r)[1])
    config = _config(env, tokenizer_path=env["base"].path)
    ref, p, g = bench.run_bench([_reference_job(env), bench.VariantJob("rtn4", artifact=packed),
                                 bench.VariantJob("rtn4-gguf", artifact=exported)], config, say=lambda _: None)
    assert p.status.code == "ok" and g.status.code == "ok", (p.status.reason, g.status.reason)
    kernels = {type(m).__name__ for m in loaded[1][0].modules()}
    assert "TorchAtenAwqLinear" in kernels and "Linear" not in {type(m).__name__ for m in loaded[1][0].model.layers.modules()}
    assert {a.task for a in p.results.metrics.accuracy} == {"arc_challenge"}
    [tp_ref], [tp_packed], [tp_gguf] = (o.results.metrics.perplexity for o in (ref, p, g))
    assert tp_packed.token_perplexity != tp_ref.token_perplexity
    assert abs(tp_gguf.token_perplexity / tp_packed.token_perplexity - 1) < 0.02  # the same integers on another engine
    assert p.results.variant.steps[-1].record["format"] == "awq-gemm"
    # each file names the build it measured: the hash of the weights as stored, the packed checkpoint's and the GGUF's
    assert p.results.variant.content_hash == weights_hash(packed.model_path)
    assert g.results.variant.content_hash == "sha256:" + sha256_file(exported.model_path)
    assert ref.results.variant.content_hash is None  # the reference's is its base model's
    if importlib.util.find_spec("llama_cpp") is not None:
        assert "Scored on llama.cpp's own logits" in tp_gguf.notes
    else:
        assert "llama-cpp-python is not installed" in tp_gguf.notes
