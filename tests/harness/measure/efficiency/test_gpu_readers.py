"""The GPU readers against what nvidia-ml-py and torch.cuda return (mocked: no GPU here), so a run on a lent GPU does not
fail on a misread field: NVML's energy counter (mJ), NVML's memory info, torch's peak allocator figures."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from harness.measure.efficiency import measure_memory
from harness.measure.efficiency.energy import EnergyMeter
from harness.measure.efficiency.memory import PeakMemory
from harness.measure.fit import peak_needed
from kompakt.profiles import get_profile


class NVMLError(Exception):
    """As pynvml raises it (e.g. NVMLError_NotSupported)."""


def fake_pynvml(energy_mj: list[int], used_bytes: int = 5 << 30, energy_supported: bool = True) -> types.ModuleType:
    """A pynvml with the calls kompakt makes; the energy counter returns ``energy_mj`` one reading after another."""
    mod = types.ModuleType("pynvml")
    readings = iter(energy_mj)
    mod.calls = []  # type: ignore[attr-defined]

    def energy(handle: Any) -> int:
        mod.calls.append(("energy", handle))  # type: ignore[attr-defined]
        if not energy_supported:
            raise NVMLError("Not Supported")
        return next(readings)

    mod.nvmlInit = lambda: None  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = lambda i: f"handle{i}"  # type: ignore[attr-defined]
    mod.nvmlDeviceGetTotalEnergyConsumption = energy  # type: ignore[attr-defined]
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=141 << 30, free=(141 << 30) - used_bytes, used=used_bytes)  # type: ignore[attr-defined]
    return mod


def no_rapl(tmp_path: Path) -> Path:
    return tmp_path / "no-powercap"


def test_nvml_energy_counter_in_millijoules_becomes_joules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the constructor reads once (a GPU older than Volta raises there), then start and stop
    nvml = fake_pynvml([1_000_000, 1_000_000, 1_250_500])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    meter = EnergyMeter(device="cuda:1", rapl_root=no_rapl(tmp_path))
    assert meter.available
    meter.start()
    readings = meter.stop()
    assert [(r.source, r.joules) for r in readings] == [("nvml", 250.5)]
    assert ("energy", "handle1") in nvml.calls  # the GPU the run uses, not always the first
    assert any("RAPL" in why for why in meter.reasons)  # the CPU side says why it is absent, separately


def test_nvml_without_energy_counter_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([], energy_supported=False))
    meter = EnergyMeter(device="cuda", rapl_root=no_rapl(tmp_path))
    assert not meter.available
    assert any("NVML's energy counter cannot be read (Not Supported)" in why for why in meter.reasons)
    meter.start()
    assert meter.stop() == []  # no figure at all rather than an estimate


def test_no_pynvml_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    meter = EnergyMeter(device="cuda", rapl_root=no_rapl(tmp_path))
    assert not meter.available
    assert any("pip install nvidia-ml-py" in why for why in meter.reasons)


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """torch.cuda as a GPU run sees it: available, peaks of 300 MB allocated and 400 MB reserved."""
    import torch

    calls = {"reset": 0, "sync": 0}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: calls.__setitem__("sync", calls["sync"] + 1))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: calls.__setitem__("reset", calls["reset"] + 1))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 300_000_000)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 400_000_000)
    return calls


def test_peak_memory_reads_torch_allocator_peaks_on_cuda(fake_cuda: dict[str, int]) -> None:
    with PeakMemory(device="cuda") as pm:
        pass
    assert fake_cuda["reset"] == 1 and fake_cuda["sync"] == 2  # reset before, synchronised before and after
    assert pm.peaks.device_allocated_bytes == 300_000_000
    assert pm.peaks.device_reserved_bytes == 400_000_000
    assert pm.peaks.device_nvml_used_bytes is None
    assert pm.peaks.host_bytes > 0


def test_peak_memory_samples_nvml_used_memory(monkeypatch: pytest.MonkeyPatch, fake_cuda: dict[str, int]) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([], used_bytes=7 << 30))
    with PeakMemory(device="cuda", nvml_index=0) as pm:
        pass
    assert pm.peaks.device_nvml_used_bytes == 7 << 30


class FakeGpuBackend:
    """A PyTorch backend on cuda as measure_memory uses it (generation does nothing)."""

    name = "pytorch"
    device = "cuda"
    max_context = 8192
    vocab_size = 1000

    def generate(self, prompt: list[list[int]], new_tokens: int) -> list[float]:
        assert len(prompt[0]) + new_tokens == 2048  # the profile's context
        return [0.0] * new_tokens


def test_measure_memory_on_a_gpu_profile_records_device_peaks(fake_cuda: dict[str, int]) -> None:
    profile = get_profile("a100")
    memory, notes, _ = measure_memory(FakeGpuBackend(), profile, weights=270_000_000, disk=280_000_000, avoid=[])
    assert memory.peak_device_allocated_bytes == 300_000_000
    assert memory.peak_device_reserved_bytes == 400_000_000
    assert memory.weights_bytes == 270_000_000 and memory.context_length == 2048
    assert peak_needed(memory, profile) == 400_000_000  # a GPU budget is checked against what the allocator reserved
