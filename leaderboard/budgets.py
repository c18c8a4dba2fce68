"""Which common memory budgets a variant fits, from its measured peak memory.

A badge is only given for a measured peak: GPU budgets are checked against peak device
memory, the CPU machine against peak host memory. Nothing is estimated from parameter
counts.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 10**9
GiB = 2**30


@dataclass(frozen=True)
class Budget:
    label: str
    """Badge text."""
    device: str
    """'cuda' budgets compare with peak device memory, 'cpu' with peak host memory."""
    bytes: int
    """Usable memory: what the device exposes to programs, not the marketing size."""


BUDGETS = [
    # An 8 GB laptop GPU exposes about 7.6 GiB once the driver and display take their share;
    # 7.5 GiB keeps the badge honest for variants that would only just fit.
    Budget("8 GB laptop GPU", "cuda", int(7.5 * GiB)),
    # The T4 is sold as 16 GB and exposes 15 GiB (15360 MiB) to CUDA programs.
    Budget("T4 16 GB", "cuda", 15 * GiB),
    # The A100 80GB exposes 80 GiB (81920 MiB).
    Budget("A100 80 GB", "cuda", 80 * GiB),
    # A 16 GB machine leaves about 12 GiB to one process beside the OS and a browser.
    Budget("16 GB CPU machine", "cpu", 12 * GiB),
]


def fitting(peak_device_bytes: float | None, peak_host_bytes: float | None) -> list[str]:
    """Labels of the budgets the measured peaks fit into."""
    out = []
    for b in BUDGETS:
        peak = peak_device_bytes if b.device == "cuda" else peak_host_bytes
        if peak is not None and peak <= b.bytes:
            out.append(b.label)
    return out
