"""Where a build's training steps run: the CPU (the default) or a CUDA GPU.

The training steps (LoRA healing; :attr:`harness.build.methods.Method.trains_on_device`) take minutes to hours on a
CPU and seconds on a GPU. ``KOMPAKT_BUILD_DEVICE=cuda`` (or ``kompakt bench --build-device cuda``) runs them on the
GPU; every other step (pruning, quantization, export) stays on the CPU, so its artifact is the CPU's one, byte for
byte where the arithmetic allows.

A step trained on a GPU is *not* the CPU's artifact of the same recipe id: other kernels, other rounding, another
random stream for dropout. So the build device is part of such a step's cache key (only when it is not the CPU, so
every CPU key stays what it was) and is written into the step's lineage record as ``build_device`` with the GPU's
name. The device type is keyed, not its index: ``cuda:0`` and ``cuda:1`` of one machine build the same thing.
"""

from __future__ import annotations

import os
import re

ENV = "KOMPAKT_BUILD_DEVICE"
"""The environment variable that names the build device (read at each use, so a cluster's workers inherit it)."""


class BuildDeviceError(ValueError):
    """The build device is misnamed or absent; the message says how to fix it."""


def build_device(value: str | None = None) -> str:
    """The build device ``value`` names, by default :data:`ENV`: ``cpu`` (unset or empty), ``cuda`` or ``cuda:<index>``."""
    value = (os.environ.get(ENV, "") if value is None else value).strip().lower() or "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", value):
        raise BuildDeviceError(f"{ENV}={value!r}: expected cpu, cuda or cuda:<index> (e.g. {ENV}=cuda)")
    return value


def key_device(device: str) -> str | None:
    """What a training step's cache key records of ``device``: None for the CPU (keys unchanged), else its type."""
    kind = device.split(":", 1)[0]
    return None if kind == "cpu" else kind


def check_available(device: str) -> None:
    """Raise :class:`BuildDeviceError` when ``device`` is a GPU that torch cannot see here."""
    if key_device(device) is None:
        return
    import torch

    index = _index(device)
    if not torch.cuda.is_available():
        raise BuildDeviceError(f"{ENV}={device}: torch sees no CUDA device here (torch {torch.__version__}); "
                               f"unset {ENV} to train on the CPU")
    if index >= torch.cuda.device_count():
        raise BuildDeviceError(f"{ENV}={device}: only {torch.cuda.device_count()} CUDA device(s) are visible")


def describe(device: str) -> str:
    """The device as a lineage record states it, e.g. ``cuda:0 (NVIDIA H200)``."""
    if key_device(device) is None:
        return "cpu"
    import torch

    index = _index(device)
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def _index(device: str) -> int:
    """The GPU index ``cuda:<index>`` names (0 for plain ``cuda``)."""
    return int(device.split(":", 1)[1]) if ":" in device else 0
