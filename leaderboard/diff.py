"""What a pull request would change on the leaderboard, and whether it may change it at all.

``kompakt diff BASE HEAD`` compares two results trees (e.g. the base branch checked out in
a worktree, and the pull request's). Submission rules:

- a run id that exists in the base may not come back with different content (a new
  measurement needs a new run id);
- a reported (cited) result may not be changed at all;
- removing a results file is allowed and removes its rows.

If the submission is acceptable, both trees are built into databases and compared:

- new rows, each with its headline figures beside its reference's (the changes are the
  leaderboard's own deltas, so figures that may not be compared show none);
- removed rows;
- changed figures of rows on both sides, and among them those that changed by more than their
  standard error (``exceeds_standard_error``);
- the ranking by mean accuracy within each base model, profile and hardware: a rank move is
  listed only where the order of rows that exist on both sides changed
  (``order_changes``); a row entering or leaving the ranking, and the rows it pushes down or
  lets up, are said in one line (``ranking_line``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kompakt.metrics import TASK_LABELS, accuracy_key
from leaderboard.html import fmt_bytes, fmt_fraction
from leaderboard.problems import Problem, Report
from leaderboard.store import tables_from
from leaderboard.summary import SHOWN_ACCURACY, Figure, RowKey, build_rows, row_key
from leaderboard.validate import validate_paths


@dataclass(frozen=True)
class Compared:
    """One figure the diff compares between the two leaderboards."""

    column: str
    """Column of the leaderboard table."""
    label: str
    """How the summary names it."""
    kind: str
    """How its values are shown: fraction, bytes or number."""
    metric: str | None = None
    """Its key in the long-form metrics (``acc:winogrande:acc``) where it is one task's figure with a
    standard error; None for the mean (its standard error is computed) and for figures without one."""


#: Figures compared between the two leaderboards, with how they are shown.
COMPARED: list[Compared] = [
    Compared("mean_accuracy", "mean accuracy", "fraction"),
    *[
        Compared(f"acc_{task}_{metric}", f"{TASK_LABELS.get(task, task)} {metric}", "fraction", accuracy_key(task, metric))
        for task, metric in SHOWN_ACCURACY
    ],
    Compared("word_perplexity", "word perplexity", "number"),
    Compared("token_perplexity", "token perplexity", "number"),
    Compared("kl_divergence", "KL divergence", "number"),
    Compared("flips", "flips", "fraction"),
    Compared("decode_tokens_per_s", "decode tok/s", "number"),
    Compared("generate_tokens_per_s", "generate tok/s", "number"),
    Compared("weights_bytes", "weights", "bytes"),
    Compared("peak_device_bytes", "peak device memory", "bytes"),
    Compared("peak_host_bytes", "peak host memory", "bytes"),
]

_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


# ----------------------------------------------------------------------------- pure functions


def mean_stderr(stderrs: list[float | None]) -> float | None:
    """Standard error of the mean of independent estimates: sqrt(sum of squares) / count.

    The mean accuracy averages tasks scored on different data sets, so their errors are
    independent. None when any standard error is unknown (or there is none).
    """
    known = [s for s in stderrs if s is not None]
    if not stderrs or len(known) != len(stderrs):
        return None
    return math.sqrt(sum(s * s for s in known)) / len(known)


def exceeds_standard_error(before: float, after: float, stderr: float | None) -> float | None:
    """How many standard errors ``after`` lies from ``before`` (``|after - before| / stderr``), or None
    without a standard error (or a zero one). A change is named when this is above 1."""
    if stderr is None or not stderr > 0:
        return None
    return abs(after - before) / stderr


def order_changes(before: list[Any], after: list[Any]) -> dict[Any, tuple[list[Any], list[Any]]]:
    """Rows whose order changed relative to another row present in both rankings.

    ``before`` and ``after`` are rankings (best first). Rows only in one of them do not count:
    a row entering above others moves none of them. Returns, for each row in at least one
    swapped pair, (the rows it passed, the rows that passed it), each in the order of ``after``.
    """
    common = set(before) & set(after)
    old = [k for k in before if k in common]
    new_pos = {k: i for i, k in enumerate(k for k in after if k in common)}
    out: dict[Any, tuple[list[Any], list[Any]]] = {}
    for i, upper in enumerate(old):
        for lower in old[i + 1:]:
            if new_pos[lower] < new_pos[upper]:  # ``lower`` passed ``upper``
                out.setdefault(lower, ([], []))[0].append(upper)
                out.setdefault(upper, ([], []))[1].append(lower)
    for passed, passed_by in out.values():
        passed.sort(key=new_pos.__getitem__)
        passed_by.sort(key=new_pos.__getitem__)
    return out


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _by(n: int) -> str:
    return _WORDS[n] if n < len(_WORDS) else str(n)


def shift_phrase(shifts: list[int]) -> str:
    """``[1, 1, 2, -1]`` -> "2 rows shift down by one, 1 by two; 1 row shifts up by one" (0s are left out)."""
    parts = []
    for sign, direction in ((1, "down"), (-1, "up")):
        counts = sorted(Counter(abs(s) for s in shifts if s * sign > 0).items())
        if not counts:
            continue
        words = []
        for i, (by, n) in enumerate(counts):
            if i == 0:
                verb = "shifts" if n == 1 else "shift"
                words.append(f"{_count(n, 'row')} {verb} {direction} by {_by(by)}")
            else:
                words.append(f"{n} by {_by(by)}")
        parts.append(", ".join(words))
    return "; ".join(parts)


# ----------------------------------------------------------------------------- the diff


@dataclass(frozen=True)
class RankMove:
    """A row whose order relative to another row present on both sides changed."""

    key: RowKey
    """The row."""
    before: int
    """Its rank in the base."""
    after: int
    """Its rank in the head."""
    passed: tuple[RowKey, ...]
    """Rows it was below and is now above."""
    passed_by: tuple[RowKey, ...]
    """Rows it was above and is now below."""


@dataclass(frozen=True)
class Change:
    """One figure of a row on both sides that differs."""

    key: RowKey
    """The row."""
    figure: Compared
    """Which figure."""
    before: Any
    """Its value in the base."""
    after: Any
    """Its value in the head."""
    standard_errors: float | None = None
    """|after - before| in standard errors of the base's figure (the head's where the base has none); None
    without one."""
    comparable: bool = True
    """False where the two values were measured on other documents or tasks: no standard errors then."""

    @property
    def beyond_standard_error(self) -> bool:
        return self.comparable and self.standard_errors is not None and self.standard_errors > 1


@dataclass
class Diff:
    refused: list[Problem] = field(default_factory=list)
    report: Report = field(default_factory=Report)
    added_files: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    new_rows: list[RowKey] = field(default_factory=list)
    removed_rows: list[RowKey] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    rank_moves: list[RankMove] = field(default_factory=list)
    ranking: list[str] = field(default_factory=list)
    """One line per ranking group where rows enter or leave: where, and how the other rows shift."""
    headline: dict[RowKey, dict[str, Any]] = field(default_factory=dict)
    """The head's leaderboard row of each new row and of its reference (``reference``), for the summary."""

    @property
    def ok(self) -> bool:
        return not self.refused and not self.report.errors

    @property
    def beyond_standard_error(self) -> list[Change]:
        return [c for c in self.changed if c.beyond_standard_error]


