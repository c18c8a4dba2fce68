"""The paired statistics (leaderboard.paired_stats) on hand-made vectors with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from leaderboard import paired_stats as st


def test_flips_count_each_direction() -> None:
    reference = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    variant = np.array([1, 0, 0, 1, 0, 0, 1, 0])
    f = st.flips(variant, reference)
    assert (f.n, f.right_to_wrong, f.wrong_to_right, f.changed) == (8, 2, 1, 3)
    assert f.share == 3 / 8 and f.right_to_wrong_share == 2 / 8 and f.wrong_to_right_share == 1 / 8


def test_flips_need_right_or_wrong_values_of_one_length() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        st.flips(np.array([0.5, 1.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="one length"):
        st.flips(np.array([1, 0]), np.array([1, 0, 1]))
    with pytest.raises(ValueError, match="non-empty"):
        st.agreement(np.array([]), np.array([]))


@pytest.mark.parametrize(
    ("right_to_wrong", "wrong_to_right", "p"),
    [
        (0, 0, 1.0),  # nothing changed: no evidence of a change
        (5, 5, 1.0),  # balanced changes
        (10, 0, 2 * 0.5**10),  # two-sided binomial: 2 * P(X = 0 | n = 10)
        (1, 6, 2 * (1 + 7) / 2**7),  # 2 * P(X <= 1 | n = 7) = 0.125
        (0, 3, 0.25),  # 2 * 0.5**3
    ],
)
def test_mcnemar_exact_p(right_to_wrong: int, wrong_to_right: int, p: float) -> None:
    f = st.Flips(n=100, right_to_wrong=right_to_wrong, wrong_to_right=wrong_to_right)
    assert st.mcnemar_p(f) == pytest.approx(p, abs=1e-12)


def test_wilcoxon_p_on_known_signed_ranks() -> None:
    # five positive differences with distinct ranks: the exact two-sided p is 2 / 2**5
    reference = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    variant = reference + np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    assert st.wilcoxon_p(variant, reference) == pytest.approx(2 / 32)
    # ranks 1..4 with signs + - + -: W+ = 1 + 3 = 4; of the 16 sign patterns, 7 give W+ <= 4 ({}, {1}, {2}, {3},
    # {1,2}, {4}, {1,3}), so the exact two-sided p is 2 * 7/16
    variant = reference[:4] + np.array([0.01, -0.02, 0.03, -0.04])
    assert st.wilcoxon_p(variant, reference[:4]) == pytest.approx(2 * 7 / 16)


def test_wilcoxon_p_is_one_without_any_change() -> None:
    scores = np.array([0.2, 0.7, 0.9])
    assert st.wilcoxon_p(scores, scores.copy()) == 1.0


def test_holm_adjustment() -> None:
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04 -> made monotone: 0.03, 0.06, 0.06
    assert st.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert st.holm([0.5]) == [0.5]
    assert st.holm([0.4, 0.6]) == pytest.approx([0.8, 0.8])  # capped at 1 only above 1
    assert st.holm([0.7, 0.9]) == pytest.approx([1.0, 1.0])
    assert st.holm([]) == []


def test_significant_only_below_the_threshold() -> None:
    assert st.significant(0.049) and not st.significant(0.05) and not st.significant(None)


def test_agreement_counts_same_choices_right_or_wrong() -> None:
    assert st.agreement(np.array([0, 1, 2, 3]), np.array([0, 1, 3, 2])) == 0.5


def test_difference_without_any_change_is_exactly_zero() -> None:
    values = np.array([1, 0, 1, 1, 0, 1], dtype=float)
    assert st.difference_ci(values, values.copy()) == st.Difference(0.0, 0.0, 0.0)


def test_difference_of_a_constant_shift_has_no_spread() -> None:
    reference = np.array([0.1, 0.5, 0.2, 0.9])
    d = st.difference_ci(reference - 0.05, reference)
    assert d.value == pytest.approx(-0.05) and d.low == pytest.approx(-0.05) and d.high == pytest.approx(-0.05)


def test_difference_interval_matches_the_normal_interval_on_a_large_sample() -> None:
    # 2,000 documents: 100 lost, 40 gained, the rest unchanged; the mean difference is -0.03 with standard
    # error sd/sqrt(n), and the bootstrap interval of a mean this large is the normal one to about 0.002
    n = 2000
    diff = np.zeros(n)
    diff[:100] = -1
    diff[100:140] = 1
    rng = np.random.default_rng(5)
    rng.shuffle(diff)
    reference = np.where(diff == -1, 1.0, np.where(diff == 1, 0.0, rng.integers(0, 2, n).astype(float)))
    variant = reference + diff
    d = st.difference_ci(variant, reference)
    se = diff.std(ddof=1) / math.sqrt(n)
    assert d.value == pytest.approx(-0.03)
    assert d.low == pytest.approx(-0.03 - 1.96 * se, abs=0.002)
    assert d.high == pytest.approx(-0.03 + 1.96 * se, abs=0.002)
    assert d.low < d.value < d.high


def test_difference_interval_is_reproducible_and_narrows_with_more_documents() -> None:
    rng = np.random.default_rng(1)
    reference = rng.integers(0, 2, 300).astype(float)
    variant = np.where(rng.random(300) < 0.1, 1 - reference, reference)
    a, b = st.difference_ci(variant, reference), st.difference_ci(variant, reference)
    assert a == b  # a fixed seed: the same data always give the same interval (reproducible builds)
    big = st.difference_ci(np.tile(variant, 4), np.tile(reference, 4))
    assert big.value == pytest.approx(a.value)
    assert big.high - big.low < a.high - a.low
