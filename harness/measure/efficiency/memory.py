"""Memory: weights as really stored, size on disk, and peak memory while generating.

Weights bytes (:func:`weights_bytes`) count what the tensors occupy, not what the
parameters would take in float: a bitsandbytes 4-bit weight is a uint8 tensor of
packed pairs plus its quantization state (absmax per block, the code book, and for
double quantization the quantized absmax with its own state), an 8-bit weight is int8
plus one float scale per row. A gptqmodel layer (a packed AWQ or GPTQ checkpoint) counts
every buffer and every tensor attribute it holds: its CPU kernels repack on the first
forward pass and keep part of the result outside the parameters and persistent buffers
(``TorchAtenAwqLinear`` and ``TorchAtenLinear`` keep ``scales_and_zeros`` as a plain
attribute; ``TorchInt8Linear`` keeps its int8 weights in non-persistent buffers), so count
after a forward pass. Tied tensors (an LM head sharing the embedding) and views of one
storage are counted once, and non-persistent buffers of other modules (rotary tables,
masks: recomputed, not weights) are left out. For a GGUF file the weights are the tensor
data as stored (:func:`gguf_weights_bytes`), quant blocks with their scales included.

Peak host memory (:class:`HostPeak`) is taken two ways while the measured block runs:

- the kernel's own high-water mark (``VmHWM`` of ``/proc/self/status``), reset at the
  start of the block by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0):
  exact, it misses nothing however short;
- a background thread reading the current RSS every :data:`SAMPLE_INTERVAL_S`
  (``/proc/self/statm``), which works where the reset is refused and cross-checks it.

The peak is the larger of the two; ``ru_maxrss`` is recorded as a third check. Peak
device memory (:class:`DevicePeak`) is PyTorch's allocator peak (allocated and
reserved) after ``reset_peak_memory_stats``, plus, where NVML is there, the device's
used memory sampled by the same thread (it also sees llama.cpp's CUDA buffers, which
PyTorch's allocator does not).
"""

from __future__ import annotations

import os
import resource
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: 5 ms between RSS samples: a decode step of a small model takes 10-50 ms on a CPU, so
#: every step is seen at least twice; reading /proc/self/statm costs ~20 us, so the
#: sampler takes well under 1 % of one core.
SAMPLE_INTERVAL_S = 0.005

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# --------------------------------------------------------------------------- weights


def _tensor_key(t: Any) -> tuple[int, int]:
    """Identity of a tensor's memory: (address, bytes), so tied or aliased tensors count once."""
    return (t.data_ptr(), t.numel() * t.element_size())


def is_quant_linear(module: Any) -> bool:
    """True for gptqmodel's quantized layers (``BaseQuantLinear`` subclasses), told apart without importing gptqmodel."""
    return any(c.__name__ == "BaseQuantLinear" and c.__module__.startswith("gptqmodel.") for c in type(module).__mro__)


def _kernel_tensors(module: Any) -> list[Any]:
    """Every tensor a gptqmodel layer holds: parameters, all buffers (persistent or not) and tensor attributes."""
    import torch

    found = [b for b in module.buffers(recurse=False) if b is not None]
    found += [v for v in vars(module).values() if isinstance(v, torch.Tensor)]
    return found


def _quant_state_tensors(obj: Any) -> list[Any]:
    """Tensors of a bitsandbytes ``QuantState`` (and its nested ``state2``) or an int8 scale."""
    import torch

    found = []
    for name in ("absmax", "code", "offset", "SCB"):
        t = getattr(obj, name, None)
        if isinstance(t, torch.Tensor):
            found.append(t)
    state2 = getattr(obj, "state2", None)
    if state2 is not None:
        found.extend(_quant_state_tensors(state2))
    return found


def weights_bytes(model: Any) -> int:
    """Bytes the weights of a PyTorch module occupy as stored, quantization state included.

    Parameters and persistent buffers, each distinct piece of memory once; for
    bitsandbytes parameters also their ``quant_state`` (4 bit) or ``SCB`` row scales
    (8 bit), which are attributes, not parameters, and would otherwise be missed; for
    gptqmodel's layers every buffer and tensor attribute (call it after a forward pass:
    those kernels repack on first use).
    """
    import torch

    seen: set[tuple[int, int]] = set()
    total = 0

    def add(t: torch.Tensor) -> None:
        nonlocal total
        if t.device.type == "meta":  # offloaded or not materialized: occupies nothing here
            return
        key = _tensor_key(t)
        if key in seen or key[1] == 0:
            return
        seen.add(key)
        total += key[1]

    for module in model.modules():
        if is_quant_linear(module):
            # whole storages: a kernel's repacked tensors may be views into one allocation
            for t in [*module.parameters(recurse=False), *_kernel_tensors(module)]:
                if t.device.type != "meta":
                    storage = t.untyped_storage()
                    key = (storage.data_ptr(), storage.nbytes())
                    if key not in seen and key[1]:
                        seen.add(key)
                        total += key[1]
            continue
        for p in module.parameters(recurse=False):
            add(p)
            for t in _quant_state_tensors(getattr(p, "quant_state", None) or object()):
                add(t)
            scb = getattr(p, "SCB", None)
            if isinstance(scb, torch.Tensor):
                add(scb)
        persistent = {name for name in module._buffers if name not in getattr(module, "_non_persistent_buffers_set", set())}
        for name, b in module.named_buffers(recurse=False):
            if name in persistent and b is not None:
                add(b)
        # bitsandbytes' Linear8bitLt keeps its row scales on the module state, not the weight.
        state = getattr(module, "state", None)
        for t in _quant_state_tensors(state) if state is not None else []:
            add(t)
    return total


