"""The catalogue of tasks kompakt measures: names, labels, kinds, and where the harness implements each.

Both sides read it: the leaderboard takes labels and the mean-accuracy slots from here
(without the harness installed), the harness looks up each task's implementation, a
``"module:attribute"`` path imported only when the task runs (:mod:`harness.measure.tasks`).

Adding a task: write its implementation (for an lm-eval task, one ``LmEvalTask`` in a
module of ``harness/measure/tasks/``), then add one ``TaskInfo`` here.

Suites: each task names the suites it belongs to (``suites``); ``kompakt bench --tasks german``
runs every task of the suite :data:`SUITES` describes. A new language is one more suite name on
its tasks (and, for the parallel-text perplexity, one more language in its ``languages``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kompakt.registry import Registry

TaskKind = Literal["accuracy", "perplexity", "distance", "efficiency"]
ChanceTest = Literal["binomial", "t"]

#: Languages by their FLORES-200 code (the code Belebele and FLORES use), with the name the site shows.
LANGUAGES: dict[str, str] = {"eng_Latn": "English", "deu_Latn": "German"}
#: The language others are compared against (the parallel perplexity's ratio, the task pairs).
PIVOT_LANGUAGE = "eng_Latn"

#: Suite names ``kompakt bench --tasks`` accepts beside task names, and what each runs.
SUITES: dict[str, str] = {
    "english": "the thesis's English tasks (the default set)",
    "german": "the German tasks, their English Belebele counterpart and the English-German parallel-text perplexity",
}


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
    suites: tuple[str, ...] = ()
    """Suites (:data:`SUITES`) the task belongs to: ``--tasks german`` runs every task naming ``german``."""
    language: str | None = PIVOT_LANGUAGE
    """Language of the task's text (a key of :data:`LANGUAGES`); None: several or none."""
    parallel_of: str | None = None
    """The task with the same questions in the pivot language (``arc_de`` -> ``arc_challenge``), if any."""
    chance_test: ChanceTest | None = None
    """How an accuracy's distance from chance is tested (:mod:`kompakt.chance`): ``binomial`` (each document
    right or wrong), ``t`` (a score in [0, 1] per document: TruthfulQA mc2); None: the task has no chance level."""
    translation: str | None = None
    """How the data was translated (``human``, ``machine (ChatGPT, Okapi)``); None: the original text."""
    licence: str | None = None
    """The data's licence, where the site must show it."""
    non_commercial: bool = False
    """The data may only be used non-commercially: every page that shows the task's figures says so."""
    languages: tuple[str, ...] = ()
    """For a parallel-text task: the languages it scores, one results entry each (:func:`parallel_entries`)."""


_OKAPI = "CC BY-NC 4.0, non-commercial use only (Okapi's machine translation; the English original: {})"
_XNLI = "CC BY-NC 4.0, non-commercial use only (XNLI)"
_BELEBELE = "CC BY-SA 4.0 (Belebele, Meta)"
_OKAPI_MT = "machine (ChatGPT, Okapi)"
_EN = ("english",)
_DE = ("german",)

