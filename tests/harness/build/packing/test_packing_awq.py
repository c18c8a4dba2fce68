"""AWQ GEMM checkpoints from kompakt's integers: gptqmodel reads back the same integers and runs them on its CPU kernel."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("gptqmodel", reason="gptqmodel is not installed (pip install 'kompakt[harness]')")

from gptqmodel.quantization.awq.utils.packing_utils import dequantize_gemm, reverse_awq_order, unpack_awq  # noqa: E402
from packing_helpers import grid_steps, kernel_weight, logits, tiny_with_codes  # noqa: E402

from harness.build.packing.awq import awq_gemm_tensors, save_awq_checkpoint  # noqa: E402
from harness.build.packing.codes import LinearCodes, PackingError  # noqa: E402
from harness.build.packing.loading import load_packed  # noqa: E402
from harness.measure.efficiency.memory import weights_bytes  # noqa: E402


def _gptqmodel_integers(qweight: torch.Tensor, qzeros: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes and zero points as gptqmodel unpacks them, back in kompakt's [out, in] / [out, groups] orientation."""
    iw, iz = reverse_awq_order(*unpack_awq(qweight, qzeros, 4), 4)
    return iw.t(), iz.t()


def test_hand_made_codes_unpack_through_gptqmodel() -> None:
    codes = torch.arange(8 * 64, dtype=torch.int64).reshape(8, 64) % 16
    zeros = torch.tensor([[3], [0], [15], [7], [8], [1], [2], [9]])
    scales = torch.linspace(0.01, 0.08, 8).reshape(8, 1)
    c = LinearCodes(codes.to(torch.uint8), scales, zeros.to(torch.uint8), 4, 64)
    t = awq_gemm_tensors(c)
    assert t["qweight"].shape == (64, 1) and t["qweight"].dtype == torch.int32
    assert t["qzeros"].shape == (1, 1) and t["scales"].shape == (1, 8) and t["scales"].dtype == torch.float16
    iw, iz = _gptqmodel_integers(t["qweight"], t["qzeros"])
    assert torch.equal(iw, codes) and torch.equal(iz, zeros)
    # gptqmodel's own dequantization (float16) is (q - z) * fp16(s), formed the same way here
    deq = dequantize_gemm(t["qweight"], t["qzeros"], t["scales"], 4, 64).t()
    assert torch.equal(deq, ((codes - zeros).to(torch.float16) * scales.to(torch.float16)))


def test_refuses_what_the_layout_cannot_hold() -> None:
    c8 = LinearCodes(torch.zeros(8, 64, dtype=torch.uint8), torch.ones(8, 1), torch.zeros(8, 1, dtype=torch.uint8), 8, 64)
    with pytest.raises(PackingError, match="4-bit codes"):
        awq_gemm_tensors(c8, "m.up")
    odd = LinearCodes(torch.zeros(6, 64, dtype=torch.uint8), torch.ones(6, 1), torch.zeros(6, 1, dtype=torch.uint8), 4, 64)
    with pytest.raises(PackingError, match="out_features 6 is not a multiple of 8"):
        awq_gemm_tensors(odd, "m.up")
    huge = LinearCodes(torch.zeros(8, 64, dtype=torch.uint8), torch.full((8, 1), 1e6), torch.zeros(8, 1, dtype=torch.uint8), 4, 64)
    with pytest.raises(PackingError, match="float16"):
        awq_gemm_tensors(huge, "m.up")


@pytest.fixture(scope="module")
def awq_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    model, tok, codes = tiny_with_codes()
    ref = logits(model, tok)
    folder = tmp_path_factory.mktemp("awq")
    record = save_awq_checkpoint(model, codes, folder, tokenizer=tok)
    return folder, record, codes, ref, tok, model


def test_checkpoint_loads_on_gptqmodel_cpu_kernel(awq_checkpoint) -> None:
    folder, record, codes, ref, tok, _ = awq_checkpoint
    qc = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert qc == {"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True, "version": "gemm", "modules_to_not_convert": None}
    assert record["format"] == "awq-gemm" and record["quantized_linears"] == len(codes) == 14
    model = load_packed(folder)
    assert {type(model.get_submodule(n)).__name__ for n in codes} == {"TorchAtenAwqLinear"}
    assert type(model.lm_head).__name__ == "Linear" and model.lm_head.weight is model.model.embed_tokens.weight
    for name, c in codes.items():  # the integers, as gptqmodel unpacks them from the loaded buffers
        mod = model.get_submodule(name)
        iw, iz = _gptqmodel_integers(mod.qweight, mod.qzeros)
        assert torch.equal(iw, c.codes.long()) and torch.equal(iz, c.zeros.long()), name
        assert torch.equal(mod.scales, c.scales.t().to(torch.float16)), name


def test_kernel_computes_the_fake_quantized_model(awq_checkpoint) -> None:
    folder, _, codes, ref, tok, float_model = awq_checkpoint
    model = load_packed(folder)
    got = logits(model, tok)
    # the kernel computes in bfloat16: compare with the float model's own bfloat16 error
    bf16 = logits(copy.deepcopy(float_model).to(torch.bfloat16), tok)
    assert (got - ref).abs().max() <= 3 * max((bf16 - ref).abs().max(), 0.05)
    assert torch.equal(got.argmax(-1), ref.argmax(-1)) or (got.argmax(-1) != ref.argmax(-1)).float().mean() < 0.1
    # after the first forward pass the weights are repacked (int4pack); what the kernel multiplies
    # still lies nearest to kompakt's codes (bfloat16 scales move it by well under half a step)
    for name, c in codes.items():
        mod = model.get_submodule(name)
        assert mod.linear_mode == "inference"
        assert grid_steps(kernel_weight(mod, c.shape[1]), c) < 0.15, name


def test_a_wrong_zero_point_is_caught(awq_checkpoint, tmp_path: Path) -> None:
    """The checks above can fail: the same checkpoint with every zero point one higher misses the logits."""
    folder, _, codes, ref, tok, _ = awq_checkpoint
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    tensors = load_file(str(bad / "model.safetensors"))
    for name, c in codes.items():
        shifted = LinearCodes(c.codes, c.scales, (c.zeros.long() + 1).clamp(max=15).to(torch.uint8), 4, 64)
        tensors[f"{name}.qzeros"] = awq_gemm_tensors(shifted)["qzeros"]
    save_file(tensors, str(bad / "model.safetensors"), metadata={"format": "pt"})
    got = logits(load_packed(bad), tok)
    assert (got - ref).abs().max() > 1.0


def test_weights_bytes_after_the_first_forward(awq_checkpoint) -> None:
    folder, _, codes, _, tok, _ = awq_checkpoint
    model = load_packed(folder)
    logits(model, tok)
    float32 = sum(c.codes.numel() * 4 for c in codes.values())
    linear_bytes = sum(weights_bytes(model.get_submodule(n)) for n in codes)
    # int4 codes (0.5 byte) plus, per group of 64, bf16 scale, offset and their packed copy (8 bytes)
    assert linear_bytes == pytest.approx(float32 * (0.5 + 8 / 64) / 4, rel=0.01)
