"""llama.cpp blocks from kompakt's integers: exact bytes on hand-made input, a lossless round trip through gguf's reader, llama.cpp's logits."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from packing_helpers import TEXT, tiny_with_codes  # noqa: E402

from harness.build.packing.codes import LinearCodes, PackingError, rtn_codes  # noqa: E402
from harness.build.packing.gguf_blocks import q4_0_blocks, q4_1_blocks, q8_0_blocks, write_gguf_from_codes  # noqa: E402
from harness.build.methods.gguf_export import TENSOR_NAMES, _permute  # noqa: E402

HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


def test_q4_1_bytes_of_a_hand_made_group() -> None:
    # one row, one group of 64 = two blocks sharing d and m; codes 0..15 repeated
    codes = (torch.arange(64) % 16).reshape(1, 64).to(torch.uint8)
    c = LinearCodes(codes, torch.tensor([[0.5]]), torch.tensor([[3]], dtype=torch.uint8), 4, 64)
    b = q4_1_blocks(c)
    assert b.qtype == "Q4_1" and b.data.shape == (1, 40) and b.data.dtype == np.uint8
    block = b.data[0, :20]
    assert block[:2].view(np.float16)[0] == np.float16(0.5)
    assert block[2:4].view(np.float16)[0] == np.float16(-1.5)  # m = -z d
    # byte j: value j in the low nibble, value j + 16 in the high one
    assert block[4:].tolist() == [(j % 16) | (((j + 16) % 16) << 4) for j in range(16)]
    assert np.array_equal(b.data[0, 20:], block)  # the group's second block: same d, m and codes
    assert b.max_d_rounding == 0.0 and b.max_m_rounding_steps == 0.0
    # gguf's own dequantization gives (q - z) * s
    values = gguf.quants.dequantize(b.data, gguf.GGMLQuantizationType.Q4_1)
    assert np.array_equal(values, ((codes.float() - 3) * 0.5).numpy())


def test_q8_0_and_q4_0_of_symmetric_grids() -> None:
    torch.manual_seed(0)
    w = torch.randn(4, 64)
    c8 = rtn_codes(w, 8, -1, symmetric=True)
    b8 = q8_0_blocks(c8)
    assert b8.data.shape == (4, 2 * 34)
    values = gguf.quants.dequantize(b8.data, gguf.GGMLQuantizationType.Q8_0)
    d = c8.scales.to(torch.float16).float()
    assert np.array_equal(values, ((c8.codes.float() - 128) * d).numpy())
    c4 = rtn_codes(w, 4, 32, symmetric=True)
    values = gguf.quants.dequantize(q4_0_blocks(c4).data, gguf.GGMLQuantizationType.Q4_0)
    d4 = c4.scales.to(torch.float16).float().repeat_interleave(32, dim=1)
    assert np.array_equal(values, ((c4.codes.float() - 8) * d4).numpy())


def test_formats_refuse_what_they_cannot_hold() -> None:
    w = torch.randn(4, 64)
    with pytest.raises(PackingError, match="no 8-bit type with an offset"):
        q8_0_blocks(rtn_codes(w, 8, 64, symmetric=False), "blk.up")
    with pytest.raises(PackingError, match="use Q4_1"):
        q4_0_blocks(rtn_codes(w, 4, 64, symmetric=False))
    with pytest.raises(PackingError, match="multiple of llama.cpp's block of 32"):
        q4_1_blocks(rtn_codes(torch.randn(4, 48), 4, 16))
    tiny_scale = LinearCodes(torch.zeros(1, 32, dtype=torch.uint8), torch.tensor([[1e-9]]), torch.zeros(1, 1, dtype=torch.uint8), 4, 32)
    with pytest.raises(PackingError, match="underflows float16"):
        q4_1_blocks(tiny_scale)


def _raw_q4_1(data: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """d, m and codes of Q4_1 bytes as stored (ggml's block_q4_1 layout)."""
    blocks = data.reshape(rows, -1, 20)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0]
    m = blocks[..., 2:4].copy().view(np.float16)[..., 0]
    qs = blocks[..., 4:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).reshape(rows, -1)
    return d, m, q