_ALL = [
    TaskInfo("winogrande", "WinoGrande", "Wino acc", "accuracy", "harness.measure.tasks.english:WINOGRANDE", "acc", "winogrande", True, suites=_EN, chance_test="binomial", documents=1267),
    TaskInfo("arc_challenge", "ARC-Challenge", "ARC-C acc_n", "accuracy", "harness.measure.tasks.english:ARC_CHALLENGE", "acc_norm", "arc_challenge", True, suites=_EN, chance_test="binomial", documents=1172),
    TaskInfo("truthfulqa_mc2", "TruthfulQA MC2", "TQA mc2", "accuracy", "harness.measure.tasks.english:TRUTHFULQA_MC2", "acc", "truthfulqa_mc2", True, suites=_EN, chance_test="t", documents=817, scores=("acc",)),
    # HellaSwag's slot takes lm-eval's hellaswag, else llama.cpp's text of the same questions
    # (a task of its own, never reported as hellaswag); a mean records which one it holds.
    TaskInfo("hellaswag", "HellaSwag", "HS acc_n", "accuracy", "harness.measure.tasks.english:HELLASWAG", "acc_norm", "hellaswag", True, suites=_EN, chance_test="binomial", documents=10042),
    TaskInfo("hellaswag_llamacpp", "HellaSwag (llama.cpp text)", "HS(l.cpp) acc_n", "accuracy", "harness.measure.tasks.english:HELLASWAG_LLAMACPP", "acc_norm", "hellaswag", chance_test="binomial", documents=10042),
    TaskInfo("wikitext", "WikiText-2 (lm-eval, document level)", "wiki word PPL", "perplexity", "harness.measure.tasks.english:WIKITEXT", "word_perplexity", None, True, suites=_EN),
    TaskInfo("wikitext2_tokens", "WikiText-2 token perplexity", "token PPL", "perplexity", "harness.measure.tasks.token_perplexity:WIKITEXT2_TOKENS", "token_perplexity", None, True, suites=_EN),
    TaskInfo("wikitext2_kl", "KL divergence from the reference (WikiText-2 slice)", "KL", "distance", "harness.measure.tasks.kl_divergence:WIKITEXT2_KL", "kl_divergence", None, True, suites=_EN),
    # German (issue 23): lm-eval's own tasks on the local files of shared/benchmarks/german/.
    TaskInfo("belebele_eng_Latn", "Belebele (English)", "Bele en acc", "accuracy", "harness.measure.tasks.german:BELEBELE_ENG", "acc", suites=_DE, chance_test="binomial", documents=900, licence=_BELEBELE),
    TaskInfo("belebele_deu_Latn", "Belebele (German)", "Bele de acc", "accuracy", "harness.measure.tasks.german:BELEBELE_DEU", "acc", suites=_DE, language="deu_Latn",
             parallel_of="belebele_eng_Latn", chance_test="binomial", documents=900, translation="human", licence=_BELEBELE),
    TaskInfo("arc_de", "ARC-Challenge (German, Okapi)", "ARC-de acc_n", "accuracy", "harness.measure.tasks.german:ARC_DE", "acc_norm", suites=_DE, language="deu_Latn",
             parallel_of="arc_challenge", chance_test="binomial", documents=1169, translation=_OKAPI_MT, licence=_OKAPI.format("ARC, CC BY-SA 4.0"), non_commercial=True),
    TaskInfo("truthfulqa_de_mc2", "TruthfulQA MC2 (German, Okapi)", "TQA-de mc2", "accuracy", "harness.measure.tasks.german:TRUTHFULQA_DE_MC2", "acc", suites=_DE,
             language="deu_Latn", parallel_of="truthfulqa_mc2", chance_test="t", documents=788, scores=("acc",), translation=_OKAPI_MT, licence=_OKAPI.format("TruthfulQA, Apache-2.0"),
             non_commercial=True),
    TaskInfo("xnli_de", "XNLI (German)", "XNLI-de acc", "accuracy", "harness.measure.tasks.german:XNLI_DE", "acc", suites=_DE, language="deu_Latn",
             chance_test="binomial", documents=2490, translation="human", licence=_XNLI, non_commercial=True),
    TaskInfo("paws_de", "PAWS-X (German)", "PAWS-de acc", "accuracy", "harness.measure.tasks.german:PAWS_DE", "acc", suites=_DE, language="deu_Latn",
             chance_test="binomial", documents=2000, translation="human", licence="free for any use (PAWS-X, Google)"),
    TaskInfo("flores_ppl", "Parallel-text perplexity (Belebele's FLORES passages)", "FLORES PPL", "perplexity",
             "harness.measure.tasks.parallel_perplexity:FLORES_PPL", "parallel_token_perplexity", suites=_DE, language=None,
             licence=_BELEBELE, languages=("eng_Latn", "deu_Latn")),
    TaskInfo("efficiency", "Memory, speed and energy", "efficiency", "efficiency", "harness.measure.tasks.efficiency:EFFICIENCY", language=None),
]

TASKS: dict[str, TaskInfo] = {t.name: t for t in _ALL}

#: The same names as a lazy registry: ``IMPLEMENTATIONS.load(name)`` imports the task object.
IMPLEMENTATIONS = Registry("task", {t.name: t.implementation for t in _ALL})


def get(name: str) -> TaskInfo:
    """The task called ``name``; an unknown name raises ``KeyError`` with a did-you-mean."""
    IMPLEMENTATIONS.path(name)  # raises with the suggestion
    return TASKS[name]


def suite(name: str) -> list[str]:
    """The tasks of suite ``name`` in catalogue order; an unknown suite raises ``KeyError`` with a did-you-mean."""
    if name not in SUITES:
        from kompakt.registry import suggest

        raise KeyError(f"unknown suite {name!r}{suggest(name, SUITES)}; known: {', '.join(SUITES)}")
    return [t.name for t in TASKS.values() if name in t.suites]


def parallel_entries(info: TaskInfo) -> dict[str, str]:
    """A parallel-text task's results entries: language -> the entry's task name (``flores_ppl_deu_Latn``)."""
    return {lang: f"{info.name}_{lang}" for lang in info.languages}


def parallel_entry_tasks() -> dict[str, tuple[str, str]]:
    """Every parallel-text entry's task name -> (its catalogue task, its language)."""
    return {entry: (t.name, lang) for t in TASKS.values() for lang, entry in parallel_entries(t).items()}


def task_pairs(language: str) -> list[tuple[str, str]]:
    """(pivot-language task, ``language`` task) for every task of ``language`` with a counterpart in the pivot language."""
    return [(t.parallel_of, t.name) for t in TASKS.values() if t.language == language and t.parallel_of in TASKS]


def licence_notes(tasks: list[str] | set[str]) -> list[str]:
    """One sentence per task among ``tasks`` whose data is for non-commercial use only (for every page that shows it)."""
    return [f"{TASKS[t].label} ({t}): data licensed {TASKS[t].licence}." for t in TASKS if t in tasks and TASKS[t].non_commercial]


def register(info: TaskInfo) -> None:
    """Add a task at run time (a plugin, or a test's throwaway task)."""
    TASKS[info.name] = info
    IMPLEMENTATIONS.add(info.name, info.implementation)


def unregister(name: str) -> None:
    TASKS.pop(name, None)
    IMPLEMENTATIONS.remove(name)