def _runs(root: Path) -> tuple[dict[str, tuple[str, dict[str, Any]]], Any]:
    """run id -> (relative file, canonical JSON) for every parsed file, and the validation."""
    validation = validate_paths([root], results_root=root) if root.exists() else None
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    if validation is not None:
        for loaded in validation.loaded:
            if loaded.result is not None:
                out[loaded.result.run_id] = (loaded.name, loaded.result.model_dump(mode="json"))
    return out, validation


def _rows(validation) -> dict[RowKey, dict[str, Any]]:
    """The leaderboard's rows (as ``kompakt ingest`` builds them, paired figures included) of every valid file, by key."""
    if validation is None:
        return {}
    tables = tables_from(validation)
    return {row_key(r): r for r in build_rows(tables.runs, tables.metrics, tables.paired)}


Group = tuple[str, str, str]  # base model, profile, hardware


def _rankings(rows: dict[RowKey, dict[str, Any]]) -> dict[Group, list[RowKey]]:
    """Rows with a mean accuracy, best first, per base model, profile and hardware (ties: variant, backend)."""
    groups: dict[Group, list[RowKey]] = {}
    for key, r in rows.items():
        if r.get("mean_accuracy") is not None:
            groups.setdefault((key[0], key[2], key[3]), []).append(key)
    return {g: sorted(keys, key=lambda k: (-rows[k]["mean_accuracy"], k[1], k[4] or "")) for g, keys in groups.items()}


