"""Loading a variant for the quality tasks: the memory check before loading, the profile's 4-bit fallback, the load.

:func:`plan_fit` compares the weights' size in the profile's dtype with the profile's budget
before anything is loaded; :func:`load_for_eval` loads the variant once, in the profile's dtype
on its device (in 4 bit when the fallback applies), for every quality task of the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.build.base_model import saved_quantization_config
from harness.measure.fit import DoesNotFit

if TYPE_CHECKING:  # pragma: no cover
    from harness.run.bench import BenchConfig


class NotMeasurable(RuntimeError):
    """The variant's format cannot be run by the quality backend."""


def weights_bytes_on_load(path: Path, dtype: str) -> int | None:
    """Bytes the weights take once loaded for evaluation: a safetensors folder as its headers say, a GGUF
    file dequantized to ``dtype`` (every tensor element at the dtype's size)."""
    try:
        if path.suffix == ".gguf":
            from gguf import GGUFReader

            size = {"float32": 4, "float16": 2, "bfloat16": 2}[dtype]
            return int(sum(int(t.n_elements) for t in GGUFReader(str(path)).tensors)) * size
        from harness.measure.efficiency.memory import checkpoint_weights_bytes

        return int(checkpoint_weights_bytes(path, dtype))
    except Exception:  # efficiency helpers missing or the file unreadable: no pre-check
        return None


#: Said on every results file whose accuracy was measured on a GGUF variant.
GGUF_QUALITY_NOTE = (
    "Accuracy, lm-eval's perplexity and the KL divergence of this GGUF variant were measured on its weights "
    "dequantized to {dtype} by transformers' GGUF reader, so they measure the error of the GGUF quantization of the "
    "weights; llama.cpp's own CPU kernels also round the activations to 8 bit inside each quantized matrix product, "
    "which this does not reproduce. The token perplexity (wikitext2_tokens) comes from llama.cpp's own logits where "
    "llama-cpp-python is installed (its note says which). Memory and speed are llama.cpp's, on the file as stored."
)


def quality_format(artifact: Any) -> Any:
    """The packed format of ``artifact`` when its quality is measured on another kernel than its speed
    (:attr:`~harness.build.packing.formats.PackedFormat.quality_backend`), else None."""
    if getattr(artifact, "format", None) != "hf" or getattr(artifact, "model_path", None) is None:
        return None
    from harness.build.packing.formats import format_of
    from harness.build.packing.loading import PackedCheckpointError, packed_method, quantization_config

    path = Path(artifact.model_path)
    if packed_method(path) is None:
        return None
    try:
        fmt = format_of(quantization_config(path))
    except PackedCheckpointError:
        return None  # loading it refuses it with the reason
    return fmt if fmt is not None and fmt.quality_backend is not None else None


def packed_quality_note(artifact: Any) -> str | None:
    """Said on a results file whose quality was measured on another kernel of the same packed checkpoint; None otherwise."""
    fmt = quality_format(artifact)
    if fmt is None:
        return None
    return (f"Accuracy, perplexity and the KL divergence of this packed {fmt.name} checkpoint were measured on the stored "
            f"checkpoint loaded on gptqmodel's {fmt.quality_kernel} (backend {fmt.quality_backend}), not on its own "
            f"{fmt.kernel}: {fmt.quality_why}.")


def batch_note(artifact: Any, batch_size: int) -> str | None:
    """Said on a results file whose variant has a step whose outputs depend on the batch (LLM.int8()); None otherwise."""
    from harness.build.methods import get_method

    reasons = []
    for step in artifact.variant.steps:
        try:
            reason = get_method(step.method).batch_dependent
        except KeyError:  # a step kompakt records but does not build (load_4bit, a reported method)
            continue
        if reason and reason not in reasons:
            reasons.append(reason)
    if not reasons:
        return None
    return (f"{'; '.join(reasons)}. Its lm-eval tasks and parallel passages were scored in batches of {batch_size} "
            f"sequences (lm-eval's order); at another batch size the same artifact scores differently.")


def load_4bit_step(dtype: str, reason: str) -> Any:
    """The lineage step recorded when a profile loads a variant in 4 bit because it does not fit."""
    import importlib.metadata

    from kompakt.results import Step

    return Step(
        method="load_4bit",
        params={"bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": dtype},
        library=f"bitsandbytes {importlib.metadata.version('bitsandbytes')}",
        notes=f"Loaded in 4 bit at run time by the profile's on_does_not_fit: load_4bit, because {reason}.",
    )


