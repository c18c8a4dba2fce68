"""The KL task's maths on hand-made distributions with known answers: the compact form of the reference, the
KL from it, the bound on what the compact form can miss, and the summary figures; and its cache of the reference."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.measure.tasks.kl_divergence import (  # noqa: E402
    KLSlice, kl_stats, read_reference, reference_summary, token_kl,
)


def _logp(*rows: list[float]) -> torch.Tensor:
    p = torch.tensor(rows, dtype=torch.float64)
    return (p / p.sum(-1, keepdim=True)).log().float()


def _full_kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    lp, lq = logp.double(), logq.double()
    return (lp.exp() * (lp - lq)).sum(-1)


def test_reference_summary_keeps_the_top_k_and_the_rest() -> None:
    top, ids, log_rest = reference_summary(_logp([0.125, 0.5, 0.125, 0.25]), 2)
    assert ids.tolist() == [[1, 3]]
    assert torch.allclose(top.exp(), torch.tensor([[0.5, 0.25]]))
    assert math.isclose(float(log_rest.exp()), 0.25, rel_tol=1e-6)
    _, ids, log_rest = reference_summary(_logp([0.2, 0.8]), 10)  # k beyond the vocabulary: everything, nothing left
    assert ids.shape == (1, 2) and float(log_rest) == -math.inf


def test_kl_with_the_whole_vocabulary_is_the_exact_kl() -> None:
    logp, logq = _logp([0.5, 0.5]), _logp([0.9, 0.1])
    kl, gap = token_kl(*reference_summary(logp, 2), logq)
    exact = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert float(kl) == pytest.approx(exact, rel=1e-6) and float(gap) == 0.0


def test_kl_from_the_top_one_and_the_rest_by_hand() -> None:
    # p = (0.5, 0.3, 0.2), q = (0.4, 0.4, 0.2), k = 1: the coarse distributions are (0.5, 0.5) and (0.4, 0.6)
    logp, logq = _logp([0.5, 0.3, 0.2]), _logp([0.4, 0.4, 0.2])
    kl, gap = token_kl(*reference_summary(logp, 1), logq)
    coarse = 0.5 * math.log(0.5 / 0.4) + 0.5 * math.log(0.5 / 0.6)
    assert float(kl) == pytest.approx(coarse, rel=1e-6)
    # what it misses is exactly r * KL(p's tail || q's tail), both renormalised: 0.5 * KL((0.6, 0.4) || (2/3, 1/3))
    missed = 0.5 * (0.6 * math.log(0.6 / (2 / 3)) + 0.4 * math.log(0.4 / (1 / 3)))
    assert float(_full_kl(logp, logq)) - float(kl) == pytest.approx(missed, rel=1e-5)
    # the bound: r * (log(min(1, p_k / r)) - log(q_min / q_rest)) = 0.5 * (log(1) - log(0.2 / 0.6))
    assert float(gap) == pytest.approx(0.5 * math.log(3), rel=1e-6)
    assert float(gap) >= missed


def test_a_distribution_against_itself_is_exactly_zero() -> None:
    logp = torch.log_softmax(torch.randn(50, 300, generator=torch.Generator().manual_seed(0)), -1)
    kl, _ = token_kl(*reference_summary(logp, 16), logp.clone())
    assert torch.count_nonzero(kl) == 0


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 8, 64])
def test_the_compact_kl_is_a_lower_bound_and_the_gap_stays_under_the_bound(seed: int, k: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(200, 500, generator=g) * 3
    logp = torch.log_softmax(logits, -1)
    logq = torch.log_softmax(logits + torch.randn(200, 500, generator=g) * (0.2 + seed), -1)
    kl, gap = token_kl(*reference_summary(logp, k), logq)
    full = _full_kl(logp, logq)
    assert torch.all(kl <= full + 1e-6)  # the log-sum inequality: coarsening never adds divergence
    assert torch.all(full - kl <= gap + 1e-6)  # and what it misses is within the bound
    assert torch.all(gap >= 0) and torch.all(kl >= 0)


def test_more_of_the_reference_misses_less() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(100, 400, generator=g) * 2
    logp, logq = torch.log_softmax(logits, -1), torch.log_softmax(logits + torch.randn(100, 400, generator=g), -1)
    full = _full_kl(logp, logq).mean()
    missed = [float(full - token_kl(*reference_summary(logp, k), logq)[0].mean()) for k in (4, 32, 128, 400)]
    assert missed == sorted(missed, reverse=True) and missed[-1] == pytest.approx(0, abs=1e-6)


def test_kl_stats_by_hand() -> None:
    kl = np.array([[0.0, 1.0], [2.0, 3.0]])
    agree = np.array([[True, False], [True, True]])
    s = kl_stats(kl, agree)
    assert (s.mean, s.median, s.tokens, s.windows, s.top1_agreement) == (1.5, 1.5, 4, 2, 0.75)
    # window means 0.5 and 2.5: standard deviation sqrt(2), over sqrt(2) windows
    assert s.stderr == pytest.approx(1.0)
    assert s.p99 == pytest.approx(2.97)  # linear interpolation between 2 and 3 at 0.99 * 3
    assert kl_stats(kl[:1], agree[:1]).stderr is None  # one window: no spread to speak of


def test_the_slice_describes_itself() -> None:
    assert KLSlice().describe() == "WikiText-2 raw test, the first 32 windows of 512 tokens"
    assert KLSlice().describe(4) == "WikiText-2 raw test, the first 4 of the slice's 32 windows of 512 tokens"


def test_a_damaged_or_foreign_reference_cache_is_not_used(tmp_path: Path) -> None:
    key = {"windows": 1, "context": 2, "top_k": 2}
    path = tmp_path / "ref.npz"
    arrays = {"input_ids": np.zeros((1, 2), np.int32), "top": np.zeros((1, 2, 2), np.float32), "ids": np.zeros((1, 2, 2), np.int32),
              "log_rest": np.zeros((1, 2), np.float32), "vocab": np.array(5)}
    np.savez(path, key=np.array(json.dumps(key, sort_keys=True)), **arrays)
    assert read_reference(path, key) is not None and len(read_reference(path, key).sha256) == 64
    assert read_reference(path, {**key, "top_k": 3}) is None  # computed for other settings
    np.savez(path, key=np.array(json.dumps(key, sort_keys=True)), **{**arrays, "top": np.zeros((1, 3, 2), np.float32)})
    assert read_reference(path, key) is None  # shapes that do not fit the key
    path.write_bytes(b"not a numpy file")
    assert read_reference(path, key) is None
    assert read_reference(tmp_path / "absent.npz", key) is None


def test_a_model_without_logits_says_it_cannot_be_measured() -> None:
    from harness.measure.tasks import TaskError
    from harness.measure.tasks.kl_divergence import _log_probs

    class NoLogits(torch.nn.Module):
        def forward(self, input_ids: torch.Tensor) -> object:
            return object()  # a backend that returns generated tokens or hidden states only

    with pytest.raises(TaskError, match="gives no next-token logits, so its KL divergence from the reference cannot be measured"):
        _log_probs(NoLogits(), torch.tensor([1, 2, 3]))
