"""Each method on the tiny random Llama: the algorithms' invariants, and their records."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from harness.build.base_model import BaseModelSpec, load_model, load_tokenizer, resolve
from harness.build.methods import MethodError, StepContext, get_method
from harness.build.methods.rtn import fake_quantize


def ctx_for(base: Any, tmp: Path) -> StepContext:
    tmp.mkdir(parents=True, exist_ok=True)
    return StepContext(tokenizer=load_tokenizer(base.path), base=base, out_dir=tmp, show_progress=False)


@pytest.fixture
def tiny(tiny_model_dir: Path, kompakt_env: Path) -> tuple[Any, Any, StepContext]:
    base = resolve(BaseModelSpec(source=str(tiny_model_dir)))
    return base, load_model(base.path), ctx_for(base, kompakt_env / "out")


def run(name: str, params: dict, model: Any, ctx: StepContext) -> Any:
    method = get_method(name)
    return method.apply(model, method.Config.model_validate(params), ctx)


def quantize(name: str, params: dict, model: Any, ctx: StepContext) -> tuple[dict, dict]:
    """A quantizer's integers and record, the model left fake-quantized (``apply`` without the packing)."""
    method = get_method(name)
    codes, record, _ = method.quantize(model, method.Config.model_validate(params), ctx)
    return codes, record


CAL = {"data": "text.txt", "n_samples": 8, "seq_len": 32}


def on_grid(w: torch.Tensor, bits: int, group: int) -> bool:
    rows = w.reshape(-1, group)
    return all(len(torch.unique(r)) <= 2**bits for r in rows)


# --------------------------------------------------------------------------- quantization grid


def test_rtn_grid_and_error() -> None:
    torch.manual_seed(0)
    w = torch.randn(32, 128)
    q4 = fake_quantize(w, 4, 32, False)
    assert on_grid(q4, 4, 32)
    assert torch.allclose(fake_quantize(q4, 4, 32, False), q4, atol=1e-6)  # rounding twice changes nothing
    q8 = fake_quantize(w, 8, -1, True)
    assert (q8 - w).abs().max() < (q4 - w).abs().max()
    assert (q8 - w).abs().max() <= w.abs().max() / 127 / 2 + 1e-6  # at most half a step
    zero = fake_quantize(torch.zeros(4, 32), 4, 32, False)
    assert torch.equal(zero, torch.zeros(4, 32))


def test_rtn_step(tiny: tuple) -> None:
    base, model, ctx = tiny
    codes, record = quantize("rtn", {"bits": 4, "group_size": 32}, load_model(base.path), ctx)
    w = codes["model.layers.0.mlp.down_proj"].dequantize()
    assert on_grid(w, 4, 32)
    assert record["quantized_linears"] == 4 * 7 == len(codes)
    out = run("rtn", {"bits": 4, "group_size": 32}, model, ctx)
    assert out.model is None and out.files == ["model"]  # the step wrote its packed checkpoint itself
    assert (ctx.out_dir / "model" / "model.safetensors").is_file()
    assert out.record["format"] == "awq-gemm" and out.record["integer_mismatches"] == 0
    assert out.record["compute_dtype"] == "bfloat16" and 0 < out.record["max_logit_difference"] < 0.5  # bfloat16-sized
    # bits per weight over the linears: 4-bit codes + per group of 32 a float16 scale and a 4-bit zero = 4.625 as stored
    assert out.record["bits_per_weight_linears"] == pytest.approx(4 + 16 / 32 + 4 / 32, abs=0.01)
    assert out.record["bits_per_weight_linears_loaded"] > out.record["bits_per_weight_linears"]  # the kernel's repacked form
    assert out.record["packed_weight_bytes"] < out.record["quantized_parameters"] * 4 / 6
    with pytest.raises(MethodError, match="group_size: 128 does not divide the input width 64"):
        run("rtn", {"bits": 4, "group_size": 128}, load_model(base.path), ctx)


