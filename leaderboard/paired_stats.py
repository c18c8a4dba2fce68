"""The statistics of a paired comparison: one variant against its reference, document by document.

Pure functions on per-document arrays (both sides in the same document order), each tested on
hand-made vectors with known answers (``tests/leaderboard/test_paired_stats.py``). The tests and
the interval come from well-kept libraries, not from code written here:

- the 95 % confidence interval of the difference in accuracy: a paired bootstrap over documents
  (``scipy.stats.bootstrap`` on the per-document differences, bias-corrected and accelerated,
  9,999 resamples, a fixed seed so the same data give the same interval);
- McNemar's exact test for right/wrong metrics (``statsmodels.stats.contingency_tables.mcnemar``
  with ``exact=True``: a binomial test on the documents that changed);
- the Wilcoxon signed-rank test for per-document scores such as TruthfulQA's mc2
  (``scipy.stats.wilcoxon``, two-sided, zero differences dropped);
- Holm's step-down adjustment over the tests of one variant
  (``statsmodels.stats.multitest.multipletests`` with ``method="holm"``).

Why these: the two sides answer the same questions, so their difference is judged per document
(McNemar, Wilcoxon, a bootstrap over documents) rather than by two independent standard errors;
McNemar's exact form is right for the small counts of changed answers a good variant has; Holm
controls the family-wise error over a variant's tasks without assuming they are independent.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np

#: A change is significant when its Holm-adjusted p-value is below this.
ALPHA = 0.05
#: Confidence of the (unadjusted) interval of the difference.
CONFIDENCE = 0.95
#: Bootstrap resamples and seed (fixed, so the same data always give the same interval).
RESAMPLES = 9999
SEED = 0


def _pair(variant: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(variant, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if v.shape != r.shape or v.ndim != 1 or v.size == 0:
        raise ValueError(f"paired data need two non-empty vectors of one length, got shapes {v.shape} and {r.shape}")
    return v, r


@dataclass(frozen=True)
class Difference:
    """Mean of the variant minus mean of the reference, with its paired confidence interval."""

    value: float
    low: float
    high: float


def difference_ci(variant: np.ndarray, reference: np.ndarray, *, confidence: float = CONFIDENCE,
                  resamples: int = RESAMPLES, seed: int = SEED) -> Difference:
    """The difference in accuracy (or mean score) and its paired bootstrap interval over documents.

    All documents differing by the same amount (no change at all, for one) give an interval of that one
    value: resampling cannot move it. Where the accelerated interval cannot be computed (too few distinct
    differences), the plain percentile interval is used.
    """
    v, r = _pair(variant, reference)
    diff = np.asarray(v - r, dtype=np.float64)
    value = float(diff.mean())
    if np.all(diff == diff[0]):
        return Difference(value, value, value)
    low, high = _bootstrap_ci(diff.tobytes(), confidence, resamples, seed)
    return Difference(value, min(low, value), max(high, value))


# A pure function of the differences and the settings, asked for more than once in one process (the site's pages and
# the README's table of the same committed files, in the test run three times over, a minute each): computed once.
@functools.lru_cache(maxsize=4096)
def _bootstrap_ci(diff_bytes: bytes, confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    from scipy import stats

    diff = np.frombuffer(diff_bytes, dtype=np.float64)
    ci = None
    for method in ("BCa", "percentile"):
        # the bootstrap of the differences' mean is the paired bootstrap over documents
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns where BCa degenerates; the percentile interval takes over
            res = stats.bootstrap((diff,), np.mean, vectorized=True, n_resamples=resamples, confidence_level=confidence,
                                  method=method, rng=np.random.default_rng(seed))
        ci = res.confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            break
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class Flips:
    """How the correctness of documents changed between reference and variant (right/wrong metrics)."""

    n: int
    """Documents compared."""
    right_to_wrong: int
    """Right under the reference, wrong under the variant."""
    wrong_to_right: int
    """Wrong under the reference, right under the variant."""

    @property
    def changed(self) -> int:
        return self.right_to_wrong + self.wrong_to_right

    @property
    def share(self) -> float:
        """Share of documents whose correctness changed."""
        return self.changed / self.n

    @property
    def right_to_wrong_share(self) -> float:
        return self.right_to_wrong / self.n

    @property
    def wrong_to_right_share(self) -> float:
        return self.wrong_to_right / self.n


def is_binary(values: np.ndarray) -> bool:
    """Whether every value is exactly 0 or 1 (right or wrong)."""
    v = np.asarray(values, dtype=np.float64)
    return bool(np.all((v == 0.0) | (v == 1.0)))


def flips(variant_correct: np.ndarray, reference_correct: np.ndarray) -> Flips:
    """Count the documents whose correctness changed; both vectors hold 1 (right) or 0 (wrong)."""
    v, r = _pair(variant_correct, reference_correct)
    if not (is_binary(v) and is_binary(r)):
        raise ValueError("flips need right/wrong values (0 or 1) on both sides")
    return Flips(n=int(v.size), right_to_wrong=int(np.sum((r == 1) & (v == 0))), wrong_to_right=int(np.sum((r == 0) & (v == 1))))


def mcnemar_p(f: Flips) -> float:
    """Two-sided p-value of McNemar's exact test on the changed documents; 1 when none changed."""
    from statsmodels.stats.contingency_tables import mcnemar

    if f.changed == 0:
        return 1.0
    unchanged = f.n - f.changed  # the diagonal does not enter the test; its split does not matter
    table = [[unchanged, f.right_to_wrong], [f.wrong_to_right, 0]]
    return float(mcnemar(table, exact=True).pvalue)


def wilcoxon_p(variant_scores: np.ndarray, reference_scores: np.ndarray) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test on per-document score differences (zeros dropped);
    1 when no document's score changed."""
    from scipy import stats

    v, r = _pair(variant_scores, reference_scores)
    if np.all(v == r):
        return 1.0
    return float(stats.wilcoxon(v, r, zero_method="wilcox", alternative="two-sided").pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the input's order (the family: the tests of one variant)."""
    from statsmodels.stats.multitest import multipletests

    if not pvalues:
        return []
    return [float(p) for p in multipletests(pvalues, alpha=ALPHA, method="holm")[1]]


def agreement(variant_choice: np.ndarray, reference_choice: np.ndarray) -> float:
    """Share of documents where the variant chooses the same answer as the reference, right or wrong."""
    v, r = _pair(variant_choice, reference_choice)
    return float(np.mean(v == r))


def significant(p_adjusted: float | None) -> bool:
    """The rule: a change is significant when its Holm-adjusted p-value is below :data:`ALPHA`."""
    return p_adjusted is not None and p_adjusted < ALPHA
