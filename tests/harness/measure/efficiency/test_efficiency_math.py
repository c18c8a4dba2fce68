"""The pure maths of the efficiency harness: statistics, the repeat rule, the bandwidth bound."""

from __future__ import annotations

import pytest

from harness.measure.efficiency import DoesNotFit, check_fits, fits, generation_samples
from harness.measure.efficiency.bandwidth import bound_share, copy_rate, decode_bound_tokens_per_s
from harness.measure.efficiency.energy import counter_delta, joules_per_token
from harness.measure.efficiency.speed import (
    RepeatRule,
    keep_going,
    median,
    percentile,
    prompt_ids,
    rates,
    relative_difference,
    repeat,
    spread,
    summarize,
)
from kompakt.profiles import Profile
from kompakt.results import Status


def profile(budget: int = 10**9) -> Profile:
    return Profile(name="t", label="t", description="t", device="cpu", dtype="float32", memory_budget_bytes=budget, batch_sizes=[1])


def test_percentile_matches_numpy_linear() -> None:
    np = pytest.importorskip("numpy")
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0]
    for q in (0, 10, 50, 90, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert median([1, 2, 3, 4]) == 2.5
    assert percentile(list(range(1, 11)), 90) == pytest.approx(9.1)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summarize_and_spread() -> None:
    s = summarize([10.0, 12.0, 11.0, 9.0, 30.0])
    assert (s.value, s.min, s.max, s.repeats) == (11.0, 9.0, 30.0, 5)
    assert s.p90 == pytest.approx(percentile([10, 12, 11, 9, 30], 90))
    assert spread([9.0, 10.0, 11.0]) == pytest.approx(0.2)
    assert rates(64, [2.0, 4.0]) == [32.0, 16.0]
    assert relative_difference(100, 104) == pytest.approx(4 / 102)


@pytest.mark.parametrize(
    ("runs", "elapsed", "expected"),
    [
        (0, 0.0, True),
        (9, 50.0, True),  # fewer than ten runs: always go on, however long they took
        (10, 5.0, True),  # ten runs but under ten seconds: go on
        (10, 10.0, False),  # both minimums met
        (200, 1.0, False),  # the run cap
        (12, 130.0, False),  # the time cap once ten runs are done
    ],
)
def test_keep_going(runs: int, elapsed: float, expected: bool) -> None:
    assert keep_going(runs, elapsed) is expected


def test_repeat_warms_up_then_repeats_until_both_minimums() -> None:
    calls = []

    def run() -> float:
        calls.append(1)
        return 1.5

    samples = repeat(run, RepeatRule(warmup=2, min_runs=3, min_seconds=6.0))
    assert samples == [1.5] * 4  # 3 runs take 4.5 s < 6 s, the fourth reaches 6 s
    assert len(calls) == 6  # two warm-up calls are not among the samples


def test_prompt_ids_fixed_and_free_of_special_tokens() -> None:
    a = prompt_ids(256, 100, avoid=[0, 1, 2], batch_size=3)
    assert a == prompt_ids(256, 100, avoid=[0, 1, 2], batch_size=3)
    assert len(a) == 3 and all(len(r) == 256 for r in a)
    assert not {0, 1, 2} & {t for r in a for t in r}
    assert a[0] == prompt_ids(256, 100, avoid=[0, 1, 2], batch_size=1)[0]  # row 0 same at every batch size
    assert a[0] != a[1]
    with pytest.raises(ValueError):
        prompt_ids(4, 2, avoid=[0, 1])


def test_bandwidth_bound_and_share() -> None:
    # 20 GB/s over 500 MB of weights: at most 40 tokens/s; 10 tokens/s is a quarter of that.
    assert decode_bound_tokens_per_s(20e9, 500e6) == pytest.approx(40.0)
    assert bound_share(10.0, 20e9, 500e6) == pytest.approx(0.25)
    # Halving the weights bytes (int8 -> int4) doubles the bound and halves the share at the same speed.
    assert bound_share(10.0, 20e9, 250e6) == pytest.approx(0.125)
    assert copy_rate(1_000, 1e-6) == pytest.approx(2e9)  # a copy reads and writes every byte
    with pytest.raises(ValueError):
        decode_bound_tokens_per_s(0, 1)


def test_generation_samples_splits_first_token_and_decode() -> None:
    # call at 0, first token at 0.2 s, then 4 more tokens 0.05 s apart (batch 2).
    stamps = [[0.0, 0.2, 0.25, 0.30, 0.35, 0.40]]
    g = generation_samples(stamps, batch_size=2)
    assert g["ttft_ms"] == [pytest.approx(200.0)]
    assert g["ms_per_token"] == [pytest.approx(50.0)]
    assert g["decode_tps"] == [pytest.approx(2 * 4 / 0.2)]
    assert g["generate_tps"] == [pytest.approx(2 * 5 / 0.4)]
    with pytest.raises(ValueError):
        generation_samples([[0.0, 1.0]], 1)


def test_energy_counter_wraps() -> None:
    assert counter_delta(100, 250, 1000) == 150
    assert counter_delta(900, 50, 1000) == 150
    assert joules_per_token(6.4, 64) == pytest.approx(0.1)


def test_fits_and_does_not_fit_status() -> None:
    p = profile(budget=1000)
    assert fits(1000, p) and not fits(1001, p) and fits(None, p)
    check_fits(1000, p)
    with pytest.raises(DoesNotFit) as err:
        check_fits(5000, p)
    status = err.value.status()
    assert isinstance(status, Status)
    assert (status.code, status.memory_needed_bytes, status.memory_budget_bytes) == ("does_not_fit", 5000, 1000)