@pytest.fixture(scope="module")
def q4_1_file(tmp_path_factory: pytest.TempPathFactory):
    model, tok, codes = tiny_with_codes()
    path = tmp_path_factory.mktemp("gguf") / "model.gguf"
    record = write_gguf_from_codes(model, tok, codes, path, name="tiny rtn4", float_type="F32")
    return path, record, codes, model, tok


def test_the_file_holds_the_integers(q4_1_file) -> None:
    path, record, codes, model, _ = q4_1_file
    assert record["block_type"] == "Q4_1" and record["max_m_rounding_steps"] < 0.01
    reader = gguf.GGUFReader(str(path))
    assert int(reader.fields["general.file_type"].contents()) == gguf.LlamaFileType.MOSTLY_Q4_1
    tensors = {t.name: t for t in reader.tensors}
    cfg = model.config
    for name, c in codes.items():
        i, hf = int(name.split(".")[2]), name.split(".", 3)[3]
        t = tensors[f"blk.{i}.{TENSOR_NAMES[hf]}.weight"]
        assert t.tensor_type == gguf.GGMLQuantizationType.Q4_1
        assert [int(x) for x in t.shape] == [c.shape[1], c.shape[0]]  # ggml: row length first
        heads = {"self_attn.q_proj": cfg.num_attention_heads, "self_attn.k_proj": cfg.num_key_value_heads}.get(hf)
        q, z, s = c.codes.numpy(), c.zeros.numpy(), c.scales.numpy()
        if heads:  # llama.cpp's rotary row order
            q, z, s = _permute(q, heads), _permute(z, heads), _permute(s, heads)
        d, m, got = _raw_q4_1(np.asarray(t.data), c.shape[0])
        per_block = c.group_size // 32
        assert np.array_equal(got, q), name  # every integer identical
        assert np.array_equal(d, np.repeat(s.astype(np.float16), per_block, axis=1)), name  # d: the fp16 scale
        m_exact = -np.repeat(z.astype(np.float64), per_block, axis=1) * d.astype(np.float64)
        assert np.abs(m.astype(np.float64) - m_exact).max() <= np.abs(m_exact).max() * 2**-11, name  # m: fp16-rounded
        # gguf's own dequantization rounds back to the same integers
        values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(c.shape)
        back = np.rint((values - np.repeat(m, 32, axis=1)) / np.repeat(d, 32, axis=1).astype(np.float32))
        assert np.array_equal(back, q), name


@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed (make llamacpp)")
def test_llama_cpp_runs_the_integers(q4_1_file, tmp_path: Path) -> None:
    """llama.cpp's logits from the Q4_1 file against the same weights as an F32 file.

    Both run llama.cpp's kernels; the Q4_1 path also rounds activations to 8 bits per block
    (Q8_1) for its dot products, which is the whole difference left (the F32 file matches
    PyTorch to 0.01 here). A Q4_1 file with the zero points off by one misses by far more.
    """
    import llama_cpp

    from harness.build.methods.gguf_export import write_gguf

    path, _, codes, model, tok = q4_1_file
    ids = tok(TEXT).input_ids

    def run(p: Path) -> np.ndarray:
        llm = llama_cpp.Llama(model_path=str(p), n_ctx=128, logits_all=True, verbose=False, n_threads=2)
        try:
            llm.eval(ids)
            return np.array(llm.scores[: len(ids)])
        finally:
            llm.close()

    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    f32 = tmp_path / "f32.gguf"
    write_gguf(model, tok, f32, "F32", name="tiny f32")
    plain, blocks = run(f32), run(path)
    assert np.abs(plain - ref).max() < 0.05
    assert np.abs(blocks - plain).max() < 0.6
    shifted = {n: LinearCodes(c.codes, c.scales, (c.zeros.long() + 1).clamp(max=15).to(torch.uint8), 4, 64) for n, c in codes.items()}
    wrong = tmp_path / "wrong.gguf"
    write_gguf_from_codes(model, tok, shifted, wrong, name="wrong", float_type="F32")
    off = np.abs(run(wrong) - plain).max()
    print(f"llama.cpp: F32 file vs torch {np.abs(plain - ref).max():.4f}, Q4_1 vs F32 file {np.abs(blocks - plain).max():.4f}, zero points off by one {off:.4f}")
    assert off > 2 * np.abs(blocks - plain).max()