def fallback_variant(variant: Any, step: Any) -> Any:
    """``variant`` as loaded in 4 bit: a variant of its own (``<id>-4bit``), never the reference."""
    return variant.model_copy(update={
        "id": f"{variant.id}-4bit"[:120],
        "is_reference": False,
        "steps": [*variant.steps, step],
    })


def plan_fit(artifact: Any, config: "BenchConfig") -> Any:
    """Check the profile's memory budget before loading: None (loads as it is), the ``load_4bit``
    step (the profile loads it in 4 bit instead), or :class:`~harness.measure.fit.DoesNotFit`."""
    profile = config.profile
    if artifact.format not in ("hf", "gguf"):
        return None
    path = Path(artifact.model_path)
    needed = weights_bytes_on_load(path, profile.dtype)
    if needed is None or needed <= profile.memory_budget_bytes:
        return None
    reason = (f"the weights take {needed / 2**30:.2f} GiB in {profile.dtype}, more than the "
              f"{profile.memory_budget_bytes / 2**30:.2f} GiB budget of profile {profile.name}")
    # A GGUF file or a bitsandbytes checkpoint is already quantized: loading it in 4 bit would quantize it a second time.
    already_quantized = artifact.format == "gguf" or saved_quantization_config(path) is not None
    # 4-bit weights take about a quarter of 16-bit ones (an eighth of float32); if even that is over, it cannot fit.
    if profile.on_does_not_fit != "load_4bit" or already_quantized or needed / 4 > profile.memory_budget_bytes:
        raise DoesNotFit(needed, profile.memory_budget_bytes, reason)
    return load_4bit_step(profile.dtype, reason)


def load_for_eval(artifact: Any, config: "BenchConfig", fallback_step: Any = None) -> tuple[Any, Any]:
    """The variant's model (profile dtype and device, eval mode; in 4 bit when ``fallback_step``) and tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    profile = config.profile
    if artifact.format == "gguf":
        # transformers reads the GGUF file and dequantizes every tensor to the profile's dtype (GGUF_QUALITY_NOTE)
        if config.tokenizer_path is None:
            raise NotMeasurable("a GGUF variant needs the base model's tokenizer folder (BenchConfig.tokenizer_path)")
        gguf = Path(artifact.model_path)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=profile.dtype, device_map=profile.device)
        model.eval()
        return model, AutoTokenizer.from_pretrained(config.tokenizer_path)
    if artifact.format != "hf":
        raise NotMeasurable(
            f"format {artifact.format!r} cannot be run by the PyTorch quality backend (transformers); "
            "its accuracy and perplexity are not measured here"
        )
    from harness.build.base_model import load_model, log_repeated_warnings_once
    from harness.build.packing.loading import packed_method

    log_repeated_warnings_once()  # bitsandbytes' per-matmul cast warning, once
    path = Path(artifact.model_path)
    tok_path = path if any(path.glob("tokenizer*")) else config.tokenizer_path
    if packed_method(path) is not None:
        # a packed AWQ/GPTQ checkpoint: measured as stored, on gptqmodel's kernels (refused if incomplete or damaged)
        from harness.build.packing.loading import load_packed

        fmt = quality_format(artifact)
        model = load_packed(path, dtype=profile.dtype, device=profile.device, backend=fmt.quality_backend if fmt else None)
        return model, AutoTokenizer.from_pretrained(tok_path or path)
    kwargs: dict[str, Any] = {}
    if fallback_step is not None:
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=getattr(torch, profile.dtype),
        )
    model = AutoModelForCausalLM.from_pretrained(path, dtype=profile.dtype, device_map=profile.device, use_safetensors=True, **kwargs)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(tok_path or path)
    return model, tokenizer


def make_lm(model: Any, tokenizer: Any, config: "BenchConfig") -> Any:
    """The lm-eval model over the loaded variant (:class:`~harness.measure.lm_eval_model.KompaktLM`)."""
    from harness.measure.lm_eval_model import KompaktLM

    return KompaktLM(pretrained=model, tokenizer=tokenizer, batch_size=config.batch_size)
