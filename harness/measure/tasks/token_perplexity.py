"""Token-level perplexity at a fixed context length, as quantization papers quote it.

The protocol of GPTQ, AWQ, SparseGPT and most papers after them: the
WikiText-2 raw test split, lines joined with ``"\\n\\n"`` (each line as the
hub data set holds it: with its newline, blank lines empty), tokenized once
(with the tokenizer's default special tokens), cut into non-overlapping
windows of ``context_length`` tokens (the rest dropped), each window scored
on its own, and ``exp`` of the mean token negative log-likelihood.

It depends on the tokenizer and the context length, so it is only comparable
within one base model and one length; it is recorded as ``token_perplexity``
with its ``context_length`` under its own task name, never as lm-eval's word
perplexity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kompakt.results import Perplexity

from harness.measure.tasks.base import Task, TaskContext, TaskPayload

TASK_NAME = "wikitext2_tokens"
RAW_FILE = "wikitext2/wiki.test.raw"
DEFAULT_CONTEXT = 2048
PROTOCOL_NOTE = (
    "Token perplexity (not lm-eval's word perplexity): WikiText-2 raw test, lines joined with two newlines "
    "as in GPTQ, non-overlapping windows of {ctx} tokens, mean token NLL over {n} windows{lim}."
)


@dataclass
class TokenPerplexity:
    perplexity: float
    context_length: int
    windows: int
    windows_total: int
    tokens: int
    note: str


def wikitext2_text(data_dir: Path | str | None = None) -> str:
    """The test split as ``"\\n\\n".join(dataset["text"])`` of wikitext-2-raw-v1."""
    from harness.measure.tasks.lm_eval_tasks import data_root

    path = data_root(data_dir) / RAW_FILE
    if not path.is_file():
        raise FileNotFoundError(f"token perplexity needs {RAW_FILE} under the data folder {data_root(data_dir)} (see its SOURCES.md)")
    raw = path.read_text(encoding="utf-8")
    rows = [row if row.strip() else "" for row in raw.splitlines(keepends=True)]
    return "\n\n".join(rows)


def token_perplexity(
    model: Any,
    tokenizer: Any,
    text: str,
    *,
    context_length: int = DEFAULT_CONTEXT,
    limit: int | None = None,
    progress_desc: str = "token perplexity",
    device: Any = None,
) -> TokenPerplexity:
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    max_pos = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if max_pos and context_length > max_pos:
        raise ValueError(f"context length {context_length} exceeds the model's {max_pos} positions")
    ids = tokenizer(text, return_tensors="pt").input_ids[0]
    total = ids.numel() // context_length
    if total == 0:
        raise ValueError(f"text of {ids.numel()} tokens is shorter than one window of {context_length}")
    n = min(total, limit) if limit else total
    device = device or next(model.parameters()).device
    nll_sum = 0.0
    with torch.inference_mode():
        for i in tqdm(range(n), desc=progress_desc, dynamic_ncols=True):
            window = ids[i * context_length : (i + 1) * context_length].unsqueeze(0).to(device)
            logits = model(input_ids=window).logits[0, :-1].float()
            nll_sum += float(F.cross_entropy(logits, window[0, 1:], reduction="mean"))
    ppl = math.exp(nll_sum / n)
    lim = f" (the first {n} of {total}: --limit)" if n < total else ""
    return TokenPerplexity(ppl, context_length, n, total, int(ids.numel()), PROTOCOL_NOTE.format(ctx=context_length, n=n, lim=lim))


class TokenPerplexityTask(Task):
    """The token perplexity of WikiText-2 at ``--ppl-context`` tokens, as a task of ``kompakt bench``."""

    name = TASK_NAME

    def available(self, data_dir: Path | str | None = None) -> bool:
        from harness.measure.tasks.lm_eval_tasks import data_root

        return (data_root(data_dir) / RAW_FILE).is_file()

    def fingerprint(self, data_dir: Path | str | None = None) -> str:
        from harness.measure.tasks.lm_eval_tasks import data_root, file_sha256

        raw = data_root(data_dir) / RAW_FILE
        return file_sha256(raw)[:16] if raw.is_file() else "missing"

    def cache_settings(self, config: Any) -> dict[str, Any]:
        return {"ppl_context": config.ppl_context}

    def run(self, ctx: TaskContext) -> TaskPayload:
        config = ctx.config
        res = token_perplexity(ctx.model, ctx.tokenizer, wikitext2_text(config.data_dir), context_length=config.ppl_context,
                               limit=config.limit_for(TASK_NAME), progress_desc=f"{ctx.progress_prefix}{TASK_NAME}")
        entry = Perplexity(
            task=TASK_NAME,
            token_perplexity=res.perplexity,
            context_length=res.context_length,
            limit=res.windows if res.windows < res.windows_total else None,
            notes=res.note,
        )
        return TaskPayload(perplexity=[entry], extra={"n": res.windows})


WIKITEXT2_TOKENS = TokenPerplexityTask()
