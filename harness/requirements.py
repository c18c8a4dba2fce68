"""Check that the ML stack is installed before any work starts.

Command modules import torch and friends only inside their commands. Each
command calls :func:`require` first, so a missing package is reported at once
with the command that installs it, instead of as a traceback halfway through
a build.
"""

from __future__ import annotations

import importlib.util

HARNESS_HINT = "pip install -e '.[harness]'  (install torch==2.13.0, the CPU build, first)"

#: gptqmodel (packed AWQ/GPTQ checkpoints and their CPU kernels) and optimum (GPTQ packing) are in the harness
#: extra; gptqmodel's dependency PyPcre compiles a C extension at install, which needs a C compiler and libpcre2.
PACKED_HINT = (
    "pip install -e '.[harness]'  (brings gptqmodel==7.6.0 and optimum==2.3.0; PyPcre, a gptqmodel dependency, compiles "
    "C at install and needs a C compiler and the PCRE2 library, e.g. apt-get install gcc libpcre2-8-0)"
)

#: Import name -> (distribution name, install hint) of every package a harness
#: feature needs. Groups name what a feature needs; ``core`` is needed by all.
PACKAGES: dict[str, tuple[str, str]] = {
    "torch": ("torch", HARNESS_HINT),
    "transformers": ("transformers", HARNESS_HINT),
    "safetensors": ("safetensors", HARNESS_HINT),
    "accelerate": ("accelerate", HARNESS_HINT),
    "gguf": ("gguf", HARNESS_HINT),
    "yaml": ("pyyaml", "pip install -e ."),
    "tqdm": ("tqdm", "pip install -e ."),
    "peft": ("peft", HARNESS_HINT),
    "bitsandbytes": ("bitsandbytes", HARNESS_HINT),
    "datasets": ("datasets", HARNESS_HINT),
    "lm_eval": ("lm_eval", HARNESS_HINT),
    "scipy": ("scipy", HARNESS_HINT),
    "ray": ("ray", "pip install -e '.[ray]'  (Ray must be installed, in the same version, on the driver and on every node)"),
    "gptqmodel": ("gptqmodel", PACKED_HINT),
    "optimum": ("optimum", PACKED_HINT),
    "pcre": ("PyPcre", PACKED_HINT),
    "llama_cpp": (
        "llama-cpp-python",
        "pip install llama-cpp-python  (compiles llama.cpp from source, about five minutes on two cores)",
    ),
}

GROUPS: dict[str, tuple[str, ...]] = {
    "core": ("torch", "transformers", "safetensors", "accelerate", "gguf", "yaml", "tqdm"),
    "lora": ("peft",),
    "bnb": ("bitsandbytes",),
    "hub_data": ("datasets",),
    "bench": ("lm_eval", "datasets", "scipy"),
    "efficiency": ("scipy",),
    "gguf_quant": ("llama_cpp",),
    "ray": ("ray",),
    "packed": ("gptqmodel", "optimum", "pcre"),
}


class MissingPackageError(RuntimeError):
    """A package the requested work needs is not installed."""


def missing(*modules: str) -> list[str]:
    """Import names among ``modules`` that cannot be found (without importing them)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def require(*groups: str, purpose: str = "this command") -> None:
    """Raise :class:`MissingPackageError` naming every missing package of ``groups`` and how to install it."""
    modules: list[str] = []
    for group in ("core", *groups):
        for m in GROUPS[group]:
            if m not in modules:
                modules.append(m)
    absent = missing(*modules)
    if not absent:
        return
    hints = sorted({PACKAGES[m][1] for m in absent})
    names = ", ".join(PACKAGES[m][0] for m in absent)
    raise MissingPackageError(f"{purpose} needs {names}, which is not installed. Install with: " + " ; ".join(hints))