def gguf_weights_bytes(path: Path) -> int:
    """Bytes of the tensor data in a GGUF file: the quantized blocks with their scales, as llama.cpp loads them."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return int(sum(int(t.n_bytes) for t in reader.tensors))


#: Bytes per element of the safetensors dtypes (``F32``, ``BF16``, ``U8`` ...).
_ST_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
             "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}


def safetensors_entries(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(tensor name, header entry)`` of every tensor in a folder's safetensors files, from their headers only
    (``dtype``, ``shape``, ``data_offsets``)."""
    import json
    import struct

    out = []
    for f in sorted(Path(folder).glob("*.safetensors")):
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        out += [(name, info) for name, info in header.items() if name != "__metadata__"]
    return out


def checkpoint_weights_bytes(folder: Path, dtype: str | None = None) -> int:
    """Bytes the weights of a safetensors checkpoint will take once loaded, read from the file headers only.

    Floating-point tensors are counted at ``dtype`` (the profile's: a float32 file loaded
    in float16 takes half its size), every other tensor (packed integer codes, int8
    weights) as stored. Nothing is loaded, so this can refuse a variant that cannot fit
    before any memory is spent on it.
    """
    target = {"float32": 4, "float16": 2, "bfloat16": 2}.get(dtype or "", None)
    total = 0
    for _, info in safetensors_entries(folder):
        numel = 1
        for d in info["shape"]:
            numel *= d
        size = _ST_BYTES.get(info["dtype"], 1)
        if target is not None and info["dtype"] in ("F64", "F32", "F16", "BF16"):
            size = target
        total += numel * size
    return total


def disk_bytes(path: Path) -> int:
    """Size on disk of an artifact: a file, or every file under a folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        raise FileNotFoundError(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- host RSS


def current_rss() -> int:
    """Resident bytes of this process now (``/proc/self/statm``; elsewhere ``ru_maxrss``)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return ru_maxrss()


def ru_maxrss() -> int:
    """Lifetime peak RSS from ``getrusage`` in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def vm_hwm() -> int | None:
    """The kernel's peak RSS of this process (``VmHWM``) in bytes, or None where unreadable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_hwm() -> bool:
    """Reset the kernel's peak RSS to the current RSS; False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- peaks


@dataclass
class Peaks:
    host_bytes: int
    """Peak RSS during the block: max of the sampled RSS and the reset kernel high-water mark."""
    host_sampled_bytes: int
    host_hwm_bytes: int | None
    """Kernel high-water mark since the reset; None where the reset or the read failed."""
    ru_maxrss_bytes: int
    device_allocated_bytes: int | None = None
    device_reserved_bytes: int | None = None
    device_nvml_used_bytes: int | None = None
    samples: int = 0

    def notes(self) -> list[str]:
        out = []
        if self.host_hwm_bytes is None:
            out.append(
                "peak host memory is sampled every 5 ms only: the kernel's high-water mark could not be reset "
                "(/proc/self/clear_refs), so an allocation shorter than a sample could be missed"
            )
        return out


class PeakMemory:
    """Peak host (and device) memory while the ``with`` block runs.

    >>> with PeakMemory(device="cpu") as pm:
    ...     run_generation()
    >>> pm.peaks.host_bytes
    """

    def __init__(self, device: str = "cpu", interval: float = SAMPLE_INTERVAL_S, nvml_index: int | None = None):
        self.device = device
        self.interval = interval
        self.nvml_index = nvml_index
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampled = 0
        self._nvml_peak: int | None = None
        self._nvml_handle: Any = None
        self._count = 0
        self._hwm_ok = False
        self.peaks: Peaks | None = None

    def _sample(self) -> None:
        self._sampled = max(self._sampled, current_rss())
        if self._nvml_handle is not None:
            import pynvml

            used = int(pynvml.nvmlDeviceGetMemoryInfo(self._nvml_handle).used)
            self._nvml_peak = max(self._nvml_peak or 0, used)
        self._count += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        import gc

        gc.collect()  # free garbage of earlier work so it does not sit in the baseline
        if self._torch_cuda():
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        if self.device.startswith("cuda"):
            if self.nvml_index is not None:
                try:
                    import pynvml

                    pynvml.nvmlInit()
                    self._nvml_handle = pynvml.nvmlDeviceGetHandleByIndex(self.nvml_index)
                except Exception:  # no NVML: the allocator figures are still there
                    self._nvml_handle = None
        self._hwm_ok = reset_hwm()
        self._sampled = 0
        self._sample()
        self._thread = threading.Thread(target=self._run, name="kompakt-peak-memory", daemon=True)
        self._thread.start()
        return self

    def _torch_cuda(self) -> bool:
        if not self.device.startswith("cuda"):
            return False
        try:
            import torch

            return torch.cuda.is_available()
        except ImportError:
            return False

    def __exit__(self, *exc: Any) -> None:
        if self._torch_cuda():
            import torch

            torch.cuda.synchronize()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        hwm = vm_hwm() if self._hwm_ok else None
        peaks = Peaks(
            host_bytes=max(self._sampled, hwm or 0),
            host_sampled_bytes=self._sampled,
            host_hwm_bytes=hwm,
            ru_maxrss_bytes=ru_maxrss(),
            device_nvml_used_bytes=self._nvml_peak,
            samples=self._count,
        )
        if self._torch_cuda():
            import torch

            peaks.device_allocated_bytes = int(torch.cuda.max_memory_allocated()) or None
            peaks.device_reserved_bytes = int(torch.cuda.max_memory_reserved()) or None
        self.peaks = peaks
