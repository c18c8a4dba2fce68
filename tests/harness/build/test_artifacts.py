"""The artifact cache: shared prefixes, keys, atomic entries, lineage in the results-file form, determinism, CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.build import artifacts
from harness.build.base_model import BaseModelSpec, resolve, sha256_file
from harness.build.recipes import load_recipe, parse_recipe
from kompakt.results import BaseModelInfo, Measured, ResultsFile, Status, Variant

CAL = {"data": "text.txt", "n_samples": 8, "seq_len": 32}


def recipe_data(model_dir: Path) -> dict[str, Any]:
    return {
        "base_model": {"source": str(model_dir), "id": "tiny"},
        "variants": [
            {"id": "reference", "reference": True},
            {"id": "p1", "steps": [{"method": "prune_depth", "params": {"n_layers": 1, **CAL}}]},
            {"id": "p1-rtn", "extends": "p1", "steps": [{"method": "rtn", "params": {"bits": 4, "group_size": 32}}]},
            {"id": "p1-lora", "extends": "p1", "steps": [{"method": "lora", "params": {"data": "text.txt", "steps": 4, "warmup_steps": 1, "seq_len": 32, "eval_samples": 2}}]},
        ],
    }


@pytest.fixture
def recipe(tiny_model_dir: Path, kompakt_env: Path):
    return parse_recipe(kompakt_env / "tiny.yaml", recipe_data(tiny_model_dir))


def weights_digest(a: artifacts.Artifact) -> str:
    return sha256_file(a.model_path / "model.safetensors")


def test_prefix_is_built_once_and_shared(recipe: Any) -> None:
    events: list[tuple[str, int, str]] = []
    hook = lambda vid, i, n, event: events.append((vid, i, event))  # noqa: E731
    a = artifacts.build(recipe, "p1-rtn", show_progress=False, hook=hook)
    assert events == [("p1-rtn", 0, "start"), ("p1-rtn", 0, "done"), ("p1-rtn", 1, "start"), ("p1-rtn", 1, "done")]
    events.clear()
    p1 = artifacts.build(recipe, "p1", show_progress=False, hook=hook)
    assert events == [("p1", 0, "cached")]
    assert p1.variant.id == "p1" and len(p1.variant.steps) == 1
    events.clear()
    artifacts.build(recipe, "p1-lora", show_progress=False, hook=hook)
    assert events[0] == ("p1-lora", 0, "cached") and ("p1-lora", 1, "done") in events
    entries = artifacts.all_entries()
    assert len(entries) == 3  # p1, p1-rtn, p1-lora: the prefix exists once
    assert a.path.parent == p1.path.parent
    info = json.loads((p1.path / "artifact.json").read_text())
    assert "tiny/p1" in info["used_by"] and info["build_seconds"] > 0 and info["peak_rss_bytes"] > 0
    assert artifacts.stale_temporaries() == []


def test_the_first_steps_alone_are_built_as_an_intermediate_entry(recipe: Any) -> None:
    """A cluster run builds a prefix several variants share before them: ``upto`` stops after it."""
    events: list[tuple[str, int, str]] = []
    hook = lambda vid, i, n, event: events.append((vid, i, event))  # noqa: E731
    prefix = artifacts.build(recipe, "p1-rtn", show_progress=False, hook=hook, upto=1)
    assert events == [("p1-rtn", 0, "start"), ("p1-rtn", 0, "done")]
    assert prefix.variant.id == "p1-rtn.step0" and [s.method for s in prefix.variant.steps] == ["prune_depth"]
    assert json.loads((prefix.path / "artifact.json").read_text())["used_by"] == []  # an intermediate, as in a whole build
    events.clear()
    p1 = artifacts.build(recipe, "p1", show_progress=False, hook=hook)
    assert events == [("p1", 0, "cached")] and p1.path == prefix.path
    with pytest.raises(artifacts.BuildError, match="cannot build its first 3 steps; it has 2"):
        artifacts.build(recipe, "p1-rtn", show_progress=False, upto=3)


def test_two_builds_of_one_entry_at_once_build_it_once(recipe: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two jobs on one machine (or on a shared cache) that need the same entry: the second waits for the first's
    lock and reuses the entry. Staged with threads: p1-rtn holds the lock of step 0 until p1 waits for it."""
    import contextlib
    import threading

    building, waiting, go = threading.Event(), threading.Event(), threading.Event()
    real_step, real_lock = artifacts._build_step, artifacts._entry_lock

    def paused_step(recipe: Any, variant: Any, i: int, *args: Any) -> Any:
        if variant.id == "p1-rtn" and i == 0:
            building.set()
            assert go.wait(60)
        return real_step(recipe, variant, i, *args)

    @contextlib.contextmanager
    def watched_lock(base: Any, key: str) -> Any:
        if threading.current_thread().name == "p1":
            waiting.set()
        with real_lock(base, key):
            yield

    monkeypatch.setattr(artifacts, "_build_step", paused_step)
    monkeypatch.setattr(artifacts, "_entry_lock", watched_lock)
    events: list[tuple[str, int, str]] = []
    hook = lambda vid, i, n, event: events.append((vid, i, event))  # noqa: E731
    first = threading.Thread(target=artifacts.build, args=(recipe, "p1-rtn"), kwargs={"show_progress": False, "hook": hook})
    first.start()
    assert building.wait(60)
    second = threading.Thread(target=artifacts.build, args=(recipe, "p1"), kwargs={"show_progress": False, "hook": hook}, name="p1")
    second.start()
    assert waiting.wait(60)
    go.set()
    first.join(60)
    second.join(60)
    assert ("p1", 0, "cached") in events and ("p1", 0, "start") not in events
    assert [(v, i) for v, i, e in events if e == "done"] == [("p1-rtn", 0), ("p1-rtn", 1)]
    assert len(artifacts.all_entries()) == 2 and artifacts.stale_temporaries() == []


