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
    # the new file has everything else: only the perplexities are left to measure
    assert mcs.plan("prune-8", ["prune_depth"], PRUNE, tmp_path) == [("perplexity", ["wikitext", "wikitext2_tokens"])]
    # an older file on other parameters (another artifact) does not count
    _quality_file(mcs, folder, "20261101T000000Z-other.json", [("prune_depth", {"n_layers": 4, "seed": 0})], perplexities=True)
    assert not mcs.status("prune-8", ["prune_depth"], tmp_path, PRUNE)[0]
    # one on the same steps does: the run skips them, and the new file completes the variant
    _quality_file(mcs, folder, "20261102T000000Z-old.json", PRUNE, perplexities=True)
    assert mcs.perplexity_source(folder, PRUNE).name == "20261102T000000Z-old.json"
    assert mcs.status("prune-8", ["prune_depth"], tmp_path, PRUNE) == (
        True, "done (english, kl, german: 20261201T000000Z-new.json; wikitext: 20261102T000000Z-old.json)")
    assert mcs.plan("prune-8", ["prune_depth"], PRUNE, tmp_path) == []
    other = json.loads((folder / "20261101T000000Z-other.json").read_text())
    assert mcs.missing(other, ["prune_depth"], steps=PRUNE) == ["the recipe's steps"]  # complete, but another artifact
    assert mcs.missing(other, ["prune_depth"]) == []  # without the recipe's steps only the methods are compared


def test_perplexities_of_the_dequantized_artifact_are_measured_again(mcs, tmp_path):
    folder = tmp_path / mcs.MODEL / "awq4" / mcs.PROFILE
    folder.mkdir(parents=True)
    awq = [("awq", {"bits": 4, "group_size": 64})]
    _quality_file(mcs, folder, "20261101T000000Z-old.json", awq, perplexities=True, packed=False)
    assert mcs.perplexity_source(folder, awq) is None
    assert ("perplexity", ["wikitext", "wikitext2_tokens", "wikitext2_kl"]) in mcs.plan("awq4", ["awq"], awq, tmp_path)
    _quality_file(mcs, folder, "20261102T000000Z-packed.json", awq, perplexities=True, packed=True)
    assert mcs.perplexity_source(folder, awq).name == "20261102T000000Z-packed.json"


def _part(mcs, run: str, steps: list) -> dict:
    """A results file of one of the set's runs alone: what ``kompakt bench --tasks <that run's>`` writes."""
    data = complete(mcs, method=steps[0][0])
    data["variant"]["steps"] = [{"method": m, "params": p, "record": {"format": "awq_gemm"}} for m, p in steps]
    m = data["metrics"]
    english = set(mcs.ENGLISH_MC)
    if run == "english":
        m["accuracy"] = [a for a in m["accuracy"] if a["task"] in english]
    else:
        m["accuracy"] = [a for a in m["accuracy"] if a["task"] not in english] if run == "german" else []
    if run != "english":
        data["per_sample"] = data["per_sample"] if run == "german" else None
    m["perplexity"] = [p for p in m["perplexity"] if (p["task"] == "flores_ppl") == (run == "german") and run != "english"]
    m["distribution_distance"] = m["distribution_distance"] if run == "perplexity" else []
    return data


