"""The packed kernels score a sequence the same alone and batched, as their methods declare (no ``batch_dependent``).

The measurement cache keys a batched task by its batch size only when the batch size is not the default, and the
results file of a batch-dependent method says at which size it was scored (LLM.int8(), see test_methods.py). Both
rest on the other kernels not depending on what a sequence is batched with; these tests fail if one starts to.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("gptqmodel", reason="gptqmodel is not installed (pip install 'kompakt[harness]')")
pytest.importorskip("optimum", reason="optimum is not installed (pip install 'kompakt[harness]')")

from packing_helpers import tiny_with_codes  # noqa: E402

from harness.build.methods import get_method  # noqa: E402
from harness.build.packing.awq import save_awq_checkpoint  # noqa: E402
from harness.build.packing.gptq import save_gptq_checkpoint  # noqa: E402
from harness.build.packing.loading import load_packed  # noqa: E402


pytestmark = pytest.mark.usefixtures("python_packer")


def _alone_and_batched(model) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of one sequence alone, and their largest change when it is batched beside another of the same length."""
    torch.manual_seed(0)
    a, b = torch.randint(1, model.config.vocab_size, (2, 16))
    b[3] = 0  # a token whose embedding is far larger than the rest: an outlier column for the first linears
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        embedding[0] = embedding[0] * 50
        alone = model(a[None]).logits[0].float()
        batched = model(torch.stack([a, b])).logits[0].float()
    return alone, (alone - batched).abs().max()


@pytest.mark.parametrize(
    "fmt, kw, methods",
    [
        ("awq-gemm", {}, ("rtn", "awq")),  # rtn4 and awq4: 4-bit groups of 64 on gptqmodel's AWQ kernel
        ("gptq_v2", {}, ("gptq",)),  # gptq4: 4-bit groups of 64 on TorchAtenLinear
        ("gptq-8bit", {"bits": 8, "group_size": -1, "symmetric": True}, ("rtn",)),  # rtn8: int8 per channel
    ],
)
def test_a_packed_kernel_scores_a_sequence_the_same_alone_and_batched(fmt: str, kw: dict, methods: tuple, tmp_path: Path) -> None:
    assert all(get_method(m).batch_dependent is None for m in methods)
    model, tok, codes = tiny_with_codes(**kw)
    folder = tmp_path / "ckpt"
    if fmt == "awq-gemm":
        save_awq_checkpoint(model, codes, folder, tokenizer=tok)
        loaded = [load_packed(folder)]
    elif fmt == "gptq_v2":
        save_gptq_checkpoint(model, codes, folder, tokenizer=tok)
        loaded = [load_packed(folder)]
    else:  # both kernels the 8-bit checkpoint runs on: TorchInt8Linear (efficiency) and TorchLinear (quality)
        save_gptq_checkpoint(model, codes, folder, tokenizer=tok, float_dtype="float32", backend="gptq_torch_int8")
        loaded = [load_packed(folder), load_packed(folder, backend="gptq_torch")]
    for packed in loaded:
        alone, gap = _alone_and_batched(packed)
        assert gap <= _tolerance(alone), (fmt, type(packed.model.layers[0].mlp.up_proj).__name__, float(gap))


def test_the_check_catches_a_batch_dependent_kernel(tmp_path: Path) -> None:
    """The same check on LLM.int8() (bitsandbytes picks its outlier columns over the whole batch) fails."""
    pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    assert get_method("bnb_int8").batch_dependent
    model, _, _ = tiny_with_codes()
    model.save_pretrained(tmp_path / "float")
    int8 = AutoModelForCausalLM.from_pretrained(tmp_path / "float", quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="cpu")
    alone, gap = _alone_and_batched(int8)
    assert gap > 5 * _tolerance(alone)


def _tolerance(alone: torch.Tensor) -> float:
    # Every kernel above reads exactly 0 on this input (same rows, same matmul, whatever else is in the batch), while
    # LLM.int8() moves its logits by about 2 % of the largest (1.9 of 100); 0.1 % keeps a clear margin on both sides.
    return 1e-3 * max(float(alone.abs().max()), 1.0)
