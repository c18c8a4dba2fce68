"""The steps in ``harness``'s docstring, walked: a method, a task and a backend, each one module
(``plugin_example.py``) plus one registry entry, run through ``kompakt bench`` on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

import plugin_example  # noqa: E402

import harness  # noqa: E402
from harness.measure.backends import BACKENDS  # noqa: E402
from kompakt import methods, tasks  # noqa: E402


@pytest.fixture
def registered():
    methods.register(plugin_example.METHOD_ENTRY)
    tasks.register(plugin_example.TASK_ENTRY)
    BACKENDS.add(*plugin_example.BACKEND_ENTRY)
    yield
    methods.unregister("shrink_head")
    tasks.unregister("sentence_ppl")
    BACKENDS.remove("loop")


def test_the_docstring_lists_the_steps_for_each_addition() -> None:
    doc = harness.__doc__ or ""
    for heading in ("Adding a compression method", "Adding a task", "Adding an efficiency backend", "Adding a hardware profile"):
        assert heading in doc
    assert "1." in doc and "2." in doc


def test_a_new_method_task_and_backend_run_through_kompakt_bench(registered, kompakt_env: Path, tiny_model_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch, steady_bus: None) -> None:
    from typer.testing import CliRunner

    from kompakt_cli import app

    recipe = kompakt_env / "plugin.yaml"
    recipe.write_text(
        f"base_model: {{source: {tiny_model_dir}, id: tiny-llama}}\n"
        "variants:\n  - id: shrunk\n    steps:\n      - method: shrink_head\n        params: {factor: 0.5}\n",
        encoding="utf-8",
    )
    # two timed runs instead of ten and ten seconds: this checks the plumbing, not the speed
    import functools

    import harness.measure.efficiency as efficiency
    from harness.measure.efficiency import PairedRule, RepeatRule

    monkeypatch.setattr(efficiency, "measure", functools.partial(efficiency.measure, rule=RepeatRule(warmup=1, min_runs=2, min_seconds=0),
                                                                 paired_rule=PairedRule(RepeatRule(warmup=1, min_runs=2, min_seconds=0, max_runs=12), 1)))
    results = kompakt_env / "results"
    res = CliRunner().invoke(app, ["bench", "--recipe", str(recipe), "--variant", "reference,shrunk", "--tasks", "sentence_ppl,efficiency",
                                   "--backend", "loop", "--results-dir", str(results)])
    assert res.exit_code == 0, res.output
    files = {p.parent.parent.name: json.loads(p.read_text()) for p in results.rglob("*.json")}
    assert set(files) == {"reference", "shrunk"}
    shrunk = files["shrunk"]
    assert [s["method"] for s in shrunk["variant"]["steps"]] == ["shrink_head"]
    [ppl] = shrunk["metrics"]["perplexity"]
    [ref_ppl] = files["reference"]["metrics"]["perplexity"]
    assert ppl["task"] == "sentence_ppl" and ppl["token_perplexity"] != ref_ppl["token_perplexity"]
    assert {t["backend"] for t in shrunk["metrics"]["throughput"]} == {"loop"}
    # the variant's speed is paired with the reference on the same backend; the reference with a second load of itself (A/A)
    for t in shrunk["metrics"]["throughput"]:
        assert t["paired"]["reference"].startswith("reference (artifact ") and t["paired"]["decode_tokens_per_s"]["blocks"] == 2
        assert t["paired"]["loading"] == "same_process" and not t["paired"]["aa_check"]
    ref_throughput = files["reference"]["metrics"]["throughput"]
    assert ref_throughput and all(t["paired"]["aa_check"] and t["paired"]["decode_tokens_per_s"]["blocks"] == 2 for t in ref_throughput)
    res = CliRunner().invoke(app, ["validate", str(results), "--results-dir", str(results)])
    assert res.exit_code == 0, res.output


def test_an_unknown_backend_gets_a_did_you_mean() -> None:
    from typer.testing import CliRunner

    from kompakt_cli import app

    import re

    res = CliRunner().invoke(app, ["bench", "--tasks", "efficiency", "--backend", "pytorh"])
    assert res.exit_code == 2 and "did you mean 'pytorch'" in re.sub(r"[\s│╭╮╰╯─]+", " ", res.output)