def test_a_variant_is_done_from_its_three_runs_each_landing_on_its_own(mcs, tmp_path):
    awq = [("awq", {"bits": 4, "group_size": 64})]
    folder = tmp_path / mcs.MODEL / "awq4" / mcs.PROFILE
    folder.mkdir(parents=True)
    assert [r for r, _ in mcs.plan("awq4", ["awq"], awq, tmp_path)] == ["english", "perplexity", "german"]
    for i, run in enumerate(("english", "perplexity", "german")):
        assert not mcs.status("awq4", ["awq"], tmp_path, awq)[0]
        data = _part(mcs, run, awq)
        assert mcs.missing(data, ["awq"], steps=awq)  # no run alone holds the set
        (folder / f"2026120{i + 1}T000000Z-{run}.json").write_text(json.dumps(data))
        assert run not in [r for r, _ in mcs.plan("awq4", ["awq"], awq, tmp_path)]
    done, line = mcs.status("awq4", ["awq"], tmp_path, awq)
    assert done and line == ("done (english: 20261201T000000Z-english.json; wikitext, kl: 20261202T000000Z-perplexity.json; "
                             "german: 20261203T000000Z-german.json)")
    # a run's file on another artifact (here: the dequantized one) does not count for its part
    stale = _part(mcs, "german", awq)
    stale["variant"]["steps"][0]["record"] = {}
    (folder / "20261203T000000Z-german.json").write_text(json.dumps(stale))
    assert mcs.plan("awq4", ["awq"], awq, tmp_path) == [("german", ["german"])]
    done, line = mcs.status("awq4", ["awq"], tmp_path, awq)
    assert not done and line.startswith("to measure: german")


def test_parts_count_together_only_from_one_build(mcs, tmp_path):
    gptq = [("gptq", {"bits": 4, "group_size": 64})]
    folder = tmp_path / mcs.MODEL / "gptq4" / mcs.PROFILE
    folder.mkdir(parents=True)

    def land(i: int, run: str, build: str | None) -> None:
        data = _part(mcs, run, gptq)
        data["variant"]["content_hash"] = build
        (folder / f"2026120{i}T000000Z-{run}.json").write_text(json.dumps(data))

    land(1, "english", "sha256:aaaa")  # all three parts on the first host's build
    land(2, "perplexity", "sha256:aaaa")
    land(3, "german", "sha256:aaaa")
    assert mcs.status("gptq4", ["gptq"], tmp_path, gptq)[0]
    land(4, "english", "sha256:bbbb")  # the VM moved, GPTQ rebuilt to other weights: its English part is the newest
    assert [r for r, _ in mcs.plan("gptq4", ["gptq"], gptq, tmp_path)] == ["perplexity", "german"]
    done, line = mcs.status("gptq4", ["gptq"], tmp_path, gptq)
    assert not done and line.startswith("to measure: wikitext, kl, german")
    land(5, "perplexity", None)  # a file written before builds were recorded cannot be checked, and counts
    assert [r for r, _ in mcs.plan("gptq4", ["gptq"], gptq, tmp_path)] == ["german"]
    land(6, "german", "sha256:bbbb")
    done, line = mcs.status("gptq4", ["gptq"], tmp_path, gptq)
    assert done and "english: 20261204T000000Z-english.json" in line and "german: 20261206T000000Z-german.json" in line


def test_measured_after_counts_only_later_runs(mcs, tmp_path):
    gptq = [("gptq", {"bits": 4, "group_size": 64})]
    folder = tmp_path / mcs.MODEL / "gptq4" / mcs.PROFILE
    folder.mkdir(parents=True)
    for run in mcs.RUNS:  # a complete variant of files that record no build (written before 2026-12-04)
        (folder / f"20261202T000000Z-{run}.json").write_text(json.dumps(_part(mcs, run, gptq)))
    assert mcs.status("gptq4", ["gptq"], tmp_path, gptq)[0]
    after = "20261204T1800"
    assert [r for r, _ in mcs.plan("gptq4", ["gptq"], gptq, tmp_path, after)] == list(mcs.RUNS)
    (folder / "20261204T175959Z-english.json").write_text(json.dumps(_part(mcs, "english", gptq)))  # before: ignored
    (folder / "20261204T180000Z-perplexity.json").write_text(json.dumps(_part(mcs, "perplexity", gptq)))  # same minute
    (folder / "20261204T180100Z-german.json").write_text(json.dumps(_part(mcs, "german", gptq)))
    assert [r for r, _ in mcs.plan("gptq4", ["gptq"], gptq, tmp_path, after)] == ["english", "perplexity"]
    done, line = mcs.status("gptq4", ["gptq"], tmp_path, gptq, after)
    assert not done and line.startswith("to measure: english") and "german" not in line.split("(")[0]
    with pytest.raises(SystemExit):
        mcs.main(["--status", "--measured-after", "yesterday"])


