"""Knowledge distillation: the reference model teaches a pruned (or pruned and healed) student.

Response-based distillation as in Hinton et al. (2015) and as the thesis
describes it: the teacher is the uncompressed reference model (the base
model of the recipe), the student is the model so far. On training text both
see the same tokens, and the student minimises

    loss = kd_weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))
         + (1 - kd_weight) * cross_entropy(student, next token)

per token, with temperature ``T`` (the ``T^2`` keeps the soft-target
gradients on the scale of the hard loss, as Hinton et al. note). The student
trains LoRA adapters that are merged afterwards (``trainable: lora``, the
default, which fits CPU budgets) or all its weights (``trainable: full``).
The training loop, schedule and recorded figures are those of
:mod:`harness.build.methods.lora`; the distillation loss at the start and the end
and the held-out next-token loss before and after are recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from harness.build.methods import Method, MethodError, StepContext, StepOutcome, set_seed
from harness.build.methods.lora import LoRAConfig, heldout_record, add_adapters, heldout_loss, train, trainable_parameters, training_blocks

if TYPE_CHECKING:  # pragma: no cover
    import torch


class DistillConfig(LoRAConfig):
    # T = 2 is the common choice for language models: soft enough to carry the
    # teacher's ranking of alternatives, not so soft that the targets go flat.
    temperature: float = Field(default=2.0, gt=0, le=100, description="Softmax temperature T of teacher and student logits.")
    kd_weight: float = Field(
        default=0.5, ge=0, le=1, description="Weight of the distillation term; 1 - kd_weight goes to the ordinary next-token loss."
    )
    trainable: Literal["lora", "full"] = Field(
        default="lora", description="Train LoRA adapters (merged afterwards) or every weight of the student."
    )


def kd_loss(student_logits: "torch.Tensor", teacher_logits: "torch.Tensor", labels: "torch.Tensor", temperature: float, kd_weight: float) -> "torch.Tensor":
    """Hinton's mixed loss, per next-token position (logits ``[B, T, V]``, labels ``[B, T]``)."""
    import torch.nn.functional as F

    s = student_logits[:, :-1].float().reshape(-1, student_logits.shape[-1])
    t = teacher_logits[:, :-1].float().reshape(-1, teacher_logits.shape[-1])
    kl = F.kl_div(F.log_softmax(s / temperature, dim=-1), F.log_softmax(t / temperature, dim=-1), log_target=True, reduction="batchmean")
    loss = kd_weight * temperature**2 * kl
    if kd_weight < 1:
        loss = loss + (1 - kd_weight) * F.cross_entropy(s, labels[:, 1:].reshape(-1))
    return loss


class Distill(Method):
    name = "distill"
    Config = DistillConfig
    stage = "transform"
    requires = ("lora",)
    distributions = ("torch", "peft")

    def apply(self, model: Any, config: DistillConfig, ctx: StepContext) -> StepOutcome:
        import torch

        from harness.build.base_model import load_model

        teacher = load_model(ctx.base.path, trust_remote_code=ctx.base.trust_remote_code)
        if teacher.config.vocab_size != model.config.vocab_size:
            raise MethodError(
                f"the teacher's vocabulary ({teacher.config.vocab_size}) differs from the student's ({model.config.vocab_size}); "
                "distillation needs the same tokenizer"
            )
        for p in teacher.parameters():
            p.requires_grad_(False)
        train_blocks, eval_blocks, source = training_blocks(ctx, config)
        before = heldout_loss(model, eval_blocks, config.batch_size)
        if config.trainable == "lora":
            student = add_adapters(model, config)
        else:
            set_seed(config.seed)
            student = model
            for p in student.parameters():
                p.requires_grad_(True)

        def loss_fn(m: Any, batch: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                t_logits = teacher(input_ids=batch, use_cache=False).logits
            s_logits = m(input_ids=batch, use_cache=False).logits
            return kd_loss(s_logits, t_logits, batch, config.temperature, config.kd_weight)

        record: dict[str, Any] = {
            "teacher": ctx.base.info.id,
            "teacher_hash": ctx.base.info.content_hash,
            "trainable_parameters": trainable_parameters(student),
        }
        stats = train(student, train_blocks, config, loss_fn=loss_fn, desc="distill", show_progress=ctx.show_progress)
        stats["kd_loss_first"] = stats.pop("train_loss_first")
        stats["kd_loss_last"] = stats.pop("train_loss_last")
        record.update(stats)
        result = student.merge_and_unload() if config.trainable == "lora" else student
        for p in result.parameters():
            p.requires_grad_(False)
        del teacher
        after = heldout_loss(result, eval_blocks, config.batch_size)
        record.update(heldout_record(before, after))
        record.update(source.record())
        return StepOutcome(model=result, record=record, notes=source.notes())