def test_lineage_is_the_results_file_form(recipe: Any) -> None:
    a = artifacts.build(recipe, "p1-rtn", show_progress=False)
    lineage = json.loads((a.path / "lineage.json").read_text())
    base = BaseModelInfo.model_validate(lineage["base_model"])
    variant = Variant.model_validate(lineage["variant"])
    assert base.id == "tiny" and base.content_hash and base.source == "local"
    assert [s.method for s in variant.steps] == ["prune_depth", "rtn"]
    prune = variant.steps[0]
    assert prune.params["n_layers"] == 1 and prune.params["data"] == "text.txt"
    assert prune.record["removed_layers"] and prune.record["angular_distances"] and prune.record["data_sha256"]
    assert prune.library and prune.library.startswith("torch ")
    # exactly what a results file embeds
    ResultsFile(
        schema_version=1,
        run_id="test-run",
        status=Status(code="ok"),
        base_model=base,
        variant=variant,
        profile="cpu",
        provenance=Measured(kind="measured", command="pytest", date=dt.datetime.now(dt.timezone.utc)),
    )
    ref = artifacts.build(recipe, "reference", show_progress=False)
    assert ref.variant.is_reference and ref.variant.steps == [] and ref.model_path == Path(recipe.base_model.source)


def test_keys_follow_params_data_and_base(recipe: Any, tiny_model_dir: Path, kompakt_env: Path) -> None:
    base = resolve(recipe.base_model)
    steps = recipe.variants["p1-rtn"].steps
    keys = artifacts.chain_keys(base, steps)
    assert len(keys) == 2 and keys == artifacts.chain_keys(base, steps)
    other = parse_recipe(kompakt_env / "x.yaml", {**recipe_data(tiny_model_dir), "variants": [
        {"id": "p1-rtn", "steps": [{"method": "prune_depth", "params": {"n_layers": 1, **CAL}}, {"method": "rtn", "params": {"bits": 4, "group_size": 64}}]}
    ]})
    other_keys = artifacts.chain_keys(base, other.variants["p1-rtn"].steps)
    assert other_keys[0] == keys[0] and other_keys[1] != keys[1]
    with open(kompakt_env / "corpora" / "text.txt", "a") as fh:
        fh.write("\nnew calibration text changes the pruning key\n")
    assert artifacts.chain_keys(base, steps)[0] != keys[0]


