"""Memory bandwidth and the decode speed it allows: the physical limit of batch-1 decoding.

Generating one token at batch 1 multiplies one activation vector by every weight
matrix once, so every weight byte crosses the memory bus once per token and the
arithmetic is negligible beside it. Decode speed is therefore bounded by

    tokens/s <= bandwidth (bytes/s) / weights (bytes)

(:func:`decode_bound_tokens_per_s`). The bound ignores the KV cache and activations,
which are also read, so the real limit is a little lower and the share a little
optimistic about the headroom; at the lengths timed here (256 + 64 tokens) the cache
of a small model is a few percent of its weights. A variant that reaches a large
share of the bound is as fast as this machine allows; a small share means time is
lost elsewhere (Python overhead, dequantization, unfused kernels). Packed low-bit
weights move fewer bytes, which is why quantization speeds decoding up at all.

The bandwidth is measured, not taken from a data sheet: a large copy on the device in
use (:func:`measure_bandwidth`), in the STREAM "copy" convention: bytes read plus bytes
written, best of several repeats (the best run is the one least disturbed by other
work; the machine can do at least that).

Paired timing probes the bandwidth again before every block (:class:`BandwidthProbe`, a
few milliseconds): on a shared host other tenants take a share of the memory bus that
changes from minute to minute, and a pair timed while they do is left out of the
speed-ups (:mod:`kompakt.paired` says why). The highest probe this process has seen on a
device (:func:`highest_probe`) is what "undisturbed" means.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from harness.measure.efficiency.speed import median

#: Bytes copied per measurement: 512 MiB, far beyond any CPU's last-level cache (a few
#: hundred MiB at most on server parts) so the copy streams from DRAM; on a GPU the
#: same size is far beyond L2 (50 MiB on an H100) and large enough to amortize launch.
COPY_BYTES = 512 * 2**20
#: Untimed copies first (page faults of the destination, thread pool start-up).
WARMUP_COPIES = 2
#: Timed copies; the best is kept (STREAM reports the best of its trials too).
COPY_REPEATS = 10


#: Bytes copied by one probe: four times this machine's 32 MiB last-level cache, so it streams
#: from DRAM, and small enough (6 ms at 45 GB/s) to run before every block.
PROBE_BYTES = 128 * 2**20
#: Copies per probe after one untimed copy; the probe reads their median.
PROBE_COPIES = 3

_HIGHEST: dict[str, float] = {}


@dataclass(frozen=True)
class Bandwidth:
    """A measured memory bandwidth of one device."""

    bytes_per_s: float
    """Best of the repeats: what the device demonstrably sustains."""
    median_bytes_per_s: float
    device: str
    method: str
    repeats: int
    samples: list[float] = field(default_factory=list, repr=False)

    def note(self) -> str:
        return (
            f"memory bandwidth of {self.device}: {self.bytes_per_s / 1e9:.1f} GB/s (best of {self.repeats}; "
            f"median {self.median_bytes_per_s / 1e9:.1f} GB/s), measured by {self.method}"
        )


def decode_bound_tokens_per_s(bandwidth_bytes_per_s: float, weights_bytes: float) -> float:
    """Most tokens per second a batch-1 decode can reach: every weight byte is read once per token."""
    if bandwidth_bytes_per_s <= 0 or weights_bytes <= 0:
        raise ValueError("bandwidth and weights bytes must be positive")
    return bandwidth_bytes_per_s / weights_bytes


def bound_share(decode_tokens_per_s: float, bandwidth_bytes_per_s: float, weights_bytes: float) -> float:
    """Measured batch-1 decode speed as a share of the bandwidth bound (1.0 = at the limit)."""
    if decode_tokens_per_s <= 0:
        raise ValueError("decode speed must be positive")
    return decode_tokens_per_s / decode_bound_tokens_per_s(bandwidth_bytes_per_s, weights_bytes)


def copy_rate(bytes_copied: int, seconds: float) -> float:
    """Bandwidth of one copy in the STREAM convention: a copy of n bytes reads n and writes n."""
    if seconds <= 0:
        raise ValueError("a copy takes positive time")
    return 2 * bytes_copied / seconds


def _buffers(device: str, nbytes: int) -> tuple[Any, Any]:
    """Two float32 tensors of ``nbytes`` each on ``device``, source and destination of the copies."""
    import torch

    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)  # ones, not empty: the pages must exist
    return src, torch.zeros_like(src)


def _timed_copy(src: Any, dst: Any) -> float:
    """Seconds of one ``dst.copy_(src)``: on CUDA timed with events after a synchronize, on the CPU by the clock."""
    import torch

    if src.device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        dst.copy_(src)
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000
    t0 = time.perf_counter()
    dst.copy_(src)
    return time.perf_counter() - t0


def measure_bandwidth(device: str = "cpu", *, nbytes: int = COPY_BYTES, repeats: int = COPY_REPEATS, warmup: int = WARMUP_COPIES) -> Bandwidth:
    """Copy ``nbytes`` from one tensor into another on ``device`` and report the rate.

    On the CPU ``Tensor.copy_`` runs on all of PyTorch's intra-op threads (the same
    threads inference uses), so the figure is the bandwidth the model's own kernels
    can draw on. On CUDA the copy is timed with events after a synchronize.
    """
    import torch

    src, dst = _buffers(device, nbytes)
    cuda = src.device.type == "cuda"
    samples: list[float] = []
    for i in range(warmup + repeats):
        seconds = _timed_copy(src, dst)
        if i >= warmup:
            samples.append(copy_rate(src.numel() * 4, seconds))
    name = torch.cuda.get_device_name(torch.device(device)) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    del src, dst
    return Bandwidth(
        bytes_per_s=max(samples),
        median_bytes_per_s=median(samples),
        device=name,
        method=f"torch {torch.__version__} Tensor.copy_ of {nbytes // 2**20} MiB float32, 2 bytes moved per byte copied",
        repeats=repeats,
        samples=samples,
    )


class BandwidthProbe:
    """A short copy benchmark to run before every block: ``probe()`` returns bytes/s, the median of
    :data:`PROBE_COPIES` copies of :data:`PROBE_BYTES`. Holds its two buffers until :meth:`close`."""

    def __init__(self, device: str = "cpu", nbytes: int = PROBE_BYTES, copies: int = PROBE_COPIES, peak: float = 0.0):
        """``peak``: the highest bandwidth seen elsewhere (another process of the same run), counted as if probed here."""
        self.device = "cpu" if device == "cpu" else device
        _HIGHEST[self.device] = max(_HIGHEST.get(self.device, 0.0), peak)
        self.copies = copies
        self._src, self._dst = _buffers(self.device, nbytes)

    def __call__(self) -> float:
        _timed_copy(self._src, self._dst)  # the first copy after a block pulls the buffers back into the page tables and TLB
        rate = median([copy_rate(self._src.numel() * 4, _timed_copy(self._src, self._dst)) for _ in range(self.copies)])
        _HIGHEST[self.device] = max(_HIGHEST.get(self.device, 0.0), rate)
        return rate

    @property
    def peak(self) -> float:
        """The highest probe on this device in this process."""
        return highest_probe(self.device)

    def close(self) -> None:
        del self._src, self._dst


def highest_probe(device: str = "cpu") -> float:
    """The highest bandwidth a :class:`BandwidthProbe` on ``device`` has read in this process (0 before the first)."""
    return _HIGHEST.get("cpu" if device == "cpu" else device, 0.0)
