"""The language section of a base model's page: German against English (the figures: :mod:`leaderboard.languages`).

Per profile and hardware, where any variant has a German task or a parallel-text perplexity: the
tasks in both languages side by side (with their at-chance marks), the German-only tasks, the
parallel perplexities with tokens per word, each relative to the reference's, their ratio per
variant, the licence note of every non-commercial data set shown, and a plot of German against
English quality kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kompakt.tasks import LANGUAGES, PIVOT_LANGUAGE, TASKS, task_pairs
from leaderboard.columns import Context, GridColumn, grid
from leaderboard.html import esc, fmt_num, fmt_percent
from leaderboard.languages import compared_languages, parallel_languages
from leaderboard.marks import licence_note, score_html, task_labels
from leaderboard.plots import embed, language_caption, language_figure

Row = dict[str, Any]


def _tasks(language: str) -> list[str]:
    """The accuracy tasks of the section for ``language``: each pair's two sides, then the language's own tasks."""
    paired = [t for pair in task_pairs(language) for t in pair]
    alone = [t.name for t in TASKS.values() if t.kind == "accuracy" and t.language == language and t.name not in paired]
    return paired + alone


def _col(task: str) -> str:
    return f"acc_{task}_{TASKS[task].headline}"


def has_language_figures(rows: Sequence[Row]) -> bool:
    """Whether any row has a figure of the section (a task of another language than the pivot, or a parallel perplexity)."""
    cols = [_col(t) for lang in compared_languages() for t in _tasks(lang) if TASKS[t].language != PIVOT_LANGUAGE]
    cols += [f"parallel_ppl_{lang}" for lang in parallel_languages()]
    return any(r.get(c) is not None for r in rows for c in cols)


def _score(task: str) -> GridColumn:
    col = _col(task)

    def cell(r: Row, ctx: Context) -> str:
        return score_html(r, col, task)

    info = TASKS[task]
    where = f"{info.translation} translation" if info.translation else "original text"
    return GridColumn(col.lower(), "quality", f"{info.label} {info.headline}", f"lm-eval {task}, {info.headline}; {where}", lambda r: r.get(col), cell)


def _ppl(lang: str) -> GridColumn:
    def cell(r: Row, ctx: Context) -> str:
        value = r.get(f"parallel_ppl_{lang}")
        if value is None:
            return ""
        out = fmt_num(value)
        if r.get(f"tokens_per_word_{lang}") is not None:
            out += f'<br><small>{fmt_num(r[f"tokens_per_word_{lang}"])} tokens/word</small>'
        if r.get(f"rel_parallel_ppl_{lang}") is not None:
            out += f'<br><small title="relative to the reference\'s">×{fmt_num(r[f"rel_parallel_ppl_{lang}"], 3)} of ref.</small>'
        if r.get(f"parallel_ppl_{lang}_limit") is not None:
            out += f' <span class="kompakt-badge kompakt-limit">limit {r[f"parallel_ppl_{lang}_limit"]}</span>'
        return out

    name = LANGUAGES.get(lang, lang)
    return GridColumn(f"parallel_ppl_{lang.lower()}", "perplexity", f"Parallel PPL {name}",
                      f"token perplexity of Belebele's FLORES passages in {name}, tokens per word, and the perplexity relative to the reference's",
                      lambda r: r.get(f"parallel_ppl_{lang}"), cell)


def _ratio(lang: str) -> GridColumn:
    name = LANGUAGES.get(lang, lang)
    key = f"parallel_ppl_ratio_{lang}"
    return GridColumn(key.lower(), "perplexity", f"{name}/English PPL ratio",
                      f"{name} perplexity relative to the reference's divided by the English one: above 1, the method hurts {name} more",
                      lambda r: r.get(key), lambda r, ctx: fmt_num(r.get(key), 3))


def _kept(lang: str) -> GridColumn:
    name = LANGUAGES.get(lang, lang)

    def cell(r: Row, ctx: Context) -> str:
        if r.get(f"lang_keeps_{lang}") is None:
            return ""
        return (f'{name} {fmt_percent(r[f"lang_keeps_{lang}"])}<br>English {fmt_percent(r.get(f"lang_keeps_{lang}_pivot"))}'
                f'<br><small>{esc(r.get(f"lang_pairs_{lang}"))}</small>')

    return GridColumn(f"lang_keeps_{lang.lower()}", "quality", f"Accuracy kept ({name} / English)",
                      "mean over the task pairs at which the reference is above chance in both languages, against the reference's",
                      lambda r: r.get(f"lang_keeps_{lang}"), cell)


def _variant(r: Row, ctx: Context) -> str:
    ref = ' <span class="kompakt-badge">reference</span>' if r["is_reference"] else ""
    return f'<span title="{esc(r["lineage"])}">{esc(r["variant_id"])}</span>{ref}'


def language_section(group: Sequence[Row], section_id: str, colours: dict[str, str] | None = None) -> str:
    """The section's HTML and Markdown for one profile and hardware of a base model; ``colours``: the page's family
    colours (:func:`leaderboard.plots.page_colours`)."""
    rows, seen = [], set()
    for r in group:  # one row per variant: its backends share the quality figures
        if r["variant_id"] not in seen:
            seen.add(r["variant_id"])
            rows.append(r)
    out = ["\n### German and English\n",
           "<p>The same content in both languages: the tasks with the same questions side by side, and the perplexity of "
           "Belebele's 488 FLORES passages in each language, each relative to the reference's. A ratio above 1 means the "
           "method costs German more than English. See the <a href=\"../../methodology/#german-against-english\">methodology</a> "
           "for why the parallel passages are the fairer comparison and machine-translated tasks the weaker evidence.</p>\n"]
    shown: list[str] = []
    for lang in compared_languages():
        for task in _tasks(lang):
            if task not in shown and any(r.get(_col(task)) is not None for r in rows):
                shown.append(task)
    note = licence_note(shown)
    if note:
        out.append(note + "\n")
    cols = [GridColumn("variant", "identity", "Variant", "variant id (hover it for its lineage)", lambda r: r["variant_id"], _variant, kind="text")]
    cols += [_score(t) for t in shown]
    cols += [_kept(lang) for lang in compared_languages() if any(r.get(f"lang_keeps_{lang}") is not None for r in rows)]
    cols += [_ppl(lang) for lang in parallel_languages() if any(r.get(f"parallel_ppl_{lang}") is not None for r in rows)]
    cols += [_ratio(lang) for lang in compared_languages() if any(r.get(f"parallel_ppl_ratio_{lang}") is not None for r in rows)]
    out.append(grid(rows, f"{section_id}-table", columns=cols))
    plots = []
    for lang in compared_languages():
        for kind in ("perplexity", "accuracy"):
            figure = language_figure(rows, lang, kind, colours)
            if figure is not None:
                plots.append(embed(figure, f"{section_id}-{lang}-{kind}", language_caption(figure, lang, kind)))
    if plots:
        out.append('\n<div class="kompakt-plots">' + "".join(plots) + "</div>\n")
    else:
        out.append("\n<p><em>No plot of German against English: no variant here has both languages measured against a reference.</em></p>\n")
    left = sorted({p for r in rows for lang in compared_languages() for p in (r.get(f"lang_left_out_{lang}") or "").split(", ") if p})
    if left:
        out.append(f"<p><small>Task pairs left out of the accuracy kept, the reference not above chance (at or below it) in at least one language: "
                   f"{esc(task_labels(', '.join(left)))}.</small></p>\n")
    return "\n".join(out)
