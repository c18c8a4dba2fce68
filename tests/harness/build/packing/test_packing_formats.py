"""Which packed format holds which grid, and which kernel each is measured on (pure: no model is built)."""

from __future__ import annotations

from harness.build.packing.formats import AWQ_GEMM, GPTQ_INT8, format_for, format_of, lossless_gguf_type, unsupported_grid


def test_grids_map_onto_their_formats() -> None:
    assert format_for(4, 64, symmetric=False) is AWQ_GEMM and format_for(4, 128, symmetric=True) is AWQ_GEMM
    assert format_for(8, -1, symmetric=True) is GPTQ_INT8
    assert format_for(8, 64, symmetric=True) is None and format_for(4, -1, symmetric=False) is None
    assert "use bits: 4 with group_size 32, 64 or 128" in unsupported_grid(8, 64, True)
    assert (lossless_gguf_type(4, False), lossless_gguf_type(4, True), lossless_gguf_type(8, True)) == ("Q4_1", "Q4_0", "Q8_0")
    assert lossless_gguf_type(8, False) is None


def test_a_checkpoint_config_names_its_format() -> None:
    assert format_of({"quant_method": "awq", "bits": 4, "version": "gemm"}) is AWQ_GEMM
    assert format_of({"quant_method": "gptq", "bits": 8, "backend": "gptq_torch_int8"}) is GPTQ_INT8
    # not written by kompakt: a GPTQ checkpoint without the kernel named, 4-bit GPTQ, another method
    assert format_of({"quant_method": "gptq", "bits": 8}) is None
    assert format_of({"quant_method": "gptq", "bits": 4, "backend": "gptq_torch_int8"}) is None
    assert format_of({"quant_method": "bitsandbytes"}) is None and format_of({}) is None


def test_only_the_8bit_format_is_measured_on_another_kernel() -> None:
    """TorchInt8Linear's prefill is 16-21x float32's on this CPU, so rtn8's quality runs on TorchLinear; AWQ GEMM's
    kernel is fast enough for everything."""
    assert AWQ_GEMM.quality_backend is None and AWQ_GEMM.quality_kernel is None
    assert (GPTQ_INT8.quality_backend, GPTQ_INT8.quality_kernel) == ("gptq_torch", "TorchLinear")
    assert GPTQ_INT8.quality_backend != GPTQ_INT8.backend and "memory and speed are TorchInt8Linear's" in GPTQ_INT8.quality_why
