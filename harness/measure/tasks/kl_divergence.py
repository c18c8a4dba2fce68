"""KL divergence of a variant's next-token distribution from the reference's, on a fixed WikiText-2 slice.

The slice: WikiText-2 raw test, prepared as the token perplexity prepares it (lines joined with two
newlines, tokenized once), cut into non-overlapping windows of ``context`` tokens (512), of which the
first ``windows`` (32) are scored, each on its own: 16,384 next-token distributions. At every position
both models see the same tokens, and the task compares the two distributions there:

- **KL(reference ‖ variant)** per token, in nats; the figures are the mean over tokens with its
  standard error over windows (tokens of one window are not independent, so the standard error is
  the spread of the per-window means divided by the square root of their number), the median and
  the 99th percentile;
- **top-1 agreement**: the share of tokens where both put the same token first.

The reference's distributions are computed once per base model and profile and cached
(``<cache>/reference-distributions/``) in a compact form: per token its ``top_k`` (1024) largest
log-probabilities with their token ids, and the log of the remaining mass ``r``. The KL computed from
that is the KL between the two distributions coarsened to those k tokens plus one bucket for the rest.
By the log-sum inequality it never exceeds the full-vocabulary KL, and it falls short of it by exactly
``r * KL(reference tail ‖ variant tail)`` (each tail renormalised). Every tail probability of the
reference is at most its k-th probability ``p_k``, so that gap is at most
``r * max(0, log(min(1, p_k / r)) - log(q_min / q_rest))`` (``q_rest``: the variant's mass outside the
reference's top k; ``q_min``: its smallest probability there). :func:`token_kl` returns that bound per
token beside the KL and the results file records its mean (``kl_gap_bound``) and the mean remaining mass
(``tail_mass_mean``). The bound holds always but is loose (a single improbable token can carry it); on the
embedded model the recorded KL was 4.5 to 5 % below the full-vocabulary KL at k = 1024 for ``rtn4``,
``rtn8`` and ``bnb-nf4`` (README, Benchmarks).

A variant whose backend gives no next-token logits cannot be measured; the task says so.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.metadata
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kompakt import paths
from kompakt.atomic import atomic_path
from kompakt.results import DistributionDistance

from harness.build.base_model import sha256_file
from harness.measure.tasks.base import Task, TaskContext, TaskError, TaskPayload
from harness.measure.tasks.token_perplexity import TokenPerplexityTask

TASK_NAME = "wikitext2_kl"
#: Version of the slice's definition; bump when what is scored changes.
SLICE_VERSION = "1"
DEFAULT_WINDOWS = 32
DEFAULT_CONTEXT = 512
DEFAULT_TOP_K = 1024


@dataclass(frozen=True)
class KLSlice:
    """What the KL task scores and how much of the reference it keeps."""

    windows: int = DEFAULT_WINDOWS
    """Windows of the slice (the first ones of WikiText-2 test)."""
    context: int = DEFAULT_CONTEXT
    """Tokens per window; each window is scored on its own."""
    top_k: int = DEFAULT_TOP_K
    """Log-probabilities of the reference kept per token."""

    def describe(self, windows: int | None = None) -> str:
        n = self.windows if windows is None else windows
        part = f"the first {n} of the slice's {self.windows} windows" if n < self.windows else f"the first {n} windows"
        return f"WikiText-2 raw test, {part} of {self.context} tokens"


# --------------------------------------------------------------------------- the maths (pure functions)


def reference_summary(logprobs: Any, top_k: int) -> tuple[Any, Any, Any]:
    """The compact form of next-token distributions ``logprobs`` [tokens, vocab] (log-probabilities):
    (the ``top_k`` largest log-probabilities [tokens, k], sorted descending; their token ids; the log of the mass
    outside them [tokens], -inf when k covers the whole vocabulary)."""
    import torch

    k = min(top_k, logprobs.shape[-1])
    top, ids = logprobs.topk(k, dim=-1, sorted=True)
    tail = logprobs.scatter(-1, ids, -math.inf)
    return top, ids, torch.logsumexp(tail, dim=-1)


def token_kl(ref_top: Any, ref_ids: Any, ref_log_rest: Any, logq: Any) -> tuple[Any, Any]:
    """Per token: (KL(reference ‖ variant) over the reference's top k plus one bucket for the rest, in nats; an upper
    bound on how much that falls below the full-vocabulary KL). ``logq`` [tokens, vocab]: the variant's log-probabilities;
    the other three as :func:`reference_summary` returns them. Both in float64."""
    import torch

    lp = ref_top.double()
    lq = logq.gather(-1, ref_ids).double()
    log_q_rest = torch.logsumexp(logq.scatter(-1, ref_ids, -math.inf), dim=-1).double()
    lr = ref_log_rest.double()
    r = lr.exp()
    head = (lp.exp() * (lp - lq)).sum(-1)
    has_tail = r > 0
    tail = torch.where(has_tail, r * (lr - log_q_rest), torch.zeros_like(r))
    kl = (head + tail).clamp(min=0.0)  # a KL is >= 0; rounding can leave -1e-9
    log_q_min = logq.scatter(-1, ref_ids, math.inf).min(-1).values.double() - log_q_rest
    log_p_max = torch.minimum(lp[..., -1] - lr, torch.zeros_like(lr))  # log(min(1, p_k / r)): a tail probability's most
    gap = torch.where(has_tail, r * (log_p_max - log_q_min).clamp(min=0.0), torch.zeros_like(r))
    return kl, gap


@dataclass(frozen=True)
class KLStats:
    """The figures of one variant on the slice."""

    mean: float
    """Mean KL over tokens (nats)."""
    stderr: float | None
    """Standard error of the mean over windows; None with one window."""
    median: float
    p99: float
    top1_agreement: float
    """Share of tokens with the same first token."""
    tokens: int
    windows: int


def kl_stats(kl: Any, agree: Any) -> KLStats:
    """Figures from per-token KL [windows, tokens per window] and top-1 agreement (booleans, same shape), as numpy arrays."""
    import numpy as np

    kl = np.asarray(kl, dtype=np.float64)
    windows = kl.shape[0]
    per_window = kl.mean(axis=1)
    stderr = float(per_window.std(ddof=1) / math.sqrt(windows)) if windows > 1 else None
    return KLStats(
        mean=float(kl.mean()), stderr=stderr, median=float(np.median(kl)), p99=float(np.percentile(kl, 99)),
        top1_agreement=float(np.asarray(agree, dtype=np.float64).mean()), tokens=int(kl.size), windows=windows,
    )


# --------------------------------------------------------------------------- the reference's distributions, cached


def slice_ids(tokenizer: Any, text: str, kl_slice: KLSlice) -> Any:
    """The slice's token ids [windows, context] (int64)."""
    ids = tokenizer(text, return_tensors="pt").input_ids[0]
    need = kl_slice.windows * kl_slice.context
    if ids.numel() < need:
        raise TaskError(f"{TASK_NAME}: the text has {ids.numel()} tokens, fewer than {kl_slice.windows} windows of {kl_slice.context}")
    return ids[:need].reshape(kl_slice.windows, kl_slice.context)


