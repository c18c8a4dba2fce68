"""Loading a packed checkpoint (AWQ GEMM or GPTQ) through transformers and gptqmodel, refusing a damaged one.

transformers loads what it can and reports the rest: a checkpoint missing one linear's
``qzeros`` loads without an exception, the buffer holding uninitialised memory (seen on
transformers 5.24 with gptqmodel 7.6), so every load here asks for the loading report and
refuses missing, unexpected or mismatched tensors, naming the folder and the tensors. A
truncated or garbled safetensors file raises safetensors' own error, re-raised here with the
folder's name. The ``quantization_config`` is checked before loading for the settings that
load silently wrong numbers on this stack (see :mod:`harness.build.packing.gptq`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class PackedCheckpointError(ValueError):
    """A packed checkpoint is incomplete, damaged or needs a package that is missing; the message names the file."""


#: The quantization methods a packed checkpoint may declare, and the packages loading them needs.
NEEDS = {"awq": ("gptqmodel",), "gptq": ("gptqmodel", "optimum")}
#: The hint said when one of them is missing.
INSTALL_HINT = "pip install -e '.[harness]' (gptqmodel==7.6.0 and optimum==2.3.0 beside torch 2.13; see README, Packed checkpoints)"


def packed_method(folder: Path) -> str | None:
    """``awq`` or ``gptq`` when ``folder`` holds a packed checkpoint of that kind, else None (no error)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    qc = config.get("quantization_config") if isinstance(config, dict) else None
    method = qc.get("quant_method") if isinstance(qc, dict) else None
    return method if method in NEEDS else None


def quantization_config(folder: Path) -> dict[str, Any]:
    """The checkpoint's checked ``quantization_config``; a clear error naming the field when it cannot be loaded right."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PackedCheckpointError(f"{path}: not readable JSON: {err}") from None
    qc = config.get("quantization_config") if isinstance(config, dict) else None
    if not isinstance(qc, dict) or qc.get("quant_method") not in NEEDS:
        raise PackedCheckpointError(f"{path}: field quantization_config.quant_method must be one of {sorted(NEEDS)} for a packed checkpoint")
    problem = _config_problem(qc)
    if problem:
        raise PackedCheckpointError(f"{path}: field quantization_config.{problem}")
    return qc


def _config_problem(qc: dict[str, Any]) -> str | None:
    """What in a ``quantization_config`` would load wrong numbers (or nothing) here; None when it is sound."""
    bits = qc.get("bits")
    if qc["quant_method"] == "awq":
        if qc.get("version", "gemm") != "gemm":
            return f"version is {qc.get('version')!r}; kompakt loads AWQ GEMM checkpoints (version: gemm) on the CPU"
        if bits != 4:
            return f"bits is {bits!r}; AWQ GEMM holds 4-bit codes"
        if qc.get("zero_point", True) is not True:
            return "zero_point must be true (AWQ GEMM with zero points, as kompakt writes it)"
        return None
    if bits not in (2, 3, 4, 8):
        return f"bits is {bits!r}; GPTQ checkpoints hold 2, 3, 4 or 8-bit codes"
    fmt = qc.get("format", qc.get("checkpoint_format", "gptq"))
    if fmt not in ("gptq", "gptq_v2"):
        return f"format is {fmt!r}; kompakt loads GPTQ v1 (gptq) and v2 (gptq_v2) checkpoints"
    if qc.get("backend") == "gptq_torch_fused" and not qc.get("sym", True):
        return ("backend gptq_torch_fused replaces asymmetric zero points with zeros on the CPU (gptqmodel 7.6), which gives "
                "wrong outputs; remove the backend key to let gptqmodel choose")
    return None


def check_stack(method: str) -> None:
    """Raise with the install hint when a package the loader needs is missing."""
    import importlib.util

    missing = [p for p in NEEDS[method] if importlib.util.find_spec(p) is None]
    if missing:
        raise PackedCheckpointError(f"loading a packed {method.upper()} checkpoint needs {', '.join(missing)}: {INSTALL_HINT}")


def load_packed(folder: Path, *, dtype: str | None = None, device: str = "cpu", trust_remote_code: bool = False,
                backend: str | None = None) -> Any:
    """A packed checkpoint on gptqmodel's kernels, in eval mode; refuses incomplete or damaged files.

    ``dtype`` is the float dtype of what stays float (default: the checkpoint's own). The
    kernel is the one transformers and gptqmodel select, or the one the checkpoint's
    ``quantization_config.backend`` names (kompakt's 8-bit checkpoints name ``gptq_torch_int8``),
    or ``backend`` when given: gptqmodel's name of another kernel for the same stored tensors
    (transformers takes it as a loading attribute of the checkpoint's own config).
    """
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    qc = quantization_config(folder)
    check_stack(qc["quant_method"])
    kwargs: dict[str, Any] = {"device_map": device, "output_loading_info": True, "trust_remote_code": trust_remote_code}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if backend is not None and backend != qc.get("backend"):
        from transformers import AwqConfig, GPTQConfig

        problem = _config_problem({**qc, "backend": backend})
        if problem:
            raise PackedCheckpointError(f"{folder}: backend {backend!r}: {problem}")
        config_class = AwqConfig if qc["quant_method"] == "awq" else GPTQConfig
        kwargs["quantization_config"] = config_class.from_dict({**qc, "backend": backend})
    try:
        model, info = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except Exception as err:  # safetensors' SafetensorError, transformers' size-mismatch RuntimeError
        raise PackedCheckpointError(f"{folder}: cannot load the packed checkpoint: {type(err).__name__}: {err}") from err
    problems = {k: sorted(v) for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        detail = "; ".join(f"{k.replace('_', ' ')}: {', '.join(map(str, v[:4]))}{' ...' if len(v) > 4 else ''}" for k, v in problems.items())
        raise PackedCheckpointError(f"{folder}: the checkpoint does not match its config ({detail}); rebuild the variant")
    model.eval()
    return model


def read_packed_codes(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The integers of a packed checkpoint's linears (``{name: LinearCodes}``) and its checked ``quantization_config``,
    read from its safetensors files as stored (no model is built)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from harness.build.packing.awq import read_awq_codes
    from harness.build.packing.gptq import read_gptq_codes

    folder = Path(folder)
    qc = quantization_config(folder)
    check_stack(qc["quant_method"])
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise PackedCheckpointError(f"{folder}: no *.safetensors file")
    tensors: dict[str, Any] = {}
    for f in files:
        try:
            tensors.update(load_file(str(f)))
        except (SafetensorError, OSError) as err:
            raise PackedCheckpointError(f"{f}: cannot read the tensors: {err}") from err
    reader = read_awq_codes if qc["quant_method"] == "awq" else read_gptq_codes
    return reader(folder, tensors, qc), qc


def kernel_classes(model: Any) -> dict[str, int]:
    """How many layers of each gptqmodel kernel class the loaded model holds (``{"TorchAtenAwqLinear": 210}``)."""
    from harness.measure.efficiency.memory import is_quant_linear

    counts: dict[str, int] = {}
    for module in model.modules():
        if is_quant_linear(module):
            name = type(module).__name__
            counts[name] = counts.get(name, 0) + 1
    return counts


__all__ = ["INSTALL_HINT", "NEEDS", "PackedCheckpointError", "check_stack", "kernel_classes", "load_packed",
           "packed_method", "quantization_config", "read_packed_codes"]
