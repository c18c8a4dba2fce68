"""Loading packed checkpoints: damaged or incomplete ones are refused with the file and the tensors named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("gptqmodel", reason="gptqmodel is not installed (pip install 'kompakt[harness]')")

from harness.build.methods import module_linears  # noqa: E402
from harness.build.packing.awq import save_awq_checkpoint  # noqa: E402
from harness.build.packing.codes import rtn_codes  # noqa: E402
from harness.build.tiny_model import tiny_model_and_tokenizer  # noqa: E402
from harness.measure.backends.packed import PackedCheckpointError, load_packed  # noqa: E402


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

    from harness.measure.backends import packed

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optimum" else real(name, *a))
    with pytest.raises(PackedCheckpointError, match="needs optimum: pip install 'kompakt\\[harness\\]'"):
        packed.check_stack("gptq")
    packed.check_stack("awq")  # AWQ needs gptqmodel alone