def _log_probs(model: Any, window: Any) -> Any:
    """The model's next-token log-probabilities [tokens, vocab] for one window (float32)."""
    import torch

    out = model(input_ids=window.unsqueeze(0))
    logits = getattr(out, "logits", None)
    if logits is None:
        raise TaskError(f"{TASK_NAME}: the loaded model ({type(model).__name__}) gives no next-token logits, so its KL "
                        "divergence from the reference cannot be measured on this backend")
    return torch.log_softmax(logits[0].float(), dim=-1)


@dataclass
class ReferenceDistributions:
    """The reference's compact next-token distributions on the slice, as cached."""

    input_ids: Any
    """[windows, context] int64: the slice as the reference's tokenizer cut it."""
    top: Any
    """[windows, context, k] float32 log-probabilities, descending."""
    ids: Any
    """[windows, context, k] int64 token ids of ``top``."""
    log_rest: Any
    """[windows, context] float32: log of the mass outside the top k."""
    vocab: int
    sha256: str


def reference_key(ctx: TaskContext, kl_slice: KLSlice, data: str) -> dict[str, Any]:
    """Everything the cached reference distributions depend on."""
    profile = ctx.config.profile
    versions = {}
    for dist in ("torch", "transformers"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "base": ctx.artifact.base_model.content_hash, "profile": profile.name, "device": profile.device, "dtype": profile.dtype,
        "windows": kl_slice.windows, "context": kl_slice.context, "top_k": kl_slice.top_k, "data": data,
        "slice_version": SLICE_VERSION, "versions": versions,
    }


