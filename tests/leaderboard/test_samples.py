"""Every validation rule for per-sample files (leaderboard.samples), each with a file that breaks it,
and broken or hostile files that must end in a clear problem, never in the database."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from kompakt import samples as fmt
from leaderboard import samples as checks
from leaderboard.store import IngestError, ingest
from leaderboard.synthetic import attach_samples, make_result, sample_rows, write_result
from leaderboard.validate import validate_paths

TASKS = {"winogrande": 12, "arc_challenge": 10, "truthfulqa_mc2": 8, "hellaswag": 9}


def _result(root: Path, variant: str = "reference", **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    result = make_result("tiny", variant, "cpu")
    rows = sample_rows(TASKS, **kw)
    attach_samples(root, result, rows)
    return result, rows


def _samples_path(root: Path, result: dict[str, Any]) -> Path:
    return root / "tiny" / result["variant"]["id"] / "cpu" / fmt.file_name(result["run_id"])


def _rewrite(root: Path, result: dict[str, Any], table: pa.Table | bytes) -> Path:
    """Replace the per-sample file by ``table`` (or raw bytes), record its hash and rows, write the results file."""
    path = _samples_path(root, result)
    if isinstance(table, bytes):
        path.write_bytes(table)
        rows = result["per_sample"]["rows"]
    else:
        pq.write_table(table, path)
        rows = table.num_rows
    result["per_sample"] = {**result["per_sample"], "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "rows": rows}
    write_result(root, result)
    return path


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return fmt.to_table(rows)


def problems(root: Path) -> list[str]:
    return [str(p) for p in validate_paths([root], results_root=root).report.problems]


def _one(root: Path, needle: str, where: str) -> str:
    found = [p for p in problems(root) if needle in p]
    assert found, f"no problem with {needle!r} in {problems(root)}"
    assert where in found[0], found[0]
    return found[0]


def test_a_results_file_with_its_per_sample_file_is_valid(results_root: Path) -> None:
    result, rows = _result(results_root)
    write_result(results_root, result)
    validation = validate_paths([results_root], results_root=results_root)
    assert validation.report.problems == []
    [(name, checked)] = validation.samples.items()
    assert checked.table is not None and checked.table.num_rows == len(rows) == sum(TASKS.values())
    assert [f.name for f in validation.valid] == [name]


def test_the_file_must_be_named_from_the_run_id(results_root: Path) -> None:
    result, _ = _result(results_root)
    result["per_sample"]["path"] = "other.samples.parquet"
    write_result(results_root, result)
    _one(results_root, "names 'other.samples.parquet'", "$.per_sample.path")


def test_a_path_outside_the_folder_is_not_even_a_valid_results_file(results_root: Path) -> None:
    result, _ = _result(results_root)
    result["per_sample"]["path"] = "../../other/x.samples.parquet"
    write_result(results_root, result)
    _one(results_root, "String should match pattern", "$.per_sample.path")


def test_a_missing_file(results_root: Path) -> None:
    result, _ = _result(results_root)
    write_result(results_root, result)
    _samples_path(results_root, result).unlink()
    _one(results_root, "does not exist", "$.per_sample.path")


def test_a_symbolic_link_is_refused(results_root: Path, tmp_path: Path) -> None:
    result, _ = _result(results_root)
    write_result(results_root, result)
    path = _samples_path(results_root, result)
    target = tmp_path / "elsewhere.parquet"
    target.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(target)
    _one(results_root, "symbolic link", ".samples.parquet: $:")


def test_a_file_over_the_size_limit(results_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = _result(results_root)
    write_result(results_root, result)
    monkeypatch.setattr(checks, "MAX_FILE_BYTES", 100)
    _one(results_root, "bytes (expected at most 100 bytes)", ".samples.parquet: $:")


def test_the_hash_must_match(results_root: Path) -> None:
    result, _ = _result(results_root)
    write_result(results_root, result)
    path = _samples_path(results_root, result)
    pq.write_table(_table(sample_rows(TASKS, seed=3, flip=0.5)), path)  # another file in its place
    _one(results_root, "does not match", "$.per_sample.sha256")


@pytest.mark.parametrize("content", [b"", b"not parquet at all", b"PAR1" + b"\0" * 40 + b"PAR1"])
def test_bytes_that_are_not_parquet(results_root: Path, content: bytes) -> None:
    result, _ = _result(results_root)
    _rewrite(results_root, result, content)
    _one(results_root, "not a readable Parquet file", ".samples.parquet: $:")


def test_a_truncated_file(results_root: Path) -> None:
    result, _ = _result(results_root)
    raw = _samples_path(results_root, result).read_bytes()
    _rewrite(results_root, result, raw[: len(raw) // 2])
    _one(results_root, "not a readable Parquet file", ".samples.parquet: $:")


def test_the_row_count_must_match(results_root: Path) -> None:
    result, _ = _result(results_root)
    result["per_sample"]["rows"] += 1
    write_result(results_root, result)
    _one(results_root, "rows, ", "$.per_sample.rows")


@pytest.mark.parametrize(("limit", "value", "needle"), [("MAX_ROWS", 5, "rows (expected at most 5 rows)"),
                                                         ("MAX_UNCOMPRESSED_BYTES", 10, "bytes uncompressed")])
def test_claims_over_the_limits_are_refused_before_reading(results_root: Path, monkeypatch: pytest.MonkeyPatch, limit: str,
                                                           value: int, needle: str) -> None:
    result, _ = _result(results_root)
    write_result(results_root, result)
    monkeypatch.setattr(checks, limit, value)
    _one(results_root, needle, ".samples.parquet: $:")


def _columns(rows: list[dict[str, Any]], drop: str | None = None, **replace: pa.Array) -> pa.Table:
    table = _table(rows)
    data = {c: table.column(c) for c in table.column_names if c != drop}
    data.update(replace)
    return pa.table(data)


def test_a_missing_column(results_root: Path) -> None:
    result, rows = _result(results_root)
    _rewrite(results_root, result, _columns(rows, drop="doc_hash"))
    _one(results_root, "required column is missing", ".samples.parquet: $.doc_hash:")


def test_an_unknown_column(results_root: Path) -> None:
    result, rows = _result(results_root)
    _rewrite(results_root, result, _columns(rows, extra=pa.array([1] * len(rows))))
    _one(results_root, "unknown column 'extra'", ".samples.parquet: $:")


@pytest.mark.parametrize(("column", "values"), [
    ("doc_id", lambda n: pa.array([str(i) for i in range(n)])),
    ("loglikelihoods", lambda n: pa.array([1.0] * n)),
    ("loglikelihoods", lambda n: pa.array([[[1.0]]] * n)),
    ("acc", lambda n: pa.array(["1"] * n)),
    ("task", lambda n: pa.array([1] * n)),
])
def test_a_column_of_the_wrong_type(results_root: Path, column: str, values: Any) -> None:
    result, rows = _result(results_root)
    _rewrite(results_root, result, _columns(rows, **{column: values(len(rows))}))
    _one(results_root, "column has type", f".samples.parquet: $.{column}:")


def _edit(results_root: Path, edit: Any) -> None:
    """Write the reference's rows after ``edit(rows)``, keeping the results file's figures as they were."""
    result, rows = _result(results_root)
    edit(rows)
    path = _samples_path(results_root, result)
    pq.write_table(_loose(rows), path)
    result["per_sample"] = {**result["per_sample"], "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "rows": len(rows)}
    write_result(results_root, result)


def _loose(rows: list[dict[str, Any]]) -> pa.Table:
    """The rows in the file's columns, every column nullable (to write broken values)."""
    schema = pa.schema([f.with_nullable(True) for f in fmt.SCHEMA])
    return pa.table({c: [r.get(c) for r in rows] for c in fmt.COLUMNS}, schema=schema)


