"""A throwaway compression method, task and efficiency backend, each one module-level class plus one
registry entry, exactly as the steps in ``harness``'s docstring say. ``test_adding_things.py`` registers
them and runs them through ``kompakt bench`` on the tiny model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from harness.build.methods import Method, MethodConfig, StepContext, StepOutcome
from harness.measure.backends.base import BackendConfig
from harness.measure.tasks.base import Task, TaskContext, TaskPayload
from kompakt.methods import MethodInfo
from kompakt.profiles import Profile
from kompakt.results import Perplexity
from kompakt.tasks import TaskInfo


# --------------------------------------------------------------------------- a method


class ShrinkHeadConfig(MethodConfig):
    factor: float = Field(default=0.5, gt=0, le=1, description="Factor applied to the final norm's weight.")


class ShrinkHead(Method):
    """Scales the final RMSNorm's weight: changes the logits, keeps the architecture."""

    name = "shrink_head"
    Config = ShrinkHeadConfig
    stage = "transform"

    def apply(self, model: Any, config: ShrinkHeadConfig, ctx: StepContext) -> StepOutcome:
        import torch

        with torch.no_grad():
            model.model.norm.weight.mul_(config.factor)
        return StepOutcome(model=model, record={"scaled": "model.norm.weight"})


METHOD_ENTRY = MethodInfo("shrink_head", "pruning", "Shrink head", "Test method: scales the final norm.", "plugin_example:ShrinkHead")


# --------------------------------------------------------------------------- a task


TEXT = "The quick brown fox jumps over the lazy dog. " * 8


class SentencePerplexity(Task):
    """Token perplexity of one fixed sentence, scored whole."""

    name = "sentence_ppl"

    def fingerprint(self, data_dir: Path | str | None = None) -> str:
        import hashlib

        return hashlib.sha256(TEXT.encode()).hexdigest()[:16]

    def run(self, ctx: TaskContext) -> TaskPayload:
        from harness.measure.tasks.token_perplexity import token_perplexity

        ids = ctx.tokenizer(TEXT).input_ids
        res = token_perplexity(ctx.model, ctx.tokenizer, TEXT, context_length=len(ids), progress_desc=self.name)
        return TaskPayload(perplexity=[Perplexity(task=self.name, token_perplexity=res.perplexity, context_length=res.context_length)])


SENTENCE_PPL = SentencePerplexity()
TASK_ENTRY = TaskInfo("sentence_ppl", "One sentence", "sentence PPL", "perplexity", "plugin_example:SENTENCE_PPL", "token_perplexity")


# --------------------------------------------------------------------------- a backend


class LoopConfig(BackendConfig):
    use_cache: bool = Field(default=True, description="Keep the KV cache between steps.")


class LoopBackend:
    """Greedy decoding in a plain Python loop over the model's forward (no ``generate``)."""

    name: ClassVar[str] = "loop"
    formats: ClassVar[tuple[str, ...]] = ("hf",)
    Config: ClassVar[type[LoopConfig]] = LoopConfig

    def __init__(self, model: Any, config: LoopConfig, source: Path | None = None):
        self.model, self.config, self.source = model.eval(), config, source
        self.device = "cpu"
        self.vocab_size = model.config.vocab_size
        self.max_context = model.config.max_position_embeddings
        self.special_ids = [i for i in (model.config.bos_token_id, model.config.eos_token_id) if i is not None]
        self.load_notes: list[str] = []

    @classmethod
    def available(cls) -> tuple[bool, str | None]:
        return True, None

    @classmethod
    def load(cls, path: Path, profile: Profile, config: LoopConfig) -> "LoopBackend":
        from transformers import AutoModelForCausalLM

        return cls(AutoModelForCausalLM.from_pretrained(path, dtype=profile.dtype), config, path)

    def settings(self) -> dict[str, str]:
        return {"backend": self.name, "use_cache": str(self.config.use_cache)}

    def describe(self) -> str:
        return "a Python loop over forward()"

    def versions(self) -> dict[str, str]:
        return {}

    def weights_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    def disk_bytes(self) -> int | None:
        return None

    def supported_batch_sizes(self, sizes: list[int]) -> tuple[list[int], list[str]]:
        return [1], [f"the loop backend times batch 1 only, not {[s for s in sizes if s != 1]}"] if any(s != 1 for s in sizes) else []

    def prefill(self, prompt: list[list[int]]) -> float:
        import torch

        t0 = time.perf_counter()
        with torch.inference_mode():
            self.model(input_ids=torch.tensor(prompt))
        return time.perf_counter() - t0

    def generate(self, prompt: list[list[int]], new_tokens: int) -> list[float]:
        import torch

        from harness.measure.lm_eval_model import cache_keyword

        stamps = [time.perf_counter()]
        ids, past = torch.tensor(prompt), None
        kw = cache_keyword(self.model)  # `cache` in newer transformers, `past_key_values` before
        with torch.inference_mode():
            for _ in range(new_tokens):
                out = self.model(input_ids=ids if past is None or not self.config.use_cache else ids[:, -1:],
                                 use_cache=self.config.use_cache, **{kw: past})
                past = getattr(out, kw) if self.config.use_cache else None
                ids = torch.cat([ids, out.logits[:, -1:].argmax(-1)], dim=1)
                stamps.append(time.perf_counter())
        return stamps

    def close(self) -> None:
        self.model = None


BACKEND_ENTRY = ("loop", "plugin_example:LoopBackend")
