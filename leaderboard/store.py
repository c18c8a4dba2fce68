"""Build the DuckDB database from the results files, atomically.

Tables: ``runs`` (one row per results file), ``metrics`` (long form: one row
per figure), ``samples`` (one row per document of every checked per-sample file),
``paired`` (each variant against its reference per task and metric: difference
with its interval, flips, agreement, p-values: :mod:`leaderboard.paired`),
``leaderboard`` (one row per base model, variant, profile, hardware and backend,
with deltas against the reference) and ``frontier`` (Pareto membership per plot).
Views: ``latest_runs``, ``latest_metrics`` and ``deltas``.

The database is written to a temporary file beside the target and renamed
into place only when complete; if any results file is invalid nothing is
written and the old database stays as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from kompakt.atomic import atomic_path
from leaderboard.flatten import METRIC_COLUMNS, metric_rows, run_row
from leaderboard.paired import PAIRED_COLUMNS, paired_rows, run_samples, samples_table
from leaderboard.problems import Report
from leaderboard.summary import build_rows, frontier_rows, public
from leaderboard.validate import Validation, validate_paths


class IngestError(Exception):
    def __init__(self, message: str, report: Report):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class IngestSummary:
    database: Path
    runs: int
    metrics: int
    report: Report


VIEWS = """
CREATE VIEW latest_runs AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (
        PARTITION BY base_model_id, variant_id, profile, hardware_label ORDER BY run_date DESC, run_id DESC) AS rn
    FROM runs WHERE duplicate_of IS NULL)
WHERE rn = 1;

CREATE VIEW latest_metrics AS
SELECT * EXCLUDE (rn) FROM (
    SELECT r.base_model_id, r.variant_id, r.is_reference, r.profile, r.hardware_label, r.lm_eval_version, r.provenance, m.*,
        row_number() OVER (
            -- the token perplexity at each window is a figure of its own; lm-eval's perplexities keep one
            -- latest figure whatever its rolling window (the deltas view compares windows), as the leaderboard does
            PARTITION BY r.base_model_id, r.variant_id, r.profile, r.hardware_label, m.key, m.task, m.batch_size, m.backend,
                CASE WHEN m.key = 'token_perplexity' THEN m.context_length END
            -- the most complete figure first (all documents, else the largest limit), then the newest
            ORDER BY (m."limit" IS NULL) DESC, m."limit" DESC NULLS LAST, r.run_date DESC, r.run_id DESC) AS rn
    FROM metrics m JOIN runs r USING (run_id)
    WHERE r.duplicate_of IS NULL AND r.status = 'ok')
WHERE rn = 1;

-- Deltas against the reference variant of the same base model, profile and hardware,
-- only between comparable figures: same task version, lm-eval version, few-shot count,
-- limit, batch size, backend and (perplexities) window. Anything else is left out, never mixed.
CREATE VIEW deltas AS
SELECT v.base_model_id, v.variant_id, v.profile, v.hardware_label, v.key, v.task, v.batch_size, v.backend,
       v.value, ref.value AS reference_value, v.value - ref.value AS delta,
       CASE WHEN v.lower_is_better THEN ref.value / NULLIF(v.value, 0) ELSE v.value / NULLIF(ref.value, 0) END AS keeps
FROM latest_metrics v
JOIN latest_metrics ref
  ON ref.is_reference AND NOT v.is_reference
 AND ref.base_model_id = v.base_model_id AND ref.profile = v.profile AND ref.hardware_label = v.hardware_label
 AND ref.key = v.key AND ref.task IS NOT DISTINCT FROM v.task
 AND ref.batch_size IS NOT DISTINCT FROM v.batch_size AND ref.backend IS NOT DISTINCT FROM v.backend
 AND ref.context_length IS NOT DISTINCT FROM v.context_length
 AND ref.task_version IS NOT DISTINCT FROM v.task_version AND ref.lm_eval_version IS NOT DISTINCT FROM v.lm_eval_version
 AND ref.num_fewshot IS NOT DISTINCT FROM v.num_fewshot AND ref."limit" IS NOT DISTINCT FROM v."limit";
