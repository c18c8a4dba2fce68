"""`kompakt diff`: submission rules and the summary of leaderboard changes."""

from __future__ import annotations

import copy
import math
import shutil

import pytest

from typer.testing import CliRunner

from kompakt_cli import app
from leaderboard.diff import diff, exceeds_standard_error, markdown, mean_stderr, order_changes, shift_phrase
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


def with_accuracy(result, values):
    """``result`` with its four accuracies set to ``values`` (winogrande, arc_challenge, truthfulqa_mc2, hellaswag)."""
    for a, v in zip(result["metrics"]["accuracy"], values):
        a["value"] = v
    return result


def ranked_set():
    """Three rows with clearly separated means: awq-4bit (0.6) above reference (0.5) above prune-8 (0.4)."""
    return [
        with_accuracy(make_result("m", "reference", "cpu"), [0.5] * 4),
        with_accuracy(make_result("m", "awq-4bit", "cpu"), [0.6] * 4),
        with_accuracy(make_result("m", "prune-8", "cpu"), [0.4] * 4),
    ]


def test_insertion_above_existing_rows_moves_none(tmp_path):
    base = tree(tmp_path / "base", ranked_set())
    head = tmp_path / "head"
    shutil.copytree(base, head)
    write_result(head, with_accuracy(make_result("m", "gptq-4bit", "cpu"), [0.9] * 4))
    d = diff(base, head)
    assert d.ok
    assert d.added_files == ["m/gptq-4bit/cpu/m-gptq-4bit-cpu-0.json"]
    assert [k[1] for k in d.new_rows] == ["gptq-4bit"]
    assert d.rank_moves == []
    assert d.changed == []
    assert d.ranking == ["`m` on CPU: Synthetic CPU, 2 cores (cpu): the new row `gptq-4bit` on pytorch enters at rank 1; 3 rows shift down by one."]
    text = markdown(d)
    assert "New rows (1)" in text and "Rank moves" not in text and "order changed" not in text
    assert "enters at rank 1; 3 rows shift down by one" in text


def test_insertion_in_the_middle_shifts_only_the_rows_below(tmp_path):
    base = tree(tmp_path / "base", ranked_set())
    head = tree(tmp_path / "head", [*ranked_set(), with_accuracy(make_result("m", "gptq-4bit", "cpu"), [0.55] * 4)])
    d = diff(base, head)
    assert d.rank_moves == []
    assert d.ranking[0].endswith("the new row `gptq-4bit` on pytorch enters at rank 2; 2 rows shift down by one.")


def test_removal_lets_the_rows_below_up(tmp_path):
    base = tree(tmp_path / "base", ranked_set())
    head = tree(tmp_path / "head", ranked_set()[:1] + ranked_set()[2:])  # awq-4bit (rank 1) removed
    d = diff(base, head)
    assert d.rank_moves == []
    assert [k[1] for k in d.removed_rows] == ["awq-4bit"]
    assert d.ranking[0].endswith("the removed row `awq-4bit` on pytorch leaves rank 1; 2 rows shift up by one.")


def test_a_quick_run_entering_the_ranking_says_so(tmp_path):
    base = tree(tmp_path / "base", ranked_set())
    quick = with_accuracy(make_result("m", "gptq-4bit", "cpu"), [0.55] * 4)
    for a in quick["metrics"]["accuracy"]:
        a["limit"], a["n"] = 40, 40
    head = tree(tmp_path / "head", [*ranked_set(), quick])
    assert "enters at rank 2 (its mean is not comparable with the reference's, e.g. a quick run: the rank is only indicative); 2 rows shift down by one." in diff(base, head).ranking[0]
    # measured like the reference: no caveat
    assert "(its mean" not in diff(base, tree(tmp_path / "full", [*ranked_set(), with_accuracy(make_result("m", "gptq-4bit", "cpu"), [0.55] * 4)])).ranking[0]


def test_a_swap_gives_two_rank_moves(tmp_path):
    base = tree(tmp_path / "base", ranked_set())
    swapped = ranked_set()
    # a new measurement (new run id) of prune-8 puts it above the reference
    remeasured = with_accuracy(make_result("m", "prune-8", "cpu", run_id="m-prune-8-cpu-1", seed=1), [0.55] * 4)
    head = tree(tmp_path / "head", [*swapped, remeasured])
    d = diff(base, head)
    assert d.ok
    assert d.ranking == []
    moves = {m.key[1]: m for m in d.rank_moves}
    assert set(moves) == {"reference", "prune-8"}
    assert (moves["prune-8"].before, moves["prune-8"].after) == (3, 2)
    assert (moves["reference"].before, moves["reference"].after) == (2, 3)
    assert [k[1] for k in moves["prune-8"].passed] == ["reference"] and moves["prune-8"].passed_by == ()
    assert [k[1] for k in moves["reference"].passed_by] == ["prune-8"]
    text = markdown(d)
    assert "order changed" in text
    # 0.4 -> 0.55 with standard errors of 0.013-0.015 per task: far beyond them
    beyond = {(c.key[1], c.figure.column) for c in d.beyond_standard_error}
    assert ("prune-8", "mean_accuracy") in beyond and ("prune-8", "acc_winogrande_acc") in beyond
    assert "Changed by more than their standard error" in text


