"""Fixtures for the leaderboard tests: small results sets written to temporary folders."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from leaderboard.synthetic import make_result, write_result


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    root.mkdir()
    return root


@pytest.fixture
def write(results_root: Path) -> Callable[..., Path]:
    """Write a results dict (or raw text at a relative path) under the results root."""

    def _write(result: dict[str, Any] | str, rel: str | None = None) -> Path:
        if isinstance(result, str):
            path = results_root / (rel or "m/v/cpu/raw.json")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(result, encoding="utf-8")
            return path
        if rel is not None:
            path = results_root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result), encoding="utf-8")
            return path
        return write_result(results_root, result)

    return _write


@pytest.fixture
def small_set(write: Callable[..., Path]) -> list[dict[str, Any]]:
    """A reference and two variants on the CPU profile."""
    results = [make_result("tiny", v, "cpu") for v in ("reference", "awq-4bit", "prune-8")]
    for r in results:
        write(r)
    return results


@pytest.fixture
def memdb() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB database, closed after the test."""
    con = duckdb.connect(":memory:")
    yield con
    con.close()
