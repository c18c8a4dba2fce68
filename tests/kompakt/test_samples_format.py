"""The per-sample file's format (kompakt.samples): its name, its order and types, an atomic write that returns its hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.parquet as pq

from kompakt import samples


def _row(task: str, doc: int, acc: float) -> dict:
    return {"task": task, "doc_id": doc, "doc_hash": f"{doc:016x}", "loglikelihoods": [-1.0, -2.5], "choice": 0,
            "choice_norm": None, "acc": acc, "acc_norm": None}


def test_the_file_is_named_from_the_run_id() -> None:
    assert samples.file_name("20261130T060827Z-a53cd3") == "20261130T060827Z-a53cd3.samples.parquet"


def test_write_sorts_rows_keeps_types_and_returns_the_sha256(tmp_path: Path) -> None:
    rows = [_row("winogrande", 1, 1.0), _row("arc_challenge", 2, 0.0), _row("arc_challenge", 0, 1.0)]
    path = tmp_path / "r" / samples.file_name("run")
    digest = samples.write(rows, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    table = pq.read_table(path)
    assert table.schema.equals(samples.SCHEMA)
    assert [(r["task"], r["doc_id"]) for r in table.to_pylist()] == [("arc_challenge", 0), ("arc_challenge", 2), ("winogrande", 1)]
    assert table.to_pylist()[0]["loglikelihoods"] == [-1.0, -2.5]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left beside it
    assert samples.write(rows, path) == digest  # the same rows, the same bytes

