"""Small marks the generated pages put beside figures: an accuracy with its standard error, limit and at-chance
badge, and the data-licence note."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kompakt.chance import ALPHA
from kompakt.metrics import TASK_LABELS
from kompakt.tasks import TASKS, licence_notes
from leaderboard.html import esc, fmt_fraction

_TESTS = {"binomial": "exact binomial test", "t": "one-sample t-test of the per-question scores"}


def chance_badge(row: dict[str, Any], col: str, task: str) -> str:
    """``at chance`` (or ``below chance``) beside an accuracy whose distance from chance is (or is significantly
    below it); nothing for a score above chance or one that cannot be tested (no chance level or sample count)."""
    found = row.get(f"{col}_vs_chance")
    if found not in ("at", "below"):
        return ""
    info = TASKS.get(task)
    test = _TESTS.get(info.chance_test if info else "binomial", "exact binomial test")
    level = fmt_fraction(row.get(f"{col}_chance"))
    what = "not significantly different from" if found == "at" else "significantly below"
    title = f"{what} the chance level {level} ({test}, {round(100 * ALPHA)} %)"
    return f' <span class="kompakt-badge kompakt-chance" title="{esc(title)}">{"at chance" if found == "at" else "below chance"}</span>'


def licence_note(tasks: Iterable[str]) -> str:
    """A paragraph naming the non-commercial licence of every task among ``tasks`` that has one; empty if none."""
    notes = licence_notes(set(tasks))
    if not notes:
        return ""
    return ('<p class="kompakt-note kompakt-licence"><strong>Data licence:</strong> ' + " ".join(esc(n) for n in notes)
            + " Those data sets may only be used for non-commercial purposes.</p>")


def score_html(row: dict[str, Any], col: str, task: str) -> str:
    """An accuracy cell: the value of ``col`` with its standard error, its limit badge and its chance badge; empty if absent."""
    value = row.get(col)
    if value is None:
        return ""
    out = fmt_fraction(value)
    if row.get(f"{col}_stderr") is not None:
        out += f' <span class="kompakt-se">± {fmt_fraction(row[f"{col}_stderr"])}</span>'
    if row.get(f"{col}_limit") is not None:
        out += f' <span class="kompakt-badge kompakt-limit" title="only the first {row[f"{col}_limit"]} samples">limit {row[f"{col}_limit"]}</span>'
    return out + chance_badge(row, col, task)


def task_labels(names: str) -> str:
    """A row's comma-separated task names, or task pairs (``arc_challenge/arc_de``), as the tasks' labels
    (``ARC-Challenge / ARC-Challenge (German, Okapi)``); a name the catalogue does not know stays as it is. Not escaped."""
    return ", ".join(" / ".join(TASK_LABELS.get(t, t) for t in item.split("/")) for item in names.split(", ") if item)