@pytest.mark.usefixtures("python_packer")
def test_rtn8_step_is_stored_as_gptq_8bit_on_the_int8_kernel(tiny: tuple) -> None:
    """rtn8's grid (per channel, symmetric) goes to GPTQ v1 8-bit; the checkpoint names the int8 kernel, which holds its codes."""
    import json

    base, model, ctx = tiny
    out = run("rtn", {"bits": 8, "group_size": -1, "symmetric": True}, model, ctx)
    qc = json.loads((ctx.out_dir / "model" / "config.json").read_text())["quantization_config"]
    assert (qc["quant_method"], qc["format"], qc["bits"], qc["sym"], qc["backend"]) == ("gptq", "gptq", 8, True, "gptq_torch_int8")
    r = out.record
    assert r["format"] == "gptq" and r["kernel"].startswith("TorchInt8Linear") and r["compute_dtype"] == "float32"
    assert r["integer_mismatches"] == 0 and r["max_logit_difference"] < 0.05  # float32 compute: close to the fake model
    assert 8 < r["bits_per_weight_linears"] < 9 and r["float_dtype"] == "float32"
    assert any("embed_tokens.weight = lm_head.weight (tied)" in s for s in r["stays_float"])
    loaded = load_model(ctx.out_dir / "model")
    assert {type(m).__name__ for n, m in loaded.named_modules() if n.endswith("mlp.up_proj")} == {"TorchInt8Linear"}


def test_gptq_beats_rtn_on_a_layer() -> None:
    """GPTQ's error-compensating rounding gives a lower output error than RTN on correlated inputs."""
    from harness.build.methods.gptq import gptq_quantize

    torch.manual_seed(0)
    x = torch.randn(2048, 64) @ torch.randn(64, 64)  # correlated inputs, as real activations are
    w = torch.randn(48, 64)
    H = 2 * x.t() @ x / x.shape[0]
    rtn = fake_quantize(w, 4, 16, False)
    gptq, loss, codes = gptq_quantize(w, H, bits=4, group_size=16, symmetric=False)
    err = lambda q: float(((x @ w.t() - x @ q.t()) ** 2).mean())  # noqa: E731
    assert on_grid(gptq, 4, 16)
    assert err(gptq) < 0.8 * err(rtn)
    assert loss > 0
    # the integers GPTQ returns are exactly what it wrote: its per-group scales and zero points included
    assert torch.equal(codes.dequantize(), gptq) and codes.scales.shape == (48, 4)
    ordered, _, ordered_codes = gptq_quantize(w, H, bits=4, group_size=16, symmetric=False, act_order=True)
    assert on_grid(ordered, 4, 16)  # static groups keep the ordinary grid
    assert err(ordered) < err(rtn)
    assert torch.equal(ordered_codes.dequantize(), ordered)
    sym, _, sym_codes = gptq_quantize(w, H, bits=8, group_size=-1, symmetric=True)
    assert torch.equal(sym_codes.dequantize(), sym) and bool((sym_codes.zeros == 128).all()) and sym_codes.group_size == 64


def test_gptq_groups_get_their_grid_from_the_updated_weights() -> None:
    """A group's scale comes from the weights as corrected by the earlier blocks of columns (as in the reference code),
    so the integers cannot be recovered from the input weights: GPTQ must hand them over."""
    from harness.build.methods.gptq import gptq_quantize
    from harness.build.methods.rtn import quantize_to_codes

    torch.manual_seed(1)
    x = torch.randn(512, 32) @ torch.randn(32, 32)
    w = torch.randn(8, 32)
    _, _, codes = gptq_quantize(w, 2 * x.t() @ x / 512, bits=4, group_size=16, symmetric=False, block_size=16)
    rtn = quantize_to_codes(w, 4, 16, False)[1]
    assert torch.equal(codes.scales[:, 0], rtn.scales[:, 0])  # the first group sees the weights unchanged
    assert not torch.equal(codes.scales[:, 1], rtn.scales[:, 1])


