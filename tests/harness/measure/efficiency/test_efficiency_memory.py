"""Memory figures on models whose size is known exactly, and peak memory that sees mid-generation allocations."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from harness.measure.efficiency import memory as mem  # noqa: E402
from harness.measure.efficiency.memory import PeakMemory, disk_bytes, gguf_weights_bytes, weights_bytes  # noqa: E402


def llama_param_count(c) -> dict[str, int]:
    """Parameters of a LlamaForCausalLM by formula, from its config."""
    head_dim = c.hidden_size // c.num_attention_heads
    kv = c.num_key_value_heads * head_dim
    attn = c.hidden_size * c.hidden_size * 2 + c.hidden_size * kv * 2  # q, o; k, v
    mlp = 3 * c.hidden_size * c.intermediate_size
    linear = c.num_hidden_layers * (attn + mlp)
    norms = c.hidden_size * (2 * c.num_hidden_layers + 1)
    embed = c.vocab_size * c.hidden_size
    return {"linear": linear, "norms": norms, "embed": embed}


def rows_of_linears(model) -> int:
    return sum(m.weight.shape[0] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32")


def test_float_weights_counted_once_when_tied(tiny) -> None:
    n = llama_param_count(tiny.config)
    assert tiny.config.tie_word_embeddings
    # Embedding and LM head share one matrix: counted once; the rotary table (a non-persistent buffer) not at all.
    assert weights_bytes(tiny) == 4 * (n["linear"] + n["norms"] + n["embed"])
    assert weights_bytes(tiny.to(torch.bfloat16)) == 2 * (n["linear"] + n["norms"] + n["embed"])
    tiny.to(torch.float32)


def test_untied_head_counts_twice(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32", tie_word_embeddings=False)
    n = llama_param_count(model.config)
    assert weights_bytes(model) == 4 * (n["linear"] + n["norms"] + 2 * n["embed"])


def _bnb_model(tiny_model_dir: Path, config):
    pytest.importorskip("bitsandbytes")
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32", quantization_config=config, device_map="cpu")


def test_bnb_nf4_counts_packed_weights_and_their_state(tiny_model_dir: Path) -> None:
    from transformers import BitsAndBytesConfig

    cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=False, bnb_4bit_compute_dtype=torch.float32)
    model = _bnb_model(tiny_model_dir, cfg)
    n = llama_param_count(model.config)
    linears = 7 * model.config.num_hidden_layers
    # Two 4-bit codes per byte, one float32 absmax per block of 64 weights, a 16-entry float32
    # NF4 code book per layer; embeddings and norms stay float32.
    expected = n["linear"] // 2 + (n["linear"] // 64) * 4 + linears * 16 * 4 + 4 * (n["norms"] + n["embed"])
    assert weights_bytes(model) == expected
    # Not the float size of the parameters, and not just the packed codes.
    assert weights_bytes(model) < 4 * (n["linear"] + n["norms"] + n["embed"])
    assert weights_bytes(model) > n["linear"] // 2 + 4 * (n["norms"] + n["embed"])


def test_bnb_nf4_double_quant_counts_nested_state(tiny_model_dir: Path) -> None:
    from transformers import BitsAndBytesConfig

    cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32)
    model = _bnb_model(tiny_model_dir, cfg)
    n = llama_param_count(model.config)
    expected = 4 * (n["norms"] + n["embed"]) + n["linear"] // 2
    for m in model.modules():
        w = getattr(m, "weight", None)
        qs = getattr(w, "quant_state", None)
        if qs is None:
            continue
        blocks = w.quant_state.shape.numel() // 64
        # uint8 absmax per block, 16-float code book, float32 offset; nested: float32 absmax
        # per 256 blocks and a 256-float code book of its own.
        expected += blocks + 16 * 4 + 4 + -(-blocks // 256) * 4 + 256 * 4
    assert weights_bytes(model) == expected


def test_bnb_int8_counts_row_scales(tiny_model_dir: Path) -> None:
    from transformers import BitsAndBytesConfig

    model = _bnb_model(tiny_model_dir, BitsAndBytesConfig(load_in_8bit=True))
    n = llama_param_count(model.config)
    # One int8 per weight plus one float32 scale per output row.
    assert weights_bytes(model) == n["linear"] + 4 * rows_of_linears(model) + 4 * (n["norms"] + n["embed"])


def test_checkpoint_bytes_from_headers_in_the_load_dtype(tiny, tiny_model_dir: Path) -> None:
    from harness.measure.efficiency.memory import checkpoint_weights_bytes

    assert checkpoint_weights_bytes(tiny_model_dir, "float32") == weights_bytes(tiny)
    assert checkpoint_weights_bytes(tiny_model_dir, "float16") == weights_bytes(tiny) // 2
    assert checkpoint_weights_bytes(tiny_model_dir) == weights_bytes(tiny)  # as stored (float32)


def test_disk_and_gguf_bytes(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    gguf = pytest.importorskip("gguf")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.bin").write_bytes(b"x" * 1000)
    (tmp_path / "d" / "b.bin").write_bytes(b"x" * 24)
    assert disk_bytes(tmp_path / "d") == 1024
    path = tmp_path / "t.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("a", np.ones((8, 32), dtype=np.float32))
    w.add_tensor("b", np.ones((4, 64), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert gguf_weights_bytes(path) == 8 * 32 * 4 + 4 * 64 * 2
    assert disk_bytes(path) > gguf_weights_bytes(path)  # header, metadata and alignment padding


ALLOC = 256 * 2**20  # far above the tiny model's own activations and the RSS noise of a Python process


def _generate_with_spike(model, hold_s: float) -> None:
    """Generate while a hook on the 5th forward allocates ALLOC bytes (touched, so resident) and frees them."""
    calls = {"n": 0}

    def hook(*_):
        calls["n"] += 1
        if calls["n"] == 5:
            big = torch.ones(ALLOC // 4, dtype=torch.float32)
            time.sleep(hold_s)
            del big

    handle = model.model.layers[0].register_forward_hook(hook)
    try:
        ids = torch.tensor([[5, 6, 7, 8]])
        with torch.inference_mode():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, min_new_tokens=12, do_sample=False)
    finally:
        handle.remove()
    assert calls["n"] >= 5


def test_peak_host_memory_sees_allocation_mid_generation(tiny) -> None:
    base = mem.current_rss()
    with PeakMemory() as pm:
        _generate_with_spike(tiny, hold_s=0.0)  # freed at once: only the kernel's high-water mark can see it
    assert mem.current_rss() < base + ALLOC / 2  # it really was freed again
    if pm.peaks.host_hwm_bytes is None:
        pytest.skip("this kernel refuses to reset the RSS high-water mark")
    assert pm.peaks.host_bytes >= base + ALLOC * 0.95
    assert pm.peaks.ru_maxrss_bytes >= pm.peaks.host_bytes - 2**20  # getrusage agrees (reset with the mark)


def test_peak_sampler_alone_sees_allocation(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mem, "reset_hwm", lambda: False)  # as on a kernel without clear_refs
    base = mem.current_rss()
    with PeakMemory() as pm:
        _generate_with_spike(tiny, hold_s=0.1)  # held 20 sample intervals
    assert pm.peaks.host_hwm_bytes is None and pm.peaks.notes()
    assert pm.peaks.host_sampled_bytes >= base + ALLOC * 0.95
    assert pm.peaks.samples >= 10


def test_a_gptqmodel_layer_counts_every_tensor_it_holds():
    """A packed kernel's repacked tensors (non-persistent buffers, plain attributes) are weights; a plain module's
    non-persistent buffer (a rotary table) is not. Told apart by the gptqmodel base class, without importing gptqmodel."""
    import torch

    from harness.measure.efficiency.memory import is_quant_linear, weights_bytes

    BaseQuantLinear = type("BaseQuantLinear", (torch.nn.Module,), {"__module__": "gptqmodel.nn_modules.qlinear"})

    class Kernel(BaseQuantLinear):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("qweight", torch.zeros(8, 4, dtype=torch.int32))  # 128 bytes, persistent
            self.register_buffer("int8_weight", torch.zeros(16, dtype=torch.int8), persistent=False)  # 16 bytes
            self.scales_and_zeros = torch.zeros(4, 2, dtype=torch.bfloat16)  # 16 bytes, a plain attribute
            self.view = self.qweight[:2]  # a view of qweight's storage: counted once

    class Rotary(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("inv_freq", torch.zeros(100), persistent=False)

    model = torch.nn.Sequential(Kernel(), Rotary(), torch.nn.Linear(4, 4, bias=False))
    assert is_quant_linear(model[0]) and not is_quant_linear(model[2])
    assert weights_bytes(model) == 128 + 16 + 16 + 4 * 4 * 4
