"""Is an accuracy distinguishable from answering at random? The chance-level rule, as pure functions.

Every multiple-choice task has a chance level: what a model that does not know the answer
scores on the documents it was given (the harness computes it from the data and stores it
with the figure, ``TaskAccuracy.chance_level``):

- one right answer among k choices: the mean of 1/k over the documents (ARC, Belebele, XNLI, ...);
- TruthfulQA's mc2 (a score in [0, 1] per document: the probability mass on the true answers):
  the mean share of true answers among the choices, what equal likelihoods for all answers score.

A figure is **at chance** when its distance from that level is not significant at
:data:`ALPHA` (two-sided):

- right-or-wrong tasks (``binomial``): scipy's exact binomial test of k = round(value x n)
  successes in n documents against p = the chance level. Where documents have different
  numbers of choices (ARC: 3 to 5) the exact law is a Poisson binomial; the binomial with
  the mean chance level is its close stand-in (the same mean, a slightly larger variance, so
  the test errs towards "at chance");
- mc2 (``t``): a per-document score is not a success count, so a one-sample t-test of the
  per-document scores against the chance level, from the mean, its standard error and n as
  lm-eval reports them (lm-eval's standard error of a mean is the sample standard deviation
  over sqrt(n), so t = (value - chance) / stderr with n - 1 degrees of freedom is exactly the
  one-sample t statistic of those scores).

The verdict is ``above``, ``at`` or ``below``; None where it cannot be decided (no chance level,
no sample count, or no standard error for the t-test: reported results mostly).

"Quality kept, tasks above chance" (:func:`above_chance_keeps`) leaves out every task at which
the *reference* is not significantly above chance, decided once per base model, profile and
task from the reference's figure, the same tasks for every variant of that model.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["above", "at", "below"]

#: Two-sided significance level of the chance tests.
ALPHA = 0.05


def binomial_p_value(value: float, n: int, chance: float) -> float:
    """Two-sided p-value of scipy's exact binomial test: k = round(value x n) right answers of n at rate ``chance``."""
    from scipy.stats import binomtest

    k = min(n, max(0, round(value * n)))
    return float(binomtest(k, n, chance, alternative="two-sided").pvalue)


def t_p_value(value: float, stderr: float, n: int, chance: float) -> float:
    """Two-sided p-value of a one-sample t-test of per-document scores with mean ``value`` and standard error ``stderr``."""
    from scipy.stats import t as student_t

    if stderr == 0:
        return 1.0 if value == chance else 0.0
    statistic = (value - chance) / stderr
    return float(2 * student_t.sf(abs(statistic), df=n - 1))


def verdict(value: float, chance: float | None, n: int | None, stderr: float | None = None,
            test: str | None = "binomial", alpha: float = ALPHA) -> Verdict | None:
    """``above``, ``at`` or ``below`` chance; None when it cannot be decided (a missing chance level, n or stderr)."""
    if chance is None or n is None or test is None or n < 2 or not 0 < chance < 1:
        return None
    if test == "binomial":
        p = binomial_p_value(value, n, chance)
    elif test == "t":
        if stderr is None or math.isnan(stderr):
            return None
        p = t_p_value(value, stderr, n, chance)
    else:
        raise ValueError(f"unknown chance test {test!r}; expected 'binomial' or 't'")
    if p >= alpha:
        return "at"
    return "above" if value > chance else "below"


@dataclass(frozen=True)
class Kept:
    """A variant's quality kept on the tasks where the reference is above chance."""

    value: float | None
    """Mean of the variant's figures over ``tasks`` divided by the reference's mean over them; None: no task counts."""
    tasks: tuple[str, ...]
    """The tasks it is averaged on (the reference significantly above chance at each)."""
    left_out: tuple[str, ...]
    """Tasks left out because the reference is at (or below) chance there."""
    reason: str | None = None
    """Why ``value`` is None."""


def above_chance_keeps(variant: Mapping[str, float], reference: Mapping[str, float],
                       reference_verdicts: Mapping[str, Verdict | None], tasks: Sequence[str]) -> Kept:
    """Quality kept over the ``tasks`` at which the reference is above chance.

    ``variant`` and ``reference`` map a task to its figure (only figures that may be compared);
    ``reference_verdicts`` maps a task to the reference's verdict. Any task whose verdict is unknown
    makes the whole figure unknown: which tasks count cannot be said.
    """
    undecided = [t for t in tasks if reference_verdicts.get(t) is None]
    if undecided:
        return Kept(None, (), (), f"no chance verdict for the reference on {', '.join(undecided)}")
    kept = tuple(t for t in tasks if reference_verdicts[t] == "above")
    left = tuple(t for t in tasks if reference_verdicts[t] != "above")
    if not kept:
        return Kept(None, (), left, "the reference is at chance on every task")
    missing = [t for t in kept if t not in variant or t not in reference]
    if missing:
        return Kept(None, kept, left, f"no comparable figure for {', '.join(missing)}")
    ref_mean = statistics.fmean(reference[t] for t in kept)
    if ref_mean == 0:
        return Kept(None, kept, left, "the reference scores 0")
    return Kept(statistics.fmean(variant[t] for t in kept) / ref_mean, kept, left)
