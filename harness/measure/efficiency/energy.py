"""Energy: joules per generated token from hardware counters, or nothing (with a note why).

Sources, each a cumulative counter read before and after the timed generation runs:

- GPU: NVML's total energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since
  the driver loaded; Volta and later). It covers the whole board: another process on
  the same GPU would be counted too.
- CPU: RAPL through ``/sys/class/powercap/intel-rapl:<n>/energy_uj`` (µJ per package;
  AMD CPUs expose the same files through the ``intel-rapl`` driver since Linux 5.8).
  Only the package domains (``intel-rapl:<n>``, not the ``:<n>:<m>`` sub-domains inside
  them) are summed, so nothing is counted twice; DRAM is a separate domain on some
  servers and is then left out (noted). The counters cover the whole socket, including
  other processes, and wrap at ``max_energy_range_uj`` (handled). Since 2020
  (CVE-2020-8694) they are readable by root only on most distributions.

Nothing is ever estimated from TDP or utilisation: where no counter can be read,
:meth:`EnergyMeter.available` is False and :attr:`EnergyMeter.reasons` says why; the
caller records that reason as a note and writes no energy figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POWERCAP = Path("/sys/class/powercap")


@dataclass
class _RaplDomain:
    path: Path
    name: str
    max_uj: int


def rapl_domains(root: Path = POWERCAP) -> tuple[list[_RaplDomain], str | None]:
    """The readable RAPL package domains under ``root``, or ([], why not)."""
    if not root.is_dir():
        return [], f"RAPL is not exposed on this machine ({root} does not exist)"
    packages = sorted(p for p in root.iterdir() if re.fullmatch(r"intel-rapl:\d+", p.name))
    if not packages:
        return [], f"no RAPL package domain under {root} (no intel-rapl:<n> entries; a VM or container usually hides them)"
    found, refused = [], []
    for p in packages:
        try:
            int((p / "energy_uj").read_text())
            max_uj = int((p / "max_energy_range_uj").read_text())
            name = (p / "name").read_text().strip() if (p / "name").is_file() else p.name
            found.append(_RaplDomain(p, name, max_uj))
        except PermissionError:
            refused.append(p.name)
        except (OSError, ValueError):
            refused.append(p.name)
    if refused and not found:
        return [], f"RAPL counters {', '.join(refused)} are not readable by this user (root only since CVE-2020-8694)"
    return found, None


def counter_delta(before: int, after: int, max_range: int) -> int:
    """Increase of a wrapping counter from ``before`` to ``after`` (at most one wrap in between)."""
    if after >= before:
        return after - before
    return after + max_range - before


@dataclass
class EnergyReading:
    source: str  # "rapl" or "nvml"
    joules: float
    detail: str


@dataclass
class EnergyMeter:
    """Reads every available energy counter; ``start()`` then ``stop()`` gives the joules in between.

    ``device`` picks the sources: ``cpu`` reads RAPL, ``cuda[:i]`` reads NVML for that
    GPU *and* RAPL (the host CPU also works during GPU generation; the two are recorded
    as separate entries, never added up).
    """

    device: str = "cpu"
    rapl_root: Path | None = None
    """Where the powercap tree is; None: :data:`POWERCAP`, looked up when the meter is made."""
    reasons: list[str] = field(default_factory=list)
    _rapl: list[_RaplDomain] = field(default_factory=list)
    _nvml: Any = None
    _start: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rapl, why = rapl_domains(self.rapl_root or POWERCAP)
        if why:
            self.reasons.append(f"no CPU energy: {why}")
        if self.device.startswith("cuda"):
            index = int(self.device.split(":")[1]) if ":" in self.device else 0
            try:
                import pynvml

                pynvml.nvmlInit()
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # raises on GPUs older than Volta
                self._nvml = handle
            except ImportError:
                self.reasons.append("no GPU energy: pynvml is not installed (pip install nvidia-ml-py)")
            except Exception as err:  # NVMLError_NotSupported, no driver, ...
                self.reasons.append(f"no GPU energy: NVML's energy counter cannot be read ({err})")
        else:
            self.reasons.append("no GPU energy: the run uses no GPU")

    @property
    def available(self) -> bool:
        return bool(self._rapl) or self._nvml is not None

    def _read(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for d in self._rapl:
            values[f"rapl:{d.path.name}"] = int((d.path / "energy_uj").read_text())
        if self._nvml is not None:
            import pynvml

            values["nvml"] = int(pynvml.nvmlDeviceGetTotalEnergyConsumption(self._nvml))
        return values

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> list[EnergyReading]:
        end = self._read()
        out = []
        rapl_uj = 0
        names = []
        for d in self._rapl:
            key = f"rapl:{d.path.name}"
            rapl_uj += counter_delta(self._start[key], end[key], d.max_uj)
            names.append(d.name)
        if self._rapl:
            out.append(EnergyReading("rapl", rapl_uj / 1e6, f"RAPL {', '.join(names)} (whole socket, all processes)"))
        if self._nvml is not None:
            out.append(EnergyReading("nvml", (end["nvml"] - self._start["nvml"]) / 1e3, "NVML total energy (whole GPU board)"))
        return out


def joules_per_token(joules: float, tokens: int) -> float:
    """Energy per generated token."""
    if tokens <= 0:
        raise ValueError("no tokens generated")
    return joules / tokens
