"""LoRA and QLoRA healing: low-rank adapters trained on text, merged back into the weights.

LoRA (Hu et al., 2021) freezes the weights ``W`` and trains ``W + (alpha/r) B A``
with ``A`` (``r x in``) and ``B`` (``out x r``, zero at the start) on the
usual next-token loss. The thesis used it to heal depth-pruned models. Here
the adapters are trained with peft on local text (default: English Wikipedia
articles, CC BY-SA; not WikiText, so the perplexity measured afterwards is not
on the training domain) and merged, so the result is an ordinary checkpoint of
the same shape.

QLoRA (Dettmers et al., 2023) trains the same adapters over a base quantized
to 4-bit NormalFloat with bitsandbytes (double quantization as in the paper),
which is what makes it fit small GPUs. The adapters are then merged into the
original float weights (``merge_into: original``, the usual way to deploy a
QLoRA fine-tune) or into the NF4-dequantized weights they were trained
against (``merge_into: nf4``).

The training loop is written out here rather than using ``transformers.Trainer``
so that every setting that matters is a recorded parameter and nothing is
left to defaults of another library: AdamW, linear warm-up then cosine decay,
gradient clipping, a fixed seed for data order, dropout and adapter init.
It is shared with distillation (:mod:`harness.build.methods.distill`).

Recorded: rank, alpha, target modules, steps, learning rate, batch, sequence
length, data (path, sha256, licence), seed as parameters; tokens trained, the
training loss at the start and end, and the loss on held-out blocks of the same
text before and after healing as the record.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import Field, field_validator, model_validator

from harness.build.calibration import DEFAULT_TRAINING
from harness.build.methods import DataConfig, Method, MethodError, StepContext, StepOutcome, round_float, set_seed

if TYPE_CHECKING:  # pragma: no cover
    import torch

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainConfig(DataConfig):
    """Training settings shared by LoRA, QLoRA and distillation."""

    data: str = Field(
        default=DEFAULT_TRAINING,
        min_length=1,
        description="Training text: a file or folder (relative to the corpora folder) or hub:<dataset>. Never evaluation data.",
    )
    steps: int = Field(default=100, ge=1, le=1_000_000, description="Optimizer steps.")
    learning_rate: float = Field(default=2e-4, gt=0, le=1, description="Peak learning rate of AdamW.")
    batch_size: int = Field(default=4, ge=1, le=4096, description="Sequences per step.")
    seq_len: int = Field(default=256, ge=8, le=32768, description="Tokens per sequence.")
    # A tenth of the steps (at most 100) is the usual warm-up for short fine-tunes.
    warmup_steps: int = Field(default=10, ge=0, description="Steps of linear learning-rate warm-up before the cosine decay.")
    weight_decay: float = Field(default=0.0, ge=0, le=1, description="AdamW weight decay.")
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradients are clipped to this global norm.")
    eval_samples: int = Field(
        default=8, ge=0, le=1024, description="Held-out sequences of the training text on which the loss is recorded before and after (0: none)."
    )
    precision: Literal["float32", "bfloat16"] = Field(
        default="float32",
        description="Compute precision of training. bfloat16 autocast is several times faster on CPUs with AMX or AVX512-BF16, "
        "and about 40 times slower than float32 on CPUs without either (PyTorch's reference loop: a results file's "
        "hardware.cpu_isa says which); the merged weights are float32 either way.",
    )

    @model_validator(mode="after")
    def _warmup(self) -> "TrainConfig":
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be smaller than steps ({self.steps})")
        return self


class LoRAConfig(TrainConfig):
    # Rank 16 / alpha 32 on every projection: the common healing setting (alpha = 2 r
    # keeps the update scale at 2 whatever the rank).
    r: int = Field(default=16, ge=1, le=4096, description="Rank of the adapters.")
    alpha: float = Field(default=32, gt=0, description="LoRA alpha; the update is scaled by alpha / r.")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[str] = Field(
        default_factory=lambda: list(ALL_PROJECTIONS),
        min_length=1,
        description="Names of the linear layers that get adapters (Llama naming).",
    )

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a module is listed twice")
        return v


class QLoRAConfig(LoRAConfig):
    double_quant: bool = Field(default=True, description="Quantize the NF4 scales again (QLoRA's double quantization).")
    merge_into: Literal["original", "nf4"] = Field(
        default="original",
        description="Merge the adapters into the original float weights, or into the NF4-dequantized weights they were trained over.",
    )


# --------------------------------------------------------------------------- training loop

LossFn = Callable[[Any, "torch.Tensor"], "torch.Tensor"]


def lm_loss(model: Any, batch: "torch.Tensor") -> "torch.Tensor":
    """Next-token cross-entropy (mean over tokens), on the device the model is on."""
    batch = batch.to(model.device)
    return model(input_ids=batch, labels=batch, use_cache=False).loss


def heldout_loss(model: Any, blocks: "torch.Tensor", batch_size: int) -> float | None:
    import torch

    if blocks.shape[0] == 0:
        return None
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, blocks.shape[0], batch_size):
            b = blocks[i : i + batch_size]
            total += float(lm_loss(model, b)) * b.shape[0]
    model.train(was_training)
    return total / blocks.shape[0]


def training_blocks(ctx: StepContext, cfg: TrainConfig) -> tuple["torch.Tensor", "torch.Tensor", Any]:
    """Training and held-out blocks of the training text (held-out ones come from documents not trained on)."""
    wanted = cfg.steps * cfg.batch_size + cfg.eval_samples
    blocks, source = cfg.token_blocks(ctx.tokenizer, wanted, cfg.seq_len, min_samples=cfg.batch_size + cfg.eval_samples)
    n_eval = cfg.eval_samples
    return blocks[: blocks.shape[0] - n_eval], blocks[blocks.shape[0] - n_eval :], source


def bfloat16_in_reference_loop() -> bool:
    """Whether PyTorch multiplies bfloat16 matrices in its reference loop on this CPU: its oneDNN path needs AVX-512
    (BW, VL and DQ) on x86 or bfloat16 instructions on Arm (``mkldnn_bf16_device_check`` in ATen), and the loop is
    about 40 times slower than float32 (0.38 s against 8.5 ms for 256 x 576 by 576 x 1536 on an AVX2-only host)."""
    import torch

    return not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def train(
    model: Any,
    train_blocks: "torch.Tensor",
    cfg: TrainConfig,
    *,
    loss_fn: LossFn = lm_loss,
    desc: str,
    show_progress: bool,
) -> dict[str, Any]:
    """Train the parameters of ``model`` that require gradients; returns what to record."""
    import torch
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:  # pragma: no cover - a method bug
        raise MethodError("nothing to train: no parameter requires gradients")
    if cfg.precision == "bfloat16" and model.device.type == "cpu" and bfloat16_in_reference_loop():
        # Said at the start: on such a CPU a build that takes minutes elsewhere takes hours (8 h for 150 LoRA steps of
        # the embedded model), and the progress bar shows it only after the first steps.
        warnings.warn(
            f"{desc}: bfloat16 training on this CPU runs in PyTorch's reference loop (no AVX-512 or AMX for oneDNN's "
            f"bfloat16 path): its {cfg.steps} steps will take about 40 times as long as in float32, hours for a model of "
            "100 M parameters. precision: float32 in the recipe is faster here, but builds another artifact.",
            RuntimeWarning,
            stacklevel=2,
        )
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)
    generator = torch.Generator().manual_seed(cfg.seed)
    n = train_blocks.shape[0]
    order = torch.randperm(n, generator=generator)
    pos = 0
    losses: list[float] = []
    model.train()
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc=desc, disable=not show_progress, leave=False)
    for _ in bar:
        if pos + cfg.batch_size > n:  # next epoch, new order
            order, pos = torch.randperm(n, generator=generator), 0
        batch = train_blocks[order[pos : pos + cfg.batch_size]]
        pos += cfg.batch_size
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bfloat16"):
            loss = loss_fn(model, batch)
        value = loss.detach().item()
        if not math.isfinite(value):
            raise MethodError(f"the training loss became {value}; lower learning_rate (now {cfg.learning_rate})")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(value)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    # The loss of single steps is noisy: record the mean of the first and last tenth.
    k = max(1, len(losses) // 10)
    return {
        "train_tokens": cfg.steps * cfg.batch_size * cfg.seq_len,
        "train_blocks_distinct": n,
        "train_seconds": round_float(time.perf_counter() - t0, 4),
        "train_loss_first": round_float(sum(losses[:k]) / k),
        "train_loss_last": round_float(sum(losses[-k:]) / k),
    }


def lora_config(cfg: LoRAConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def check_targets(model: Any, cfg: LoRAConfig) -> None:
    import torch

    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    missing = [t for t in cfg.target_modules if t not in names]
    if missing:
        raise MethodError(f"params.target_modules: the model has no linear layers named {missing}; it has {sorted(names)}")


def add_adapters(model: Any, cfg: LoRAConfig) -> Any:
    """Wrap ``model`` with freshly initialised adapters (seeded)."""
    from peft import get_peft_model

    check_targets(model, cfg)
    set_seed(cfg.seed)
    return get_peft_model(model, lora_config(cfg))


def trainable_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LoRA(Method):
    name = "lora"
    Config = LoRAConfig
    stage = "transform"
    requires = ("lora",)
    distributions = ("torch", "peft")

    trains_on_device = True

    def apply(self, model: Any, config: LoRAConfig, ctx: StepContext) -> StepOutcome:
        from harness.build.build_device import describe, key_device

        train_blocks, eval_blocks, source = training_blocks(ctx, config)
        model = model.to(ctx.device)  # float32 as loaded: a GPU trains the same precision the CPU would
        before = heldout_loss(model, eval_blocks, config.batch_size)
        peft_model = add_adapters(model, config)
        record: dict[str, Any] = {"trainable_parameters": trainable_parameters(peft_model)}
        if key_device(ctx.device) is not None:
            record["build_device"] = describe(ctx.device)
        record.update(train(peft_model, train_blocks, config, desc="lora", show_progress=ctx.show_progress))
        merged = peft_model.merge_and_unload()
        after = heldout_loss(merged, eval_blocks, config.batch_size)
        merged = merged.to("cpu")  # saved and measured from the CPU copy, like every other artifact
        record.update(heldout_record(before, after))
        record.update(source.record())
        return StepOutcome(model=merged, record=record, notes=source.notes())


def heldout_record(before: float | None, after: float | None) -> dict[str, Any]:
    """The held-out loss before and after training, for the lineage record (empty without held-out text)."""
    if before is None or after is None:
        return {}
    return {"heldout_loss_before": round_float(before), "heldout_loss_after": round_float(after)}


class QLoRA(Method):
    name = "qlora"
    Config = QLoRAConfig
    stage = "transform"
    requires = ("lora", "bnb")
    distributions = ("torch", "peft", "bitsandbytes")

    def apply(self, model: Any, config: QLoRAConfig, ctx: StepContext) -> StepOutcome:
        import torch
        from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

        from harness.build.methods.bnb import load_quantized, nf4_config

        train_blocks, eval_blocks, source = training_blocks(ctx, config)
        before = heldout_loss(model, eval_blocks, config.batch_size)
        check_targets(model, config)
        with tempfile.TemporaryDirectory(prefix="qlora-", dir=ctx.out_dir.parent) as tmp:
            quantized = load_quantized(model, nf4_config(double_quant=config.double_quant), tmp)
            nf4_weights: dict[str, torch.Tensor] = {}
            if config.merge_into == "nf4":
                nf4_weights = _dequantized_weights(quantized)
            from peft import prepare_model_for_kbit_training

            # Casts the remaining float parameters (norms, embeddings) to float32 and
            # lets gradients flow into the frozen base's inputs, as QLoRA does.
            quantized = prepare_model_for_kbit_training(quantized, use_gradient_checkpointing=False)
            set_seed(config.seed)
            peft_q = get_peft_model(quantized, lora_config(config))
            record: dict[str, Any] = {"trainable_parameters": trainable_parameters(peft_q), "merge_into": config.merge_into}
            record.update(train(peft_q, train_blocks, config, desc="qlora", show_progress=ctx.show_progress))
            adapters = {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_q).items()}
            del peft_q, quantized
        with torch.no_grad():
            for name, w in nf4_weights.items():
                model.get_submodule(name).weight.copy_(w)
        peft_fp = get_peft_model(model, lora_config(config))
        set_peft_model_state_dict(peft_fp, adapters)
        merged = peft_fp.merge_and_unload()
        after = heldout_loss(merged, eval_blocks, config.batch_size)
        record.update(heldout_record(before, after))
        record.update(source.record())
        return StepOutcome(model=merged, record=record, notes=source.notes())


def _dequantized_weights(quantized: Any) -> dict[str, "torch.Tensor"]:
    """Float weights of every bitsandbytes 4-bit layer, read before any forward pass.

    bitsandbytes repacks 4-bit weights for its CPU kernel on the first
    inference forward, after which ``dequantize_4bit`` no longer reads them
    correctly; so this must run right after loading.
    """
    import bitsandbytes as bnb

    out = {}
    for name, module in quantized.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            w = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state)
            out[name] = w.float().clone()
    return out