def _shown_figure(row: dict[str, Any], figure: Compared) -> Figure | None:
    """The measured figure behind the value ``row`` shows in ``figure``'s column (with what it was measured on)."""
    figures = row.get("_quality_figures") or row.get("_figures") or {}
    return next((f for ident, f in figures.items() if ident[0] == figure.metric and f.value == row.get(figure.column)), None)


def _stderr_and_comparable(old: dict[str, Any], new: dict[str, Any], figure: Compared) -> tuple[float | None, bool]:
    """The base's standard error of the figure (the head's where the base has none), and whether the two
    values were measured alike (the leaderboard's own test: documents, shots, task and lm-eval versions)."""
    if figure.column == "mean_accuracy":
        a, b = old.get("_mean_figures") or [], new.get("_mean_figures") or []
        alike = old.get("mean_basis") == new.get("mean_basis") and len(a) == len(b) and all(x.comparable(y) for x, y in zip(a, b))
        se = mean_stderr([f.stderr for f in a]) if a else None
        return (se if se is not None else mean_stderr([f.stderr for f in b]) if b else None), alike
    if figure.metric is None:
        return None, True
    fa, fb = _shown_figure(old, figure), _shown_figure(new, figure)
    if fa is None or fb is None:
        return None, True
    return (fa.stderr if fa.stderr is not None else fb.stderr), fa.comparable(fb)


def _change(key: RowKey, figure: Compared, old: dict[str, Any], new: dict[str, Any]) -> Change:
    a, b = old.get(figure.column), new.get(figure.column)
    if a is None or b is None:
        return Change(key, figure, a, b)
    stderr, alike = _stderr_and_comparable(old, new, figure)
    if not alike:
        return Change(key, figure, a, b, comparable=False)
    return Change(key, figure, a, b, exceeds_standard_error(a, b, stderr))


def _label(key: RowKey) -> str:
    return f"`{_md(key[1])}`" + (f" on {_md(key[4])}" if key[4] else "")


def _compare_rankings(result: Diff, old_rows: dict[RowKey, dict[str, Any]], new_rows: dict[RowKey, dict[str, Any]]) -> None:
    old_rank, new_rank = _rankings(old_rows), _rankings(new_rows)
    for group in sorted(set(old_rank) | set(new_rank)):
        before, after = old_rank.get(group, []), new_rank.get(group, [])
        pos_b = {k: i for i, k in enumerate(before, start=1)}
        pos_a = {k: i for i, k in enumerate(after, start=1)}
        moves = order_changes(before, after)
        for key in sorted(moves, key=pos_a.__getitem__):
            passed, passed_by = moves[key]
            result.rank_moves.append(RankMove(key, pos_b[key], pos_a[key], tuple(passed), tuple(passed_by)))
        events = []
        for key in after:
            if key not in pos_b:
                what = "the new row" if key not in old_rows else "the row (it now has a mean accuracy)"
                row = new_rows[key]
                # a mean the leaderboard cannot compare with the reference's (other documents, shots, versions)
                alike = row.get("delta_mean_accuracy") is not None or row.get("is_reference") or row.get("reference_variant") is None
                caveat = "" if alike else " (its mean is not comparable with the reference's, e.g. a quick run: the rank is only indicative)"
                events.append(f"{what} {_label(key)} enters at rank {pos_a[key]}{caveat}")
        for key in before:
            if key not in pos_a:
                what = "the removed row" if key not in new_rows else "the row (it no longer has a mean accuracy)"
                events.append(f"{what} {_label(key)} leaves rank {pos_b[key]}")
        if not events:
            continue
        shifts = shift_phrase([pos_a[k] - pos_b[k] for k in after if k in pos_b and k not in moves])
        where = f"`{_md(group[0])}` on {_md(group[2])} ({_md(group[1])})"
        result.ranking.append(f"{where}: {'; '.join(events)}" + (f"; {shifts}." if shifts else "."))


