"""Loading packed checkpoints and reading their integers: damaged, incomplete or hostile ones are refused with the file
and the field or tensors named."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("gptqmodel", reason="gptqmodel is not installed (pip install 'kompakt[harness]')")

from harness.build.methods import module_linears  # noqa: E402
from harness.build.packing.awq import save_awq_checkpoint  # noqa: E402
from harness.build.packing.codes import rtn_codes  # noqa: E402
from harness.build.tiny_model import tiny_model_and_tokenizer  # noqa: E402
from harness.build.packing.loading import PackedCheckpointError, load_packed  # noqa: E402


@pytest.fixture(scope="module")
def awq_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tok = tiny_model_and_tokenizer(hidden=64, layers=2)
    codes = {n: rtn_codes(m.weight, 4, 64) for n, m in module_linears(model)}
    folder = tmp_path_factory.mktemp("awq")
    save_awq_checkpoint(model, codes, folder, tokenizer=tok)
    return folder


def test_a_sound_checkpoint_loads(awq_checkpoint: Path) -> None:
    model = load_packed(awq_checkpoint)
    assert type(model.model.layers[0].mlp.up_proj).__name__ == "TorchAtenAwqLinear"
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 2, 3]])).logits).all()


def test_damaged_checkpoints_are_refused(awq_checkpoint: Path, tmp_path: Path) -> None:
    folder = awq_checkpoint
    from safetensors.torch import load_file, save_file

    truncated = tmp_path / "truncated"
    shutil.copytree(folder, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(PackedCheckpointError, match="truncated.*SafetensorError"):
        load_packed(truncated)

    missing = tmp_path / "missing"
    shutil.copytree(folder, missing)
    tensors = load_file(str(missing / "model.safetensors"))
    del tensors["model.layers.0.mlp.up_proj.qzeros"]
    save_file(tensors, str(missing / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(PackedCheckpointError, match="missing keys: model.layers.0.mlp.up_proj.qzeros"):
        load_packed(missing)

    wrong = tmp_path / "wrong"
    shutil.copytree(folder, wrong)
    config = json.loads((wrong / "config.json").read_text())
    config["quantization_config"]["group_size"] = 32
    (wrong / "config.json").write_text(json.dumps(config))
    with pytest.raises(PackedCheckpointError, match="cannot load"):
        load_packed(wrong)

    (wrong / "config.json").write_text("{not json")
    with pytest.raises(PackedCheckpointError, match="config.json: not readable JSON"):
        load_packed(wrong)


def test_a_missing_package_is_named_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from harness.build.packing import loading as packed

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optimum" else real(name, *a))
    with pytest.raises(PackedCheckpointError, match="needs optimum: pip install -e '.\\[harness\\]'"):
        packed.check_stack("gptq")
    packed.check_stack("awq")  # AWQ needs gptqmodel alone


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": "gemv"}, "quantization_config.version is 'gemv'; kompakt loads AWQ GEMM"),
        ({"bits": 8}, "quantization_config.bits is 8; AWQ GEMM holds 4-bit codes"),
        ({"zero_point": False}, "quantization_config.zero_point must be true"),
        ({"quant_method": "gptq", "format": "marlin"}, "quantization_config.format is 'marlin'"),
        ({"quant_method": "gptq", "sym": False, "backend": "gptq_torch_fused"}, "replaces asymmetric zero points with zeros"),
        ({"quant_method": "<script>"}, "quantization_config.quant_method must be one of"),
    ],
)
def test_hostile_quantization_configs_are_refused_before_loading(awq_checkpoint: Path, tmp_path: Path, change: dict, message: str) -> None:
    folder = tmp_path / "hostile"
    shutil.copytree(awq_checkpoint, folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"].update(change)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(PackedCheckpointError, match=re.escape(message)):
        load_packed(folder)
    assert str(folder / "config.json") in str(pytest.raises(PackedCheckpointError, load_packed, folder).value)


@pytest.mark.usefixtures("python_packer")
def test_the_integers_read_back_from_the_files(awq_checkpoint: Path, tmp_path: Path) -> None:
    """read_packed_codes unpacks what was packed (gptqmodel's own unpacking), AWQ GEMM and GPTQ 8-bit v1 alike."""
    from harness.build.packing.gptq import save_gptq_checkpoint
    from harness.build.packing.loading import read_packed_codes

    model, _ = tiny_model_and_tokenizer(hidden=64, layers=2)
    expected = {n: rtn_codes(m.weight, 4, 64) for n, m in module_linears(model)}
    codes, qc = read_packed_codes(awq_checkpoint)
    assert qc["quant_method"] == "awq" and set(codes) == set(expected)
    for name, c in expected.items():
        got = codes[name]
        assert torch.equal(got.codes, c.codes) and torch.equal(got.zeros, c.zeros), name
        assert torch.equal(got.scales, c.scales.to(torch.float16).float()), name  # the format's float16 scales
    model, tok = tiny_model_and_tokenizer(hidden=64, layers=2)
    expected8 = {n: rtn_codes(m.weight, 8, -1, symmetric=True) for n, m in module_linears(model)}
    save_gptq_checkpoint(model, expected8, tmp_path / "g8", tokenizer=tok, float_dtype="float32", backend="gptq_torch_int8")
    codes8, qc8 = read_packed_codes(tmp_path / "g8")
    assert (qc8["format"], qc8["backend"]) == ("gptq", "gptq_torch_int8")
    for name, c in expected8.items():
        assert torch.equal(codes8[name].codes, c.codes) and torch.equal(codes8[name].zeros, c.zeros), name
    broken = tmp_path / "broken"
    shutil.copytree(awq_checkpoint, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[:100])
    with pytest.raises(PackedCheckpointError, match="model.safetensors: cannot read the tensors"):
        read_packed_codes(broken)