"""


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> pa.Table:
    if not rows:
        return pa.table({c: pa.array([], pa.string()) for c in (columns or ["empty"])})
    cols = columns or list(rows[0])
    data = {}
    for c in cols:
        values = [r.get(c) for r in rows]
        if any(isinstance(v, (list, dict)) for v in values):
            values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
        array = pa.array(values)
        if pa.types.is_null(array.type):
            array = array.cast(pa.string())
        data[c] = array
    return pa.table(data)


def _typed_metrics(rows: list[dict[str, Any]]) -> pa.Table:
    types = {
        "value": pa.float64(), "stderr": pa.float64(), "p90": pa.float64(), "min": pa.float64(), "max": pa.float64(),
        "n": pa.int64(), "limit": pa.int64(), "num_fewshot": pa.int64(), "batch_size": pa.int64(), "prompt_tokens": pa.int64(),
        "generated_tokens": pa.int64(), "context_length": pa.int64(), "repeats": pa.int64(), "lower_is_better": pa.bool_(),
        "chance_level": pa.float64(),
    }
    return pa.table({c: pa.array([r[c] for r in rows], types.get(c, pa.string())) for c in METRIC_COLUMNS})


def _frontier_table(rows: list[dict[str, Any]]) -> pa.Table:
    types = {
        "base_model_id": pa.string(), "profile": pa.string(), "hardware_label": pa.string(), "plot": pa.string(),
        "x_key": pa.string(), "y_key": pa.string(), "variant_id": pa.string(), "backend": pa.string(), "x": pa.float64(), "y": pa.float64(),
        "on_frontier": pa.bool_(), "left_out": pa.string(),
    }
    return pa.table({c: pa.array([r[c] for r in rows], t) for c, t in types.items()})


def _paired_table(rows: list[dict[str, Any]]) -> pa.Table:
    floats = {"variant_value", "reference_value", "difference", "ci_low", "ci_high", "flips", "right_to_wrong", "wrong_to_right",
              "agreement", "p_value", "p_holm"}
    ints = {"n", "limit", "num_fewshot"}
    bools = {"binary", "significant"}
    types = {c: pa.float64() if c in floats else pa.int64() if c in ints else pa.bool_() if c in bools else pa.string() for c in PAIRED_COLUMNS}
    return pa.table({c: pa.array([r[c] for r in rows], t) for c, t in types.items()})


@dataclass(frozen=True)
class Tables:
    """What the database is built from: run and metric rows, the checked per-sample rows and the paired figures."""

    runs: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    samples: pa.Table | None = None
    paired: list[dict[str, Any]] | None = None


def tables_from(validation: Validation) -> Tables:
    """Rows of every valid results file, its per-sample rows and the paired figures computed from them."""
    runs, metrics, per_sample, pairable = [], [], [], []
    for loaded in validation.valid:
        runs.append(run_row(loaded.result, loaded.name))
        metrics.extend(metric_rows(loaded.result))
        checked = validation.samples.get(loaded.name)
        if checked is not None and checked.table is not None:
            per_sample.append((loaded.result.run_id, checked.table))
            if loaded.result.duplicate_of is None and loaded.result.status.code == "ok":
                pairable.append(run_samples(loaded.result, checked.table))
    return Tables(runs, metrics, samples_table(per_sample), paired_rows(pairable))


def populate(con: duckdb.DuckDBPyConnection, runs: list[dict[str, Any]], metrics: list[dict[str, Any]],
             samples: pa.Table | None = None, paired: list[dict[str, Any]] | None = None) -> None:
    """Create every table and view in ``con`` (a file or an in-memory database)."""
    paired = paired or []
    rows = build_rows(runs, metrics, paired)
    board = [public(r) for r in rows]
    frontier = frontier_rows(rows)
    for name, table in (
        ("runs", _table(runs)),
        ("metrics", _typed_metrics(metrics)),
        ("samples", samples if samples is not None else samples_table([])),
        ("paired", _paired_table(paired)),
        ("leaderboard", _table(board)),
        ("frontier", _frontier_table(frontier)),
    ):
        con.register(f"_{name}", table)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}")
        con.unregister(f"_{name}")
    if runs:
        con.execute(VIEWS)


def write_database(path: Path, runs: list[dict[str, Any]], metrics: list[dict[str, Any]], samples: pa.Table | None = None,
                   paired: list[dict[str, Any]] | None = None) -> None:
    """Write a complete database to ``path`` atomically."""
    with atomic_path(path, suffix=".duckdb") as tmp:
        con = duckdb.connect(str(tmp))
        try:
            populate(con, runs, metrics, samples, paired)
            con.execute("CHECKPOINT")
        finally:
            con.close()


def ingest(results_root: Path, database: Path) -> IngestSummary:
    """Validate everything under ``results_root`` and build ``database``; raise ``IngestError`` on any error."""
    validation = validate_paths([results_root], results_root=results_root)
    report = validation.report
    if report.errors:
        raise IngestError(f"{len(report.errors)} errors in {results_root}", report)
    t = tables_from(validation)
    write_database(database, t.runs, t.metrics, t.samples, t.paired)
    return IngestSummary(database, len(t.runs), len(t.metrics), report)
