"""Loading a packed checkpoint (AWQ GEMM or GPTQ) through transformers and gptqmodel, refusing a damaged one.

transformers loads what it can and reports the rest: a checkpoint missing one linear's
``qzeros`` loads without an exception, the buffer holding uninitialised memory (seen on
transformers 5.24 with gptqmodel 7.6), so every load here asks for the loading report and
refuses missing, unexpected or mismatched tensors, naming the folder and the tensors. A
truncated or garbled safetensors file raises safetensors' own error, re-raised here with the
file's name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any



class PackedCheckpointError(ValueError):
    """A packed checkpoint is incomplete, damaged or needs a package that is missing; the message names the file."""

#: The quantization methods a packed checkpoint may declare, and the packages loading them needs.
NEEDS = {"awq": ("gptqmodel",), "gptq": ("gptqmodel", "optimum")}


def quantization_config(folder: Path) -> dict[str, Any]:
    """The checkpoint's ``quantization_config``; a clear error when it is missing or unreadable."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PackedCheckpointError(f"{path}: not readable JSON: {err}") from None
    qc = config.get("quantization_config") if isinstance(config, dict) else None
    if not isinstance(qc, dict) or qc.get("quant_method") not in NEEDS:
        raise PackedCheckpointError(f"{path}: field quantization_config.quant_method must be one of {sorted(NEEDS)} for a packed checkpoint")
    return qc


def check_stack(method: str) -> None:
    """Raise with the install hint when a package the loader needs is missing."""
    import importlib.util

    missing = [p for p in NEEDS[method] if importlib.util.find_spec(p) is None]
    if missing:
        raise PackedCheckpointError(
            f"loading a packed {method.upper()} checkpoint needs {', '.join(missing)}: pip install 'kompakt[harness]' "
            "(gptqmodel==7.6.0 optimum==2.3.0 with torch 2.13)"
        )


def load_packed(folder: Path) -> Any:
    """A packed checkpoint on the CPU on gptqmodel's kernels, in eval mode; refuses incomplete or damaged files."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    qc = quantization_config(folder)
    check_stack(qc["quant_method"])
    try:
        model, info = AutoModelForCausalLM.from_pretrained(folder, device_map="cpu", output_loading_info=True)
    except Exception as err:  # safetensors' SafetensorError, transformers' size-mismatch RuntimeError
        raise PackedCheckpointError(f"{folder}: cannot load the packed checkpoint: {type(err).__name__}: {err}") from err
    problems = {k: sorted(v) for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        detail = "; ".join(f"{k.replace('_', ' ')}: {', '.join(map(str, v[:4]))}{' ...' if len(v) > 4 else ''}" for k, v in problems.items())
        raise PackedCheckpointError(f"{folder}: the checkpoint does not match its config ({detail}); rebuild the variant")
    model.eval()
    return model


def loaded_weights_bytes(model: Any) -> int:
    """Bytes of a loaded model's weights, the kernels' repacked forms included; each piece of memory once.

    kompakt's :func:`harness.efficiency.memory.weights_bytes` counts parameters and persistent
    buffers. gptqmodel's CPU kernels keep part of their repacked weights elsewhere: after the first
    forward pass ``TorchAtenAwqLinear`` / ``TorchAtenLinear`` hold ``scales_and_zeros`` as a plain
    attribute, and ``TorchInt8Linear`` keeps its int8 weights in non-persistent buffers. So for
    gptqmodel's layers every buffer and every tensor attribute counts; for other modules the
    parameters and persistent buffers (not the rotary tables).
    """
    import torch

    try:
        from gptqmodel.nn_modules.qlinear import BaseQuantLinear
    except ImportError:  # pragma: no cover - without gptqmodel nothing is packed
        BaseQuantLinear = ()  # type: ignore[assignment,misc]
    seen: set[tuple[int, int]] = set()
    total = 0
    for module in model.modules():
        tensors = list(module.parameters(recurse=False))
        if isinstance(module, BaseQuantLinear):
            tensors += [b for b in module.buffers(recurse=False) if b is not None]
            tensors += [v for v in vars(module).values() if isinstance(v, torch.Tensor)]
        else:
            persistent = set(module._buffers) - set(getattr(module, "_non_persistent_buffers_set", set()))
            tensors += [b for n, b in module.named_buffers(recurse=False) if n in persistent and b is not None]
        for t in tensors:
            if t.device.type == "meta":
                continue
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if key in seen or key[1] == 0:
                continue
            seen.add(key)
            total += key[1]
    return total


__all__ = ["PackedCheckpointError", "check_stack", "load_packed", "loaded_weights_bytes", "quantization_config"]
