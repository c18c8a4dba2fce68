"""Per-sample results and the KL divergence end to end on the tiny model.

The reference measured twice, each time in a fresh process, gives the same answer to every question (zero flips)
and a KL divergence of exactly zero against the distributions the first process cached; a 4-bit round-to-nearest
variant changes answers and moves the distribution. A resumed run writes the same per-sample file as the first.

Issue 19 asked for a 2-bit variant here; 4 bits is the coarsest grid kompakt builds, because it stores quantized weights
only as packed checkpoints and no 2-bit format has a CPU kernel on this stack (``unsupported_grid``). On the tiny
model 4 bits already flip answers and move the distribution, which is what the test needs to see.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("lm_eval")

from harness.build.artifacts import reference_artifact  # noqa: E402
from harness.build.base_model import BaseModelSpec, resolve  # noqa: E402
from harness.run import bench  # noqa: E402
from kompakt.profiles import get_profile  # noqa: E402
from kompakt.results import ResultsFile  # noqa: E402
from leaderboard import paired_stats as st  # noqa: E402

HELPER = Path(__file__).with_name("fresh_process_bench.py")
#: Words the tiny tokenizer cuts into three tokens each: choices of equal length, so the model's answer
#: depends on what it computes, not on how long a choice is.
WORDS = ["quick", "fox", "over", "lazy", "dog", "small", "text"]


@pytest.fixture
def data_dir(fake_data_dir: Path) -> Path:
    """The fake data, with 80 ARC-Challenge questions whose four choices are each three tokens long."""
    from fake_benchmarks import _jsonl

    rng = random.Random(0)
    _jsonl(fake_data_dir / "arc_challenge" / "test.jsonl", [
        {"id": f"q{i}", "question": " ".join(rng.choice(WORDS) for _ in range(6)) + "?",
         "choices": {"text": rng.sample(WORDS, 4), "label": list("ABCD")}, "answerKey": rng.choice("ABCD")}
        for i in range(80)
    ])
    return fake_data_dir


def _fresh_process(model: Path, data: Path, results: Path, variants: str, cache: Path) -> dict[str, Path]:
    env = {**os.environ, "KOMPAKT_CACHE": str(cache), "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(HELPER), str(model), str(data), str(results), variants],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return {k: Path(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def _load(path: Path) -> tuple[ResultsFile, Any]:
    results = ResultsFile.model_validate_json(path.read_text())
    return results, pq.read_table(path.with_name(results.per_sample.path)).to_pandas()


def test_the_reference_twice_gives_zero_flips_and_zero_kl_and_rtn4_does_not(tiny_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _fresh_process(tiny_model_dir, data_dir, tmp_path / "results", "reference", cache)
    second = _fresh_process(tiny_model_dir, data_dir, tmp_path / "results", "reference,rtn4", cache)
    ref1, rows1 = _load(first["reference"])
    ref2, rows2 = _load(second["reference"])
    assert ref1.run_id != ref2.run_id and ref1.per_sample.rows == ref2.per_sample.rows == 80

    # zero flips: the same documents, the same answers, the same log-likelihoods
    assert list(rows1.doc_hash) == list(rows2.doc_hash)
    for metric, choice in (("acc", "choice"), ("acc_norm", "choice_norm")):
        f = st.flips(rows2[metric].to_numpy(), rows1[metric].to_numpy())
        assert (f.right_to_wrong, f.wrong_to_right) == (0, 0)
        assert st.agreement(rows2[choice].to_numpy(), rows1[choice].to_numpy()) == 1.0
    assert np.array_equal(np.stack(rows1.loglikelihoods), np.stack(rows2.loglikelihoods))

    # zero KL: the second process compares its distributions with the ones the first process cached
    [kl1], [kl2] = ref1.metrics.distribution_distance, ref2.metrics.distribution_distance
    assert kl2.reference_sha256 == kl1.reference_sha256
    assert kl2.kl_mean == 0.0 and kl2.kl_p99 == 0.0 and kl2.top1_agreement == 1.0
    assert (kl2.tokens, kl2.windows, kl2.context_length, kl2.top_k) == (256, 4, 64, 32)

    # a 4-bit round-to-nearest variant: answers flip and the distribution moves
    rtn, rows = _load(second["rtn4"])
    [kl] = rtn.metrics.distribution_distance
    assert kl.kl_mean > 0 and kl.kl_p99 > kl.kl_median > 0 and kl.top1_agreement < 1.0
    assert kl.kl_gap_bound >= 0 and 0 < kl.tail_mass_mean < 1 and kl.reference_sha256 == kl1.reference_sha256
    assert list(rows.doc_hash) == list(rows2.doc_hash)
    changed = sum(st.flips(rows[m].to_numpy(), rows2[m].to_numpy()).changed for m in ("acc", "acc_norm"))
    assert changed > 0
    assert st.agreement(rows.choice.to_numpy(), rows2.choice.to_numpy()) < 1.0

    # and the leaderboard pairs them at ingest
    from leaderboard.store import ingest

    import duckdb

    ingest(tmp_path / "results", tmp_path / "k.duckdb")
    con = duckdb.connect(str(tmp_path / "k.duckdb"), read_only=True)
    try:
        paired = con.execute("SELECT metric, n, flips, reference_run_id FROM paired WHERE variant_id = 'rtn4' ORDER BY metric").fetchall()
    finally:
        con.close()
    assert [(m, n, r) for m, n, _, r in paired] == [("acc", 80, ref2.run_id), ("acc_norm", 80, ref2.run_id)]
    assert sum(f for _, _, f, _ in paired) > 0


def test_a_resumed_run_keeps_its_per_sample_results(kompakt_env: Path, tiny_model_dir: Path, fake_data_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    base = resolve(BaseModelSpec(source=str(tiny_model_dir), id="tiny-llama"))
    config = bench.BenchConfig(profile=get_profile("cpu"), tasks=["arc_challenge", "truthfulqa_mc2"], data_dir=fake_data_dir,
                               batch_size=4, results_root=kompakt_env / "results", command="pytest")
    job = lambda: bench.VariantJob("reference", artifact=reference_artifact(base), is_reference=True)  # noqa: E731
    [first] = bench.run_bench([job()], config, say=lambda _: None)

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a cached measurement was computed again")

    monkeypatch.setattr(bench, "_run_quality_task", boom)
    [again] = bench.run_bench([job()], config, say=lambda _: None)
    assert sorted(again.cached_tasks) == ["arc_challenge", "truthfulqa_mc2"]
    a, b = first.results.per_sample, again.results.per_sample
    assert a.rows == b.rows == 5 + 4 and a.path != b.path
    assert a.sha256 == b.sha256  # the same rows from the cache: the same bytes
    rows = pq.read_table(again.path.with_name(b.path)).to_pylist()
    assert [r["task"] for r in rows] == ["arc_challenge"] * 5 + ["truthfulqa_mc2"] * 4
    assert [r["doc_id"] for r in rows] == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    mc2 = [r["acc"] for r in rows if r["task"] == "truthfulqa_mc2"]
    [entry] = [e for e in again.results.metrics.accuracy if e.task == "truthfulqa_mc2"]
    assert entry.value == pytest.approx(sum(mc2) / 4)


def test_a_cached_accuracy_without_per_sample_results_is_measured_again(kompakt_env: Path, tiny_model_dir: Path, fake_data_dir: Path) -> None:
    from harness.run.measurement_cache import measurement_path, read_measurement

    base = resolve(BaseModelSpec(source=str(tiny_model_dir), id="tiny-llama"))
    artifact = reference_artifact(base)
    config = bench.BenchConfig(profile=get_profile("cpu"), tasks=["arc_challenge"], data_dir=fake_data_dir, batch_size=4,
                               results_root=kompakt_env / "results", command="pytest")
    bench.run_bench([bench.VariantJob("reference", artifact=artifact, is_reference=True)], config, say=lambda _: None)
    path = measurement_path(artifact, config, "arc_challenge")
    assert read_measurement(path) is not None
    entry = json.loads(path.read_text())
    entry["samples"] = []  # as a cache entry from before per-sample results were kept
    path.write_text(json.dumps(entry))
    assert read_measurement(path) is None
