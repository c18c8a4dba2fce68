"""The committed measured results: valid, and the README's quality table generated from them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("quality_table", ROOT / "scripts" / "quality-table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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


def test_the_readme_markers_are_required():
    with pytest.raises(ValueError, match="markers"):
        _script().readme_block("no table here")


def test_has_full_tells_the_measurement_script_what_is_done():
    qt = _script()
    assert qt.main(["--has-full", "reference"]) == 0
    assert qt.main(["--has-full", "no-such-variant"]) == 1


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
