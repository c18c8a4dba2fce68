"""Compression methods: one module per method, each a config and an implementation.

Every method is a subclass of :class:`Method` with

- ``Config``: a pydantic model (unknown keys are errors, every field documents
  itself in ``description``, a bad value raises an error that says how to fix
  it). Recipes are validated against it before any work starts;
- ``stage``: ``transform`` (pruning, healing, distillation: the weights stay
  ordinary floats), ``quantize`` (the weights are put on a low-bit grid; only
  an export may follow, since training afterwards would leave the grid) or
  ``export`` (writes another file format; nothing may follow);
- ``apply(model, config, ctx)``: does the work on a float32 model on the CPU
  and returns the model to save (or writes its own files: an export its
  ``model.gguf``, a quantizer its packed checkpoint in ``model/``) and a
  ``record`` of what it found, which becomes the lineage's ``Step.record``.

Modules import torch only inside functions, so that validating a recipe needs
only pydantic. The catalogue of names and ``"module:Class"`` paths lives in
:mod:`kompakt.methods`; :func:`get_method` looks a name up there.

The shared helpers below find the decoder layers of a Llama-style model and
capture the inputs of the first layer on calibration text, which the
layer-by-layer methods (AWQ, GPTQ) and depth pruning build on.
"""

from __future__ import annotations

import importlib.metadata
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from kompakt.methods import IMPLEMENTATIONS
from kompakt.methods import get as catalogue_entry

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from harness.build.base_model import ResolvedBase

Stage = Literal["transform", "quantize", "export"]

#: What a step leaves in its artifact folder: a transformers checkpoint in ``model/`` (saved by
#: the builder from ``StepOutcome.model``), or a file it wrote itself, ``model.gguf`` for an export.
MODEL_DIR = "model"
GGUF_FILE = "model.gguf"


class MethodError(ValueError):
    """A method cannot be applied to this model with these settings; the message says how to fix it."""


