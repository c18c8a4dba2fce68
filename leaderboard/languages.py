"""German against English: the parallel-text perplexities, their ratio, and quality kept per language.

For every language of a parallel-text task (``flores_ppl``: the same FLORES passages in English
and German) a row carries the perplexity and tokens per word (:func:`fill_parallel`) and, against
its reference (:func:`add_language_figures`), the perplexity relative to the reference's; for each
language other than the pivot (English) the ratio of the two relative perplexities
(:func:`language_ratio`): above 1, the method hurts that language more than English.

Quality kept per language from the accuracy tasks: over the pairs of tasks with the same questions
in both languages (``arc_challenge``/``arc_de``, ``truthfulqa_mc2``/``truthfulqa_de_mc2``,
``belebele_eng_Latn``/``belebele_deu_Latn``), only those at which the reference is significantly
above chance in *both* languages, so the two sides average the same questions; each side's mean
divided by the reference's. The pivot side of the pair is ``lang_keeps_<language>_pivot``.

Row fields (``<lang>`` a FLORES-200 code, e.g. ``deu_Latn``): ``parallel_ppl_<lang>``,
``parallel_ppl_<lang>_limit``, ``tokens_per_word_<lang>``, ``rel_parallel_ppl_<lang>``,
``parallel_ppl_ratio_<lang>``, ``lang_keeps_<lang>``, ``lang_keeps_<lang>_pivot``,
``lang_pairs_<lang>``, ``lang_left_out_<lang>``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from kompakt.chance import verdict
from kompakt.tasks import PIVOT_LANGUAGE, TASKS, parallel_entries, task_pairs


def parallel_languages() -> list[str]:
    """Every language some parallel-text task of the catalogue scores, pivot first."""
    langs = {lang for t in TASKS.values() for lang in t.languages}
    return sorted(langs, key=lambda lang: (lang != PIVOT_LANGUAGE, lang))


def compared_languages() -> list[str]:
    """The languages compared against the pivot: those of the parallel texts and of the task pairs."""
    langs = set(parallel_languages()) | {t.language for t in TASKS.values() if t.parallel_of and t.language}
    return sorted(lang for lang in langs if lang != PIVOT_LANGUAGE)


def relative(value: float | None, reference: float | None) -> float | None:
    """``value`` / ``reference`` (a perplexity relative to the reference's); None when either is missing or the reference is 0."""
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def language_ratio(value: float | None, reference: float | None, pivot_value: float | None, pivot_reference: float | None) -> float | None:
    """(value / reference) / (pivot_value / pivot_reference): how much more a language's perplexity rose than the
    pivot's (English). Above 1: the method hurts that language more; 1: both alike; None: a figure is missing."""
    own, pivot = relative(value, reference), relative(pivot_value, pivot_reference)
    if own is None or pivot is None or pivot == 0:
        return None
    return own / pivot


_PER_LANGUAGE = ("parallel_ppl_{}", "parallel_ppl_{}_limit", "tokens_per_word_{}", "rel_parallel_ppl_{}")
_PER_COMPARED = ("parallel_ppl_ratio_{}", "lang_keeps_{}", "lang_keeps_{}_pivot", "lang_pairs_{}", "lang_left_out_{}")

#: Fields that belong to the artifact (borrowed, like accuracy, by rows that lack them).
LANGUAGE_COLUMNS = [f.format(lang) for lang in parallel_languages() for f in _PER_LANGUAGE[:3]] + ["_parallel_figures"]


def fill_parallel(row: dict[str, Any], pick: Callable[[str, str], Any], limits: dict[str, int]) -> None:
    """The row's parallel-text figures: ``pick(key, task)`` returns the row's figure for a metric and task (or None)."""
    figures = {}
    for info in TASKS.values():
        for lang, entry in parallel_entries(info).items():
            f = pick("parallel_token_perplexity", entry)
            tpw = pick("tokens_per_word", entry)
            row[f"parallel_ppl_{lang}"] = f.value if f else None
            row[f"parallel_ppl_{lang}_limit"] = f.limit if f else None
            row[f"tokens_per_word_{lang}"] = tpw.value if tpw else None
            if f is not None:
                figures[lang] = f
                if f.limit is not None:
                    limits[f"{info.name} {lang}"] = f.limit
    row["_parallel_figures"] = figures


def _pair_keeps(row: dict[str, Any], ref: dict[str, Any], language: str) -> tuple[float | None, float | None, list[str], list[str]]:
    """(kept in ``language``, kept in the pivot, the pairs counted, the pairs left out) over the task pairs above chance."""
    own, theirs = row.get("_shown_figures") or {}, ref.get("_shown_figures") or {}
    counted, left = [], []
    sums: dict[str, list[float]] = {"lang": [], "pivot": [], "ref_lang": [], "ref_pivot": []}
    for pivot_task, task in task_pairs(language):
        cols = {side: f"acc_{t}_{TASKS[t].headline}" for side, t in (("pivot", pivot_task), ("lang", task))}
        refs = {side: theirs.get(col) for side, col in cols.items()}
        if any(f is None for f in refs.values()):
            continue  # the reference lacks one side: not a pair here
        label = f"{pivot_task}/{task}"
        verdicts = [verdict(f.value, f.chance_level, f.n, f.stderr, TASKS[t].chance_test)
                    for f, t in ((refs["pivot"], pivot_task), (refs["lang"], task))]
        mine = {side: own.get(col) for side, col in cols.items()}
        if verdicts != ["above", "above"]:
            left.append(label)
            continue
        if any(mine[side] is None or not mine[side].comparable(refs[side]) for side in cols):
            return None, None, [], []  # a pair above chance without a comparable figure: no figure at all
        counted.append(label)
        for side in cols:
            sums[side].append(mine[side].value)
            sums[f"ref_{side}"].append(refs[side].value)
    if not counted:
        return None, None, counted, left
    return (relative(statistics.fmean(sums["lang"]), statistics.fmean(sums["ref_lang"])),
            relative(statistics.fmean(sums["pivot"]), statistics.fmean(sums["ref_pivot"])), counted, left)


def add_language_figures(row: dict[str, Any], ref: dict[str, Any] | None) -> None:
    """Relative perplexities, their ratio and quality kept per language, against ``ref`` (None: none)."""
    for lang in parallel_languages():
        row[f"rel_parallel_ppl_{lang}"] = None
    for lang in compared_languages():
        for field in _PER_COMPARED:
            row[field.format(lang)] = None
    if ref is None or row["status"] != "ok":
        return
    is_reference = row["variant_id"] == ref["variant_id"]
    for lang in compared_languages():
        kept, kept_pivot, counted, left = _pair_keeps(row, ref, lang)
        row[f"lang_pairs_{lang}"] = ", ".join(counted) or None
        row[f"lang_left_out_{lang}"] = ", ".join(left) or None
        if not is_reference:
            row[f"lang_keeps_{lang}"], row[f"lang_keeps_{lang}_pivot"] = kept, kept_pivot
    if is_reference:
        return  # the reference against itself: 1 everywhere, shown as nothing (as its deltas)
    own, theirs = row.get("_parallel_figures") or {}, ref.get("_parallel_figures") or {}
    alike = {lang for lang in parallel_languages() if lang in own and lang in theirs and own[lang].comparable(theirs[lang])}
    for lang in alike:
        row[f"rel_parallel_ppl_{lang}"] = relative(own[lang].value, theirs[lang].value)
    if PIVOT_LANGUAGE not in alike:
        return
    for lang in compared_languages():
        if lang in alike:
            row[f"parallel_ppl_ratio_{lang}"] = language_ratio(own[lang].value, theirs[lang].value,
                                                               own[PIVOT_LANGUAGE].value, theirs[PIVOT_LANGUAGE].value)