@pytest.mark.parametrize(("edit", "needle", "where"), [
    (lambda rows: rows[3].update(doc_hash=None), "value is missing", "$[3].doc_hash"),
    (lambda rows: rows[2].update(acc=None), "value is missing", "$[2].acc"),
    (lambda rows: rows[1].update(task="ARC<script>"), "is not a slug", "$[1].task"),
    (lambda rows: rows[0].update(doc_hash="XYZ"), "is not 16 hex digits", "$[0].doc_hash"),
    (lambda rows: rows[4].update(doc_id=-1), "is negative", "$[4].doc_id"),
    (lambda rows: rows[5].update(loglikelihoods=[]), "0 choices", "$[5].loglikelihoods"),
    (lambda rows: rows[5].update(loglikelihoods=[-1.0] * 300), "300 choices", "$[5].loglikelihoods"),
    (lambda rows: rows[6].update(loglikelihoods=[-1.0, float("nan"), -2.0, -3.0]), "not finite", "$[6].loglikelihoods"),
    (lambda rows: rows[6].update(loglikelihoods=[-1.0, float("-inf"), -2.0, -3.0]), "not finite", "$[6].loglikelihoods"),
    (lambda rows: rows[6].update(loglikelihoods=[-1.0, None, -2.0, -3.0]), "not finite", "$[6].loglikelihoods"),
    (lambda rows: rows[7].update(choice=4), "answer 4 of 4 choices", "$[7].choice"),
    (lambda rows: rows[7].update(choice=-2), "answer -2 of 4 choices", "$[7].choice"),
    (lambda rows: rows[8].update(choice_norm=9), "answer 9 of 4 choices", "$[8].choice_norm"),
    (lambda rows: rows[9].update(acc=1.5), "not in [0, 1]", "$[9].acc"),
    (lambda rows: rows[9].update(acc=float("nan")), "not in [0, 1]", "$[9].acc"),
    (lambda rows: rows[9].update(acc_norm=-0.5), "not in [0, 1]", "$[9].acc_norm"),
])
def test_each_value_rule(results_root: Path, edit: Any, needle: str, where: str) -> None:
    _edit(results_root, edit)
    _one(results_root, needle, where)


