"""measure() end to end on the tiny model: valid results-file sections, does_not_fit, energy sources."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from harness.measure.efficiency import DoesNotFit, RepeatRule, measure  # noqa: E402
from harness.measure.efficiency.bandwidth import Bandwidth  # noqa: E402
from harness.measure.efficiency.energy import EnergyMeter  # noqa: E402
from kompakt.profiles import Profile  # noqa: E402
from efficiency_sections import validate_in_a_results_file  # noqa: E402

#: A made-up bandwidth so tests do not spend seconds copying half a gigabyte.
BW = Bandwidth(bytes_per_s=10e9, median_bytes_per_s=9e9, device="test", method="fixed for tests", repeats=1)
FAST = RepeatRule(warmup=1, min_runs=2, min_seconds=0.0)


def small_profile(budget: int = 16 * 2**30, batch_sizes: list[int] | None = None) -> Profile:
    return Profile(
        name="tiny", label="tiny", description="tests", device="cpu", dtype="float32", memory_budget_bytes=budget,
        batch_sizes=batch_sizes or [1, 2], prompt_tokens=16, new_tokens=8, context_length=64,
    )


@pytest.fixture(scope="module")
def result(tiny_model_dir: Path):
    return measure(tiny_model_dir, small_profile(), rule=FAST, bandwidth=BW)


def test_measure_fills_memory_throughput_and_notes(result, tiny_model_dir: Path) -> None:
    m = result.memory
    assert m.weights_bytes == result.weights_bytes > 0
    assert m.disk_bytes == sum(p.stat().st_size for p in tiny_model_dir.rglob("*") if p.is_file())
    assert m.peak_host_bytes > m.weights_bytes and m.context_length == 64
    assert m.peak_device_allocated_bytes is None  # a CPU run has no device memory
    assert [t.batch_size for t in result.throughput] == [1, 2]
    for t in result.throughput:
        assert t.backend == "pytorch" and t.prompt_tokens == 16 and t.generated_tokens == 8
        for stat in (t.prefill_tokens_per_s, t.decode_tokens_per_s, t.generate_tokens_per_s, t.time_to_first_token_ms, t.ms_per_token):
            assert stat.repeats >= 2 and stat.min <= stat.value <= stat.max
        assert "threads" in t.notes and "attention" in t.notes
    one, two = result.throughput
    assert one.bandwidth_bound_share == pytest.approx(one.decode_tokens_per_s.value * result.weights_bytes / BW.bytes_per_s)
    assert two.bandwidth_bound_share is None  # the bound is defined for batch 1
    assert any("memory bandwidth" in n for n in result.notes)
    if not result.energy:
        assert any(n.startswith("no energy figures") for n in result.notes)


def test_sections_validate_in_a_results_file(result) -> None:
    validate_in_a_results_file(result)


def test_weights_over_budget_do_not_fit_before_loading(tiny_model_dir: Path) -> None:
    with pytest.raises(DoesNotFit) as err:
        measure(tiny_model_dir, small_profile(budget=10_000), rule=FAST, bandwidth=BW)
    status = err.value.status()
    assert status.code == "does_not_fit" and status.memory_needed_bytes > 10_000 and status.memory_budget_bytes == 10_000
    assert err.value.memory is None  # nothing was loaded


def test_peak_over_budget_does_not_fit_after_measuring(tiny_model_dir: Path) -> None:
    # The weights (under 1 MiB) fit 64 MiB, the process generating with them (a Python
    # interpreter with torch: hundreds of MiB resident) does not.
    with pytest.raises(DoesNotFit) as err:
        measure(tiny_model_dir, small_profile(budget=64 * 2**20), rule=FAST, bandwidth=BW, speed=False)
    assert err.value.memory is not None
    assert err.value.needed_bytes == err.value.memory.peak_host_bytes > 64 * 2**20
    assert "peak host memory" in err.value.status().reason


def test_loaded_model_and_tokenizer_are_accepted(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    r = measure(model, small_profile(batch_sizes=[1]), tokenizer=tok, rule=FAST, bandwidth=BW, memory=False, artifact_path=tiny_model_dir)
    assert r.memory.disk_bytes and r.memory.peak_host_bytes is None and len(r.throughput) == 1


def fake_rapl(root: Path, uj: int, max_uj: int = 1000_000_000) -> None:
    for name, sub in (("intel-rapl:0", "package-0"), ("intel-rapl:0:0", "core")):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "energy_uj").write_text(str(uj))
        (d / "max_energy_range_uj").write_text(str(max_uj))
        (d / "name").write_text(sub)


def test_rapl_package_domains_are_read_and_wrap(tmp_path: Path) -> None:
    fake_rapl(tmp_path, 999_000_000)
    meter = EnergyMeter(device="cpu", rapl_root=tmp_path)
    assert meter.available
    meter.start()
    fake_rapl(tmp_path, 2_000_000)  # wrapped past 1e9 µJ
    (reading,) = meter.stop()  # the core sub-domain is inside the package: not added
    assert reading.source == "rapl" and reading.joules == pytest.approx(3.0)


def test_no_counter_means_no_figure_and_a_reason(tmp_path: Path) -> None:
    meter = EnergyMeter(device="cpu", rapl_root=tmp_path / "missing")
    assert not meter.available
    assert any("RAPL is not exposed" in r for r in meter.reasons)


def test_energy_measured_where_rapl_readable(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.measure.efficiency.energy as energy

    fake_rapl(tmp_path, 0)
    monkeypatch.setattr(energy, "POWERCAP", tmp_path)
    real_read = EnergyMeter._read
    reads = {"n": 0}

    def read(self):  # the package counter advances 1 J between two reads, as a busy CPU's would
        reads["n"] += 1
        fake_rapl(tmp_path, reads["n"] * 1_000_000)
        return real_read(self)

    monkeypatch.setattr(EnergyMeter, "_read", read)
    r = measure(tiny_model_dir, small_profile(batch_sizes=[1]), rule=FAST, bandwidth=BW, memory=False)
    (e,) = r.energy
    runs = r.throughput[0].decode_tokens_per_s.repeats
    # 1 J over the timed runs (warm-up not included), each generating 8 tokens.
    assert (e.source, e.batch_size) == ("rapl", 1)
    assert e.joules_per_token == pytest.approx(1.0 / (8 * runs))
    assert not any(n.startswith("no energy figures") for n in r.notes)