def test_awq_scale_search_never_worse_than_rtn() -> None:
    """alpha = 0 is plain RTN, so the searched scales can only lower the error; with salient channels they do."""
    from harness.build.methods.awq import AWQConfig, search_scale

    torch.manual_seed(0)
    fc = torch.nn.Linear(64, 32, bias=False)
    x = torch.randn(1, 256, 64)
    x[..., :4] *= 30  # a few salient input channels, as in LLM activations
    cfg = AWQConfig(bits=4, group_size=32, n_grid=10)
    with torch.no_grad():
        reference = fc(x)
        rtn_err = float((reference - x @ fake_quantize(fc.weight, 4, 32, False).t()).pow(2).mean())
        scales, alpha, err = search_scale(lambda t, i: fc(t), [fc], [x], cfg)
    assert alpha > 0 and err < rtn_err
    assert scales.shape == (64,)


def test_gptq_and_awq_steps(tiny: tuple) -> None:
    base, model, ctx = tiny
    before = {n: p.clone() for n, p in model.named_parameters()}
    codes, record = quantize("gptq", {"bits": 4, "group_size": 32, **CAL}, model, ctx)
    assert on_grid(model.model.layers[1].self_attn.o_proj.weight, 4, 32)
    assert torch.equal(codes["model.layers.1.self_attn.o_proj"].dequantize(), model.model.layers[1].self_attn.o_proj.weight)
    assert record["data_sha256"] and record["gptq_loss"] > 0
    assert torch.equal(model.model.embed_tokens.weight, before["model.embed_tokens.weight"])  # embeddings stay float
    model = load_model(base.path)
    codes, record = quantize("awq", {"bits": 4, "group_size": 32, "n_grid": 5, **CAL}, model, ctx)
    for i, layer in enumerate(model.model.layers):
        assert on_grid(layer.mlp.gate_proj.weight, 4, 32)
        assert torch.equal(codes[f"model.layers.{i}.mlp.gate_proj"].dequantize(), layer.mlp.gate_proj.weight)
    assert record["scale_search_groups"] == 4 * 3  # GQA: no v->o scaling
    assert 0 <= record["mean_alpha"] < 1


def test_awq_scaling_preserves_the_float_function(tiny: tuple) -> None:
    """Folding the scales into norms and linears leaves the unquantized model's output unchanged."""
    base, model, ctx = tiny
    ids = torch.randint(0, model.config.vocab_size, (1, 16))
    with torch.no_grad():
        expected = model(ids).logits
    from harness.build.methods import awq as awq_module

    original, original_codes = awq_module.fake_quantize, awq_module.quantize_to_codes
    awq_module.fake_quantize = lambda w, *a, **k: w  # type: ignore[assignment]  # quantize nothing
    awq_module.quantize_to_codes = lambda w, *a, **k: (w, None)  # type: ignore[assignment]
    try:
        quantize("awq", {"bits": 4, "group_size": 32, "n_grid": 4, "clip": False, **CAL}, model, ctx)
    finally:
        awq_module.fake_quantize, awq_module.quantize_to_codes = original, original_codes
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, expected, atol=1e-4)


# --------------------------------------------------------------------------- pruning


def test_prune_by_distance(tiny: tuple, kompakt_env: Path) -> None:
    base, model, ctx = tiny
    out = run("prune_depth", {"n_layers": 2, **CAL}, model, ctx)
    rec = out.record
    d = rec["angular_distances"]
    assert len(d) == 4 - 2 + 1
    assert rec["start_layer"] == d.index(min(d)) and rec["angular_distance"] == min(d)
    assert rec["removed_layers"] == [rec["start_layer"], rec["start_layer"] + 1]
    assert all(0 <= x <= 1 for x in d)
    out.model.save_pretrained(kompakt_env / "pruned")
    reloaded = load_model(kompakt_env / "pruned")
    assert reloaded.config.num_hidden_layers == 2 and len(reloaded.model.layers) == 2
    assert [layer.self_attn.layer_idx for layer in reloaded.model.layers] == [0, 1]
    ids = torch.tensor([[1, 5, 9, 12]])
    generated = reloaded.generate(ids, max_new_tokens=4, do_sample=False)  # the KV cache works with the new indices
    assert generated.shape[1] == 8


