"""The catalogue of compression methods kompakt knows.

A results file's lineage may only name methods listed here, so the leaderboard
can group and filter by method and a typo is caught (with a did-you-mean).
The harness implements each buildable method in its own module; the
``implementation`` entry names it lazily as ``"module:Class"`` so that reading
the catalogue never imports torch.

Adding a method: write ``harness/build/methods/<name>.py`` with its config and
implementation, then add one entry here (see :mod:`harness`, steps for adding things).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kompakt.registry import Registry, suggest

Family = Literal["quantization", "pruning", "healing", "distillation", "export", "runtime"]


@dataclass(frozen=True)
class MethodInfo:
    name: str
    """Name used in recipes and results files."""
    family: Family
    """What kind of compression it is; the site groups methods by family."""
    label: str
    """Short human-readable label for tables."""
    summary: str
    """One sentence for the method page."""
    implementation: str | None = None
    """``"module:Class"`` of the harness implementation, or None if kompakt cannot build it (reported only)."""


_ALL = [
    MethodInfo("rtn", "quantization", "RTN", "Round-to-nearest weight quantization (int8 or int4 with a group size): the baseline every smarter method must beat.", "harness.build.methods.rtn:RTN"),
    MethodInfo("bnb_int8", "quantization", "LLM.int8()", "bitsandbytes LLM.int8(): 8-bit weights with outlier features kept in 16 bit.", "harness.build.methods.bnb:BnbInt8"),
    MethodInfo("bnb_nf4", "quantization", "NF4", "bitsandbytes 4-bit NormalFloat weights with block-wise scales.", "harness.build.methods.bnb:BnbNF4"),
    MethodInfo("awq", "quantization", "AWQ", "Activation-aware weight quantization: scales salient channels by activation statistics before quantizing.", "harness.build.methods.awq:AWQ"),
    MethodInfo("gptq", "quantization", "GPTQ", "GPTQ: quantizes weights column by column, correcting the error with second-order information from calibration data.", "harness.build.methods.gptq:GPTQ"),
    MethodInfo("prune_depth", "pruning", "Depth pruning", "Removes consecutive decoder layers, chosen by the angular distance of the hidden states before and after them, or given explicitly.", "harness.build.methods.prune_depth:PruneDepth"),
    MethodInfo("lora", "healing", "LoRA", "Low-rank adapters trained on text and merged back into the weights (healing after pruning).", "harness.build.methods.lora:LoRA"),
    MethodInfo("qlora", "healing", "QLoRA", "LoRA trained over an NF4-quantized base, merged back.", "harness.build.methods.lora:QLoRA"),
    MethodInfo("distill", "distillation", "Distillation", "Knowledge distillation: the reference model as teacher, KL divergence on temperature-scaled logits.", "harness.build.methods.distill:Distill"),
    MethodInfo("gguf", "export", "GGUF", "Export to llama.cpp's GGUF format with a llama.cpp quant type (e.g. Q8_0, Q4_K_M).", "harness.build.methods.gguf_export:GGUFExport"),
    MethodInfo("load_4bit", "runtime", "4-bit load", "Loaded in 4 bit at run time because the full model did not fit the device (as the thesis did on the T4).", None),
]

METHODS: dict[str, MethodInfo] = {m.name: m for m in _ALL}

#: The buildable methods as a lazy registry: ``IMPLEMENTATIONS.load(name)`` imports the class.
IMPLEMENTATIONS = Registry("method", {m.name: m.implementation for m in _ALL if m.implementation})


def register(info: MethodInfo) -> None:
    """Add a method at run time (a plugin, or a test's throwaway method)."""
    METHODS[info.name] = info
    if info.implementation:
        IMPLEMENTATIONS.add(info.name, info.implementation)


def unregister(name: str) -> None:
    METHODS.pop(name, None)
    IMPLEMENTATIONS.remove(name)


def get(name: str) -> MethodInfo:
    """The method called ``name``; an unknown name raises ``KeyError`` with a did-you-mean."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}{suggest(name, METHODS)}; known methods: {', '.join(METHODS)}") from None
