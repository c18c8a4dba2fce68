"""The check that the ML stack is installed before any work starts, with the right install hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import requirements as req


def test_nothing_missing_passes() -> None:
    assert req.missing("json", "pathlib") == []
    req.require(purpose="a test")  # the core of this install is present


def test_a_missing_package_names_itself_and_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = req.missing
    monkeypatch.setattr(req, "missing", lambda *mods: [m for m in mods if m in ("peft", "llama_cpp")] + real(*mods))
    with pytest.raises(req.MissingPackageError) as err:
        req.require("lora", "gguf_quant", purpose="building prune-8-lora")
    text = str(err.value)
    assert text.startswith("building prune-8-lora needs peft, llama-cpp-python")
    assert "pip install -e '.[harness]'" in text and "pip install llama-cpp-python" in text


def test_every_group_names_known_packages() -> None:
    for group, modules in req.GROUPS.items():
        for m in modules:
            assert m in req.PACKAGES, f"group {group} names {m}, which has no install hint"


def test_the_bench_command_stops_before_work_when_lm_eval_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from kompakt_cli import app

    real = req.missing
    monkeypatch.setattr(req, "missing", lambda *mods: [m for m in mods if m == "lm_eval"] + real(*mods))
    res = CliRunner().invoke(app, ["bench", "--tasks", "winogrande"])
    assert res.exit_code == 2
    assert "kompakt bench needs lm_eval" in res.output and "pip install -e '.[harness]'" in res.output


def test_building_a_quantizer_stops_before_work_when_gptqmodel_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The quantizers store packed checkpoints through gptqmodel: `variants build` says so before building anything,
    with the hint about PyPcre's C build; `bench` needs the same stack to load them."""
    from typer.testing import CliRunner

    from harness.build.methods import get_method
    from kompakt_cli import app

    assert all("packed" in get_method(m).requires for m in ("rtn", "awq", "gptq"))
    real = req.missing
    monkeypatch.setattr(req, "missing", lambda *mods: [m for m in mods if m == "gptqmodel"] + real(*mods))
    res = CliRunner().invoke(app, ["variants", "build", "all-methods", "--variant", "rtn4"])
    assert res.exit_code == 1
    assert "building these variants needs gptqmodel" in res.output and "PyPcre" in res.output and "C compiler" in res.output



def test_bench_needs_the_packing_stack_only_for_packed_variants(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path,
                                                                  kompakt_env: Path) -> None:
    """`bench` asks for gptqmodel when a planned variant is built by a quantizer, before building anything; timing the
    reference or float variants (a GPU machine without gptqmodel or lm-eval) needs neither."""
    from typer.testing import CliRunner

    import harness.run.bench
    from kompakt_cli import app

    real = req.missing
    monkeypatch.setattr(req, "missing", lambda *mods: [m for m in mods if m in ("gptqmodel", "lm_eval")] + real(*mods))
    reached: list[list[str]] = []
    monkeypatch.setattr(harness.run.bench, "run_bench", lambda jobs, run, say: reached.append([j.id for j in jobs]) or [])
    res = CliRunner().invoke(app, ["bench", "--model", str(tiny_model_dir), "--recipe", "all-methods", "--variant", "rtn4",
                                   "--tasks", "efficiency"])
    assert res.exit_code == 2 and "building and loading these variants needs gptqmodel" in res.output and "PyPcre" in res.output
    assert reached == []
    res = CliRunner().invoke(app, ["bench", "--model", str(tiny_model_dir), "--recipe", "all-methods",
                                   "--variant", "reference,prune-8", "--tasks", "efficiency"])
    assert reached == [["reference", "prune-8"]], res.output
    res = CliRunner().invoke(app, ["bench", "--model", str(tiny_model_dir), "--tasks", "efficiency,winogrande"])
    assert res.exit_code == 2 and "kompakt bench needs lm_eval" in res.output