def test_prune_explicit_list(tiny: tuple) -> None:
    base, model, ctx = tiny
    kept = [model.model.layers[i] for i in (0, 2)]
    out = run("prune_depth", {"layers": [3, 1]}, model, ctx)
    assert out.record["removed_layers"] == [1, 3] and "angular_distances" not in out.record
    assert list(out.model.model.layers) == kept
    with pytest.raises(MethodError, match="out of range"):
        run("prune_depth", {"layers": [7]}, load_model(base.path), ctx)
    with pytest.raises(MethodError, match="must be smaller"):
        run("prune_depth", {"n_layers": 4, **CAL}, load_model(base.path), ctx)
    cfg = get_method("prune_depth").Config.model_validate({"layers": [0]})
    assert cfg.data_specs() == [] and "data" not in cfg.params()


# --------------------------------------------------------------------------- healing, distillation, bitsandbytes

TRAIN = {"data": "text.txt", "seq_len": 32, "batch_size": 4, "eval_samples": 4, "warmup_steps": 2}


def test_lora_heals_and_merges(tiny: tuple) -> None:
    base, model, ctx = tiny
    names = sorted(n for n, _ in model.named_parameters())
    out = run("lora", {**TRAIN, "steps": 30, "learning_rate": 3e-3, "r": 4, "alpha": 8}, model, ctx)
    rec = out.record
    assert rec["heldout_loss_after"] < rec["heldout_loss_before"]
    assert rec["train_tokens"] == 30 * 4 * 32 and rec["trainable_parameters"] > 0
    assert sorted(n for n, _ in out.model.named_parameters()) == names  # merged: an ordinary checkpoint again
    assert not any("lora" in n for n, _ in out.model.named_modules())
    with pytest.raises(MethodError, match="no linear layers named"):
        run("lora", {**TRAIN, "steps": 3, "target_modules": ["query"]}, load_model(base.path), ctx)