def _task_rows(rows: list[dict[str, Any]], task: str) -> list[int]:
    return [i for i, r in enumerate(rows) if r["task"] == task]


def test_document_ids_are_unique_per_task(results_root: Path) -> None:
    def dup(rows: list[dict[str, Any]]) -> None:
        i, j = _task_rows(rows, "arc_challenge")[:2]
        rows[j] = {**rows[i]}

    _edit(results_root, dup)
    _one(results_root, "appears twice", ".doc_id:")


def test_document_ids_lie_within_the_task(results_root: Path) -> None:
    _edit(results_root, lambda rows: rows[_task_rows(rows, "winogrande")[0]].update(doc_id=1267))
    _one(results_root, "outside winogrande's 1267 documents", ".doc_id:")


def test_document_ids_lie_within_the_limit(results_root: Path) -> None:
    result, rows = _result(results_root)
    for entry in result["metrics"]["accuracy"]:
        if entry["task"] == "arc_challenge":
            entry["limit"] = 10
    for r in rows:
        if r["task"] == "arc_challenge" and r["doc_id"] == 9:
            r["doc_id"] = 10  # the first 10 documents are 0..9
    _rewrite(results_root, result, _table(rows))
    _one(results_root, "outside the first 10 documents (--limit)", ".doc_id:")


def test_a_task_the_results_file_does_not_report(results_root: Path) -> None:
    result, rows = _result(results_root)
    result["metrics"]["accuracy"] = [a for a in result["metrics"]["accuracy"] if a["task"] != "hellaswag"]
    _rewrite(results_root, result, _table(rows))
    _one(results_root, "task 'hellaswag' has no accuracy entry", ".task:")


def test_as_many_rows_per_task_as_n(results_root: Path) -> None:
    result, rows = _result(results_root)
    result["metrics"]["accuracy"][1]["n"] += 1  # arc_challenge
    _rewrite(results_root, result, _table(rows))
    _one(results_root, "rows of task arc_challenge (expected as many as the results file's n (11", ".samples.parquet: $.task:")


def test_a_reported_metric_needs_its_column(results_root: Path) -> None:
    _edit(results_root, lambda rows: [r.update(acc_norm=None, choice_norm=None) for r in rows if r["task"] == "hellaswag"])
    _one(results_root, "no acc_norm although", ".acc_norm:")


