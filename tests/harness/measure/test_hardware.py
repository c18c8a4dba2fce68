"""Hardware and software detection, and the check of a profile against what was found."""

from __future__ import annotations

import pytest

from harness.measure import hardware as hw
from kompakt.profiles import get_profile
from kompakt.results import Accelerator, Hardware


def test_detect_hardware_reads_this_machine() -> None:
    found = hw.detect_hardware(use_accelerator=False)
    assert found.accelerator is None
    assert found.cpu_cores is not None and found.cpu_cores >= 1
    assert found.ram_bytes is not None and found.ram_bytes > 2**28
    assert found.os


def test_detect_software_records_versions_and_never_raises() -> None:
    sw = hw.detect_software()
    assert sw.python.count(".") == 2 and sw.kompakt
    assert all(isinstance(v, str) for v in sw.other.values())


def test_no_gpu_is_no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hw.detect_accelerator() is None


def test_a_broken_driver_is_recorded_as_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")

    def broken() -> bool:
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(torch.cuda, "is_available", broken)
    assert hw.detect_accelerator() is None


def test_a_gpu_is_read_from_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")

    class Props:
        name = "NVIDIA H200"
        total_memory = 141 * 2**30

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props())
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(hw, "_nvidia_driver", lambda: "570.1")
    acc = hw.detect_accelerator()
    assert acc == Accelerator(name="NVIDIA H200", memory_bytes=141 * 2**30, count=1, driver="CUDA 12.8, driver 570.1")


def _with_gpu(name: str | None) -> Hardware:
    return Hardware(accelerator=Accelerator(name=name) if name else None, cpu_model="x", cpu_cores=2, ram_bytes=2**34, os="Linux")


def test_check_profile_accepts_matching_hardware_and_refuses_the_rest() -> None:
    a100 = get_profile("a100")
    assert hw.check_profile(a100, _with_gpu("NVIDIA A100-SXM4-80GB")).other_than_profile is False
    with pytest.raises(hw.HardwareMismatch, match="--allow-other-hardware"):
        hw.check_profile(a100, _with_gpu("NVIDIA H200"))
    with pytest.raises(hw.HardwareMismatch, match="no GPU"):
        hw.check_profile(a100, _with_gpu(None))


def test_other_hardware_is_labelled_with_what_it_really_was() -> None:
    marked = hw.check_profile(get_profile("a100"), _with_gpu("NVIDIA H200"), allow_other=True)
    assert marked.other_than_profile is True
    assert "NVIDIA H200" in marked.notes and "not on the profile's" in marked.notes
    assert hw.check_profile(get_profile("cpu"), _with_gpu(None)).other_than_profile is False


def test_cpu_isa_names_the_instruction_sets_that_decide_the_kernels() -> None:
    """The flags line of /proc/cpuinfo, reduced to the sets that change which kernels run, in a fixed order; two hosts
    with one model name (AMD EPYC with and without AVX-512) are told apart."""
    amd_avx2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 fma avx2 f16c\n\nprocessor\t: 1\nflags\t\t: fpu\n"
    amd_512 = "model name\t: AMD EPYC\nflags\t\t: avx512_bf16 avx2 fma avx512f avx512_vnni\n"
    assert hw.cpu_isa(amd_avx2) == "avx2 fma f16c"
    assert hw.cpu_isa(amd_512) == "avx2 fma avx512f avx512_vnni avx512_bf16"
    assert hw.cpu_isa("Features\t: fp asimd sve\n") == "asimd sve"  # arm64 names the line Features
    assert hw.cpu_isa("model name\t: x\n") is None and hw.cpu_isa("flags\t: sse2\n") is None
    found = hw.detect_hardware(use_accelerator=False)
    assert found.cpu_isa == hw.cpu_isa()
