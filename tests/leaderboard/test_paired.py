"""Paired figures at ingest (leaderboard.paired): which runs are paired, the figures against hand-counted answers,
Holm's correction over a variant's tasks, the database's tables and the rows and pages that show them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import duckdb
import pytest

from leaderboard import pages
from leaderboard.site import load_tables
from leaderboard.store import ingest
from leaderboard.synthetic import attach_samples, make_result, sample_rows, write_result

TASKS = {"winogrande": 120, "arc_challenge": 200, "truthfulqa_mc2": 40, "hellaswag": 150}


def _changed(rows: list[dict[str, Any]], lose: dict[str, int] | None = None, gain: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """The reference's rows with the first ``lose[task]`` right answers made wrong and the first ``gain[task]`` wrong ones right."""
    out = copy.deepcopy(rows)
    for task, count in (lose or {}).items():
        for r in [r for r in out if r["task"] == task and r["acc"] == 1.0][:count]:
            r.update(choice=(r["choice"] + 1) % 4, choice_norm=(r["choice"] + 1) % 4, acc=0.0, acc_norm=0.0)
    for task, count in (gain or {}).items():
        for r in [r for r in out if r["task"] == task and r["acc"] == 0.0][:count]:
            r.update(choice=r["doc_id"] % 4, choice_norm=r["doc_id"] % 4, acc=1.0, acc_norm=1.0)
    return out


def _write(root: Path, variant: str, rows: list[dict[str, Any]] | None, seed: int = 0, **overrides: Any) -> dict[str, Any]:
    result = make_result("tiny", variant, "cpu", seed=seed, **overrides)
    if rows is not None:
        attach_samples(root, result, rows)
    write_result(root, result)
    return result


def _paired(database: Path) -> list[dict[str, Any]]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        cur = con.execute("SELECT * FROM paired ORDER BY variant_id, task, metric")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


@pytest.fixture
def reference_rows() -> list[dict[str, Any]]:
    return sample_rows(TASKS)


def test_a_variant_that_loses_answers_on_one_task(results_root: Path, tmp_path: Path, reference_rows: list[dict[str, Any]]) -> None:
    _write(results_root, "reference", reference_rows)
    _write(results_root, "awq-4bit", _changed(reference_rows, lose={"arc_challenge": 12, "winogrande": 3}))
    database = tmp_path / "k.duckdb"
    ingest(results_root, database)
    paired = {(p["task"], p["metric"]): p for p in _paired(database)}
    assert set(paired) == {("winogrande", "acc"), ("arc_challenge", "acc_norm"), ("truthfulqa_mc2", "acc"), ("hellaswag", "acc_norm")}
    arc = paired[("arc_challenge", "acc_norm")]
    assert arc["n"] == 200 and arc["binary"] and arc["test"] == "mcnemar_exact"
    assert arc["flips"] == pytest.approx(12 / 200) and arc["right_to_wrong"] == pytest.approx(12 / 200) and arc["wrong_to_right"] == 0
    assert arc["difference"] == pytest.approx(-12 / 200) and arc["ci_low"] < -0.06 < arc["ci_high"] <= 0
    assert arc["agreement"] == pytest.approx(188 / 200)
    assert arc["p_value"] == pytest.approx(2 * 0.5**12)
    wino = paired[("winogrande", "acc")]
    assert wino["p_value"] == pytest.approx(2 * 0.5**3)
    tqa = paired[("truthfulqa_mc2", "acc")]
    assert not tqa["binary"] and tqa["test"] == "wilcoxon" and tqa["flips"] is None and tqa["p_value"] == 1.0
    # Holm over the variant's four tests: raw 2^-11, 0.25, 1, 1 -> 4 * 2^-11, 3 * 0.25, 1, 1
    assert arc["p_holm"] == pytest.approx(4 * 2 * 0.5**12) and arc["significant"]
    assert wino["p_holm"] == pytest.approx(0.75) and not wino["significant"]
    assert arc["reference_variant_id"] == "reference" and arc["variant_value"] == pytest.approx(arc["reference_value"] - 0.06)

    rows, _, _ = load_tables(database)
    [row] = [r for r in rows if r["variant_id"] == "awq-4bit"]
    assert row["acc_arc_challenge_acc_norm_significant"] is True
    assert row["acc_arc_challenge_acc_norm_flips"] == pytest.approx(0.06)
    assert row["significant_changes"] == ["ARC-Challenge acc_norm -6.0 points"]
    assert row["paired_tests"] == 4
    # flips: the mean over the mean's right/wrong tasks (TruthfulQA's mc2 has none)
    assert row["flips"] == pytest.approx((3 / 120 + 12 / 200 + 0) / 3)
    assert row["flips_tasks"] == "arc_challenge, hellaswag, winogrande"
    html = pages.leaderboard_pages(rows)["leaderboard/index.md"]
    assert "-6.0 pts, significant" in html and "no measurable change" in html


