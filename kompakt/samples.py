"""The per-sample file: each document's result of every multiple-choice task of one run, as Parquet.

``kompakt bench`` writes it beside the results file as ``<run_id>.samples.parquet`` and records its
name, sha256 and row count in the results file (``per_sample``); the leaderboard reads it defensively
(:mod:`leaderboard.samples`) and pairs it with the reference's (:mod:`leaderboard.paired`).

One row per task and document, sorted by task and document id. The columns:

========================  ===============  =======================================================================
column                    type             meaning
========================  ===============  =======================================================================
``task``                  string           task name as in the results file (``arc_challenge``)
``doc_id``                int64            lm-eval's document index in the evaluated split (0 = first document)
``doc_hash``              string           the first 16 hex digits of lm-eval's sha256 of the document, so two
                                           runs can prove they scored the same documents
``loglikelihoods``        list<double>     the log-likelihood of each choice, in the task's choice order
``choice``                int32            the answer chosen under ``acc`` (the largest log-likelihood)
``choice_norm``           int32 (null)     the answer chosen under ``acc_norm`` (largest log-likelihood per
                                           character, as lm-eval normalises); null where the task has no acc_norm
``acc``                   double           lm-eval's per-document ``acc``: 1 right, 0 wrong, or a score in [0, 1]
                                           for tasks whose metric is one (TruthfulQA's mc2)
``acc_norm``              double (null)    lm-eval's per-document ``acc_norm``; null where the task has none
========================  ===============  =======================================================================

Parquet because it is typed, compressed and read by every data tool (and pyarrow is already a
dependency of the leaderboard); a full ARC-Challenge run is about 45 KB, the four tasks of the committed
set about 165 KB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kompakt.atomic import atomic_path
from kompakt.hashing import sha256_file

#: File name suffix of a per-sample file (after the run id).
SUFFIX = ".samples.parquet"
#: lm-eval metrics kept per document, each a column of its own.
METRIC_COLUMNS = ("acc", "acc_norm")
#: Choice column of each metric: the answer that metric's rule picks.
CHOICE_COLUMNS = {"acc": "choice", "acc_norm": "choice_norm"}

SCHEMA = pa.schema([
    pa.field("task", pa.string(), nullable=False),
    pa.field("doc_id", pa.int64(), nullable=False),
    pa.field("doc_hash", pa.string(), nullable=False),
    pa.field("loglikelihoods", pa.list_(pa.float64()), nullable=False),
    pa.field("choice", pa.int32(), nullable=False),
    pa.field("choice_norm", pa.int32(), nullable=True),
    pa.field("acc", pa.float64(), nullable=False),
    pa.field("acc_norm", pa.float64(), nullable=True),
])
COLUMNS = tuple(SCHEMA.names)


def file_name(run_id: str) -> str:
    """The per-sample file of run ``run_id``: ``<run_id>.samples.parquet``."""
    return f"{run_id}{SUFFIX}"


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts with :data:`COLUMNS` as keys) as a table in the file's schema, sorted by task and document."""
    ordered = sorted(rows, key=lambda r: (r["task"], r["doc_id"]))
    return pa.table({c: [r.get(c) for r in ordered] for c in COLUMNS}, schema=SCHEMA)


def write(rows: list[dict[str, Any]], path: Path) -> str:
    """Write ``rows`` to ``path`` atomically (zstd-compressed Parquet); returns the file's sha256."""
    table = to_table(rows)
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd")
        digest = sha256_file(tmp)
    return digest
