"""Paired figures at ingest: every variant against its reference, document by document.

For each (base model, variant, profile, hardware) and each task and metric that the variant has
per-sample results for, the variant's run is the one the leaderboard shows (the most complete
figure, then the newest); the reference's is the newest reference run on the same base model,
profile and hardware whose per-sample results cover exactly the same documents (same ids and
document hashes) on the same basis (limit, few-shot count, task version and lm-eval version:
:class:`kompakt.metrics.Basis`). Without such a reference run there is no paired figure.

The figures (:mod:`leaderboard.paired_stats`): the difference in accuracy with its 95 % paired
bootstrap interval, flips (right/wrong metrics), agreement of the chosen answers, and the p-value
of McNemar's exact test (right/wrong) or of the Wilcoxon signed-rank test (scores such as mc2),
Holm-adjusted over all tests of the variant; significant when the adjusted p-value is below 0.05.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from kompakt import samples as fmt
from kompakt.metrics import Basis
from kompakt.results import ResultsFile, TaskAccuracy
from kompakt.tasks import TASKS
from leaderboard import paired_stats as st
from leaderboard.flatten import hardware_label, run_date

#: Columns of the database's ``paired`` table, in order.
PAIRED_COLUMNS = [
    "base_model_id", "variant_id", "profile", "hardware_label", "task", "metric", "variant_run_id", "reference_run_id",
    "reference_variant_id", "n", "limit", "num_fewshot", "task_version", "variant_value", "reference_value", "difference",
    "ci_low", "ci_high", "binary", "flips", "right_to_wrong", "wrong_to_right", "agreement", "test", "p_value", "p_holm",
    "significant",
]


@dataclass
class RunSamples:
    """One valid run with per-sample results, as pairing needs it."""

    run_id: str
    group: tuple[str, str, str, str]
    """(base model, variant, profile, hardware label)."""
    is_reference: bool
    date: str
    lm_eval_version: str | None
    entries: dict[tuple[str, str], TaskAccuracy]
    tasks: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """task -> column -> values, sorted by document id."""

    def basis(self, task: str, metric: str) -> Basis:
        a = self.entries[(task, metric)]
        return Basis(a.limit, a.num_fewshot, a.task_version, self.lm_eval_version)


def run_samples(result: ResultsFile, table: pa.Table) -> RunSamples:
    """A valid run and its checked per-sample table (:mod:`leaderboard.samples`)."""
    found = RunSamples(
        run_id=result.run_id,
        group=(result.base_model.id, result.variant.id, result.profile, hardware_label(result)),
        is_reference=result.variant.is_reference,
        date=run_date(result.provenance.date),
        lm_eval_version=result.software.lm_eval,
        entries={(a.task, a.metric): a for a in result.metrics.accuracy},
    )
    tasks = np.asarray(table.column("task").to_pylist(), dtype=object)
    columns = {c: table.column(c).to_numpy() if c in ("doc_id",) else np.asarray(table.column(c).to_pylist(), dtype=object)
               for c in ("doc_id", "doc_hash", "choice", "choice_norm", *fmt.METRIC_COLUMNS)}
    for task in dict.fromkeys(tasks.tolist()):
        rows = np.flatnonzero(tasks == task)
        order = rows[np.argsort(columns["doc_id"][rows], kind="stable")]
        found.tasks[task] = {c: v[order] for c, v in columns.items()}
    return found


def _completeness(run: RunSamples, task: str, metric: str) -> tuple:
    """Order of preference (largest first): the most complete figure (all documents, else the largest limit), then the
    newest, as the leaderboard picks the figure it shows."""
    limit = run.entries[(task, metric)].limit
    return (limit is None, limit or 0, run.date, run.run_id)


def _same_documents(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return len(a["doc_id"]) == len(b["doc_id"]) and bool(np.array_equal(a["doc_id"], b["doc_id"])) and bool(np.array_equal(a["doc_hash"], b["doc_hash"]))


def _values(run: RunSamples, task: str, column: str) -> np.ndarray | None:
    v = run.tasks[task][column]
    if any(x is None for x in v):
        return None
    return v.astype(np.float64)


def _compare(var: RunSamples, ref: RunSamples, task: str, metric: str) -> dict[str, Any] | None:
    """The paired figures of one task and metric (None when a side lacks the metric's values)."""
    v, r = _values(var, task, metric), _values(ref, task, metric)
    if v is None or r is None:
        return None
    info = TASKS.get(task)
    binary = (metric not in info.scores) if info is not None else (st.is_binary(v) and st.is_binary(r))
    diff = st.difference_ci(v, r)
    entry = var.entries[(task, metric)]
    row: dict[str, Any] = {
        "base_model_id": var.group[0], "variant_id": var.group[1], "profile": var.group[2], "hardware_label": var.group[3],
        "task": task, "metric": metric, "variant_run_id": var.run_id, "reference_run_id": ref.run_id, "reference_variant_id": ref.group[1],
        "n": int(len(v)), "limit": entry.limit, "num_fewshot": entry.num_fewshot, "task_version": entry.task_version,
        "variant_value": float(v.mean()), "reference_value": float(r.mean()), "difference": diff.value, "ci_low": diff.low,
        "ci_high": diff.high, "binary": binary, "flips": None, "right_to_wrong": None, "wrong_to_right": None, "agreement": None,
    }
    if binary:
        f = st.flips(v, r)
        row.update(flips=f.share, right_to_wrong=f.right_to_wrong_share, wrong_to_right=f.wrong_to_right_share,
                   test="mcnemar_exact", p_value=st.mcnemar_p(f))
    else:
        row.update(test="wilcoxon", p_value=st.wilcoxon_p(v, r))
    choice = fmt.CHOICE_COLUMNS.get(metric)
    vc = _values(var, task, choice) if choice else None
    rc = _values(ref, task, choice) if choice else None
    if vc is not None and rc is not None:
        row["agreement"] = st.agreement(vc, rc)
    return row


def paired_rows(runs: list[RunSamples]) -> list[dict[str, Any]]:
    """Rows of the ``paired`` table from every valid run with per-sample results."""
    references: dict[tuple[str, str, str], list[RunSamples]] = defaultdict(list)
    variants: dict[tuple[str, str, str, str], list[RunSamples]] = defaultdict(list)
    for run in runs:
        base, _, profile, hardware = run.group
        if run.is_reference:
            references[(base, profile, hardware)].append(run)
        else:
            variants[run.group].append(run)
    out: list[dict[str, Any]] = []
    for group in sorted(variants):
        rows = []
        measured = sorted({(t, m) for run in variants[group] for (t, m) in run.entries if t in run.tasks})
        for task, metric in measured:
            candidates = [r for r in variants[group] if task in r.tasks and (task, metric) in r.entries]
            var = max(candidates, key=lambda r: _completeness(r, task, metric))
            refs = [r for r in references.get((group[0], group[2], group[3]), [])
                    if task in r.tasks and (task, metric) in r.entries and r.basis(task, metric) == var.basis(task, metric)
                    and _same_documents(r.tasks[task], var.tasks[task])]
            if not refs:
                continue
            ref = max(refs, key=lambda r: (r.date, r.run_id))
            row = _compare(var, ref, task, metric)
            if row is not None:
                rows.append(row)
        for row, p in zip(rows, st.holm([row["p_value"] for row in rows])):
            row["p_holm"] = p
            row["significant"] = st.significant(p)
        out.extend(rows)
    return out


def samples_table(runs: list[tuple[str, pa.Table]]) -> pa.Table:
    """The database's ``samples`` table: every checked per-sample row with its run id."""
    schema = pa.schema([pa.field("run_id", pa.string()), *[f.with_nullable(True) for f in fmt.SCHEMA]])
    tables = [t.add_column(0, "run_id", pa.array([run_id] * t.num_rows, pa.string())).cast(schema) for run_id, t in runs]
    return pa.concat_tables(tables) if tables else schema.empty_table()