def reference_path(key: dict[str, Any], base_id: str) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return paths.cache_dir() / "reference-distributions" / base_id / key["profile"] / f"{digest}.npz"


def read_reference(path: Path, key: dict[str, Any]) -> ReferenceDistributions | None:
    """The cached distributions at ``path`` if they are there, whole and for ``key``; else None."""
    import numpy as np
    import torch

    try:
        with np.load(path, allow_pickle=False) as f:
            if json.loads(str(f["key"])) != key:
                return None
            found = ReferenceDistributions(
                input_ids=torch.from_numpy(f["input_ids"].astype(np.int64)), top=torch.from_numpy(f["top"]),
                ids=torch.from_numpy(f["ids"].astype(np.int64)), log_rest=torch.from_numpy(f["log_rest"]),
                vocab=int(f["vocab"]), sha256="",
            )
    except (OSError, ValueError, KeyError):
        return None
    w, c = key["windows"], key["context"]
    if found.input_ids.shape != (w, c) or found.top.shape[:2] != (w, c) or found.ids.shape != found.top.shape:
        return None
    found.sha256 = sha256_file(path)
    return found


def compute_reference(model: Any, input_ids: Any, kl_slice: KLSlice, key: dict[str, Any], path: Path, progress: str = "") -> ReferenceDistributions:
    """Score the whole slice with the reference ``model`` and cache its compact distributions at ``path`` (atomically)."""
    import numpy as np
    import torch
    from tqdm import tqdm

    device = next(model.parameters()).device
    tops, idss, rests = [], [], []
    vocab = 0
    with torch.inference_mode():
        for window in tqdm(input_ids, desc=f"{progress}reference distributions", dynamic_ncols=True):
            logp = _log_probs(model, window.to(device))
            vocab = int(logp.shape[-1])
            top, ids, log_rest = reference_summary(logp, kl_slice.top_k)
            tops.append(top.cpu())
            idss.append(ids.cpu().to(torch.int32))
            rests.append(log_rest.cpu())
    arrays = {
        "input_ids": input_ids.numpy().astype(np.int32), "top": torch.stack(tops).numpy(), "ids": torch.stack(idss).numpy(),
        "log_rest": torch.stack(rests).numpy(), "vocab": np.array(vocab), "key": np.array(json.dumps(key, sort_keys=True)),
    }
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    found = read_reference(path, key)
    if found is None:  # pragma: no cover - the file was just written
        raise TaskError(f"{TASK_NAME}: the reference distributions written to {path} cannot be read back")
    return found


def _is_plain_reference(ctx: TaskContext) -> bool:
    """Whether the loaded model is the reference as it is (not loaded in 4 bit by a profile's fallback)."""
    model = ctx.model
    quantized = getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    return bool(ctx.artifact.variant.is_reference) and not quantized


