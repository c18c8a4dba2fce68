"""The metrics the leaderboard shows: name, unit, and which direction is better.

Every figure in the database's long-form ``metrics`` table carries one of
these keys (accuracy keys are built per task and metric). The Pareto frontier
and the deltas read ``lower_is_better`` from here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from kompakt.tasks import TASKS


@dataclass(frozen=True)
class MetricInfo:
    key: str
    """Key in the database's long-form metrics table."""
    label: str
    """Column heading on the site."""
    unit: str
    """Unit shown beside values ('' for fractions and ratios)."""
    lower_is_better: bool
    """Direction: True for perplexity, memory, latency and energy."""
    family: str
    """accuracy, perplexity, distance, memory, speed or energy."""
    description: str
    """One sentence for the methodology page."""


#: The four tasks of the thesis and the metric of each that enters the mean accuracy, from the
#: task catalogue (:data:`kompakt.tasks.TASKS`, ``mean_slot`` and ``headline``).
#: ARC-Challenge and HellaSwag use length-normalised accuracy (acc_norm), as the Open
#: LLM Leaderboard did, because plain acc there favours short answers.
#: The HellaSwag slot may be filled by lm-eval's ``hellaswag`` or by kompakt's
#: ``hellaswag_llamacpp`` (same questions, llama.cpp's preprocessed text); the mean
#: records which, and means with different bases are never compared.
MEAN_TASKS: dict[str, tuple[tuple[str, str], ...]] = {}
for _t in TASKS.values():
    if _t.mean_slot and _t.headline:
        MEAN_TASKS[_t.mean_slot] = (*MEAN_TASKS.get(_t.mean_slot, ()), (_t.name, _t.headline))

TASK_LABELS: dict[str, str] = {t.name: t.label for t in TASKS.values() if t.kind == "accuracy"}


@dataclass(frozen=True)
class Basis:
    """What must be equal for two figures of one metric to be compared: the one comparability rule.

    The leaderboard's deltas and plots, ``kompakt bench``'s summary table and the README's quality
    table all ask :func:`comparable`; the database's ``deltas`` view states the same rule in SQL
    (a test checks that both agree on the same figures). A field that one side did not record
    (None) only matches None: an unknown setting is not assumed to be the other's.
    """

    limit: int | None = None
    """Documents (windows) scored; None: the whole set."""
    num_fewshot: int | None = None
    """Few-shot examples per question."""
    task_version: str | None = None
    """The task's version in lm-eval (a new version may change prompts or data)."""
    lm_eval_version: str | None = None
    """The harness's version (lm-eval's own changes can move scores)."""
    context_length: int | None = None
    """A perplexity's window: lm-eval's rolling window, or the token perplexity's context."""
    batch_size: int | None = None
    """Sequences per step (speed figures)."""
    backend: str | None = None
    """Inference engine (speed and memory figures)."""


def comparable(a: Basis, b: Basis) -> bool:
    """Whether two figures of one metric measured on bases ``a`` and ``b`` may be compared."""
    return a == b