def diff(base: Path, head: Path) -> Diff:
    result = Diff()
    base_runs, base_validation = _runs(base)
    head_runs, head_validation = _runs(head)
    if head_validation is not None:
        result.report = head_validation.report
    for run_id, (name, content) in sorted(head_runs.items()):
        if run_id not in base_runs:
            result.added_files.append(name)
            continue
        old_name, old = base_runs[run_id]
        if old == content and old_name == name:
            continue
        result.changed_files.append(name)
        if old.get("provenance", {}).get("kind") == "reported":
            result.refused.append(Problem(name, "$", f"changes the reported (cited) result {run_id!r} of {old_name}", "reported results unchanged; correct a transcription in a separate, reviewed change"))
        else:
            result.refused.append(Problem(name, "$.run_id", f"run id {run_id!r} already exists in {old_name} with different content", "a new run id for a new measurement"))
    result.removed_files = sorted(name for run_id, (name, _) in base_runs.items() if run_id not in head_runs)
    if not result.ok:
        return result
    old_rows, new_rows = _rows(base_validation), _rows(head_validation)
    result.new_rows = sorted(set(new_rows) - set(old_rows))
    result.removed_rows = sorted(set(old_rows) - set(new_rows))
    for key in result.new_rows:
        row = new_rows[key]
        result.headline[key] = row
        ref = _reference_row(new_rows, key)
        if ref is not None:
            result.headline[ref] = new_rows[ref]
    for key in sorted(set(old_rows) & set(new_rows)):
        for figure in COMPARED:
            if old_rows[key].get(figure.column) != new_rows[key].get(figure.column):
                result.changed.append(_change(key, figure, old_rows[key], new_rows[key]))
    _compare_rankings(result, old_rows, new_rows)
    return result


def _reference_row(rows: dict[RowKey, dict[str, Any]], key: RowKey) -> RowKey | None:
    """The row the leaderboard took ``key``'s deltas against: its ``reference_variant`` on the same
    hardware, on the same backend where it has a row there."""
    ref_id = rows[key].get("reference_variant")
    if ref_id is None or ref_id == key[1]:
        return None
    candidates = [k for k in rows if (k[0], k[1], k[2], k[3]) == (key[0], ref_id, key[2], key[3])]
    same = [k for k in candidates if k[4] == key[4]]
    return (same or sorted(candidates, key=lambda k: k[4] or ""))[0] if candidates else None


# ----------------------------------------------------------------------------- the Markdown summary


def _md(text: Any) -> str:
    """Text safe inside a Markdown table cell (GitHub renders the summary)."""
    return json.dumps(str(text))[1:-1].replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _key(key: RowKey) -> str:
    backend = f" on {_md(key[4])}" if key[4] else ""
    return f"`{_md(key[0])}` / `{_md(key[1])}`{backend} / {_md(key[3])} ({_md(key[2])})"


def _value(kind: str, value: Any) -> str:
    if value is None:
        return "–"
    if kind == "fraction":
        return fmt_fraction(value)
    if kind == "bytes":
        return fmt_bytes(value)
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


def _values(kind: str, before: Any, after: Any) -> tuple[str, str]:
    """Both values, with as many digits as it takes to tell them apart."""
    a, b = _value(kind, before), _value(kind, after)
    if a == b and isinstance(before, float) and isinstance(after, float):
        return f"{before:.8g}", f"{after:.8g}"
    return a, b


def _names(keys: tuple[RowKey, ...], most: int = 3) -> str:
    shown = ", ".join(_label(k) for k in keys[:most])
    return shown + (f" and {len(keys) - most} more" if len(keys) > most else "") if keys else "–"


def _se_cell(c: Change) -> str:
    if not c.comparable:
        return "not comparable (other documents or tasks)"
    if c.standard_errors is None:
        return "–"
    return f"{c.standard_errors:.1f}"


