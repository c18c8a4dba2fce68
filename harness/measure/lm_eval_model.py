"""kompakt's lm-eval model backend: shared contexts computed once, continuations scored from the cache.

Multiple-choice tasks ask for the log-likelihood of several continuations of
one context. lm-eval's ``HFLM`` runs ``context + continuation`` through the
model once per choice, so the (often long) context is computed again for each
choice. ``KompaktLM`` subclasses ``HFLM`` and replaces only the scoring:

1. Tokenization is ``HFLM``'s own (``_encode_pair``, BOS handling, left
   truncation to ``max_length``), so the token sequences scored are exactly
   those ``HFLM`` scores.
2. Consecutive requests whose inputs share a prefix (the choices of one
   question; for WinoGrande the sentence up to the blank) form a group. The
   shared prefix runs once (batch 1, its key/value cache kept); the rest of each
   request runs as one batch on top of that cache, expanded over the batch.
3. The cache of the last prefix is kept: the next group's prefix reuses its
   longest common prefix (TruthfulQA's six-question primer is computed once
   per task, not once per choice).
4. Sharing is decided per group from the requests themselves
   (:func:`sharing_pays`): a shared group takes two forward calls (its prefix,
   then its tails) where plain batches take a fraction of one, so it must save
   more tokens than those calls cost. Every forward call pays a fixed price
   (reading every weight once, dispatching every layer) worth
   :data:`CALL_COST_TOKENS` tokens of computation. WinoGrande's two options share
   only the words before the blank (about 10 tokens): plain batches win there.
   ARC's and HellaSwag's choices share a question or a sentence of 16 to 40
   tokens four times over, TruthfulQA's its primer of ~190 tokens: those are
   shared. No task name is consulted.
5. Requests that are not shared (rolling windows of wikitext, groups that do
   not pay) run as ordinary right-padded batches, longest first, as in ``HFLM``.

The language-model head is applied only to the positions that are scored, for
all requests of a forward call at once, in chunks, so a long rolling window does
not hold a ``[seq, vocab]`` logits tensor per batch row (``HFLM`` applies it to
every position of every row). Log-softmax is taken in float32.

The result of each request equals ``HFLM``'s up to float rounding (the same
tokens and the same positions; only the order of floating point operations
differs); ``tests/harness/test_eval_backend.py`` checks this to 1e-4.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval import utils as lm_utils
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

log = logging.getLogger(__name__)

#: Below this many shared tokens a group is not worth a second forward call.
MIN_SHARED_TOKENS = 4
#: Reuse the previous prefix's cache only when at least this many tokens match.
MIN_REUSED_TOKENS = 8
#: Positions passed through the LM head at once (bounds the logits tensor).
HEAD_CHUNK = 1024
#: The fixed price of one forward call, in tokens of computation: a call of ``n`` tokens costs about
#: ``CALL_COST_TOKENS + n`` token-times. Measured on the embedded SmolLM2-135M (float32, 2 CPU threads):
#: a decoder call over B x L tokens takes about a + b * B * L, with a / b between 20 and 40 (see the README's
#: lm-eval backend benchmark); the larger end is used, so that a group is shared only when it clearly pays.
CALL_COST_TOKENS = 40


def sharing_pays(k: int, shared: int, reused: int, batch_rows: int, call_cost: float = CALL_COST_TOKENS) -> bool:
    """Whether scoring ``k`` requests that share their first ``shared`` input tokens as a group costs less than
    putting them into plain batches of ``batch_rows`` rows.

    Shared: the prefix runs once (``reused`` of its tokens are still in the cache from the previous group), then
    the tails, in two forward calls. Plain: every request runs whole, ``k / batch_rows`` of a call. The group saves
    ``(k - 1) * shared + reused`` tokens and costs ``2 - k / batch_rows`` extra calls of ``call_cost`` tokens each.
    """
    if k < 2:
        return False
    saved = (k - 1) * shared + reused
    extra_calls = 2 - min(k, batch_rows) / batch_rows
    return saved > call_cost * extra_calls


def cache_keyword(module: Any) -> str:
    """The name under which ``module``'s forward takes and returns the key/value cache: ``cache`` in transformers
    releases that renamed it (``past_key_values`` warns there and is removed in 5.40), ``past_key_values`` before.
    Read from the signature, so that a cache passed under a name the model no longer knows cannot vanish into its
    ``**kwargs`` (the continuation would then be scored from position 0, silently wrong)."""
    import inspect

    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


@dataclass
class _Item:
    index: int
    x: list[int]  # model input: (context + continuation)[-(max_length + 1):][:-1]
    cont: list[int]  # continuation tokens (targets of the last len(cont) positions)
    request: Any  # (context, continuation) strings, or None for rolling windows

    @property
    def ctx_len(self) -> int:
        """Length of the input part that is pure context (at least 1)."""
        return len(self.x) - len(self.cont) + 1


def _common_prefix(a: list[int], b: list[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@register_model("kompakt")
class KompaktLM(HFLM):
    """``HFLM`` with shared-prefix scoring (see the module docstring).

    Extra arguments: ``prefix_sharing`` (default True; False gives plain
    batched scoring, as ``HFLM`` but with the memory-lean head),
    ``call_cost_tokens`` (the price of a forward call in tokens, :data:`CALL_COST_TOKENS`;
    0 shares every group), ``max_batch_tokens`` (padded tokens per plain batch), and
    ``progress_desc`` (the label of the progress bar, settable between tasks).
    """

    def __init__(
        self,
        *args: Any,
        prefix_sharing: bool = True,
        max_batch_tokens: int = 16384,
        progress_desc: str = "scoring",
        call_cost_tokens: float = CALL_COST_TOKENS,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.prefix_sharing = bool(prefix_sharing)
        self.call_cost_tokens = float(call_cost_tokens)
        self.max_batch_tokens = int(max_batch_tokens)
        self.progress_desc = progress_desc
        self._parts = self._split_model()
        self._cache_kw = cache_keyword(self._parts[0] if self._parts is not None else self.model)
        if self.prefix_sharing and not self._cache_reusable():
            log.info("prefix sharing disabled: the model's cache cannot be reused safely")
            self.prefix_sharing = False
        self._last_prefix: tuple[list[int], Any] | None = None
        self.stats = {"forward_calls": 0, "tokens_computed": 0, "tokens_requested": 0, "groups_shared": 0, "groups_plain": 0}

    # ------------------------------------------------------------------ model parts

    def _split_model(self) -> tuple[Any, Any] | None:
        """(decoder, lm_head) when logits are exactly ``lm_head(decoder(x))``; None otherwise."""
        model = self.model
        cfg = getattr(model, "config", None)
        if self.backend != "causal" or cfg is None:
            return None
        for attr in ("final_logit_softcapping", "logit_scale", "output_multiplier_scale", "logits_scaling"):
            if getattr(cfg, attr, None) not in (None, 1, 1.0):
                return None
        try:
            decoder = model.get_decoder()
            head = model.get_output_embeddings()
        except (AttributeError, NotImplementedError):
            return None
        if decoder is None or head is None or decoder is model:
            return None
        return decoder, head

    def _cache_reusable(self) -> bool:
        cfg = getattr(self.model, "config", None)
        if self.backend != "causal" or cfg is None:
            return False
        layer_types = getattr(cfg, "layer_types", None) or []
        if any(t != "full_attention" for t in layer_types):
            return False  # sliding windows, linear attention: cropping is not exact
        if getattr(cfg, "use_sliding_window", False) and getattr(cfg, "sliding_window", None):
            return False
        return True

    def _forward(self, input_ids: torch.Tensor, past: Any = None, use_cache: bool = False) -> tuple[torch.Tensor, Any]:
        """Hidden states (or logits, when the model cannot be split) and the cache."""
        self.stats["forward_calls"] += 1
        self.stats["tokens_computed"] += int(input_ids.numel())
        with torch.inference_mode(), torch.autocast(
            device_type=self.device.type, dtype=self.mixed_precision_dtype, enabled=self.mixed_precision_dtype is not None
        ):
            cache = {self._cache_kw: past}
            if self._parts is not None:
                out = self._parts[0](input_ids=input_ids, use_cache=use_cache, **cache)
                return out.last_hidden_state, getattr(out, self._cache_kw, None)
            out = self.model(input_ids=input_ids, use_cache=use_cache, **cache)
            return out.logits, getattr(out, self._cache_kw, None)

    def _score_rows(self, rows: torch.Tensor, targets: list[int]) -> tuple[float, bool]:
        """Sum of log-probs of ``targets`` at ``rows`` (hidden states or logits) and whether all are greedy."""
        return self._score_many([(rows, targets)])[0]

    def _score_many(self, pieces: list[tuple[torch.Tensor, list[int]]]) -> list[tuple[float, bool]]:
        """:meth:`_score_rows` for several requests at once: their rows go through the LM head together, in chunks."""
        if not pieces:
            return []
        rows = torch.cat([r for r, _ in pieces], dim=0) if len(pieces) > 1 else pieces[0][0]
        tgt = torch.tensor([t for _, ts in pieces for t in ts], dtype=torch.long, device=rows.device)
        logps, hits = [], []
        with torch.inference_mode():
            for s in range(0, rows.shape[0], HEAD_CHUNK):
                chunk = rows[s : s + HEAD_CHUNK]
                logits = self._parts[1](chunk) if self._parts is not None else chunk
                logp = F.log_softmax(logits.float(), dim=-1)
                t = tgt[s : s + HEAD_CHUNK]
                logps.append(logp.gather(1, t.unsqueeze(1)).squeeze(1))
                hits.append(logp.argmax(dim=-1) == t)
        logp_all, hit_all = torch.cat(logps), torch.cat(hits)
        out, start = [], 0
        for _, ts in pieces:
            end = start + len(ts)
            out.append((float(logp_all[start:end].sum()), bool(hit_all[start:end].all())))
            start = end
        return out

    # ------------------------------------------------------------------ lm-eval API

    def _loglikelihood_tokens(  # type: ignore[override]
        self,
        requests: list[tuple[tuple[str, str] | None, list[int], list[int]]],
        disable_tqdm: bool = False,
        override_bs: int | None = None,
    ) -> list[tuple[float, bool]]:
        if self.backend != "causal":
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        items = []
        for i, (req, ctx, cont) in enumerate(requests):
            assert len(ctx) > 0 and len(cont) > 0 and len(cont) <= self.max_length
            x = (ctx + cont)[-(self.max_length + 1) :][:-1]
            items.append(_Item(i, x, cont, req))
        results: list[tuple[float, bool] | None] = [None] * len(items)
        pbar = tqdm(total=len(items), desc=self.progress_desc, disable=disable_tqdm or self.rank != 0, dynamic_ncols=True)
        singles: list[_Item] = []
        rows = self.batch_size if isinstance(self.batch_size, int) and self.batch_size > 0 else (override_bs or 16)
        for group, shared in self._groups(items):
            if len(group) == 1:
                singles.append(group[0])
                continue
            if not sharing_pays(len(group), shared, self._reusable(group[0].x[:shared]), rows, self.call_cost_tokens):
                self.stats["groups_plain"] += 1
                singles.extend(group)
                continue
            self.stats["groups_shared"] += 1
            for item, answer in self._score_group(group, shared):
                results[item.index] = answer
                self._cache_answer(item, answer)
            pbar.update(len(group))
        self._last_prefix = None  # do not hold a cache between calls
        for item, answer in self._score_plain(singles, override_bs):
            results[item.index] = answer
            self._cache_answer(item, answer)
            pbar.update(1)
        pbar.close()
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Whole-document log-likelihood with lm-eval's standard disjoint rolling windows."""
        windows: list[tuple[None, list[int], list[int]]] = []
        owner: list[int] = []
        for r, (text,) in enumerate(req.args for req in requests):
            for ctx, cont in map(
                lm_utils.make_disjoint_window,
                lm_utils.get_rolling_token_windows(
                    token_list=self.tok_encode(text), prefix_token=self.prefix_token_id, max_seq_len=self.max_length, context_len=1
                ),
            ):
                windows.append((None, ctx, cont))
                owner.append(r)
        scores = self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm)
        totals = [0.0] * len(requests)
        for r, (ll, _) in zip(owner, scores, strict=True):
            totals[r] += ll
        for req, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    def _cache_answer(self, item: _Item, answer: tuple[float, bool]) -> None:
        self.stats["tokens_requested"] += len(item.x)
        if item.request is not None:
            self.cache_hook.add_partial("loglikelihood", item.request, answer)

    # ------------------------------------------------------------------ grouping

    def _groups(self, items: list[_Item]):
        """Consecutive items sharing a prefix, with the shared length (never past any item's context)."""
        if not self.prefix_sharing:
            for it in items:
                yield [it], it.ctx_len
            return
        group: list[_Item] = []
        shared = 0
        for it in items:
            if group:
                ref = group[0].x
                common = _common_prefix(ref, it.x, min(shared, it.ctx_len))
                worth = common >= MIN_SHARED_TOKENS and 4 * common >= min(len(ref), len(it.x))
                if worth and (len(group) == 1 or common >= shared):
                    group.append(it)
                    shared = common
                    continue
                yield group, shared
            group, shared = [it], it.ctx_len
        if group:
            yield group, shared

    # ------------------------------------------------------------------ scoring

    def _reusable(self, prefix: list[int]) -> int:
        """Tokens of ``prefix`` the kept cache of the previous shared prefix already holds (0 below MIN_REUSED_TOKENS)."""
        if self._last_prefix is None:
            return 0
        common = _common_prefix(self._last_prefix[0], prefix, len(prefix) - 1)
        return common if common >= MIN_REUSED_TOKENS else 0

    def _prefix_cache(self, prefix: list[int]) -> tuple[torch.Tensor, Any]:
        """Run ``prefix`` (reusing the previous prefix's cache where they agree); return its last row and cache."""
        cache = None
        start = 0
        if self._last_prefix is not None:
            old_tokens, old_cache = self._last_prefix
            common = _common_prefix(old_tokens, prefix, len(prefix) - 1)
            if common >= MIN_REUSED_TOKENS:
                if common < len(old_tokens):
                    old_cache.crop(common - len(old_tokens))
                cache, start = old_cache, common
        ids = torch.tensor([prefix[start:]], dtype=torch.long, device=self.device)
        hidden, cache = self._forward(ids, past=cache, use_cache=True)
        self._last_prefix = (list(prefix), cache)
        return hidden[0, -1:], cache

    def _score_group(self, group: list[_Item], shared: int):
        prefix = group[0].x[:shared]
        last_row, cache = self._prefix_cache(prefix)
        per_token = self._cache_bytes_per_token(cache)
        max_rows = self.batch_size if isinstance(self.batch_size, int) and self.batch_size > 0 else 16
        while max_rows > 1 and max_rows * shared * per_token > 1 << 29:  # keep an expanded cache under 512 MiB
            max_rows //= 2
        for s in range(0, len(group), max_rows):
            part = group[s : s + max_rows]
            tails = [it.x[shared:] for it in part]
            width = max(len(t) for t in tails)
            hidden = None
            if width > 0:
                pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
                ids = torch.tensor([t + [pad] * (width - len(t)) for t in tails], dtype=torch.long, device=self.device)
                expanded = copy.deepcopy(cache)
                expanded.batch_repeat_interleave(len(part))
                hidden, _ = self._forward(ids, past=expanded, use_cache=True)
                del expanded
            pieces = []
            for row, it in enumerate(part):
                tail = hidden[row, : len(it.x) - shared] if hidden is not None else last_row[:0]
                rows = torch.cat([last_row, tail], dim=0)  # positions shared-1 .. len(x)-1
                first = it.ctx_len - shared  # position ctx_len-1 in row coordinates
                pieces.append((rows[first : first + len(it.cont)], it.cont))
            yield from zip(part, self._score_many(pieces))

    @staticmethod
    def _cache_bytes_per_token(cache: Any) -> int:
        try:
            layers = cache.layers
            return max(1, sum(layer.keys[0, :, :1].numel() * layer.keys.element_size() * 2 for layer in layers))
        except Exception:  # unknown cache layout: assume a large model
            return 1 << 20

    def _score_plain(self, items: list[_Item], override_bs: int | None):
        """Right-padded batches, longest first, as ``HFLM`` does (no cache)."""
        order = sorted(items, key=lambda it: -len(it.x))
        limit = self.batch_size if isinstance(self.batch_size, int) and self.batch_size > 0 else (override_bs or 16)
        i = 0
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        while i < len(order):
            width = len(order[i].x)
            n = max(1, min(limit, self.max_batch_tokens // max(width, 1)))
            batch = order[i : i + n]
            i += n
            ids = torch.tensor([it.x + [pad] * (width - len(it.x)) for it in batch], dtype=torch.long, device=self.device)
            hidden, _ = self._forward(ids)
            pieces = [(hidden[row, it.ctx_len - 1 : it.ctx_len - 1 + len(it.cont)], it.cont) for row, it in enumerate(batch)]
            yield from zip(batch, self._score_many(pieces))