def reference_distributions(ctx: TaskContext, kl_slice: KLSlice, text: str, data: str) -> ReferenceDistributions:
    """The reference's cached distributions; computed (and cached) first if they are not there."""
    key = reference_key(ctx, kl_slice, data)
    path = reference_path(key, ctx.artifact.base_model.id)
    found = read_reference(path, key)
    if found is not None:
        return found
    if _is_plain_reference(ctx):
        return compute_reference(ctx.model, slice_ids(ctx.tokenizer, text, kl_slice), kl_slice, key, path, ctx.progress_prefix)
    source = ctx.config.reference_path
    if source is None:
        raise TaskError(f"{TASK_NAME}: the reference's distributions are not cached for this base model and profile; "
                        "measure the reference first (kompakt bench --variant reference --tasks wikitext2_kl)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    profile = ctx.config.profile
    ctx.say(f"  {TASK_NAME}: computing the reference's distributions once (cached for every variant)")
    model = AutoModelForCausalLM.from_pretrained(source, dtype=profile.dtype, device_map=profile.device, use_safetensors=True)
    model.eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        return compute_reference(model, slice_ids(tokenizer, text, kl_slice), kl_slice, key, path, ctx.progress_prefix)
    finally:
        del model
        gc.collect()


# --------------------------------------------------------------------------- the task


def _slice_of(config: Any) -> KLSlice:
    return KLSlice(
        windows=getattr(config, "kl_windows", DEFAULT_WINDOWS),
        context=getattr(config, "kl_context", DEFAULT_CONTEXT),
        top_k=getattr(config, "kl_top_k", DEFAULT_TOP_K),
    )


class KLDivergenceTask(Task):
    """KL(reference ‖ variant) of the next-token distribution on the fixed WikiText-2 slice, as a task of ``kompakt bench``."""

    name = TASK_NAME
    # the same text as the token perplexity: the same check that it is here, the same fingerprint
    available = TokenPerplexityTask.available
    fingerprint = TokenPerplexityTask.fingerprint

    def cache_settings(self, config: Any) -> dict[str, Any]:
        s = _slice_of(config)
        return {"kl_windows": s.windows, "kl_context": s.context, "kl_top_k": s.top_k}

    def run(self, ctx: TaskContext) -> TaskPayload:
        import numpy as np
        import torch
        from tqdm import tqdm

        from harness.measure.tasks.token_perplexity import wikitext2_text

        config = ctx.config
        kl_slice = _slice_of(config)
        max_pos = getattr(getattr(ctx.model, "config", None), "max_position_embeddings", None)
        if max_pos and kl_slice.context > max_pos:
            raise TaskError(f"{TASK_NAME}: windows of {kl_slice.context} tokens exceed the model's {max_pos} positions")
        text = wikitext2_text(config.data_dir)
        ref = reference_distributions(ctx, kl_slice, text, self.fingerprint(config.data_dir))
        own = slice_ids(ctx.tokenizer, text, kl_slice)
        if not torch.equal(own, ref.input_ids):
            raise TaskError(f"{TASK_NAME}: the variant's tokenizer cuts the slice differently from the reference's; "
                            "the two distributions cannot be compared token by token")
        limit = config.limit_for(TASK_NAME)
        n = min(kl_slice.windows, limit) if limit else kl_slice.windows
        device = next(ctx.model.parameters()).device
        kls, gaps, agrees, rests = [], [], [], []
        with torch.inference_mode():
            for w in tqdm(range(n), desc=f"{ctx.progress_prefix}{TASK_NAME}", dynamic_ncols=True):
                logq = _log_probs(ctx.model, own[w].to(device))
                if logq.shape[-1] != ref.vocab:
                    raise TaskError(f"{TASK_NAME}: the variant's vocabulary has {logq.shape[-1]} tokens, the reference's {ref.vocab}")
                logq = logq.cpu()
                kl, gap = token_kl(ref.top[w], ref.ids[w], ref.log_rest[w], logq)
                if not bool(torch.isfinite(kl).all()):
                    raise TaskError(f"{TASK_NAME}: the variant gives zero probability where the reference does not (infinite KL)")
                kls.append(kl.numpy())
                gaps.append(gap.numpy())
                agrees.append((logq.argmax(-1) == ref.ids[w][:, 0]).numpy())
                rests.append(ref.log_rest[w].double().exp().numpy())
        stats = kl_stats(np.stack(kls), np.stack(agrees))
        entry = DistributionDistance(
            task=TASK_NAME, kl_mean=stats.mean, kl_stderr=stats.stderr, kl_median=stats.median, kl_p99=stats.p99,
            top1_agreement=stats.top1_agreement, tokens=stats.tokens, windows=stats.windows, context_length=kl_slice.context,
            top_k=min(kl_slice.top_k, ref.vocab), tail_mass_mean=float(np.mean(rests)), kl_gap_bound=float(np.mean(gaps)),
            slice=kl_slice.describe(n), reference_sha256=ref.sha256, limit=n if n < kl_slice.windows else None,
            task_version=SLICE_VERSION,
            notes=(f"KL(reference || variant) of the next-token distribution at every position, from the reference's top "
                   f"{min(kl_slice.top_k, ref.vocab)} log-probabilities plus its remaining mass (a lower bound of the full-vocabulary KL); "
                   "standard error over windows."),
        )
        return TaskPayload(distance=[entry], extra={"n": stats.windows})


WIKITEXT2_KL = KLDivergenceTask()
