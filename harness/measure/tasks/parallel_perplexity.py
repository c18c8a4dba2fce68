"""Parallel-text perplexity: the same passages in English and German, scored the same way.

Belebele's 900 questions rest on 488 FLORES-200 passages, and its English and German files
hold the same passages (human translations of each other) in the same order, with the same
links. This task takes each passage once (deduplicated by its link: several questions share
one passage), and scores every passage **whole, from its first token**: the passage's tokens
(the tokenizer's ``add_special_tokens=False``), preceded by one prefix token as lm-eval's
rolling log-likelihood does (the tokenizer's BOS token, else its EOS token), so the first
token is predicted too and no window ever crosses from one passage into the next. Both
languages are thus cut at exactly the same points, and differ only in their language.

Per language it records the token perplexity (exp of the total negative log-likelihood over
the tokens), the word perplexity (over whitespace-separated words), bits per byte, and the
tokens per word (German usually costs more tokens per word). The leaderboard divides each
language's perplexity by the reference's and the German ratio by the English one
(``leaderboard.languages``): above 1, the method hurts German more than English.

``--limit N`` scores the first N passages (the same ones in every language). The entries are
stored as ``flores_ppl_<language>`` with ``parallel_language`` set, under the ``parallel_``
metrics, never mixed with the WikiText perplexities. Adding a language: one more file in
:data:`FILES` and one more language in the catalogue entry's ``languages``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kompakt.results import Perplexity
from kompakt.tasks import TASKS, parallel_entries

from harness.measure.tasks.base import Task, TaskContext, TaskError, TaskPayload

TASK_NAME = "flores_ppl"
#: Language -> Belebele's file of that language under the data folder (SOURCES.md).
FILES = {
    "eng_Latn": "belebele_eng_Latn/test.jsonl",
    "deu_Latn": "german/belebele_deu_Latn/test.jsonl",
}
NOTE = (
    "Parallel-text perplexity: {n} of Belebele's {total} FLORES passages ({lang}), each scored whole from its first token "
    "after one prefix token ({prefix}), no window crossing passages; {tpw:.3f} tokens per word.{lim}"
)


@dataclass(frozen=True)
class PassageScore:
    """The perplexity of a set of passages in one language."""

    token_perplexity: float
    """exp(total NLL / tokens)."""
    word_perplexity: float
    """exp(total NLL / whitespace-separated words)."""
    bits_per_byte: float
    """Total NLL in bits / UTF-8 bytes."""
    passages: int
    """Passages scored."""
    tokens: int
    """Tokens scored (the prefix token is context, not scored)."""
    words: int
    """Whitespace-separated words."""
    longest: int
    """The longest sequence run through the model: prefix plus the longest passage, in tokens."""

    @property
    def tokens_per_word(self) -> float:
        return self.tokens / self.words


def read_passages(path: Path) -> list[tuple[str, str]]:
    """(link, passage) of every distinct passage of a Belebele file, in file order (questions sharing a passage share its link)."""
    seen: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                link, text = row["link"], row["flores_passage"]
            except (ValueError, KeyError, TypeError) as err:
                raise TaskError(f"{path}: line {i}: not a Belebele record with 'link' and 'flores_passage' ({err})") from None
            if not isinstance(text, str) or not text.strip():
                raise TaskError(f"{path}: line {i}: field 'flores_passage' is empty")
            if link in seen and seen[link] != text:
                raise TaskError(f"{path}: line {i}: link {link!r} names two different passages")
            seen.setdefault(link, text)
    return list(seen.items())


def parallel_passages(data_dir: Path | str | None = None, languages: tuple[str, ...] | None = None) -> dict[str, list[str]]:
    """Language -> its passages, aligned: the i-th passage of every language is the same FLORES passage (same link)."""
    from harness.measure.tasks.lm_eval_tasks import data_root

    root = data_root(data_dir)
    languages = languages or tuple(FILES)
    by_language = {}
    for lang in languages:
        if lang not in FILES:
            raise TaskError(f"{TASK_NAME}: no Belebele file known for language {lang!r}; known: {', '.join(FILES)}")
        path = root / FILES[lang]
        if not path.is_file():
            raise TaskError(f"{TASK_NAME} needs {FILES[lang]} under the data folder {root} (see its SOURCES.md)")
        by_language[lang] = read_passages(path)
    first, *others = languages
    links = [link for link, _ in by_language[first]]
    for lang in others:
        if [link for link, _ in by_language[lang]] != links:
            raise TaskError(f"{TASK_NAME}: the {lang} passages are not the {first} passages in the same order (their links differ)")
    return {lang: [text for _, text in by_language[lang]] for lang in languages}


def prefix_token(tokenizer: Any) -> tuple[int, str]:
    """lm-eval's prefix for a rolling log-likelihood: the BOS token, else the EOS token (id and text)."""
    for attr in ("bos_token", "eos_token"):
        tok_id = getattr(tokenizer, f"{attr}_id", None)
        if tok_id is not None:
            return int(tok_id), str(getattr(tokenizer, attr))
    raise TaskError("the tokenizer has neither a BOS nor an EOS token to put before each passage")