class MethodConfig(BaseModel):
    """Base of every method's parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def data_specs(self) -> list[tuple[str, str | None, str | None]]:
        """(source, split, field) of every text source the step reads, for the cache key."""
        return []

    def params(self) -> dict[str, Any]:
        """The parameters as recorded in the lineage: every field as used, None left out."""
        return {k: v for k, v in self.model_dump(mode="json").items() if v is not None}


class DataConfig(MethodConfig):
    """Parameters shared by methods that read calibration or training text."""

    data: str = Field(
        default="calib/c4_demo_llamafactory.jsonl",
        min_length=1,
        description="Text to calibrate or train on: a file or folder (relative to the corpora folder, KOMPAKT_CORPORA) "
        "or hub:<dataset>[:<config>]. Never evaluation data.",
    )
    data_split: str | None = Field(default=None, description="Split of a hub dataset (default: train).")
    data_field: str | None = Field(default=None, description="Text field of JSONL records or hub rows (default: text, or instruction/input/output).")
    seed: int = Field(default=0, ge=0, description="Seed for sampling the text (and for any training).")

    def data_specs(self) -> list[tuple[str, str | None, str | None]]:
        return [(self.data, self.data_split, self.data_field)]

    def token_blocks(self, tokenizer: Any, n_samples: int, seq_len: int, *, min_samples: int | None = None) -> tuple["torch.Tensor", Any]:
        """``n_samples`` blocks of ``seq_len`` tokens of this step's text (shape ``[n, seq_len]``) and the
        resolved source (its hash and licence go into the lineage record)."""
        from harness.build.calibration import calibration_tokens

        return calibration_tokens(tokenizer, self.data, n_samples, seq_len, self.seed, split=self.data_split,
                                  text_field=self.data_field, min_samples=min_samples)


class CalibrationConfig(DataConfig):
    """Parameters of the methods that run the model over calibration text (AWQ, GPTQ, depth pruning).

    The defaults are AWQ's and GPTQ's: their papers calibrate on 128 samples of 512 (llm-awq, the Pile)
    or 2,048 tokens (GPTQ, C4). On two CPU cores that is an hour for a 135M model; 32 x 512 tokens (16k)
    keeps each within minutes, keeps GPTQ's Hessians well conditioned (hidden size 576 needs far fewer
    than 16k inputs), and the AWQ paper shows it is robust to the calibration set's size.
    """

    n_samples: int = Field(default=32, ge=1, le=4096, description="Calibration samples.")
    seq_len: int = Field(default=512, ge=8, le=32768, description="Tokens per calibration sample.")
    batch_size: int = Field(default=8, ge=1, description="Calibration samples per forward pass (memory only; results do not depend on it).")

    def calibration_blocks(self, tokenizer: Any) -> tuple["torch.Tensor", Any]:
        """The ``n_samples x seq_len`` calibration blocks and their source."""
        return self.token_blocks(tokenizer, self.n_samples, self.seq_len)


@dataclass
class StepContext:
    """What a step gets besides the model and its config."""

    tokenizer: Any
    base: "ResolvedBase"
    out_dir: Path
    """Folder of the artifact being built (export steps write their file here; quantizers their packed ``model/``)."""
    show_progress: bool = True
    parent_path: Path | None = None
    """The checkpoint folder the step starts from (the parent step's ``model/``, or the base model's folder)."""
    device: str = "cpu"
    """Where a training step runs (:mod:`harness.build.build_device`); the other steps ignore it and run on the CPU."""


@dataclass
class StepOutcome:
    """What a step produced."""

    model: Any | None
    """The model to save (None when the step wrote its own files into ``ctx.out_dir``: a ``model.gguf``, or a packed
    checkpoint in ``model/``)."""
    record: dict[str, Any] = field(default_factory=dict)
    notes: str | None = None
    files: list[str] = field(default_factory=list)
    """Files the step wrote itself, relative to ``ctx.out_dir``."""


class Method:
    """Base class of the implementations named in :mod:`kompakt.methods`."""

    name: ClassVar[str]
    Config: ClassVar[type[MethodConfig]]
    stage: ClassVar[Stage] = "transform"
    final: ClassVar[bool] = False
    """True when nothing may follow (an export, or a quantized format no other step reads)."""
    requires: ClassVar[tuple[str, ...]] = ()
    """Groups of :mod:`harness.requirements` the method needs besides the core."""
    packs: ClassVar[bool] = False
    """True when the step stores integer codes as a packed checkpoint (the weight quantizers)."""
    trains_on_device: ClassVar[bool] = False
    """True when the step trains on the build device (:mod:`harness.build.build_device`); a GPU then becomes part of
    its cache key and lineage."""
    distributions: ClassVar[tuple[str, ...]] = ("torch",)
    """Packages that carry out the step, recorded as ``Step.library``."""
    batch_dependent: ClassVar[str | None] = None
    """Why the method's outputs depend on the other sequences of a batch (None: they do not); said on the figures of the
    tasks that score batches, with the batch size they were measured at."""

    def library(self) -> str:
        return ", ".join(f"{d} {_version(d)}" for d in self.distributions)

    def apply(self, model: Any, config: Any, ctx: StepContext) -> StepOutcome:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def order_problem(cls, prev: "type[Method] | None", prev_config: Any, config: Any) -> str | None:
        """Why this step cannot follow ``prev`` (configured ``prev_config``; None for a first step), or None when it can;
        checked when a recipe is read."""
        return None


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def get_method(name: str) -> Method:
    """The implementation of method ``name``; unknown names raise ``KeyError`` with a did-you-mean."""
    info = catalogue_entry(name)
    if info.implementation is None:
        raise KeyError(f"method {name!r} is catalogued for reported results only; kompakt cannot build it")
    return IMPLEMENTATIONS.load(name)()


# --------------------------------------------------------------------------- model helpers


def set_seed(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def decoder_layers(model: Any) -> Any:
    """The ``ModuleList`` of decoder layers of a Llama-style causal LM."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise MethodError(
            f"{type(model).__name__}: no decoder layers at model.model.layers; only Llama-style models "
            "(Llama, Mistral, Qwen2, SmolLM2, ...) are supported"
        )
    return layers


