"""GPTQ checkpoints from kompakt's integers through optimum's pack_model, and the two traps of this stack."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("gptqmodel", reason="gptqmodel is not installed (pip install 'kompakt[harness]')")
pytest.importorskip("optimum", reason="optimum is not installed (pip install 'kompakt[harness]')")

from packing_helpers import grid_steps, kernel_weight, logits, tiny_with_codes  # noqa: E402

from harness.build.packing.codes import PackingError  # noqa: E402
from harness.build.packing.gptq import save_gptq_checkpoint  # noqa: E402
from harness.build.packing.loading import PackedCheckpointError, load_packed  # noqa: E402
from harness.measure.efficiency.memory import weights_bytes  # noqa: E402


pytestmark = pytest.mark.usefixtures("python_packer")


def _write(tmp_path: Path, float_dtype: str = "bfloat16", **kw):
    model, tok, codes = tiny_with_codes(**kw)
    ref = logits(model, tok)
    # the checkpoint computes in bfloat16: the float model's own bfloat16 error sets the tolerance
    tolerance = 3 * max(float((logits(copy.deepcopy(model).to(torch.bfloat16), tok) - ref).abs().max()), 0.05)
    record = save_gptq_checkpoint(model, codes, tmp_path / "ckpt", tokenizer=tok, float_dtype=float_dtype)
    return tmp_path / "ckpt", record, codes, ref, tok, tolerance


def test_asymmetric_4bit_is_written_as_v2_and_runs_on_the_aten_kernel(tmp_path: Path) -> None:
    folder, record, codes, ref, tok, tolerance = _write(tmp_path)
    qc = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert (qc["format"], qc["sym"], qc["bits"], qc["group_size"]) == ("gptq_v2", False, 4, 64)
    assert record["format"] == "gptq_v2"
    model = load_packed(folder)
    assert {type(model.get_submodule(n)).__name__ for n in codes} == {"TorchAtenLinear"}
    got = logits(model, tok)
    assert (got - ref).abs().max() <= tolerance
    for name, c in codes.items():
        assert grid_steps(kernel_weight(model.get_submodule(name), c.shape[1]), c) < 0.15, name
    float32 = sum(c.codes.numel() * 4 for c in codes.values())
    assert sum(weights_bytes(model.get_submodule(n)) for n in codes) < 0.2 * float32


def test_symmetric_8bit_per_channel_is_written_as_v1(tmp_path: Path) -> None:
    """rtn8's grid: v1 (what every GPTQ loader reads); optimum converts the zero points, the config follows.

    Kept in float32 around the linears: TorchInt8Linear casts its per-channel scales to the
    activations' dtype, and bfloat16 scales move 8-bit weights by up to a quarter of a step.
    """
    from transformers import AutoModelForCausalLM, GPTQConfig

    folder, record, codes, ref, tok, _ = _write(tmp_path, float_dtype="float32", bits=8, group_size=-1, symmetric=True)
    qc = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert (qc["format"], qc["sym"], qc["bits"], qc["group_size"]) == ("gptq", True, 8, -1)
    for backend, cls in ((None, "TorchLinear"), ("gptq_torch_int8", "TorchInt8Linear")):
        kw = {"quantization_config": GPTQConfig(bits=8, backend=backend)} if backend else {}
        model = AutoModelForCausalLM.from_pretrained(folder, device_map="cpu", **kw).eval()
        assert {type(model.get_submodule(n)).__name__ for n in codes} == {cls}
        assert (logits(model, tok) - ref).abs().max() < 0.05
        for name, c in codes.items():
            mod = model.get_submodule(name)
            if cls == "TorchInt8Linear":  # the int8 weights the kernel multiplies are kompakt's codes
                assert torch.equal(mod.int8_weight_nk.to(torch.int16), c.codes.to(torch.int16) - 128), name
            assert grid_steps(kernel_weight(mod, c.shape[1], torch.float32), c) < 0.15, (backend, name)


def test_the_8bit_checkpoint_loads_on_another_kernel_when_asked(tmp_path: Path) -> None:
    """load_packed(backend=...): the same stored tensors on TorchLinear (what rtn8's quality runs on) compute what
    TorchInt8Linear computes, within float16 rounding of the weights; a backend gptqmodel does not know is refused."""
    model, tok, codes = tiny_with_codes(bits=8, group_size=-1, symmetric=True)
    ref = logits(model, tok)
    folder = tmp_path / "ckpt"
    save_gptq_checkpoint(model, codes, folder, tokenizer=tok, float_dtype="float32", backend="gptq_torch_int8")  # as rtn8 does
    own = load_packed(folder)
    other = load_packed(folder, backend="gptq_torch")
    assert {type(own.get_submodule(n)).__name__ for n in codes} == {"TorchInt8Linear"}
    assert {type(other.get_submodule(n)).__name__ for n in codes} == {"TorchLinear"}
    a, b = logits(own, tok), logits(other, tok)
    assert (a - b).abs().max() < 0.05 and (b - ref).abs().max() < 0.05
    with pytest.raises(PackedCheckpointError, match="ckpt"):
        load_packed(folder, backend="no_such_kernel")


def test_mixed_grids_are_refused(tmp_path: Path) -> None:
    model, tok, codes = tiny_with_codes()
    first = next(iter(codes))
    from harness.build.packing.codes import rtn_codes

    codes[first] = rtn_codes(model.get_submodule(first).weight, 4, 32)
    with pytest.raises(PackingError, match="one bits/group_size"):
        save_gptq_checkpoint(model, codes, tmp_path / "x")


# --------------------------------------------------------------------------- the traps (library behaviour)


def test_trap_v1_label_on_asymmetric_zero_points(tmp_path: Path) -> None:
    """optimum converts only symmetric models to v1: asymmetric ones saved as "gptq" load one grid step off.

    This is why save_gptq_checkpoint writes asymmetric grids as gptq_v2. If this test starts
    failing, optimum or gptqmodel changed how v1 is written or read: revisit the format choice.
    """
    from optimum.gptq import GPTQQuantizer
    from transformers import AutoModelForCausalLM

    from harness.build.packing.gptq import optimum_quantizers

    model, tok, codes = tiny_with_codes()
    ref = logits(model, tok)
    quantizer = GPTQQuantizer(bits=4, group_size=64, sym=False, desc_act=False, format="gptq")
    quantizer.block_name_to_quantize = "model.layers"
    quantizer.pack_model(model, optimum_quantizers(codes))
    quantizer.save(model, str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    config["quantization_config"] = quantizer.to_dict()
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, device_map="cpu").eval()
    assert (logits(loaded, tok) - ref).abs().max() > 1.0
    name, c = next(iter(codes.items()))
    assert grid_steps(kernel_weight(loaded.get_submodule(name), c.shape[1]), c) > 0.9


def test_trap_gptq_torch_fused_drops_asymmetric_zero_points(tmp_path: Path) -> None:
    """gptqmodel's TorchFusedLinear zeroes the zero-point offsets when it repacks for the CPU.

    Automatic selection picks TorchAtenLinear (above); forcing gptq_torch_fused gives wrong
    outputs on asymmetric grids. If this test starts failing, gptqmodel fixed it.
    """
    from transformers import AutoModelForCausalLM, GPTQConfig

    folder, _, codes, ref, tok, _ = _write(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(folder, device_map="cpu", quantization_config=GPTQConfig(bits=4, backend="gptq_torch_fused")).eval()
    assert {type(model.get_submodule(n)).__name__ for n in codes} == {"TorchFusedLinear"}
    assert (logits(model, tok) - ref).abs().max() > 1.0
