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

import re
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
    short: str = ""
    """Template of the step's label in a one-line lineage (``AWQ[ {bits}-bit][ g{group_size}]``): a bracketed part
    is dropped when a parameter it names is missing, false or negative; empty: the method's label."""

    def short_label(self, params: dict[str, object]) -> str:
        """The step in a few words, e.g. ``AWQ 4-bit g64`` or ``prune 8 layers`` (see ``short``)."""
        return short_label(self.short or self.label, params)


_ALL = [
    MethodInfo("rtn", "quantization", "RTN", "Round-to-nearest weight quantization (int8 or int4 with a group size): the baseline every smarter method must beat.", "harness.build.methods.rtn:RTN", short="RTN[ {bits}-bit][ g{group_size}]"),
    MethodInfo("bnb_int8", "quantization", "LLM.int8()", "bitsandbytes LLM.int8(): 8-bit weights with outlier features kept in 16 bit.", "harness.build.methods.bnb:BnbInt8", short="LLM.int8()"),
    MethodInfo("bnb_nf4", "quantization", "NF4", "bitsandbytes 4-bit NormalFloat weights with block-wise scales.", "harness.build.methods.bnb:BnbNF4", short="NF4"),
    MethodInfo("awq", "quantization", "AWQ", "Activation-aware weight quantization: scales salient channels by activation statistics before quantizing.", "harness.build.methods.awq:AWQ", short="AWQ[ {bits}-bit][ g{group_size}]"),
    MethodInfo("gptq", "quantization", "GPTQ", "GPTQ: quantizes weights column by column, correcting the error with second-order information from calibration data.", "harness.build.methods.gptq:GPTQ", short="GPTQ[ {bits}-bit][ g{group_size}][ act-order{act_order}]"),
    MethodInfo("prune_depth", "pruning", "Depth pruning", "Removes consecutive decoder layers, chosen by the angular distance of the hidden states before and after them, or given explicitly.", "harness.build.methods.prune_depth:PruneDepth", short="prune[ {n_layers} layers][ layers {layers}]"),
    MethodInfo("lora", "healing", "LoRA", "Low-rank adapters trained on text and merged back into the weights (healing after pruning).", "harness.build.methods.lora:LoRA", short="LoRA[ r{r}]"),
    MethodInfo("qlora", "healing", "QLoRA", "LoRA trained over an NF4-quantized base, merged back.", "harness.build.methods.lora:QLoRA", short="QLoRA[ r{r}]"),
    MethodInfo("distill", "distillation", "Distillation", "Knowledge distillation: the reference model as teacher, KL divergence on temperature-scaled logits.", "harness.build.methods.distill:Distill", short="distill[ T={temperature}]"),
    MethodInfo("gguf", "export", "GGUF", "Export to llama.cpp's GGUF format with a llama.cpp quant type (e.g. Q8_0, Q4_K_M), or, after a weight quantizer, its integers unchanged (Q4_1, Q8_0).", "harness.build.methods.gguf_export:GGUFExport", short="GGUF[ {quant_type}][ (same integers){from_codes}]"),
    MethodInfo("load_4bit", "runtime", "4-bit load", "Loaded in 4 bit at run time because the full model did not fit the device (as the thesis did on the T4).", None, short="[{bits}-bit ]load"),
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


_PART = re.compile(r"\[([^\[\]]*)\]")
_FIELD = re.compile(r"\{(\w+)\}")


def _param_text(value: object) -> str | None:
    """A parameter as it reads in a label; None where the label should leave it out."""
    if value is None or value is False or (isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0):
        return None
    if value is True:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return _ranges(value)
    return str(value)


def _ranges(values: list) -> str:
    """``[20, 21, 22, 23, 27]`` as ``20–23, 27``; anything but integers as a plain list."""
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return ", ".join(map(str, values))
    out, start, prev = [], values[0], values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(str(start) if start == prev else f"{start}–{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(out)


def short_label(template: str, params: dict[str, object]) -> str:
    """Fill ``template``'s ``{param}`` fields from ``params``; a ``[...]`` part whose parameters are not all
    there (missing, false or negative) is dropped, as is a part with no field at all if it cannot be shown."""

    def part(match: re.Match) -> str:
        texts = {name: _param_text(params.get(name)) for name in _FIELD.findall(match.group(1))}
        if any(t is None for t in texts.values()):
            return ""
        return _FIELD.sub(lambda m: texts[m.group(1)], match.group(1))

    return _FIELD.sub(lambda m: _param_text(params.get(m.group(1))) or "", _PART.sub(part, template)).strip()
