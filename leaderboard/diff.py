"""What a pull request would change on the leaderboard, and whether it may change it at all.

``kompakt diff BASE HEAD`` compares two results trees (e.g. the base branch checked out in
a worktree, and the pull request's). Submission rules:

- a run id that exists in the base may not come back with different content (a new
  measurement needs a new run id);
- a reported (cited) result may not be changed at all;
- removing a results file is allowed and removes its rows.

If the submission is acceptable, both trees are built into databases and compared: new and
removed leaderboard rows, changed figures, and rows whose rank (by mean accuracy, within
their base model and hardware) moves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leaderboard.html import fmt_fraction
from leaderboard.problems import Problem, Report
from leaderboard.store import populate, tables_from
from leaderboard.summary import RowKey, row_key
from leaderboard.validate import validate_paths

#: Figures compared between the two leaderboards, with how they are shown.
COMPARED = [
    ("mean_accuracy", "mean accuracy"),
    ("word_perplexity", "word perplexity"),
    ("kl_divergence", "KL divergence"),
    ("flips", "flips"),
    ("decode_tokens_per_s", "decode tok/s"),
    ("generate_tokens_per_s", "generate tok/s"),
    ("weights_bytes", "weights bytes"),
    ("peak_device_bytes", "peak device bytes"),
    ("peak_host_bytes", "peak host bytes"),
]



@dataclass
class Diff:
    refused: list[Problem] = field(default_factory=list)
    report: Report = field(default_factory=Report)
    added_files: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    new_rows: list[RowKey] = field(default_factory=list)
    removed_rows: list[RowKey] = field(default_factory=list)
    changed: list[tuple[RowKey, str, Any, Any]] = field(default_factory=list)
    rank_moves: list[tuple[RowKey, int, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused and not self.report.errors


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
    import duckdb

    if validation is None:
        return {}
    t = tables_from(validation)
    con = duckdb.connect(":memory:")
    try:
        populate(con, t.runs, t.metrics, t.samples, t.paired)
        if not t.runs:
            return {}
        cursor = con.execute("SELECT * FROM leaderboard")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r)) for r in cursor.fetchall()]
    finally:
        con.close()
    return {row_key(r): r for r in rows}


def _ranks(rows: dict[RowKey, dict[str, Any]]) -> dict[RowKey, int]:
    groups: dict[tuple[str, str, str], list[RowKey]] = {}
    for key, r in rows.items():
        if r.get("mean_accuracy") is not None:
            groups.setdefault((key[0], key[2], key[3]), []).append(key)
    ranks = {}
    for keys in groups.values():
        for i, key in enumerate(sorted(keys, key=lambda k: (-rows[k]["mean_accuracy"], k[1], k[4] or "")), start=1):
            ranks[key] = i
    return ranks


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
    for key in sorted(set(old_rows) & set(new_rows)):
        for col, _label in COMPARED:
            a, b = old_rows[key].get(col), new_rows[key].get(col)
            if a != b:
                result.changed.append((key, col, a, b))
    old_ranks, new_ranks = _ranks(old_rows), _ranks(new_rows)
    for key in sorted(set(old_ranks) & set(new_ranks)):
        if old_ranks[key] != new_ranks[key]:
            result.rank_moves.append((key, old_ranks[key], new_ranks[key]))
    return result


def _md(text: Any) -> str:
    """Text safe inside a Markdown table cell (GitHub renders the summary)."""
    return json.dumps(str(text))[1:-1].replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _key(key: RowKey) -> str:
    backend = f" on {_md(key[4])}" if key[4] else ""
    return f"`{key[0]}` / `{key[1]}`{backend} / {_md(key[3])} ({key[2]})"


def _value(col: str, value: Any) -> str:
    if value is None:
        return "–"
    if col == "mean_accuracy":
        return fmt_fraction(value)
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


def markdown(d: Diff) -> str:
    lines = ["## kompakt: what this change does to the leaderboard", ""]
    if d.report.errors or d.refused:
        lines += ["**Refused.**", ""]
        for p in [*d.report.errors, *d.refused]:
            lines.append(f"- `{_md(p.file)}` `{p.path}`: {_md(p.message)} (expected {_md(p.expected)})")
        return "\n".join(lines) + "\n"
    lines.append(f"Results files: {len(d.added_files)} added, {len(d.removed_files)} removed.")
    lines.append("")
    for title, keys in (("New rows", d.new_rows), ("Removed rows", d.removed_rows)):
        if keys:
            lines += [f"### {title} ({len(keys)})", ""] + [f"- {_key(k)}" for k in keys] + [""]
    if d.changed:
        lines += ["### Changed figures", "", "| Row | Figure | Before | After |", "|---|---|---|---|"]
        lines += [f"| {_key(k)} | {col} | {_value(col, a)} | {_value(col, b)} |" for k, col, a, b in d.changed] + [""]
    if d.rank_moves:
        lines += ["### Rank moves (by mean accuracy)", "", "| Row | Before | After |", "|---|---|---|"]
        lines += [f"| {_key(k)} | {a} | {b} |" for k, a, b in d.rank_moves] + [""]
    if not (d.new_rows or d.removed_rows or d.changed or d.rank_moves):
        lines.append("No change to the leaderboard.")
    for w in d.report.warnings:
        lines.append(f"- warning: `{_md(w.file)}`: {_md(w.message)}")
    return "\n".join(lines) + "\n"