def test_packed_steps_have_keys_of_their_own(recipe: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quantizer's entry (packed since KEY 'packed-1') never shares a key with an old dequantized one; others keep theirs."""
    base = resolve(recipe.base_model)
    steps = recipe.variants["p1-rtn"].steps
    keys = artifacts.chain_keys(base, steps)
    monkeypatch.setattr(artifacts, "PACKED_STORAGE", "other")
    changed = artifacts.chain_keys(base, steps)
    assert changed[0] == keys[0] and changed[1] != keys[1]


def test_a_gpu_trained_step_has_a_key_of_its_own(recipe: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """KOMPAKT_BUILD_DEVICE=cuda changes the key of a training step (LoRA) and of nothing before it; the CPU keys stay."""
    base = resolve(recipe.base_model)
    steps = recipe.variants["p1-lora"].steps
    cpu = artifacts.chain_keys(base, steps)
    monkeypatch.setenv("KOMPAKT_BUILD_DEVICE", "cpu")
    assert artifacts.chain_keys(base, steps) == cpu
    monkeypatch.setenv("KOMPAKT_BUILD_DEVICE", "cuda:1")
    gpu = artifacts.chain_keys(base, steps)
    assert gpu[0] == cpu[0] and gpu[1] != cpu[1]  # pruning runs on the CPU either way
    monkeypatch.setenv("KOMPAKT_BUILD_DEVICE", "cuda")
    assert artifacts.chain_keys(base, steps) == gpu  # keyed by the device type, not its index
    assert artifacts.chain_keys(base, recipe.variants["p1-rtn"].steps) == artifacts.chain_keys(base, recipe.variants["p1-rtn"].steps)


def test_a_gpu_build_without_a_gpu_stops_before_training(recipe: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the machine without one, wherever this runs
    monkeypatch.setenv("KOMPAKT_BUILD_DEVICE", "cuda")
    with pytest.raises(ValueError, match="KOMPAKT_BUILD_DEVICE=cuda: torch sees no CUDA device here"):
        artifacts.build(recipe, "p1-lora", show_progress=False)
    assert artifacts.cached_steps(resolve(recipe.base_model), recipe.variants["p1-lora"]) == 1  # the pruning was kept
    monkeypatch.setenv("KOMPAKT_BUILD_DEVICE", "tpu")
    with pytest.raises(ValueError, match="expected cpu, cuda or cuda:<index>"):
        artifacts.build(recipe, "p1-lora", show_progress=False)


def test_a_packed_step_and_its_lossless_export(recipe: Any, tiny_model_dir: Path, kompakt_env: Path) -> None:
    """rtn writes a packed AWQ checkpoint; gguf from_codes reads its integers back (also from the cache) into Q4_1."""
    data = recipe_data(tiny_model_dir)
    data["variants"].append({"id": "p1-rtn-gguf", "extends": "p1-rtn",
                             "steps": [{"method": "gguf", "params": {"quant_type": "Q4_1", "from_codes": True}}]})
    recipe = parse_recipe(kompakt_env / "tiny.yaml", data)
    packed = artifacts.build(recipe, "p1-rtn", show_progress=False)
    config = json.loads((packed.model_path / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "awq" and packed.format == "hf"
    rtn = packed.variant.steps[-1]
    assert rtn.record["format"] == "awq-gemm" and rtn.record["integer_mismatches"] == 0
    assert rtn.record["kernel"].startswith("TorchAtenAwqLinear") and rtn.record["compute_dtype"] == "bfloat16"
    assert 4 < rtn.record["bits_per_weight_linears"] < 5.5 and rtn.record["stays_float"]
    exported = artifacts.build(recipe, "p1-rtn-gguf", show_progress=False)  # the packed parent comes from the cache
    assert exported.format == "gguf" and exported.model_path.name == "model.gguf"
    gguf = exported.variant.steps[-1]
    assert gguf.params == {"quant_type": "Q4_1", "from_codes": True}
    assert gguf.record["integer_mismatches"] == 0 and gguf.record["scale_mismatches"] == 0
    assert gguf.record["tensors_checked"] == 3 * 7 and gguf.record["bits_per_weight_linears"] == 5.0
    assert 0 <= gguf.record["max_m_rounding_steps"] < 0.01
    assert "round the activations to 8 bits" in gguf.notes


def test_same_recipe_same_weights(recipe: Any) -> None:
    first = artifacts.build(recipe, "p1-lora", show_progress=False)
    digests = weights_digest(first)
    again = artifacts.build(recipe, "p1-lora", show_progress=False, force=True)
    assert weights_digest(again) == digests
    assert again.variant.steps[-1].record["heldout_loss_after"] == first.variant.steps[-1].record["heldout_loss_after"]


def test_failed_step_leaves_no_entry(recipe: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.build.methods.rtn import RTN

    def boom(self: Any, model: Any, config: Any, ctx: Any) -> Any:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(RTN, "apply", boom)
    with pytest.raises(artifacts.BuildError, match=r"tiny/p1-rtn: step 1 \(rtn\) failed: simulated failure"):
        artifacts.build(recipe, "p1-rtn", show_progress=False)
    assert [len(e.variant.steps) for e in artifacts.all_entries()] == [1]  # the finished prefix stays
    assert artifacts.stale_temporaries() == []


# --------------------------------------------------------------------------- CLI


def cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from kompakt_cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_list_build_clean(tiny_model_dir: Path, kompakt_env: Path) -> None:
    folder = kompakt_env / "recipes"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(yaml.safe_dump(recipe_data(tiny_model_dir)))
    out = cli("variants", "list", "--recipes-dir", str(folder))
    assert out.exit_code == 0, out.output
    assert "p1-rtn" in out.output and "not built" in out.output
    out = cli("variants", "build", "tiny", "--recipes-dir", str(folder), "-v", "p1-rtn", "--quiet")
    assert out.exit_code == 0, out.output
    assert "tiny/p1-rtn:" in out.output
    out = cli("variants", "list", "--recipes-dir", str(folder))
    assert "p1-rtn" in out.output and "built" in out.output and "1/2 steps cached" in out.output  # p1-lora shares the prefix
    out = cli("variants", "list", "--cache")
    assert "2 entries" in out.output
    out = cli("variants", "build", "tiny", "--recipes-dir", str(folder), "-v", "p1-rtm")
    assert out.exit_code == 1 and "did you mean 'p1-rtn'" in out.output
    out = cli("variants", "clean", "tiny", "--recipes-dir", str(folder), "-v", "p1-rtn", "--dry-run")
    assert out.exit_code == 0 and out.output.count("would remove") == 1  # the prefix is still needed by p1 and p1-lora
    out = cli("variants", "clean", "--all")
    assert out.exit_code == 0 and "freed" in out.output
    assert artifacts.all_entries() == []


def test_cli_rejects_bad_recipes_before_work(kompakt_env: Path) -> None:
    folder = kompakt_env / "recipes"
    folder.mkdir()
    (folder / "bad.yaml").write_text("variants:\n  - id: a\n    steps:\n      - method: awk\n")
    out = cli("variants", "build", "--recipes-dir", str(folder))
    assert out.exit_code == 1
    assert "bad.yaml" in out.output and "did you mean 'awq'" in out.output
    assert not (kompakt_env / "cache").exists()  # nothing was started


def test_shipped_recipe_loads_from_file() -> None:
    from kompakt import paths

    recipe = load_recipe(paths.REPO_ROOT / "data" / "recipes" / "thesis.yaml")
    assert recipe.base_model == BaseModelSpec()