LINEAR_NAMES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def layer_linears(layer: Any) -> dict[str, Any]:
    """The seven projections of a Llama-style decoder layer, by dotted name."""
    out = {}
    for name in LINEAR_NAMES:
        module = layer.get_submodule(name) if _has(layer, name) else None
        if module is None:
            raise MethodError(f"decoder layer {type(layer).__name__} has no {name}; only Llama-style layers are supported")
        out[name] = module
    return out


def _has(module: Any, dotted: str) -> bool:
    try:
        module.get_submodule(dotted)
        return True
    except AttributeError:
        return False


class _StopForward(Exception):
    pass


def capture_first_layer_inputs(model: Any, blocks: "torch.Tensor", batch_size: int = 1) -> tuple[list["torch.Tensor"], list[dict[str, Any]]]:
    """Hidden states entering decoder layer 0 for each batch of ``blocks``, and that layer's other arguments per batch.

    Runs only the embedding (the forward pass is stopped at layer 0), the usual
    "catcher" of GPTQ and AWQ implementations. The keyword arguments (position
    embeddings, attention mask) are kept per batch, as a last, smaller batch
    may need its own.
    """
    import torch

    layers = decoder_layers(model)
    inputs: list[torch.Tensor] = []
    kwargs: list[dict[str, Any]] = []

    def hook(module: Any, args: tuple, kw: dict) -> None:
        hidden = args[0] if args else kw["hidden_states"]
        inputs.append(hidden.detach())
        kept = {k: v for k, v in kw.items() if k not in ("hidden_states", "cache", "past_key_values", "past_key_value")}
        kept["use_cache"] = False
        kwargs.append(kept)
        raise _StopForward

    handle = layers[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            for i in range(0, blocks.shape[0], batch_size):
                try:
                    model(input_ids=blocks[i : i + batch_size], use_cache=False)
                except _StopForward:
                    pass
    finally:
        handle.remove()
    return inputs, kwargs


def calibrated_layers(model: Any, config: "CalibrationConfig", ctx: StepContext) -> tuple[Any, list["torch.Tensor"], list[dict[str, Any]], Any]:
    """What a layer-by-layer quantizer starts from: the decoder layers, the hidden states entering the
    first layer on the step's calibration text (per batch, with that layer's other arguments), and the
    text's source."""
    blocks, source = config.calibration_blocks(ctx.tokenizer)
    inputs, kwargs = capture_first_layer_inputs(model, blocks, config.batch_size)
    return decoder_layers(model), inputs, kwargs, source


def run_layer(layer: Any, hidden: "torch.Tensor", kwargs: dict[str, Any]) -> "torch.Tensor":
    """Output hidden states of one decoder layer (whatever tuple or tensor it returns)."""
    out = layer(hidden, **kwargs)
    return out[0] if isinstance(out, tuple) else out


def round_float(x: float, digits: int = 6) -> float:
    """Round for the lineage record (6 significant digits); a NaN or infinity is an error."""
    if math.isnan(x) or math.isinf(x):
        raise MethodError(f"a step produced a non-finite value ({x}); lower the learning rate or check the data")
    return float(f"{x:.{digits}g}")


def module_linears(model: Any) -> list[tuple[str, Any]]:
    """(name, module) of every linear layer inside the decoder layers (embeddings and lm_head excluded)."""
    import torch

    layers = decoder_layers(model)
    out = []
    for i, layer in enumerate(layers):
        for name, module in layer.named_modules():
            if isinstance(module, torch.nn.Linear):
                out.append((f"model.layers.{i}.{name}", module))
    return out