def test_bfloat16_training_warns_where_it_is_slow(tiny: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.build.methods import lora

    base, model, ctx = tiny
    monkeypatch.setattr(lora, "bfloat16_in_reference_loop", lambda: True)
    with pytest.warns(RuntimeWarning, match=r"reference loop.*its 2 steps will take about 40 times as long"):
        run("lora", {**TRAIN, "steps": 2, "warmup_steps": 1, "r": 4, "precision": "bfloat16"}, model, ctx)
    monkeypatch.setattr(lora, "bfloat16_in_reference_loop", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        run("lora", {**TRAIN, "steps": 2, "warmup_steps": 1, "r": 4, "precision": "bfloat16"}, load_model(base.path), ctx)
    monkeypatch.setattr(lora, "bfloat16_in_reference_loop", lambda: True)
    with warnings.catch_warnings():  # float32 never warns
        warnings.simplefilter("error", RuntimeWarning)
        run("lora", {**TRAIN, "steps": 2, "warmup_steps": 1, "r": 4}, load_model(base.path), ctx)


def test_bfloat16_reference_loop_follows_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.build.methods.lora import bfloat16_in_reference_loop

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert bfloat16_in_reference_loop()
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    assert not bfloat16_in_reference_loop()
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)  # a build without oneDNN
    assert bfloat16_in_reference_loop()


def test_qlora_trains_over_nf4(tiny: tuple) -> None:
    pytest.importorskip("bitsandbytes")
    base, model, ctx = tiny
    original = model.model.layers[0].mlp.up_proj.weight.clone()
    out = run("qlora", {**TRAIN, "steps": 12, "learning_rate": 3e-3, "r": 4}, model, ctx)
    assert out.record["merge_into"] == "original"
    assert out.record["heldout_loss_after"] < out.record["heldout_loss_before"]
    delta = (out.model.model.layers[0].mlp.up_proj.weight - original).abs().max()
    assert 0 < delta < 0.5  # original weights plus a small low-rank update
    out = run("qlora", {**TRAIN, "steps": 3, "r": 4, "merge_into": "nf4"}, load_model(base.path), ctx)
    w = out.model.model.layers[0].mlp.up_proj.weight
    assert not torch.equal(w, original)


def test_distill_from_the_reference(tiny: tuple) -> None:
    base, model, ctx = tiny
    out = run("prune_depth", {"layers": [1]}, model, ctx)
    student = out.model
    out = run("distill", {**TRAIN, "steps": 20, "learning_rate": 3e-3, "r": 4, "kd_weight": 1.0}, student, ctx)
    rec = out.record
    assert rec["teacher"] == base.info.id and rec["teacher_hash"] == base.info.content_hash
    assert rec["kd_loss_last"] < rec["kd_loss_first"]
    assert out.model.config.num_hidden_layers == 3
    full = run("distill", {**TRAIN, "steps": 3, "trainable": "full", "learning_rate": 1e-4}, load_model(base.path), ctx)
    assert full.record["trainable_parameters"] == sum(p.numel() for p in full.model.parameters())


def test_kd_loss_is_zero_for_identical_logits() -> None:
    from harness.build.methods.distill import kd_loss

    logits = torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    assert float(kd_loss(logits, logits, labels, 2.0, 1.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(kd_loss(logits, logits + torch.randn(2, 5, 11), labels, 2.0, 1.0)) > 0


@pytest.mark.parametrize("name", ["bnb_int8", "bnb_nf4"])
def test_bitsandbytes_round_trip(name: str, tiny: tuple, kompakt_env: Path) -> None:
    pytest.importorskip("bitsandbytes")
    base, model, ctx = tiny
    ids = torch.randint(0, model.config.vocab_size, (1, 12))
    with torch.no_grad():
        expected = model(ids).logits
    out = run(name, {}, model, ctx)
    assert out.record["quantized_linears"] == 28
    out.model.save_pretrained(kompakt_env / name)
    reloaded = load_model(kompakt_env / name)
    with torch.no_grad():
        got = reloaded(ids).logits
    assert torch.isfinite(got).all()
    assert (got - expected).abs().max() < 0.25 * expected.abs().max()


def test_llm_int8_scores_a_sequence_differently_beside_another_as_its_method_declares(tiny: tuple) -> None:
    """LLM.int8() multiplies in 16 bit the input columns with an outlier anywhere in the batch, so a sequence's logits
    depend on what it is batched with (the reason the batch size keys its measurements); the float model's do not."""
    pytest.importorskip("bitsandbytes")
    from harness.build.methods import get_method

    base, model, ctx = tiny
    assert get_method("bnb_int8").batch_dependent and get_method("rtn").batch_dependent is None
    torch.manual_seed(0)
    a, b = torch.randint(1, model.config.vocab_size, (2, 12))
    # A tiny random model's activations stay below the outlier threshold of 6; token 0 gets one feature far above the
    # rest, which the first RMSNorm turns into about sqrt(hidden) = 8 in that column, and only ``b`` holds it.
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        embedding[0].zero_()
        embedding[0, 5] = 100.0
    b[3] = 0
    batch = torch.stack([a, b])
    with torch.no_grad():
        float_gap = (model(a[None]).logits[0] - model(batch).logits[0]).abs().max()
    out = run("bnb_int8", {}, model, ctx)
    with torch.no_grad():
        int8_gap = (out.model(a[None]).logits[0] - out.model(batch).logits[0]).abs().max()
        int8_repeat = (out.model(a[None]).logits[0] - out.model(a[None]).logits[0]).abs().max()
    assert float_gap < 1e-4 and int8_repeat == 0
    assert int8_gap > 0.05


def test_bitsandbytes_cast_warning_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """bitsandbytes logs its float32 -> float16 cast on every int8 matmul; kompakt keeps the first."""
    import logging

    from harness.build.methods.bnb import BNB_CAST_LOGGER, log_repeated_warnings_once

    log_repeated_warnings_once()
    log_repeated_warnings_once()  # idempotent: one filter, however often the loaders call it
    assert len(logging.getLogger(BNB_CAST_LOGGER).filters) == 1
    name = "kompakt.test.once"  # a logger of its own: the bitsandbytes one may have seen the message already
    log_repeated_warnings_once(name)
    logger = logging.getLogger(name)
    with caplog.at_level(logging.WARNING, logger=name):
        for _ in range(3):
            logger.warning("MatMul8bitLt: inputs will be cast from %s to float16 during quantization", "torch.float32")
        logger.warning("another message")
    assert [r.getMessage() for r in caplog.records] == [
        "MatMul8bitLt: inputs will be cast from torch.float32 to float16 during quantization", "another message",
    ]
