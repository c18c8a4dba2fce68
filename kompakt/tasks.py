"""The catalogue of tasks kompakt measures: names, labels, kinds, and where the harness implements each.

Both sides read it: the leaderboard takes labels and the mean-accuracy slots from here
(without the harness installed), the harness looks up each task's implementation, a
``"module:attribute"`` path imported only when the task runs (:mod:`harness.measure.tasks`).

Adding a task: write its implementation (for an lm-eval task, one ``LmEvalTask`` in a
module of ``harness/measure/tasks/``), then add one ``TaskInfo`` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kompakt.registry import Registry

TaskKind = Literal["accuracy", "perplexity", "distance", "efficiency"]


@dataclass(frozen=True)
class TaskInfo:
    name: str
    """Name on the command line and in results files."""
    label: str
    """Heading on the site."""
    short: str
    """Short heading for the table ``kompakt bench`` prints."""
    kind: TaskKind
    """``accuracy`` (multiple choice), ``perplexity``, ``distance`` (from the reference's next-token distribution) or
    ``efficiency`` (memory, speed, energy)."""
    implementation: str
    """``"module:attribute"`` of the harness's task object."""
    headline: str | None = None
    """The figure summaries show: an accuracy metric (``acc_norm``) or a perplexity field (``word_perplexity``)."""
    mean_slot: str | None = None
    """Which slot of the four-task mean accuracy this task can fill (None: not part of the mean)."""
    default: bool = False
    """Run by ``kompakt bench`` when no tasks are named."""
    documents: int | None = None
    """Documents in the split an accuracy task evaluates (lm-eval's ``n-samples`` original); per-sample files are
    checked against it (every document id below it). None: not known here."""
    scores: tuple[str, ...] = ()
    """Metrics whose per-document value is a score in [0, 1] rather than right or wrong (TruthfulQA's mc2): no flips,
    and a paired test on the scores instead of McNemar's."""


_ALL = [
    TaskInfo("winogrande", "WinoGrande", "Wino acc", "accuracy", "harness.measure.tasks.english:WINOGRANDE", "acc", "winogrande", True, documents=1267),
    TaskInfo("arc_challenge", "ARC-Challenge", "ARC-C acc_n", "accuracy", "harness.measure.tasks.english:ARC_CHALLENGE", "acc_norm", "arc_challenge", True, documents=1172),
    TaskInfo("truthfulqa_mc2", "TruthfulQA MC2", "TQA mc2", "accuracy", "harness.measure.tasks.english:TRUTHFULQA_MC2", "acc", "truthfulqa_mc2", True, documents=817, scores=("acc",)),
    # HellaSwag's slot takes lm-eval's hellaswag, else llama.cpp's text of the same questions
    # (a task of its own, never reported as hellaswag); a mean records which one it holds.
    TaskInfo("hellaswag", "HellaSwag", "HS acc_n", "accuracy", "harness.measure.tasks.english:HELLASWAG", "acc_norm", "hellaswag", True, documents=10042),
    TaskInfo("hellaswag_llamacpp", "HellaSwag (llama.cpp text)", "HS(l.cpp) acc_n", "accuracy", "harness.measure.tasks.english:HELLASWAG_LLAMACPP", "acc_norm", "hellaswag", documents=10042),
    TaskInfo("wikitext", "WikiText-2 (lm-eval, document level)", "wiki word PPL", "perplexity", "harness.measure.tasks.english:WIKITEXT", "word_perplexity", None, True),
    TaskInfo("wikitext2_tokens", "WikiText-2 token perplexity", "token PPL", "perplexity", "harness.measure.tasks.token_perplexity:WIKITEXT2_TOKENS", "token_perplexity", None, True),
    TaskInfo("wikitext2_kl", "KL divergence from the reference (WikiText-2 slice)", "KL", "distance", "harness.measure.tasks.kl_divergence:WIKITEXT2_KL", "kl_divergence", None, True),
    TaskInfo("efficiency", "Memory, speed and energy", "efficiency", "efficiency", "harness.measure.tasks.efficiency:EFFICIENCY"),
]

TASKS: dict[str, TaskInfo] = {t.name: t for t in _ALL}

#: The same names as a lazy registry: ``IMPLEMENTATIONS.load(name)`` imports the task object.
IMPLEMENTATIONS = Registry("task", {t.name: t.implementation for t in _ALL})


def get(name: str) -> TaskInfo:
    """The task called ``name``; an unknown name raises ``KeyError`` with a did-you-mean."""
    IMPLEMENTATIONS.path(name)  # raises with the suggestion
    return TASKS[name]


def register(info: TaskInfo) -> None:
    """Add a task at run time (a plugin, or a test's throwaway task)."""
    TASKS[info.name] = info
    IMPLEMENTATIONS.add(info.name, info.implementation)


def unregister(name: str) -> None:
    TASKS.pop(name, None)
    IMPLEMENTATIONS.remove(name)
