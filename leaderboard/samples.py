"""Reading and checking a per-sample file defensively, as ``leaderboard.loading`` reads a results file.

A results file may name a per-sample file (``per_sample``: :mod:`kompakt.samples`). Before anything of
it reaches the database it must be: named from the run id and lying beside the results file, a regular
file within the size limits, the bytes whose sha256 the results file records, a Parquet file with
exactly the expected columns and types, and its values must make sense: task names and document hashes
of the expected form, document ids unique per task and within the task's documents (its ``--limit``, or
the catalogue's size of the split), finite log-likelihoods, chosen answers among the choices, metric
values in [0, 1] (0 or 1 for right/wrong metrics), as many rows per task as the results file's ``n``,
and per-document values whose mean is the figure the results file reports.

Nothing here raises on bad input: every failure is a :class:`~leaderboard.problems.Problem` naming the
file (the per-sample file, or the results file for its ``per_sample`` fields) and the place
(``$[row].column`` in the per-sample file).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from kompakt import samples as fmt
from kompakt.results import ResultsFile
from kompakt.tasks import TASKS
from leaderboard.problems import Problem


#: How far a per-sample score may stray outside [0, 1] by floating-point rounding alone: TruthfulQA-MC2's score is a
#: sum of normalized probabilities, and lm-eval computes 1.0000000000000002 for a document whose true answers take all
#: of it (measured on the embedded reference). The value is kept as measured; anything further out is an error.
ROUNDING = 1e-9

#: A full HellaSwag run (10,042 documents) is about 0.6 MB; 64 MiB leaves room for much larger task sets.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Rows, choices per row and uncompressed size a per-sample file may claim before anything is decompressed.
MAX_ROWS = 500_000
MAX_CHOICES = 256
MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
#: Problems reported per rule and file: one broken column should not print a line per row.
MAX_PER_RULE = 5
#: How far the mean of the per-document values may lie from the results file's figure (rounding only).
MEAN_TOLERANCE = 1e-6

_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
_HASH = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class CheckedSamples:
    """A per-sample file as read: its table when every check passed, and the problems found."""

    name: str
    """The per-sample file as shown in messages."""
    table: pa.Table | None
    problems: list[Problem]


def display_name(results_name: str, file_name: str) -> str:
    """The per-sample file's name in messages: beside the results file's."""
    parent = Path(results_name).parent
    return file_name if str(parent) == "." else str(parent / file_name)


def check_samples(result: ResultsFile, results_path: Path, results_name: str) -> CheckedSamples | None:
    """Read and check the per-sample file ``result`` names; None when it names none."""
    entry = result.per_sample
    if entry is None:
        return None
    name = display_name(results_name, entry.path)
    expected = fmt.file_name(result.run_id)
    if entry.path != expected:
        return CheckedSamples(name, None, [Problem(results_name, "$.per_sample.path", f"names {entry.path!r}",
                                                   f"{expected!r}, the run id's per-sample file beside the results file")])
    raw, problems = _read_bytes(results_path.parent / entry.path, name, results_name)
    if raw is None:
        return CheckedSamples(name, None, problems)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != entry.sha256:
        return CheckedSamples(name, None, [Problem(results_name, "$.per_sample.sha256", f"does not match {name} (its sha256 is {digest})",
                                                   "the sha256 of the per-sample file's bytes")])
    table, problems = _parse(raw, name, results_name, entry.rows)
    if table is None:
        return CheckedSamples(name, None, problems)
    problems = _check_values(table, name) or _check_against(table, result, name, results_name)
    return CheckedSamples(name, None if problems else table, problems)


def _read_bytes(path: Path, name: str, results_name: str) -> tuple[bytes | None, list[Problem]]:
    try:
        if path.is_symlink():
            return None, [Problem(name, "$", "is a symbolic link", "a regular file")]
        if not path.exists():
            return None, [Problem(results_name, "$.per_sample.path", f"{name} does not exist", "the per-sample file beside the results file")]
        if not path.is_file():
            return None, [Problem(name, "$", "is not a regular file", "a Parquet file")]
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, [Problem(name, "$", f"file is {size:,} bytes", f"at most {MAX_FILE_BYTES:,} bytes")]
        return path.read_bytes(), []
    except OSError as err:
        return None, [Problem(name, "$", f"cannot be read: {err.strerror}", "a readable file")]


def _type_ok(column: str, t: pa.DataType) -> bool:
    if column in ("task", "doc_hash"):
        return pa.types.is_string(t) or pa.types.is_large_string(t)
    if column in ("doc_id", "choice", "choice_norm"):
        return pa.types.is_integer(t)
    if column in fmt.METRIC_COLUMNS:
        return pa.types.is_floating(t)
    if column == "loglikelihoods":
        return (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_floating(t.value_type)
    return False


def _parse(raw: bytes, name: str, results_name: str, rows: int) -> tuple[pa.Table | None, list[Problem]]:
    """Parquet bytes into a table in :data:`kompakt.samples.SCHEMA`, checking what the file claims before decompressing it."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(pa.BufferReader(raw))
        meta = pf.metadata
        claimed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        schema = pf.schema_arrow
    except Exception as err:  # pyarrow raises several kinds on malformed input
        return None, [Problem(name, "$", f"not a readable Parquet file ({type(err).__name__}: {str(err)[:120]})", "a Parquet file written by kompakt bench")]
    if meta.num_rows > MAX_ROWS:
        return None, [Problem(name, "$", f"{meta.num_rows:,} rows", f"at most {MAX_ROWS:,} rows")]
    if claimed > MAX_UNCOMPRESSED_BYTES:
        return None, [Problem(name, "$", f"{claimed:,} bytes uncompressed", f"at most {MAX_UNCOMPRESSED_BYTES:,} bytes")]
    if meta.num_rows != rows:
        return None, [Problem(results_name, "$.per_sample.rows", f"says {rows} rows, {name} has {meta.num_rows}", "the per-sample file's row count")]
    names = list(schema.names)
    problems = [Problem(name, f"$.{c}", "required column is missing", "the columns of kompakt.samples") for c in fmt.COLUMNS if c not in names]
    problems += [Problem(name, "$", f"unknown column {_short(c)}", "only the columns of kompakt.samples") for c in names if c not in fmt.COLUMNS]
    if len(set(names)) != len(names):
        problems.append(Problem(name, "$", "a column name appears twice", "each column once"))
    if problems:
        return None, problems
    for c in fmt.COLUMNS:
        t = schema.field(c).type
        if not _type_ok(c, t):
            problems.append(Problem(name, f"$.{c}", f"column has type {t}", f"type {fmt.SCHEMA.field(c).type}"))
    if problems:
        return None, problems
    try:
        table = pf.read(columns=list(fmt.COLUMNS)).select(list(fmt.COLUMNS))
        table = table.cast(pa.schema([f.with_nullable(True) for f in fmt.SCHEMA]), safe=True)
    except Exception as err:
        return None, [Problem(name, "$", f"cannot be read as kompakt's per-sample table ({type(err).__name__}: {str(err)[:120]})",
                              "the columns and types of kompakt.samples")]
    return table, []


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Found:
    """Problems of one file, at most :data:`MAX_PER_RULE` per rule."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.problems: list[Problem] = []

    def rows(self, rows: np.ndarray, column: str, message: Any, expected: str) -> None:
        for row in rows[:MAX_PER_RULE]:
            text = message(int(row)) if callable(message) else message
            self.problems.append(Problem(self.name, f"$[{int(row)}].{column}", text, expected))


def _check_values(table: pa.Table, name: str) -> list[Problem]:
    """Each value on its own: no nulls where required, forms, ranges, finite numbers."""
    found = _Found(name)
    cols = {c: table.column(c) for c in fmt.COLUMNS}
    for c in ("task", "doc_id", "doc_hash", "loglikelihoods", "choice", "acc"):
        found.rows(np.flatnonzero(cols[c].is_null().to_numpy(zero_copy_only=False)), c, "value is missing", "a value in every row")
    if found.problems:
        return found.problems
    tasks = cols["task"].to_pylist()
    found.rows(np.array([i for i, t in enumerate(tasks) if not _SLUG.match(t)], dtype=int), "task",
               lambda i: f"task name {_short(tasks[i])} is not a slug", "letters, digits, '.', '-', '_'")
    hashes = cols["doc_hash"].to_pylist()
    found.rows(np.array([i for i, h in enumerate(hashes) if not _HASH.match(h)], dtype=int), "doc_hash",
               lambda i: f"{_short(hashes[i])} is not 16 hex digits", "the first 16 lower-case hex digits of lm-eval's doc_hash")
    doc_id = cols["doc_id"].to_numpy()
    found.rows(np.flatnonzero(doc_id < 0), "doc_id", lambda i: f"document id {doc_id[i]} is negative", "an index >= 0")
    lls = cols["loglikelihoods"].combine_chunks()
    lengths = np.asarray(lls.value_lengths().fill_null(0).to_numpy(zero_copy_only=False))
    found.rows(np.flatnonzero((lengths < 1) | (lengths > MAX_CHOICES)), "loglikelihoods",
               lambda i: f"{lengths[i]} choices", f"between 1 and {MAX_CHOICES} log-likelihoods")
    flat = lls.flatten()
    values = np.asarray(flat.fill_null(math.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
    bad_value = ~np.isfinite(values)
    if bad_value.any():
        owner = np.repeat(np.arange(len(lengths)), lengths)
        found.rows(np.unique(owner[bad_value]), "loglikelihoods", "a log-likelihood is missing or not finite", "finite numbers")
    for c, required in (("choice", True), ("choice_norm", False)):
        choice = np.asarray(cols[c].fill_null(-1 if required else 0).to_numpy(zero_copy_only=False), dtype=np.int64)
        found.rows(np.flatnonzero((choice < 0) | (choice >= lengths)), c, lambda i, ch=choice: f"answer {ch[i]} of {lengths[i]} choices",
                   "the index of one of the row's choices")
    for c in fmt.METRIC_COLUMNS:
        v = np.asarray(cols[c].to_numpy(zero_copy_only=False), dtype=np.float64)
        present = ~cols[c].is_null().to_numpy(zero_copy_only=False)
        inside = (v >= -ROUNDING) & (v <= 1 + ROUNDING)
        found.rows(np.flatnonzero(present & ~(np.isfinite(v) & inside)), c, lambda i, v=v: f"{v[i]} is not in [0, 1]", "a value in [0, 1]")
    return found.problems


def _check_against(table: pa.Table, result: ResultsFile, name: str, results_name: str) -> list[Problem]:
    """The file against its results file and the task catalogue: tasks, row counts, document ids, means."""
    found = _Found(name)
    tasks = np.asarray(table.column("task").to_pylist(), dtype=object)
    doc_id = table.column("doc_id").to_numpy()
    entries: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for i, a in enumerate(result.metrics.accuracy):
        entries[a.task].append((i, a))
    for task in dict.fromkeys(tasks.tolist()):
        rows = np.flatnonzero(tasks == task)
        if task not in entries:
            found.rows(rows[:1], "task", f"task {task!r} has no accuracy entry in {results_name}", "only tasks the results file reports")
            continue
        ids = doc_id[rows]
        order = np.argsort(ids, kind="stable")
        dup = rows[order][1:][np.diff(ids[order]) == 0]
        found.rows(dup, "doc_id", lambda i: f"document {doc_id[i]} of {task} appears twice", "each document once per task")
        for i, a in entries[task]:
            found.problems += _against_entry(table, rows, task, i, a, name, results_name)
        a = entries[task][0][1]
        info = TASKS.get(task)
        size = a.limit if a.limit is not None else (info.documents if info is not None else None)
        if size is not None:
            what = f"the first {size} documents (--limit)" if a.limit is not None else f"{task}'s {size} documents"
            found.rows(rows[ids >= size], "doc_id", lambda i: f"document id {doc_id[i]} outside {what}", f"an id below {size}")
    return found.problems


def _against_entry(table: pa.Table, rows: np.ndarray, task: str, i: int, a: Any, name: str, results_name: str) -> list[Problem]:
    """One accuracy entry of the results file against the task's rows."""
    loc = f"$.metrics.accuracy[{i}]"
    if a.n is not None and a.n != len(rows):
        return [Problem(name, "$.task", f"{len(rows)} rows of task {task}", f"as many as the results file's n ({a.n}, {loc}.n of {results_name})")]
    if a.metric not in fmt.METRIC_COLUMNS:
        return []
    column = table.column(a.metric).take(pa.array(rows))
    if column.null_count:
        first = int(rows[np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0]])
        return [Problem(name, f"$[{first}].{a.metric}", f"no {a.metric} although {results_name} reports {task} {a.metric}", "a value in every row of the task")]
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    info = TASKS.get(task)
    out = []
    if info is not None and a.metric not in info.scores and not np.all((values == 0) | (values == 1)):
        j = int(np.flatnonzero((values != 0) & (values != 1))[0])
        out.append(Problem(name, f"$[{int(rows[j])}].{a.metric}", f"{task} {a.metric} is right or wrong, got {values[j]}", "0 or 1"))
    mean = float(values.mean())
    if abs(mean - a.value) > MEAN_TOLERANCE:
        out.append(Problem(name, f"$.{a.metric}", f"the mean of {task}'s {a.metric} is {mean:.6f}, {results_name} reports {a.value:.6f} ({loc}.value)",
                           "per-document values whose mean is the reported figure"))
    return out
