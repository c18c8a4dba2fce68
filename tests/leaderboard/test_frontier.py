"""The Pareto frontier and the delta maths, on hand-made points."""

from __future__ import annotations

import itertools
import random

import pytest

from leaderboard.frontier import dominates, pareto_mask, relative


def brute_force(points, x_lower, y_lower):
    return [not any(dominates(q, p, x_lower, y_lower) for q in points if q is not p) for p in points]


def test_memory_vs_accuracy_hand_made():
    # (memory in GiB, lower better; accuracy, higher better)
    points = [(16.0, 0.64), (5.5, 0.639), (11.0, 0.57), (4.0, 0.55), (12.0, 0.62), (5.5, 0.60)]
    assert pareto_mask(points, x_lower=True, y_lower=False) == [True, True, False, True, False, False]


def test_speed_vs_accuracy_both_higher_better():
    points = [(27.0, 0.64), (34.0, 0.57), (36.0, 0.62), (3.0, 0.639)]
    # (3.0, 0.639) is slower and less accurate than (27.0, 0.64): dominated
    assert pareto_mask(points, x_lower=False, y_lower=False) == [True, False, True, False]


def test_both_lower_better():
    points = [(1.0, 5.0), (2.0, 4.0), (2.0, 6.0), (3.0, 1.0), (4.0, 1.0)]
    assert pareto_mask(points, x_lower=True, y_lower=True) == [True, True, False, True, False]


def test_equal_points_are_both_on_the_frontier():
    assert pareto_mask([(1.0, 1.0), (1.0, 1.0), (2.0, 0.5)], True, False) == [True, True, False]


def test_empty_and_single():
    assert pareto_mask([], True, False) == []
    assert pareto_mask([(1.0, 2.0)], True, False) == [True]


@pytest.mark.parametrize(("x_lower", "y_lower"), list(itertools.product([True, False], repeat=2)))
def test_matches_brute_force_on_random_sets(x_lower, y_lower):
    rng = random.Random(7)
    for _ in range(200):
        points = [(float(rng.randint(0, 6)), float(rng.randint(0, 6))) for _ in range(rng.randint(0, 12))]
        assert pareto_mask(points, x_lower, y_lower) == brute_force(points, x_lower, y_lower)


def test_relative_keeps():
    assert relative(0.63, 0.70, lower_is_better=False) == pytest.approx(0.9)
    assert relative(12.0, 10.0, lower_is_better=True) == pytest.approx(10 / 12)
    assert relative(1.0, 0.0, lower_is_better=False) is None
