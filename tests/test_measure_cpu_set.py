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


PRUNE = [("prune_depth", {"n_layers": 8, "seed": 0})]


def _quality_file(mcs, folder: Path, name: str, steps: list, perplexities: bool, packed: bool = False) -> None:
    data = complete(mcs, method=steps[0][0], packed=packed) if steps else complete(mcs)
    data["variant"]["steps"] = [{"method": m, "params": p, "record": {"format": "awq_gemm"} if packed else {}} for m, p in steps]
    if not perplexities:
        data["metrics"]["perplexity"] = [p for p in data["metrics"]["perplexity"] if p["task"] not in mcs.PERPLEXITIES]
    (folder / name).write_text(json.dumps(data))


def test_wikitext_perplexities_come_from_a_committed_file_on_the_same_steps(mcs, tmp_path):
    folder = tmp_path / mcs.MODEL / "prune-8" / mcs.PROFILE
    folder.mkdir(parents=True)
    _quality_file(mcs, folder, "20261201T000000Z-new.json", PRUNE, perplexities=False)
    done, line = mcs.status("prune-8", ["prune_depth"], tmp_path, PRUNE)
    assert not done and "wikitext" in line and "wikitext2_tokens" in line  # nothing to take them from
    assert "wikitext" in mcs.tasks_for("prune-8", PRUNE, tmp_path).split(",")
    # an older file on other parameters (another artifact) does not count
    _quality_file(mcs, folder, "20261101T000000Z-other.json", [("prune_depth", {"n_layers": 4, "seed": 0})], perplexities=True)
    assert not mcs.status("prune-8", ["prune_depth"], tmp_path, PRUNE)[0]
    # one on the same steps does: the run skips them, and the new file completes the variant
    _quality_file(mcs, folder, "20261102T000000Z-old.json", PRUNE, perplexities=True)
    assert mcs.perplexity_source(folder, PRUNE).name == "20261102T000000Z-old.json"
    tasks = mcs.tasks_for("prune-8", PRUNE, tmp_path).split(",")
    assert "wikitext" not in tasks and "wikitext2_tokens" not in tasks and {"wikitext2_kl", "german"} <= set(tasks)
    assert mcs.status("prune-8", ["prune_depth"], tmp_path, PRUNE) == (
        True, "done (20261201T000000Z-new.json; WikiText perplexities from 20261102T000000Z-old.json)")
    other = json.loads((folder / "20261101T000000Z-other.json").read_text())
    assert mcs.missing(other, ["prune_depth"], steps=PRUNE) == ["the recipe's steps"]  # complete, but another artifact
    assert mcs.missing(other, ["prune_depth"]) == []  # without the recipe's steps only the methods are compared


def test_perplexities_of_the_dequantized_artifact_are_measured_again(mcs, tmp_path):
    folder = tmp_path / mcs.MODEL / "awq4" / mcs.PROFILE
    folder.mkdir(parents=True)
    awq = [("awq", {"bits": 4, "group_size": 64})]
    _quality_file(mcs, folder, "20261101T000000Z-old.json", awq, perplexities=True, packed=False)
    assert mcs.perplexity_source(folder, awq) is None
    assert "wikitext" in mcs.tasks_for("awq4", awq, tmp_path).split(",")
    _quality_file(mcs, folder, "20261102T000000Z-packed.json", awq, perplexities=True, packed=True)
    assert mcs.perplexity_source(folder, awq).name == "20261102T000000Z-packed.json"


def test_the_recipes_steps_are_recorded_as_results_files_record_them(mcs):
    known = mcs.recipe_variants()
    assert known["reference"][2] == []
    method, params = known["prune-8"][2][0]
    assert method == "prune_depth" and params["n_layers"] == 8
