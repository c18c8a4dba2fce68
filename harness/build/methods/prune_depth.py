"""Depth pruning: remove ``n`` consecutive decoder layers, or an explicit list.

The method of Gromov et al., "The Unreasonable Ineffectiveness of the Deeper
Layers" (2024), as PruneMe implements it and as the thesis used it:

1. run calibration text through the model and keep ``x(l)``, the hidden state
   entering decoder layer ``l`` (``x(L)`` is the output of the last layer,
   before the final norm);
2. for every start ``l`` compute the angular distance
   ``d(l, n) = arccos(cos(x(l), x(l+n))) / pi``, averaged over the samples;
   the paper and PruneMe use the final token of each sample (``token: last``),
   ``token: all`` averages over every position;
3. remove layers ``l* .. l*+n-1`` for the ``l*`` with the smallest distance: the
   block that changes the representation least.

With ``layers`` the listed layers are removed instead, no data used. The saved
config has the new ``num_hidden_layers`` and each remaining attention layer
its new index (the KV cache is indexed by it), so the checkpoint reloads as an
ordinary, smaller model. The removed layers and all distances are recorded.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from harness.build.methods import (
    CalibrationConfig,
    Method,
    MethodError,
    StepContext,
    StepOutcome,
    decoder_layers,
    round_float,
    set_seed,
)


class PruneDepthConfig(CalibrationConfig):
    n_layers: int | None = Field(
        default=None,
        ge=1,
        description="Number of consecutive layers to remove, the block chosen by angular distance. Give this or `layers`.",
    )
    layers: list[int] | None = Field(
        default=None,
        min_length=1,
        description="Explicit layer indices (0-based) to remove instead of choosing by distance.",
    )
    # PruneMe's defaults are long samples of domain text; 64 samples of 256 tokens
    # give the last-token statistic 64 points (the paper's curves are smooth from
    # a few dozen) and run in well under a minute for a 135M model on two cores.
    n_samples: int = Field(default=64, ge=1, le=4096, description="Calibration samples for the distances.")
    seq_len: int = Field(default=256, ge=8, le=32768, description="Tokens per calibration sample.")
    token: Literal["last", "all"] = Field(
        default="last",
        description="Average the distance over the last token of each sample (the paper, PruneMe) or over all tokens.",
    )

    @model_validator(mode="after")
    def _one_choice(self) -> "PruneDepthConfig":
        if (self.n_layers is None) == (self.layers is None):
            raise ValueError("give exactly one of n_layers (chosen by angular distance) or layers (an explicit list)")
        if self.layers is not None:
            if any(i < 0 for i in self.layers):
                raise ValueError("layers: indices are 0-based and must not be negative")
            if len(set(self.layers)) != len(self.layers):
                raise ValueError("layers: an index is listed twice")
        return self

    def data_specs(self) -> list[tuple[str, str | None, str | None]]:
        return super().data_specs() if self.layers is None else []

    def params(self) -> dict[str, Any]:
        out = super().params()
        if self.layers is not None:  # nothing data-related was used
            for k in ("data", "data_split", "data_field", "seed", "n_samples", "seq_len", "token", "batch_size"):
                out.pop(k, None)
        return out


def angular_distances(model: Any, blocks: Any, n: int, token: str, batch_size: int, show_progress: bool) -> list[float]:
    """Mean angular distance between the inputs of layer ``l`` and ``l+n`` for every ``l``."""
    import torch
    from tqdm.auto import tqdm

    layers = decoder_layers(model)
    n_layers = len(layers)
    captured: list[torch.Tensor | None] = [None] * (n_layers + 1)

    def pre_hook(index: int):
        def hook(module: Any, args: tuple, kwargs: dict) -> None:
            hidden = args[0] if args else kwargs["hidden_states"]
            captured[index] = hidden.detach()

        return hook

    def last_hook(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        captured[n_layers] = (output[0] if isinstance(output, tuple) else output).detach()

    handles = [layer.register_forward_pre_hook(pre_hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    handles.append(layers[-1].register_forward_hook(last_hook, with_kwargs=True))
    sums = torch.zeros(n_layers - n + 1, dtype=torch.float64)
    count = 0
    try:
        with torch.no_grad():
            for i in tqdm(range(0, blocks.shape[0], batch_size), desc="angular distances", disable=not show_progress, leave=False):
                batch = blocks[i : i + batch_size]
                model(input_ids=batch, use_cache=False)
                states = [c if token == "all" else c[:, -1:, :] for c in captured]  # type: ignore[index]
                for start in range(n_layers - n + 1):
                    a, b = states[start].double(), states[start + n].double()
                    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1.0, 1.0)
                    sums[start] += (torch.arccos(cos) / math.pi).sum()
                count += states[0].shape[0] * states[0].shape[1]
    finally:
        for h in handles:
            h.remove()
    return (sums / count).tolist()


def remove_layers(model: Any, drop: list[int]) -> None:
    """Remove decoder layers ``drop`` in place and renumber the rest, so the model saves and reloads as a smaller one."""
    import torch

    layers = decoder_layers(model)
    keep = [i for i in range(len(layers)) if i not in set(drop)]
    new = torch.nn.ModuleList([layers[i] for i in keep])
    for new_index, layer in enumerate(new):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    model.model.layers = new
    model.config.num_hidden_layers = len(keep)
    layer_types = getattr(model.config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == len(layers):
        model.config.layer_types = [layer_types[i] for i in keep]


class PruneDepth(Method):
    name = "prune_depth"
    Config = PruneDepthConfig
    stage = "transform"

    def apply(self, model: Any, config: PruneDepthConfig, ctx: StepContext) -> StepOutcome:

        total = len(decoder_layers(model))
        record: dict[str, Any] = {"layers_before": total}
        if config.layers is not None:
            bad = [i for i in config.layers if i >= total]
            if bad:
                raise MethodError(f"params.layers: {bad} out of range; the model has layers 0..{total - 1}")
            if len(config.layers) >= total:
                raise MethodError(f"params.layers: removing {len(config.layers)} of {total} layers leaves none")
            drop = sorted(config.layers)
            notes = None
        else:
            n = config.n_layers or 0
            if n >= total:
                raise MethodError(f"params.n_layers: {n} must be smaller than the model's {total} layers")
            set_seed(config.seed)
            blocks, source = config.calibration_blocks(ctx.tokenizer)
            distances = angular_distances(model, blocks, n, config.token, config.batch_size, ctx.show_progress)
            start = min(range(len(distances)), key=lambda i: distances[i])
            drop = list(range(start, start + n))
            record.update(
                {
                    "start_layer": start,
                    "angular_distance": round_float(distances[start]),
                    "angular_distances": [round_float(d) for d in distances],
                    **source.record(),
                }
            )
            notes = source.notes()
        remove_layers(model, drop)
        record["removed_layers"] = drop
        record["layers_after"] = total - len(drop)
        return StepOutcome(model=model, record=record, notes=notes)
