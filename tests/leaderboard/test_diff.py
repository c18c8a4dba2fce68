"""`kompakt diff`: submission rules and the summary of leaderboard changes."""

from __future__ import annotations

import copy
import shutil

from typer.testing import CliRunner

from kompakt_cli import app
from leaderboard.diff import diff, markdown
from leaderboard.synthetic import make_result, write_result


def tree(root, results):
    for r in results:
        write_result(root, r)
    return root


def base_set():
    return [make_result("m", v, "cpu") for v in ("reference", "awq-4bit", "prune-8")]


def reported(run_id="paper-1"):
    r = make_result("m", "rtn-int8", "cpu", run_id=run_id)
    r["provenance"] = {"kind": "reported", "date": "2024-08-15", "citation": {"title": "T", "authors": "A", "year": 2024, "table": "1"}}
    return r


def test_new_row_and_rank_move(tmp_path):
    base = tree(tmp_path / "base", base_set())
    head = tmp_path / "head"
    shutil.copytree(base, head)
    better = make_result("m", "gptq-4bit", "cpu")
    for a in better["metrics"]["accuracy"]:
        a["value"] = 0.99
    write_result(head, better)
    d = diff(base, head)
    assert d.ok
    assert d.added_files == ["m/gptq-4bit/cpu/m-gptq-4bit-cpu-0.json"]
    assert [k[1] for k in d.new_rows] == ["gptq-4bit"]
    assert {k[1] for k, _, _ in d.rank_moves} == {"reference", "awq-4bit", "prune-8"}
    text = markdown(d)
    assert "New rows (1)" in text and "Rank moves" in text


def test_changed_run_id_is_refused(tmp_path):
    base = tree(tmp_path / "base", base_set())
    changed = base_set()
    changed[1]["metrics"]["accuracy"][0]["value"] = 0.9
    head = tree(tmp_path / "head", changed)
    d = diff(base, head)
    assert not d.ok
    assert "already exists" in d.refused[0].message
    assert "Refused" in markdown(d)


def test_changed_reported_result_is_refused(tmp_path):
    base = tree(tmp_path / "base", [*base_set(), reported()])
    edited = reported()
    edited["metrics"]["accuracy"][0]["value"] = 0.1
    head = tree(tmp_path / "head", [*base_set(), edited])
    d = diff(base, head)
    assert any("reported (cited) result" in p.message for p in d.refused)


def test_removing_a_file_removes_its_rows(tmp_path):
    base = tree(tmp_path / "base", base_set())
    head = tree(tmp_path / "head", base_set()[:2])
    d = diff(base, head)
    assert d.ok
    assert d.removed_files == ["m/prune-8/cpu/m-prune-8-cpu-0.json"]
    assert [k[1] for k in d.removed_rows] == ["prune-8"]


def test_invalid_head_is_refused(tmp_path):
    base = tree(tmp_path / "base", base_set())
    head = tmp_path / "head"
    shutil.copytree(base, head)
    (head / "m" / "reference" / "cpu" / "x.json").write_text("{")
    assert not diff(base, head).ok


def test_identical_trees(tmp_path):
    base = tree(tmp_path / "base", base_set())
    d = diff(base, base)
    assert d.ok and "No change to the leaderboard." in markdown(d)


def test_cli_writes_summary_and_exit_code(tmp_path):
    base = tree(tmp_path / "base", base_set())
    head = tree(tmp_path / "head", copy.deepcopy(base_set())[:1])
    summary = tmp_path / "summary.md"
    out = CliRunner().invoke(app, ["diff", str(base), str(head), "--summary", str(summary)])
    assert out.exit_code == 0, out.output
    assert "Removed rows (2)" in summary.read_text()