def test_right_or_wrong_metrics_hold_zero_or_one(results_root: Path) -> None:
    _edit(results_root, lambda rows: rows[_task_rows(rows, "winogrande")[2]].update(acc=0.5))
    _one(results_root, "winogrande acc is right or wrong, got 0.5", ".acc:")


def test_scores_may_lie_between(results_root: Path) -> None:
    result, rows = _result(results_root)
    assert any(0 < r["acc"] < 1 for r in rows if r["task"] == "truthfulqa_mc2")
    write_result(results_root, result)
    assert problems(results_root) == []


def test_the_mean_must_be_the_reported_figure(results_root: Path) -> None:
    result, rows = _result(results_root)
    result["metrics"]["accuracy"][0]["value"] = round(result["metrics"]["accuracy"][0]["value"] + 0.01, 6)
    write_result(results_root, result)
    _one(results_root, "the mean of winogrande's acc is", ".samples.parquet: $.acc:")


def test_a_per_sample_file_no_results_file_names_is_a_warning(results_root: Path) -> None:
    result, _ = _result(results_root)
    write_result(results_root, result)
    stray = _samples_path(results_root, result).with_name("stray.samples.parquet")
    stray.write_bytes(_samples_path(results_root, result).read_bytes())
    report = validate_paths([results_root], results_root=results_root).report
    assert report.errors == []
    [warning] = report.warnings
    assert "stray.samples.parquet" in warning.file and "no results file names" in warning.message


def test_a_broken_per_sample_file_never_reaches_the_database(results_root: Path, tmp_path: Path) -> None:
    result, rows = _result(results_root)
    write_result(results_root, result)
    database = tmp_path / "k.duckdb"
    ingest(results_root, database)
    before = database.read_bytes()
    rows[0]["acc"] = 7.0
    _rewrite(results_root, result, _loose(rows))
    with pytest.raises(IngestError) as err:
        ingest(results_root, database)
    assert any("$[0].acc" in str(p) for p in err.value.report.errors)
    assert database.read_bytes() == before
    validation = validate_paths([results_root], results_root=results_root)
    assert validation.valid == []  # its results file is not valid either


def test_problems_are_capped_per_rule(results_root: Path) -> None:
    _edit(results_root, lambda rows: [r.update(doc_hash="bad") for r in rows])
    assert sum("is not 16 hex digits" in p for p in problems(results_root)) == checks.MAX_PER_RULE


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=hs.binary(max_size=600), cut=hs.integers(min_value=0, max_value=4000), flip=hs.integers(min_value=0, max_value=4000))
def test_hostile_bytes_always_end_in_a_problem(results_root: Path, content: bytes, cut: int, flip: int) -> None:
    """Random bytes, a valid file cut short, or a valid file with one byte changed (hash recorded each time):
    validation reports a problem or accepts a file that is still whole, and never raises."""
    result, rows = _result(results_root)
    raw = _samples_path(results_root, result).read_bytes()
    for candidate in (content, raw[:cut], raw[:flip % len(raw)] + bytes([raw[flip % len(raw)] ^ 0x5A]) + raw[flip % len(raw) + 1:]):
        _rewrite(results_root, json.loads(json.dumps(result)), candidate)
        validation = validate_paths([results_root], results_root=results_root)
        checked = next(iter(validation.samples.values()))
        assert checked.problems or checked.table is not None
        if checked.table is not None:  # a byte flip the format does not notice must still pass every value rule
            assert checked.table.num_rows == len(rows)


def test_a_score_one_rounding_error_above_one_is_a_score_not_an_error(results_root: Path) -> None:
    """lm-eval's TruthfulQA-MC2 score, a sum of normalized probabilities, reads 1.0000000000000002 where the true answers
    take all of it (the embedded reference, 2026-11-30): kept as measured and accepted; 1 + 1e-6 is not."""

    def nudge(amount: float):
        def edit(rows: list[dict[str, Any]]) -> None:
            i = next(i for i, r in enumerate(rows) if r.get("acc") == 1.0)
            rows[i]["acc"] = 1.0 + amount
        return edit

    _edit(results_root, nudge(2.220446049250313e-16))
    assert not [p for p in problems(results_root) if "not in [0, 1]" in p]
    _edit(results_root, nudge(1e-6))
    _one(results_root, "not in [0, 1]", ".acc")