def test_runs_chooses_which_runs_and_their_order(mcs, tmp_path):
    gptq = [("gptq", {"bits": 4, "group_size": 64})]
    folder = tmp_path / mcs.MODEL / "gptq4" / mcs.PROFILE
    folder.mkdir(parents=True)
    order = ["perplexity", "english", "german"]
    assert [r for r, _ in mcs.plan("gptq4", ["gptq"], gptq, tmp_path, runs=order)] == order
    assert mcs.plan("gptq4", ["gptq"], gptq, tmp_path, runs=["perplexity"]) == [
        ("perplexity", list(mcs.PERPLEXITIES) + ["wikitext2_kl"])]
    (folder / "20261205T000000Z-perplexity.json").write_text(json.dumps(_part(mcs, "perplexity", gptq)))
    assert [r for r, _ in mcs.plan("gptq4", ["gptq"], gptq, tmp_path, runs=order)] == ["english", "german"]
    assert mcs.plan("gptq4", ["gptq"], gptq, tmp_path, runs=["perplexity"]) == []
    with pytest.raises(SystemExit):
        mcs.main(["--status", "--runs", "perplexity,wikitext"])


def test_a_run_without_its_per_sample_file_is_measured_again(mcs, tmp_path):
    awq = [("awq", {"bits": 4, "group_size": 64})]
    folder = tmp_path / mcs.MODEL / "awq4" / mcs.PROFILE
    folder.mkdir(parents=True)
    data = _part(mcs, "english", awq)
    data["per_sample"] = None
    (folder / "20261201T000000Z-english.json").write_text(json.dumps(data))
    assert mcs.part_gaps(data, "english") == ["per-sample results"]
    assert mcs.plan("awq4", ["awq"], awq, tmp_path)[0] == ("english", list(mcs.ENGLISH_MC))


def test_the_recipes_steps_are_recorded_as_results_files_record_them(mcs):
    known = mcs.recipe_variants()
    assert known["reference"][2] == []
    method, params = known["prune-8"][2][0]
    assert method == "prune_depth" and params["n_layers"] == 8


def _git(repo: Path, *args: str) -> str:
    import subprocess
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(mcs, tmp_path, monkeypatch):
    """A scratch repository whose table scripts append a line to its README, standing in for the real ones."""
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.org")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "README.md").write_text("tables\n")
    for script in mcs.TABLE_SCRIPTS:
        (tmp_path / script).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / script).write_text(
            "import pathlib\np = pathlib.Path('README.md')\np.write_text(p.read_text() + 'regenerated\\n')\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "start")
    folder = tmp_path / "data" / "results" / mcs.MODEL / "rtn8" / mcs.PROFILE
    folder.mkdir(parents=True)
    (folder / "new.json").write_text("{}")
    monkeypatch.setattr(mcs, "ROOT", tmp_path)
    return tmp_path


def test_a_commit_carries_the_readme_tables_it_changes(mcs, repo):
    mcs.commit("rtn8", next(iter(mcs.RUNS)), repo / "data" / "results")
    committed = _git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(committed) == ["README.md", f"data/results/{mcs.MODEL}/rtn8/{mcs.PROFILE}/new.json"]
    assert (repo / "README.md").read_text().count("regenerated") == len(mcs.TABLE_SCRIPTS)
    assert _git(repo, "status", "--porcelain") == ""


def test_a_commit_leaves_a_readme_being_edited_alone(mcs, repo, capsys):
    (repo / "README.md").write_text("tables\nhalf-written prose\n")
    mcs.commit("rtn8", next(iter(mcs.RUNS)), repo / "data" / "results")
    committed = _git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert committed == [f"data/results/{mcs.MODEL}/rtn8/{mcs.PROFILE}/new.json"]
    assert (repo / "README.md").read_text() == "tables\nhalf-written prose\n"
    assert "were not regenerated" in capsys.readouterr().out