_ALL = [
    MetricInfo("mean_accuracy", "Mean acc.", "", False, "accuracy", "Mean of the four tasks' primary metrics (WinoGrande acc, ARC-Challenge acc_norm, TruthfulQA MC2, HellaSwag acc_norm); absent unless all four were measured."),
    MetricInfo("word_perplexity", "Word PPL", "", True, "perplexity", "lm-eval wikitext: exp(total negative log-likelihood / words), over whole documents with a rolling window."),
    MetricInfo("byte_perplexity", "Byte PPL", "", True, "perplexity", "lm-eval wikitext: exp(total negative log-likelihood / UTF-8 bytes)."),
    MetricInfo("bits_per_byte", "Bits/byte", "", True, "perplexity", "lm-eval wikitext: total negative log-likelihood in bits / UTF-8 bytes; tokenizer-independent."),
    MetricInfo("token_perplexity", "Token PPL", "", True, "perplexity", "exp(mean token negative log-likelihood) over fixed-length windows, as quantization papers quote it; only comparable within one tokenizer and context length."),
    MetricInfo("kl_divergence", "KL", "nats", True, "distance", "Mean over a fixed WikiText-2 slice's tokens of KL(reference || variant) of the next-token distribution, from the reference's top-k log-probabilities plus its remaining mass; 0 for the reference."),
    MetricInfo("kl_median", "KL median", "nats", True, "distance", "Median over tokens of the per-token KL divergence from the reference."),
    MetricInfo("kl_p99", "KL p99", "nats", True, "distance", "99th percentile over tokens of the per-token KL divergence from the reference: how far the worst tokens move."),
    MetricInfo("top1_agreement", "Same top token", "", False, "distance", "Share of tokens of the slice where the variant and the reference put the same token first."),
    MetricInfo("keeps_above_chance", "Kept (above chance)", "", False, "accuracy", "Quality kept, tasks above chance: the variant's mean over those of the four tasks at which its reference scores significantly above chance, divided by the reference's mean over the same tasks; the tasks are decided once per base model, profile and task from the reference (exact binomial test, TruthfulQA mc2: t-test; 5 %)."),
    MetricInfo("parallel_token_perplexity", "Parallel PPL", "", True, "perplexity", "exp(total token negative log-likelihood / tokens) over Belebele's 488 FLORES passages, each scored whole from its first token, one figure per language (the same passages in English and German); only comparable within one tokenizer."),
    MetricInfo("parallel_word_perplexity", "Parallel word PPL", "", True, "perplexity", "The same passages' negative log-likelihood per whitespace-separated word, exponentiated, per language."),
    MetricInfo("parallel_byte_perplexity", "Parallel byte PPL", "", True, "perplexity", "The same passages' negative log-likelihood per UTF-8 byte, exponentiated, per language."),
    MetricInfo("parallel_bits_per_byte", "Parallel bits/byte", "", True, "perplexity", "The same passages' negative log-likelihood in bits per UTF-8 byte, per language."),
    MetricInfo("tokens_per_word", "Tokens/word", "", True, "tokenizer", "Tokens per whitespace-separated word of the parallel passages under the model's tokenizer, per language (German usually costs more)."),
    MetricInfo("parallel_ppl_ratio", "DE/EN PPL ratio", "", True, "perplexity", "The German parallel perplexity relative to the reference's, divided by the English one relative to the reference's: above 1, the method hurts German more than English."),
    MetricInfo("weights_bytes", "Weights", "B", True, "memory", "Bytes of the weights as stored in memory, packed low-bit weights with their scales counted as such."),
    MetricInfo("disk_bytes", "Disk", "B", True, "memory", "Size of the artifact on disk."),
    MetricInfo("peak_device_bytes", "Peak GPU mem.", "B", True, "memory", "Peak accelerator memory allocated while generating at the profile's context length."),
    MetricInfo("peak_host_bytes", "Peak host mem.", "B", True, "memory", "Peak resident host memory while generating."),
    MetricInfo("decode_tokens_per_s", "Decode tok/s", "tok/s", False, "speed", "Generated tokens per second after the first token, median over repeats."),
    MetricInfo("prefill_tokens_per_s", "Prefill tok/s", "tok/s", False, "speed", "Prompt tokens processed per second, median over repeats."),
    MetricInfo("generate_tokens_per_s", "Generate tok/s", "tok/s", False, "speed", "Generated tokens per second over the whole generate call including the prefill, as many publications report it."),
    MetricInfo("time_to_first_token_ms", "TTFT", "ms", True, "speed", "Milliseconds from the call to the first generated token, median."),
    MetricInfo("bandwidth_bound_share", "Share of bound", "", False, "speed", "Decode tokens/s at batch 1 divided by the memory-bandwidth bound (measured bandwidth / weights bytes): how close decoding comes to the physical limit."),
    MetricInfo("joules_per_token", "Energy", "J/tok", True, "energy", "Energy per generated token from NVML (GPU) or RAPL (CPU)."),
]

METRICS: dict[str, MetricInfo] = {m.key: m for m in _ALL}


def accuracy_key(task: str, metric: str) -> str:
    """Long-form key of one task's accuracy metric, e.g. ``acc:arc_challenge:acc_norm``."""
    return f"acc:{task}:{metric}"


def info(key: str) -> MetricInfo:
    """Metric info for ``key``; accuracy keys are higher-is-better fractions."""
    if key in METRICS:
        return METRICS[key]
    if key.startswith("acc:"):
        _, task, metric = key.split(":", 2)
        return MetricInfo(key, f"{TASK_LABELS.get(task, task)} {metric}", "", False, "accuracy", f"lm-eval {task} {metric}.")
    raise KeyError(f"unknown metric {key!r}")


def lower_is_better(key: str) -> bool:
    return info(key).lower_is_better
