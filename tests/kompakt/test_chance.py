"""The chance-level rule on hand-made figures with known answers: at, above and below chance."""

from __future__ import annotations

import math

import pytest

from kompakt.chance import above_chance_keeps, binomial_p_value, t_p_value, verdict


def test_binomial_p_value_known_answer():
    # 7 of 10 at rate 1/2: P(X >= 7) = 176/1024, two-sided twice that
    assert binomial_p_value(0.7, 10, 0.5) == pytest.approx(0.34375)
    # 0 of 10 at rate 1/2: 2 / 1024
    assert binomial_p_value(0.0, 10, 0.5) == pytest.approx(2 / 1024)


def test_t_p_value_known_answer():
    # t = (0.5 - 0.448) / 0.026 = 2 with 99 degrees of freedom: two-sided p = 0.0482...
    assert t_p_value(0.5, 0.026, 100, 0.448) == pytest.approx(0.04824, abs=1e-4)
    assert t_p_value(0.448, 0.0, 100, 0.448) == 1.0 and t_p_value(0.5, 0.0, 100, 0.448) == 0.0


def test_right_or_wrong_scores_at_above_and_below_chance():
    assert verdict(0.26, 0.25, 1000) == "at"  # 260 of 1000 at 1/4: p = 0.47
    assert verdict(0.42, 0.25, 1000) == "above"  # the embedded reference's HellaSwag
    assert verdict(0.19, 0.25, 1000) == "below"
    # the embedded reference's English figures from the issue: WinoGrande and ARC-Challenge acc_norm at chance
    assert verdict(0.5043, 0.5, 1267) == "at"
    assert verdict(0.2688, 0.2502, 1172) == "at"
    # the same distance from chance is significant on more documents
    assert verdict(0.30, 0.25, 100) == "at" and verdict(0.30, 0.25, 2000) == "above"


def test_mc2_uses_the_t_test_on_the_standard_error():
    assert verdict(0.4476, 0.4484, 817, stderr=0.0151, test="t") == "at"  # the embedded reference's TruthfulQA mc2
    assert verdict(0.52, 0.4484, 817, stderr=0.0151, test="t") == "above"
    assert verdict(0.40, 0.4484, 817, stderr=0.0151, test="t") == "below"
    assert verdict(0.52, 0.4484, 817, stderr=None, test="t") is None  # no standard error: not decided


def test_undecidable_figures():
    assert verdict(0.9, None, 1000) is None  # no chance level (reported results)
    assert verdict(0.9, 0.25, None) is None  # no sample count
    assert verdict(0.9, 0.25, 1000, test=None) is None  # not a multiple-choice task
    with pytest.raises(ValueError, match="unknown chance test"):
        verdict(0.9, 0.25, 1000, test="z")


def test_quality_kept_leaves_out_the_tasks_where_the_reference_is_at_chance():
    tasks = ["winogrande", "arc_challenge", "truthfulqa_mc2", "hellaswag"]
    ref = {"winogrande": 0.504, "arc_challenge": 0.269, "truthfulqa_mc2": 0.448, "hellaswag": 0.42}
    var = {"winogrande": 0.52, "arc_challenge": 0.22, "truthfulqa_mc2": 0.48, "hellaswag": 0.33}
    verdicts = {"winogrande": "at", "arc_challenge": "at", "truthfulqa_mc2": "at", "hellaswag": "above"}
    kept = above_chance_keeps(var, ref, verdicts, tasks)
    assert kept.tasks == ("hellaswag",) and kept.left_out == ("winogrande", "arc_challenge", "truthfulqa_mc2")
    assert math.isclose(kept.value, 0.33 / 0.42)
    # two tasks above chance: the ratio of the two means, not the mean of the ratios
    verdicts["winogrande"] = "above"
    kept = above_chance_keeps(var, ref, verdicts, tasks)
    assert math.isclose(kept.value, ((0.52 + 0.33) / 2) / ((0.504 + 0.42) / 2))
    # a reference below chance counts as not above: left out
    verdicts["arc_challenge"] = "below"
    assert "arc_challenge" in above_chance_keeps(var, ref, verdicts, tasks).left_out


def test_quality_kept_is_absent_when_it_cannot_be_said():
    tasks = ["a", "b"]
    none_above = above_chance_keeps({"a": 0.3, "b": 0.3}, {"a": 0.3, "b": 0.3}, {"a": "at", "b": "at"}, tasks)
    assert none_above.value is None and "at chance on every task" in none_above.reason
    undecided = above_chance_keeps({"a": 0.3, "b": 0.3}, {"a": 0.3, "b": 0.3}, {"a": "above", "b": None}, tasks)
    assert undecided.value is None and "no chance verdict for the reference on b" in undecided.reason
    missing = above_chance_keeps({"b": 0.3}, {"a": 0.3, "b": 0.3}, {"a": "above", "b": "at"}, tasks)
    assert missing.value is None and "no comparable figure for a" in missing.reason
