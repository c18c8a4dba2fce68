"""scripts/measure-cpu-set.py: which results file completes a variant of the committed set, and what it lacks."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mcs():
    spec = importlib.util.spec_from_file_location("measure_cpu_set", ROOT / "scripts" / "measure-cpu-set.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def complete(mcs, method: str = "awq", packed: bool = True) -> dict:
    """A hand-made results file that has everything the set asks for."""
    record = {"format": "awq_gemm"} if packed else {"storage": "dequantized float32"}
    return {
        "status": {"code": "ok"},
        "variant": {"steps": [{"method": method, "record": record}]},
        "per_sample": {"path": "x.samples.parquet"},
        "metrics": {
            "accuracy": [{"task": t, "limit": mcs.LIMITS.get(t)} for t in (*mcs.ENGLISH_MC, *mcs.GERMAN_MC)],
            "perplexity": [{"task": "wikitext"}, {"task": "wikitext2_tokens"},
                           {"task": "flores_ppl", "parallel_language": "eng_Latn"},
                           {"task": "flores_ppl", "parallel_language": "deu_Latn"}],
            "distribution_distance": [{"task": "wikitext2_kl"}],
        },
    }


def test_a_complete_packed_file_is_done(mcs):
    assert mcs.missing(complete(mcs), ["awq"]) == []


@pytest.mark.parametrize(
    ("change", "lacks"),
    [
        (lambda d: d["metrics"]["accuracy"].pop(0), "winogrande"),
        (lambda d: d["metrics"]["accuracy"][3].update(limit=None), "hellaswag_llamacpp"),  # all 10,042: not the set's
        (lambda d: d["metrics"]["accuracy"][4].update(limit=100), "belebele_deu_Latn"),
        (lambda d: d["metrics"]["perplexity"].pop(3), "flores_ppl"),
        (lambda d: d["metrics"]["perplexity"][1].update(limit=8), "wikitext2_tokens"),
        (lambda d: d["metrics"].update(distribution_distance=None), "wikitext2_kl"),
        (lambda d: d.pop("per_sample"), "per-sample results"),
        (lambda d: d["status"].update(code="failed"), "status ok"),
    ],
)
def test_each_gap_is_named(mcs, change, lacks):
    data = complete(mcs)
    change(data)
    assert lacks in mcs.missing(data, ["awq"])


def test_a_file_from_the_dequantized_artifact_never_counts(mcs):
    gaps = mcs.missing(complete(mcs, packed=False), ["awq"])
    assert gaps == ["the packed awq artifact (this file measured the dequantized one)"]
    assert mcs.missing(complete(mcs, method="prune_depth", packed=False), ["prune_depth"]) == []
    assert mcs.missing(complete(mcs), ["prune_depth", "awq"]) == ["the recipe's steps"]


def test_status_takes_any_complete_file_and_skips_efficiency_files(mcs, tmp_path):
    folder = tmp_path / mcs.MODEL / "awq4" / mcs.PROFILE
    folder.mkdir(parents=True)
    old = complete(mcs, packed=False)
    (folder / "20261101T000000Z-a.json").write_text(json.dumps(old))
    done, line = mcs.status("awq4", ["awq"], tmp_path)
    assert not done and "dequantized" in line
    (folder / "20261102T000000Z-b.json").write_text(json.dumps(complete(mcs)))
    (folder / "20261103T000000-efficiency-pytorch-c.json").write_text(json.dumps({"status": {"code": "ok"}, "metrics": {}}))
    assert mcs.status("awq4", ["awq"], tmp_path) == (True, "done (20261102T000000Z-b.json)")
    newer_partial = copy.deepcopy(complete(mcs))
    newer_partial["metrics"]["accuracy"].pop()
    (folder / "20261104T000000Z-d.json").write_text(json.dumps(newer_partial))
    assert mcs.status("awq4", ["awq"], tmp_path)[0]


def test_every_variant_of_the_set_is_in_a_recipe(mcs):
    known = mcs.recipe_variants()
    assert [v for v in mcs.ORDER if v not in known] == []
    assert mcs.ORDER[0] == "reference"
    assert known["prune-8-lora-awq4"][0] == "thesis"
