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

A GGUF variant is scored on llama.cpp's own logits (its kernels, which also round the
activations to 8 bits inside quantized matrix products), the same token ids per window
(:meth:`harness.measure.backends.llamacpp.LlamaCppBackend.window_nll`), where
llama-cpp-python is installed; without it, on transformers' dequantization of the file,
and the note says so.
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


def _windows(tokenizer: Any, text: str, context_length: int, limit: int | None) -> tuple[Any, int, int]:
    """The token ids of ``text``, the number of whole windows and how many are scored."""
    ids = tokenizer(text, return_tensors="pt").input_ids[0]
    total = ids.numel() // context_length
    if total == 0:
        raise ValueError(f"text of {ids.numel()} tokens is shorter than one window of {context_length}")
    return ids, total, min(total, limit) if limit else total


def _result(nll_sum: float, n: int, total: int, ids: Any, context_length: int, engine: str = "") -> TokenPerplexity:
    lim = f" (the first {n} of {total}: --limit)" if n < total else ""
    note = PROTOCOL_NOTE.format(ctx=context_length, n=n, lim=lim) + (f" {engine}" if engine else "")
    return TokenPerplexity(math.exp(nll_sum / n), context_length, n, total, int(ids.numel()), note)


def llamacpp_token_perplexity(
    path: Path,
    tokenizer: Any,
    text: str,
    *,
    context_length: int = DEFAULT_CONTEXT,
    limit: int | None = None,
    threads: int | None = None,
    progress_desc: str = "token perplexity",
) -> TokenPerplexity:
    """The token perplexity of a GGUF file from llama.cpp's logits, on the same windows of the same token ids."""
    import importlib.metadata

    from tqdm import tqdm

    from harness.measure.backends.llamacpp import LlamaCppBackend

    ids, total, n = _windows(tokenizer, text, context_length, limit)
    backend = LlamaCppBackend(Path(path), threads=threads)
    try:
        if backend.max_context and context_length > backend.max_context:
            raise ValueError(f"context length {context_length} exceeds the model's {backend.max_context} positions")
        nll_sum = 0.0
        for i in tqdm(range(n), desc=progress_desc, dynamic_ncols=True):
            nll_sum += backend.window_nll(ids[i * context_length : (i + 1) * context_length].tolist())
        engine = (f"Scored on llama.cpp's own logits (llama-cpp-python {importlib.metadata.version('llama-cpp-python')}, "
                  f"{backend.threads} threads; its quantized matrix products round the activations to 8 bits).")
    finally:
        backend.close()
    return _result(nll_sum, n, total, ids, context_length, engine)


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
    ids, total, n = _windows(tokenizer, text, context_length, limit)
    device = device or next(model.parameters()).device
    nll_sum = 0.0
    with torch.inference_mode():
        for i in tqdm(range(n), desc=progress_desc, dynamic_ncols=True):
            window = ids[i * context_length : (i + 1) * context_length].unsqueeze(0).to(device)
            logits = model(input_ids=window).logits[0, :-1].float()
            nll_sum += float(F.cross_entropy(logits, window[0, 1:], reduction="mean"))
    return _result(nll_sum, n, total, ids, context_length)


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

    def artifact_settings(self, artifact: Any) -> dict[str, Any]:
        return {"logits": self.engine(artifact)} if getattr(artifact, "format", None) == "gguf" else {}

    @staticmethod
    def engine(artifact: Any) -> str:
        """Whose logits score a GGUF variant: ``llama.cpp`` where llama-cpp-python is installed, else ``transformers``."""
        import importlib.util

        return "llama.cpp" if importlib.util.find_spec("llama_cpp") is not None else "transformers"

    def run(self, ctx: TaskContext) -> TaskPayload:
        config = ctx.config
        common = {"context_length": config.ppl_context, "limit": config.limit_for(TASK_NAME),
                  "progress_desc": f"{ctx.progress_prefix}{TASK_NAME}"}
        text = wikitext2_text(config.data_dir)
        if getattr(ctx.artifact, "format", None) == "gguf" and self.engine(ctx.artifact) == "llama.cpp":
            res = llamacpp_token_perplexity(Path(ctx.artifact.model_path), ctx.tokenizer, text, threads=config.threads, **common)
        else:
            res = token_perplexity(ctx.model, ctx.tokenizer, text, **common)
            if getattr(ctx.artifact, "format", None) == "gguf":
                res.note += (" Scored on transformers' dequantization of the GGUF file, not llama.cpp's logits: "
                             "llama-cpp-python is not installed (scripts/build-llamacpp.sh).")
        entry = Perplexity(
            task=TASK_NAME,
            token_perplexity=res.perplexity,
            context_length=res.context_length,
            limit=res.windows if res.windows < res.windows_total else None,
            notes=res.note,
        )
        return TaskPayload(perplexity=[entry], extra={"n": res.windows})


WIKITEXT2_TOKENS = TokenPerplexityTask()