def test_holm_keeps_a_lone_small_p_value_from_counting(results_root: Path, tmp_path: Path, reference_rows: list[dict[str, Any]]) -> None:
    _write(results_root, "reference", reference_rows)
    _write(results_root, "awq-4bit", _changed(reference_rows, lose={"winogrande": 6}))
    database = tmp_path / "k.duckdb"
    ingest(results_root, database)
    wino = next(p for p in _paired(database) if p["task"] == "winogrande")
    assert wino["p_value"] == pytest.approx(2 * 0.5**6) and wino["p_value"] < 0.05  # significant alone ...
    assert wino["p_holm"] == pytest.approx(4 * 2 * 0.5**6) and not wino["significant"]  # ... not among four tests
    rows, _, _ = load_tables(database)
    row = next(r for r in rows if r["variant_id"] == "awq-4bit")
    assert row["significant_changes"] == []
    from leaderboard.columns import Context, _changes_cell

    assert "no measurable change" in _changes_cell(row, Context())


def test_the_same_answers_give_zero_flips_and_no_change(results_root: Path, tmp_path: Path, reference_rows: list[dict[str, Any]]) -> None:
    _write(results_root, "reference", reference_rows)
    _write(results_root, "awq-4bit", copy.deepcopy(reference_rows))
    database = tmp_path / "k.duckdb"
    ingest(results_root, database)
    for p in _paired(database):
        assert p["difference"] == 0 and p["ci_low"] == 0 and p["ci_high"] == 0 and p["agreement"] == 1.0
        assert p["p_value"] == 1.0 and p["p_holm"] == 1.0 and not p["significant"]
        assert p["flips"] in (0.0, None)


def test_no_pair_on_other_documents_or_another_basis(results_root: Path, tmp_path: Path, reference_rows: list[dict[str, Any]]) -> None:
    _write(results_root, "reference", reference_rows)
    other_docs = copy.deepcopy(reference_rows)
    for r in other_docs:
        if r["task"] == "arc_challenge":
            r["doc_hash"] = "0" * 16  # the same ids, other documents (another copy of the data)
    _write(results_root, "awq-4bit", other_docs)
    result = make_result("tiny", "prune-8", "cpu")
    for a in result["metrics"]["accuracy"]:
        if a["task"] == "winogrande":
            a["num_fewshot"] = 5
    attach_samples(results_root, result, copy.deepcopy(reference_rows))
    write_result(results_root, result)
    database = tmp_path / "k.duckdb"
    ingest(results_root, database)
    got = {(p["variant_id"], p["task"]) for p in _paired(database)}
    assert ("awq-4bit", "arc_challenge") not in got and ("awq-4bit", "winogrande") in got
    assert ("prune-8", "winogrande") not in got and ("prune-8", "arc_challenge") in got


def test_runs_without_per_sample_results_have_no_paired_figures(results_root: Path, tmp_path: Path, small_set: list[dict[str, Any]]) -> None:
    database = tmp_path / "k.duckdb"
    ingest(results_root, database)
    assert _paired(database) == []
    rows, _, _ = load_tables(database)
    assert all(r["flips"] is None and r["significant_changes"] == [] and r["paired_tests"] == 0 for r in rows)
    con = duckdb.connect(str(database), read_only=True)
    assert con.execute("SELECT count(*) FROM samples").fetchone() == (0,)
    con.close()


def test_figures_join_a_row_only_from_the_run_it_shows(results_root: Path, tmp_path: Path, reference_rows: list[dict[str, Any]]) -> None:
    _write(results_root, "reference", reference_rows)
    _write(results_root, "awq-4bit", _changed(reference_rows, lose={"arc_challenge": 12}), seed=1)
    _write(results_root, "awq-4bit", None, seed=2)  # a newer run of the same variant without per-sample results
    database = tmp_path / "k.duckdb"
    ingest(results_root, database)
    assert {p["task"] for p in _paired(database)} == set(TASKS)  # the database keeps the older run's figures ...
    rows, _, _ = load_tables(database)
    row = next(r for r in rows if r["variant_id"] == "awq-4bit")
    assert row["acc_arc_challenge_acc_norm_diff"] is None and row["paired_tests"] == 0  # ... the row shows the newer run's figure


def test_the_samples_table_holds_every_checked_row(results_root: Path, tmp_path: Path, reference_rows: list[dict[str, Any]]) -> None:
    ref = _write(results_root, "reference", reference_rows)
    database = tmp_path / "k.duckdb"
    ingest(results_root, database)
    con = duckdb.connect(str(database), read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT run_id) FROM samples").fetchone() == (sum(TASKS.values()), 1)
        assert con.execute("SELECT DISTINCT run_id FROM samples").fetchone() == (ref["run_id"],)
        assert con.execute("SELECT per_sample_file FROM runs").fetchone() == (f"{ref['run_id']}.samples.parquet",)
    finally:
        con.close()