def test_a_change_within_the_standard_error_is_not_named(tmp_path):
    base = tree(tmp_path / "base", ranked_set())
    nudged = ranked_set()
    remeasured = with_accuracy(make_result("m", "prune-8", "cpu", run_id="m-prune-8-cpu-1", seed=1), [0.405, 0.4, 0.4, 0.4])
    head = tree(tmp_path / "head", [*nudged, remeasured])
    d = diff(base, head)
    changed = {c.figure.column: c for c in d.changed}
    # winogrande moved 0.005 against a standard error of 0.014; the mean 0.00125 against sqrt(sum se^2)/4
    assert changed["acc_winogrande_acc"].standard_errors == pytest.approx(0.005 / 0.014)
    assert changed["mean_accuracy"].standard_errors == pytest.approx(0.00125 / (math.sqrt(0.014**2 + 0.013**2 + 0.015**2 + 0.005**2) / 4))
    assert d.beyond_standard_error == []
    assert "Changed by more than their standard error" not in markdown(d)


def test_a_change_measured_on_other_documents_is_not_compared_in_standard_errors(tmp_path):
    # the base has prune-8 on the first 40 documents; the head adds a full measurement, which displaces it
    limited = ranked_set()
    for a in limited[2]["metrics"]["accuracy"]:
        a["limit"], a["n"] = 40, 40
    base = tree(tmp_path / "base", limited)
    full = with_accuracy(make_result("m", "prune-8", "cpu", run_id="m-prune-8-cpu-1", seed=1), [0.9] * 4)
    head = tree(tmp_path / "head", [*copy.deepcopy(limited), full])
    d = diff(base, head)
    changed = {c.figure.column: c for c in d.changed if c.key[1] == "prune-8"}
    assert not changed["acc_winogrande_acc"].comparable and not changed["mean_accuracy"].comparable
    assert d.beyond_standard_error == []
    assert "not comparable" in markdown(d)


def test_a_change_in_shots_is_not_compared_in_standard_errors(tmp_path):
    base = tree(tmp_path / "base", ranked_set())
    five_shot = with_accuracy(make_result("m", "prune-8", "cpu", run_id="m-prune-8-cpu-1", seed=1), [0.45] * 4)
    for a in five_shot["metrics"]["accuracy"]:
        a["num_fewshot"] = 5
    head = tree(tmp_path / "head", [*ranked_set(), five_shot])
    changed = {c.figure.column: c for c in diff(base, head).changed}
    assert not changed["acc_winogrande_acc"].comparable and not changed["mean_accuracy"].comparable


def test_new_row_headline_beside_its_reference(tmp_path):
    base = tree(tmp_path / "base", ranked_set())
    head = tree(tmp_path / "head", [*ranked_set(), with_accuracy(make_result("m", "gptq-4bit", "cpu"), [0.45] * 4)])
    d = diff(base, head)
    text = markdown(d)
    line = next(l for l in text.splitlines() if "`gptq-4bit`" in l and l.startswith("|"))
    assert "vs `reference`" in line
    assert "0.4500 (ref. 0.5000: -5.0 pp)" in line
    # the synthetic 4-bit file weighs a quarter of the reference and decodes four times as fast
    assert "(ref. 514.98 MiB: 0.25×)" in line and "(ref. 40: 4.00×)" in line
    # word perplexity 21.47 against 20.1: the relative change
    assert "21.47 (ref. 20.1: +6.8 %)" in line


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


# ----------------------------------------------------------------------------- the maths, on hand-made inputs


def test_order_changes_ignores_rows_on_one_side_only():
    assert order_changes(["a", "b", "c"], ["new", "a", "b", "c"]) == {}
    assert order_changes(["a", "gone", "b"], ["a", "b"]) == {}
    assert order_changes([], ["a"]) == {}


def test_order_changes_swap_and_jump():
    assert order_changes(["a", "b", "c"], ["b", "a", "c"]) == {"b": (["a"], []), "a": ([], ["b"])}
    # c jumps over a and b: all three took part in a swapped pair
    assert order_changes(["a", "b", "c"], ["c", "a", "b"]) == {"c": (["a", "b"], []), "a": ([], ["c"]), "b": ([], ["c"])}
    # reversing: the middle row passed one and was passed by one
    assert order_changes(["a", "b", "c"], ["c", "b", "a"])["b"] == (["a"], ["c"])


def test_shift_phrase():
    assert shift_phrase([1] * 24) == "24 rows shift down by one"
    assert shift_phrase([1]) == "1 row shifts down by one"
    assert shift_phrase([1, 1, 2, 0, -1]) == "2 rows shift down by one, 1 by two; 1 row shifts up by one"
    assert shift_phrase([0, 0]) == ""
    assert shift_phrase([12]) == "1 row shifts down by 12"


def test_mean_stderr():
    # four tasks with standard error 0.02 each: sqrt(4 * 0.0004) / 4 = 0.01
    assert mean_stderr([0.02, 0.02, 0.02, 0.02]) == pytest.approx(0.01)
    assert mean_stderr([0.03, 0.04]) == pytest.approx(0.025)  # sqrt(0.0009 + 0.0016) / 2
    assert mean_stderr([0.02, None]) is None
    assert mean_stderr([]) is None


def test_exceeds_standard_error():
    assert exceeds_standard_error(0.50, 0.53, 0.015) == pytest.approx(2.0)
    assert exceeds_standard_error(0.53, 0.50, 0.015) == pytest.approx(2.0)
    assert exceeds_standard_error(0.50, 0.51, None) is None
    assert exceeds_standard_error(0.50, 0.51, 0.0) is None