def passage_perplexity(model: Any, tokenizer: Any, passages: list[str], *, batch_size: int = 8,
                       progress_desc: str = "passages", device: Any = None) -> PassageScore:
    """Score each passage whole from its first token (after the prefix token); sums over all passages."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    if not passages:
        raise ValueError("no passages to score")
    prefix, _ = prefix_token(tokenizer)
    seqs = [[prefix, *tokenizer(p, add_special_tokens=False).input_ids] for p in passages]
    longest = max(len(s) for s in seqs)
    max_pos = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if max_pos and longest > max_pos:
        raise ValueError(f"a passage of {longest} tokens exceeds the model's {max_pos} positions")
    device = device or next(model.parameters()).device
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))  # similar lengths share a batch: little padding
    nll = 0.0
    with torch.inference_mode(), tqdm(total=len(seqs), desc=progress_desc, dynamic_ncols=True) as bar:
        for start in range(0, len(order), batch_size):
            batch = [seqs[i] for i in order[start : start + batch_size]]
            width = max(len(s) for s in batch)
            ids = torch.full((len(batch), width), prefix, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, s in enumerate(batch):  # right padding: real tokens keep their positions
                ids[row, : len(s)] = torch.tensor(s)
                mask[row, : len(s)] = 1
            ids, mask = ids.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
            nll += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"))
            bar.update(len(batch))
    tokens = sum(len(s) - 1 for s in seqs)
    words = sum(len(p.split()) for p in passages)
    n_bytes = sum(len(p.encode("utf-8")) for p in passages)
    return PassageScore(math.exp(nll / tokens), math.exp(nll / words), nll / math.log(2) / n_bytes, len(passages), tokens, words, longest)


class ParallelPerplexity(Task):
    """The parallel-text perplexity of Belebele's FLORES passages, one results entry per language."""

    name = TASK_NAME
    batched = True

    @property
    def languages(self) -> tuple[str, ...]:
        return TASKS[self.name].languages

    def available(self, data_dir: Path | str | None = None) -> bool:
        from harness.measure.tasks.lm_eval_tasks import data_root

        return all((data_root(data_dir) / FILES[lang]).is_file() for lang in self.languages)

    def fingerprint(self, data_dir: Path | str | None = None) -> str:
        from harness.measure.tasks.lm_eval_tasks import data_root, file_sha256

        h = hashlib.sha256()
        for lang in self.languages:
            path = data_root(data_dir) / FILES[lang]
            h.update(f"{lang}\0{file_sha256(path) if path.is_file() else 'missing'}\0".encode())
        return h.hexdigest()[:16]

    def run(self, ctx: TaskContext) -> TaskPayload:
        config = ctx.config
        texts = parallel_passages(config.data_dir, self.languages)
        total = len(next(iter(texts.values())))
        limit = config.limit_for(self.name)
        n = min(total, limit) if limit else total
        _, prefix_text = prefix_token(ctx.tokenizer)
        entries = []
        extra: dict[str, Any] = {"n": n}
        for lang, entry in parallel_entries(TASKS[self.name]).items():
            score = passage_perplexity(ctx.model, ctx.tokenizer, texts[lang][:n], batch_size=config.batch_size,
                                       progress_desc=f"{ctx.progress_prefix}{self.name} {lang}")
            lim = f" Only the first {n} passages (--limit)." if n < total else ""
            entries.append(Perplexity(
                task=entry,
                token_perplexity=score.token_perplexity,
                word_perplexity=score.word_perplexity,
                bits_per_byte=score.bits_per_byte,
                context_length=score.longest,
                limit=n if n < total else None,
                parallel_language=lang,
                documents=score.passages,
                tokens=score.tokens,
                words=score.words,
                tokens_per_word=score.tokens_per_word,
                notes=NOTE.format(n=n, total=total, lang=lang, prefix=prefix_text, tpw=score.tokens_per_word, lim=lim),
            ))
            extra[f"tokens_{lang}"] = score.tokens
        return TaskPayload(perplexity=entries, extra=extra)


FLORES_PPL = ParallelPerplexity()