def _headline_cells(row: dict[str, Any], ref: dict[str, Any] | None) -> list[str]:
    """Mean accuracy, word perplexity, memory and speed of a new row, each beside its reference's."""

    def pair(value: str, ref_value: str, change: str | None, both: bool) -> str:
        if not ref_value or ref_value == "–":
            return value
        tail = change if change is not None else ("not comparable" if both else "")
        return f"{value} (ref. {ref_value}{': ' + tail if tail else ''})"

    ref = ref or {}
    mean, ref_mean = row.get("mean_accuracy"), ref.get("mean_accuracy")
    delta = row.get("delta_mean_accuracy")
    ppl, ref_ppl = row.get("word_perplexity"), ref.get("word_perplexity")
    dppl = row.get("delta_word_perplexity")
    weights, ref_weights = row.get("weights_bytes"), ref.get("weights_bytes")
    speed, ref_speed = row.get("decode_tokens_per_s"), ref.get("decode_tokens_per_s")
    same_backend = ref.get("backend") == row.get("backend")
    return [
        pair(_value("fraction", mean), _value("fraction", ref_mean) if ref_mean is not None else "",
             f"{100 * delta:+.1f} pp" if delta is not None else None, mean is not None and ref_mean is not None),
        pair(_value("number", ppl), _value("number", ref_ppl) if ref_ppl is not None else "",
             f"{100 * dppl / ref_ppl:+.1f} %" if dppl is not None and ref_ppl else None, ppl is not None and ref_ppl is not None),
        pair(_value("bytes", weights), _value("bytes", ref_weights) if ref_weights is not None and same_backend else "",
             f"{weights / ref_weights:.2f}×" if weights and ref_weights and same_backend else None, False),
        pair(_value("number", speed), _value("number", ref_speed) if ref_speed is not None and same_backend else "",
             f"{row['speedup']:.2f}×" if row.get("speedup") is not None else None, speed is not None and ref_speed is not None and same_backend),
    ]


def markdown(d: Diff) -> str:
    lines = ["## kompakt: what this change does to the leaderboard", ""]
    if d.report.errors or d.refused:
        lines += ["**Refused.**", ""]
        for p in [*d.report.errors, *d.refused]:
            lines.append(f"- `{_md(p.file)}` `{p.path}`: {_md(p.message)} (expected {_md(p.expected)})")
        return "\n".join(lines) + "\n"
    lines.append(f"Results files: {len(d.added_files)} added, {len(d.removed_files)} removed.")
    lines.append("")
    if d.new_rows:
        lines += [f"### New rows ({len(d.new_rows)})", "",
                  "Each figure beside the reference's on the same hardware (the change as the leaderboard computes it; "
                  "none where the two were measured on other documents, tasks or batch sizes).", "",
                  "| Row | Mean accuracy | Word perplexity | Weights | Decode tok/s |", "|---|---|---|---|---|"]
        for key in d.new_rows:
            row = d.headline.get(key, {})
            ref_key = _reference_row(d.headline, key) if key in d.headline else None
            ref = d.headline.get(ref_key) if ref_key else None
            cells = _headline_cells(row, ref)
            # the reference's own backend only where memory and speed are compared with it too
            against = (f" vs {_label(ref_key)}" if ref_key[4] == key[4] else f" vs `{_md(ref_key[1])}`") if ref_key else " (no reference)"
            lines.append(f"| {_key(key)}{against} | " + " | ".join(cells) + " |")
        lines.append("")
    if d.removed_rows:
        lines += [f"### Removed rows ({len(d.removed_rows)})", ""] + [f"- {_key(k)}" for k in d.removed_rows] + [""]
    beyond = d.beyond_standard_error
    if beyond:
        lines += [f"### Changed by more than their standard error ({len(beyond)})", ""]
        lines += [f"- {_key(c.key)}: {c.figure.label} {_value(c.figure.kind, c.before)} → {_value(c.figure.kind, c.after)} "
                  f"({c.standard_errors:.1f} standard errors)" for c in beyond] + [""]
    if d.ranking or d.rank_moves:
        lines += ["### Ranking by mean accuracy", ""]
        lines += [f"- {line}" for line in d.ranking]
        if d.ranking:
            lines.append("")
    if d.rank_moves:
        lines += ["Rows whose order changed against rows on both sides:", "",
                  "| Row | Before | After | Now above | Now below |", "|---|---|---|---|---|"]
        lines += [f"| {_key(m.key)} | {m.before} | {m.after} | {_names(m.passed)} | {_names(m.passed_by)} |" for m in d.rank_moves] + [""]
    if d.changed:
        lines += ["### Changed figures", "",
                  "| Row | Figure | Before | After | Change in standard errors |", "|---|---|---|---|---|"]
        lines += [f"| {_key(c.key)} | {c.figure.label} | {' | '.join(_values(c.figure.kind, c.before, c.after))} | {_se_cell(c)} |"
                  for c in d.changed] + [""]
    if not (d.new_rows or d.removed_rows or d.changed or d.rank_moves or d.ranking):
        lines.append("No change to the leaderboard.")
    for w in d.report.warnings:
        lines.append(f"- warning: `{_md(w.file)}`: {_md(w.message)}")
    return "\n".join(lines) + "\n"
