"""Chance marks on leaderboard rows, and "quality kept, tasks above chance" (the rule: :mod:`kompakt.chance`).

Each accuracy figure of a row gets its verdict (``acc_<task>_<metric>_vs_chance``: ``above``, ``at``,
``below`` or None where it cannot be decided), the mean names the tasks in it that are at chance
(``mean_at_chance``), and every row gets ``keeps_above_chance``: its mean over those of the mean's
tasks at which its reference is significantly above chance, divided by the reference's mean over
the same tasks. Which tasks count is decided from the reference's figures, so it is the same for
every variant of a base model under one profile (and hardware); the four-task mean and its
"keeps" stay as they are.
"""

from __future__ import annotations

from typing import Any

from kompakt.chance import Verdict, above_chance_keeps, verdict
from kompakt.tasks import TASKS

#: The fields :func:`add_above_chance` sets on every row.
ABOVE_CHANCE_FIELDS = ("keeps_above_chance", "above_chance_tasks", "at_chance_left_out", "keeps_above_chance_reason")


def figure_verdict(task: str, figure: Any) -> Verdict | None:
    """The chance verdict of one accuracy figure (a :class:`leaderboard.summary.Figure`), by its task's test."""
    if figure is None:
        return None
    info = TASKS.get(task)
    test = info.chance_test if info is not None else "binomial"
    return verdict(figure.value, figure.chance_level, figure.n, figure.stderr, test)


def _by_task(row: dict[str, Any]) -> dict[str, Any]:
    """The row's mean figures by task."""
    return dict(zip((row.get("mean_basis") or "").split("+"), row.get("_mean_figures") or []))


def add_above_chance(row: dict[str, Any], ref: dict[str, Any] | None) -> None:
    """Set :data:`ABOVE_CHANCE_FIELDS` on ``row`` against its reference row ``ref`` (None: no reference)."""
    for field in ABOVE_CHANCE_FIELDS:
        row[field] = None
    if ref is None or ref.get("mean_basis") is None or row.get("mean_basis") is None or row["status"] != "ok":
        return
    ref_figures = _by_task(ref)
    tasks = list(ref_figures)
    verdicts = {task: figure_verdict(task, f) for task, f in ref_figures.items()}
    own = _by_task(row)
    variant = {t: own[t].value for t in tasks if t in own and own[t].comparable(ref_figures[t])}
    kept = above_chance_keeps(variant, {t: f.value for t, f in ref_figures.items()}, verdicts, tasks)
    row["above_chance_tasks"] = ", ".join(kept.tasks) or None
    row["at_chance_left_out"] = ", ".join(kept.left_out) or None
    if row is ref or row["variant_id"] == ref["variant_id"]:
        return  # the reference keeps all of itself: no figure, but it names the tasks
    row["keeps_above_chance"] = kept.value
    row["keeps_above_chance_reason"] = kept.reason
