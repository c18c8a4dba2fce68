"""The committed measured results: valid, and the README's quality table generated from them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(script: str):
    """A script of scripts/ as a module."""
    spec = importlib.util.spec_from_file_location(script.replace("-", "_"), ROOT / "scripts" / f"{script}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _script():
    return _load("quality-table")


def test_the_readme_quality_table_is_the_one_the_results_files_give():
    qt = _script()
    committed = qt.readme_block((ROOT / "README.md").read_text(encoding="utf-8"))
    assert committed == qt.table(), "the README's quality table is stale: run scripts/quality-table.py --readme"


def test_the_quality_table_shows_the_figures_of_the_files(tmp_path):
    qt = _script()
    data = qt.newest_full(ROOT / "data/results/smollm2-135m-instruct/reference/cpu")
    assert data is not None and qt.full_set(data)
    # a second variant: the reference's figures with WinoGrande 0.1 lower and word PPL doubled
    other = json.loads(json.dumps(data))
    for a in other["metrics"]["accuracy"]:
        if a["task"] == "winogrande":
            a["value"] -= 0.1
    for p in other["metrics"]["perplexity"]:
        if p["task"] == "wikitext":
            p["word_perplexity"] *= 2
    for name, d in (("reference", data), ("awq4", other)):
        (tmp_path / name / "cpu").mkdir(parents=True)
        (tmp_path / name / "cpu" / "r.json").write_text(json.dumps(d), encoding="utf-8")
    lines = qt.table(tmp_path).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| reference", "| awq4"]
    awq = lines[3].split(" | ")
    assert awq[7] == "-2.5"  # 0.1 over four tasks, in points
    assert awq[9] == "+100.0 %"


def test_the_quality_table_shows_no_change_between_incomparable_figures(tmp_path):
    qt = _script()
    data = qt.newest_full(ROOT / "data/results/smollm2-135m-instruct/reference/cpu")
    other = json.loads(json.dumps(data))
    for p in other["metrics"]["perplexity"]:
        if p["task"] == "wikitext":
            p["context_length"] = 2048  # another rolling window: another perplexity
    for a in other["metrics"]["accuracy"]:
        if a["task"] == "truthfulqa_mc2":
            a["task_version"] = "9.9"
    for name, d in (("reference", data), ("awq4", other)):
        (tmp_path / name / "cpu").mkdir(parents=True)
        (tmp_path / name / "cpu" / "r.json").write_text(json.dumps(d), encoding="utf-8")
    awq = qt.table(tmp_path).splitlines()[3].split(" | ")
    assert awq[7] == "n/c" and awq[9] == "n/c"


def test_a_partial_run_is_not_in_the_quality_table(tmp_path):
    qt = _script()
    data = qt.newest_full(ROOT / "data/results/smollm2-135m-instruct/reference/cpu")
    for a in data["metrics"]["accuracy"]:
        a["limit"] = 20
    (tmp_path / "reference" / "cpu").mkdir(parents=True)
    (tmp_path / "reference" / "cpu" / "r.json").write_text(json.dumps(data), encoding="utf-8")
    assert qt.table(tmp_path) == ""


def test_a_set_measured_in_separate_runs_is_one_row(tmp_path):
    """scripts/measure-cpu-set.py measures the English tasks and the perplexities in separate runs: the row joins them
    when both were measured on the same artifact, and never joins two artifacts."""
    qt = _script()
    data = qt.newest_full(ROOT / "data/results/smollm2-135m-instruct/reference/cpu")
    english, wiki = json.loads(json.dumps(data)), json.loads(json.dumps(data))
    english["metrics"]["perplexity"] = []
    english["provenance"]["date"] = "2026-12-01T00:00:00Z"
    wiki["metrics"]["accuracy"] = []
    wiki["provenance"]["date"] = "2026-12-02T00:00:00Z"
    folder = tmp_path / "reference" / "cpu"
    folder.mkdir(parents=True)
    (folder / "e.json").write_text(json.dumps(english), encoding="utf-8")
    assert qt.table(tmp_path) == ""  # the English tasks alone are no row
    (folder / "w.json").write_text(json.dumps(wiki), encoding="utf-8")
    joined = qt.table(tmp_path)
    assert joined.splitlines()[2].startswith("| reference | ")
    assert joined == _table_of(qt, tmp_path / "whole", data)  # the same row as from one file with both
    wiki["variant"]["steps"] = [{"method": "rtn", "params": {"bits": 8}, "record": {}}]  # another artifact
    (folder / "w.json").write_text(json.dumps(wiki), encoding="utf-8")
    assert qt.table(tmp_path) == ""


def _table_of(qt, base: Path, data: dict) -> str:
    (base / "reference" / "cpu").mkdir(parents=True)
    (base / "reference" / "cpu" / "r.json").write_text(json.dumps(data), encoding="utf-8")
    return qt.table(base)


def test_the_readme_markers_are_required():
    with pytest.raises(ValueError, match="markers"):
        _script().readme_block("no table here")


def test_has_full_tells_the_measurement_script_what_is_done():
    qt = _script()
    assert qt.main(["--has-full", "reference"]) == 0
    assert qt.main(["--has-full", "no-such-variant"]) == 1


def _paired_script():
    return _load("paired-table")


def test_the_readme_paired_table_is_the_one_the_results_files_give():
    pt = _paired_script()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    committed = text[text.index(pt.START) + len(pt.START):text.index(pt.END)].strip("\n") + "\n"
    assert committed == pt.table(), "the README's paired table is stale: run scripts/paired-table.py --readme"


def _paired_set(root: Path, lose: int) -> None:
    """A reference and rtn4 of the embedded model with per-sample results; rtn4 loses ``lose`` ARC answers, and a KL entry."""
    import copy

    from leaderboard.synthetic import attach_samples, make_result, sample_rows, write_result

    tasks = {"winogrande": 60, "arc_challenge": 80, "truthfulqa_mc2": 30, "hellaswag_llamacpp": 50}
    ref_rows = sample_rows(tasks)
    var_rows = copy.deepcopy(ref_rows)
    for r in [r for r in var_rows if r["task"] == "arc_challenge" and r["acc"] == 1.0][:lose]:
        r.update(choice=(r["choice"] + 1) % 4, choice_norm=(r["choice"] + 1) % 4, acc=0.0, acc_norm=0.0)
    for variant, rows, kl in (("reference", ref_rows, 0.0), ("rtn4", var_rows, 0.25)):
        result = make_result("smollm2-135m-instruct", variant, "cpu")
        for a in result["metrics"]["accuracy"]:
            if a["task"] == "hellaswag":
                a["task"] = "hellaswag_llamacpp"
        result["metrics"]["distribution_distance"] = [{
            "task": "wikitext2_kl", "kl_mean": kl, "kl_stderr": kl / 10, "kl_median": kl / 2, "kl_p99": kl * 5,
            "top1_agreement": 1 - kl / 2, "tokens": 16384, "windows": 32, "context_length": 512, "top_k": 1024,
            "slice": "WikiText-2 raw test, the first 32 windows of 512 tokens"}]
        attach_samples(root, result, rows)
        write_result(root, result)


def test_the_paired_table_shows_the_leaderboards_paired_figures(tmp_path):
    pt = _paired_script()
    _paired_set(tmp_path, lose=20)
    lines = pt.table(tmp_path).splitlines()
    assert [line.split(" | ")[0] for line in lines[2:4]] == ["| reference", "| rtn4"]
    rtn4 = lines[3].split(" | ")
    assert rtn4[2].startswith("**-25.0 [") and rtn4[2].endswith(", 25.0 % flipped**")  # 20 of 80, significant
    assert rtn4[1].startswith("+0.0 [+0.0, +0.0], 0.0 % flipped")  # WinoGrande unchanged, not bold
    assert rtn4[6] == "ARC-Challenge acc_norm -25.0 points" and rtn4[7] == "0.2500 ± 0.0250" and rtn4[8] == "87.5 % |"
    assert pt.has_paired("rtn4", tmp_path) and not pt.has_paired("awq4", tmp_path)


def test_the_paired_table_says_when_there_is_nothing_to_show(tmp_path):
    assert "No variant of `smollm2-135m-instruct` has per-sample results" in _paired_script().table(tmp_path)


def test_the_readme_german_table_is_the_one_the_results_files_give():
    qt = _script()
    committed = qt.readme_block((ROOT / "README.md").read_text(encoding="utf-8"), qt.GERMAN_START, qt.GERMAN_END)
    assert committed == qt.german_table(), "the README's German table is stale: run scripts/quality-table.py --readme"


def _german(variant: str, bele_de: float, ppl_en: float, ppl_de: float, limit: int | None = None) -> dict:
    from leaderboard.synthetic import make_result

    r = make_result("m", variant, "cpu")
    r["metrics"]["accuracy"] = [
        {"task": "belebele_eng_Latn", "metric": "acc", "value": 0.40, "stderr": 0.016, "n": 900, "chance_level": 0.25},
        {"task": "belebele_deu_Latn", "metric": "acc", "value": bele_de, "stderr": 0.016, "n": 900, "chance_level": 0.25},
        {"task": "xnli_de", "metric": "acc", "value": 0.34, "stderr": 0.01, "n": 2490, "chance_level": 1 / 3},
    ]
    r["metrics"]["perplexity"] = [
        {"task": f"flores_ppl_{lang}", "token_perplexity": v, "context_length": 300, "limit": limit, "parallel_language": lang,
         "documents": 488, "tokens": 40000, "words": 20000, "tokens_per_word": 2.0}
        for lang, v in (("eng_Latn", ppl_en), ("deu_Latn", ppl_de))
    ]
    return r


def test_the_german_table_shows_the_ratio_and_the_chance_marks(tmp_path):
    qt = _script()
    for name, d in (("reference", _german("reference", 0.26, 20.0, 40.0)), ("awq4", _german("awq4", 0.30, 24.0, 60.0))):
        (tmp_path / name / "cpu").mkdir(parents=True)
        (tmp_path / name / "cpu" / "r.json").write_text(json.dumps(d), encoding="utf-8")
    lines = qt.german_table(tmp_path).splitlines()
    ref, awq = lines[2].split(" | "), lines[3].split(" | ")
    assert ref[2] == "0.260°" and awq[2] == "0.300" and ref[7] == "0.340°"  # 234 of 900 at 1/4: at chance; 270 of 900: above
    assert awq[-3:] == ["1.200", "1.500", "1.250 |"]  # German x1.5 against English x1.2
    assert ref[-1] == "– |"
    (tmp_path / "awq4" / "cpu" / "r.json").write_text(json.dumps(_german("awq4", 0.30, 24.0, 60.0, limit=100)), encoding="utf-8")
    assert len(qt.german_table(tmp_path).splitlines()) == 3  # a limited run is not a full German set
