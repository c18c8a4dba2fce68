"""German against English on the leaderboard: chance marks, quality kept above chance, parallel perplexities and their ratio."""

from __future__ import annotations

import math

import pytest

from kompakt.results import ResultsFile
from leaderboard.flatten import metric_rows, run_row
from leaderboard.languages import language_ratio, relative
from leaderboard.marks import task_labels
from leaderboard.pages import model_pages
from leaderboard.summary import build_rows
from leaderboard.synthetic import make_result


def test_language_ratio_known_answers():
    # German perplexity 40 -> 60 (x1.5), English 20 -> 24 (x1.2): German hurt 1.25 times as much
    assert language_ratio(60, 40, 24, 20) == pytest.approx(1.25)
    assert language_ratio(44, 40, 22, 20) == pytest.approx(1.0)  # both +10 %: alike
    assert language_ratio(40, 40, 30, 20) == pytest.approx(2 / 3)  # English hurt more
    assert language_ratio(None, 40, 24, 20) is None and language_ratio(60, 40, 24, None) is None
    assert relative(3.0, 2.0) == 1.5 and relative(3.0, 0.0) is None


def _acc(task, metric, value, n, chance, stderr=0.01):
    return {"task": task, "metric": metric, "value": value, "stderr": stderr, "n": n, "num_fewshot": 0, "task_version": "1.0", "chance_level": chance}


def _ppl(lang, token_ppl, tpw):
    return {"task": f"flores_ppl_{lang}", "token_perplexity": token_ppl, "word_perplexity": token_ppl * 3, "bits_per_byte": 1.0,
            "context_length": 300, "parallel_language": lang, "documents": 488, "tokens": 40000, "words": round(40000 / tpw), "tokens_per_word": tpw}


def _result(variant, *, wino, arc, tqa, hs, bele_en, bele_de, arc_de, ppl_en, ppl_de):
    r = make_result("m", variant, "cpu")
    r["metrics"]["accuracy"] = [
        _acc("winogrande", "acc", wino, 1267, 0.5),
        _acc("arc_challenge", "acc_norm", arc, 1172, 0.25),
        _acc("truthfulqa_mc2", "acc", tqa, 817, 0.448, stderr=0.015),
        _acc("hellaswag", "acc_norm", hs, 1000, 0.25),
        _acc("belebele_eng_Latn", "acc", bele_en, 900, 0.25),
        _acc("belebele_deu_Latn", "acc", bele_de, 900, 0.25),
        _acc("arc_challenge", "acc", arc, 1172, 0.25),
        _acc("arc_de", "acc_norm", arc_de, 1169, 0.25),
    ]
    r["metrics"]["perplexity"] += [_ppl("eng_Latn", ppl_en, 1.3), _ppl("deu_Latn", ppl_de, 2.4)]
    return r


def rows_of(*results):
    runs, metrics = [], []
    for r in results:
        parsed = ResultsFile.model_validate(r)
        runs.append(run_row(parsed, "f"))
        metrics.extend(metric_rows(parsed))
    return {row["variant_id"]: row for row in build_rows(runs, metrics)}


@pytest.fixture
def rows():
    # the reference: at chance on WinoGrande, ARC-C and TruthfulQA (as the embedded model), above on HellaSwag,
    # above on Belebele in both languages, at chance on ARC in German
    ref = _result("reference", wino=0.504, arc=0.27, tqa=0.449, hs=0.42, bele_en=0.40, bele_de=0.35, arc_de=0.26, ppl_en=20.0, ppl_de=40.0)
    var = _result("awq-4bit", wino=0.51, arc=0.22, tqa=0.47, hs=0.336, bele_en=0.36, bele_de=0.28, arc_de=0.25, ppl_en=24.0, ppl_de=60.0)
    return rows_of(ref, var)


def test_every_accuracy_carries_its_chance_verdict(rows):
    ref = rows["reference"]
    assert ref["acc_winogrande_acc_vs_chance"] == "at" and ref["acc_winogrande_acc_chance"] == 0.5
    assert ref["acc_arc_challenge_acc_norm_vs_chance"] == "at"
    assert ref["acc_truthfulqa_mc2_acc_vs_chance"] == "at"
    assert ref["acc_hellaswag_acc_norm_vs_chance"] == "above"
    assert ref["acc_arc_de_acc_norm_vs_chance"] == "at" and ref["acc_belebele_deu_Latn_acc_vs_chance"] == "above"
    assert rows["awq-4bit"]["acc_arc_challenge_acc_norm_vs_chance"] == "below"  # 0.22 of 1172 at 1/4
    assert ref["mean_at_chance"] == "winogrande, arc_challenge, truthfulqa_mc2"


def test_quality_kept_above_chance_is_decided_by_the_reference(rows):
    var, ref = rows["awq-4bit"], rows["reference"]
    assert var["above_chance_tasks"] == "hellaswag" == ref["above_chance_tasks"]
    assert var["at_chance_left_out"] == "winogrande, arc_challenge, truthfulqa_mc2"
    assert math.isclose(var["keeps_above_chance"], 0.336 / 0.42)
    assert ref["keeps_above_chance"] is None
    # the four-task mean and its keeps are what they were
    assert math.isclose(var["keeps_mean_accuracy"], var["mean_accuracy"] / ref["mean_accuracy"])
    assert math.isclose(var["mean_accuracy"], (0.51 + 0.22 + 0.47 + 0.336) / 4)


def test_parallel_perplexities_their_ratio_and_tokens_per_word(rows):
    var, ref = rows["awq-4bit"], rows["reference"]
    assert ref["parallel_ppl_deu_Latn"] == 40.0 and ref["tokens_per_word_deu_Latn"] == 2.4 and ref["tokens_per_word_eng_Latn"] == 1.3
    assert var["rel_parallel_ppl_eng_Latn"] == pytest.approx(1.2) and var["rel_parallel_ppl_deu_Latn"] == pytest.approx(1.5)
    assert var["parallel_ppl_ratio_deu_Latn"] == pytest.approx(1.25)
    assert ref["parallel_ppl_ratio_deu_Latn"] is None
    # the parallel perplexity never stands in for WikiText's
    assert var["token_perplexity"] is None and var["word_perplexity"] is not None


def test_language_kept_counts_only_pairs_above_chance_in_both_languages(rows):
    var = rows["awq-4bit"]
    assert var["lang_pairs_deu_Latn"] == "belebele_eng_Latn/belebele_deu_Latn"
    assert "arc_challenge/arc_de" in var["lang_left_out_deu_Latn"]  # ARC at chance (in both languages here)
    assert var["lang_keeps_deu_Latn"] == pytest.approx(0.28 / 0.35) and var["lang_keeps_deu_Latn_pivot"] == pytest.approx(0.36 / 0.40)


def test_no_ratio_between_figures_on_other_documents():
    ref = _result("reference", wino=0.5, arc=0.27, tqa=0.449, hs=0.42, bele_en=0.4, bele_de=0.35, arc_de=0.26, ppl_en=20.0, ppl_de=40.0)
    var = _result("awq-4bit", wino=0.5, arc=0.27, tqa=0.449, hs=0.42, bele_en=0.4, bele_de=0.35, arc_de=0.26, ppl_en=24.0, ppl_de=60.0)
    for p in var["metrics"]["perplexity"][1:]:
        p["limit"] = 100
    row = rows_of(ref, var)["awq-4bit"]
    assert row["parallel_ppl_deu_Latn_limit"] == 100 and row["rel_parallel_ppl_deu_Latn"] is None and row["parallel_ppl_ratio_deu_Latn"] is None


def test_reported_figures_without_sample_counts_are_not_marked():
    ref, var = make_result("m", "reference", "cpu"), make_result("m", "awq-4bit", "cpu")
    rows = rows_of(ref, var)  # synthetic figures have n but no chance level
    assert rows["reference"]["acc_winogrande_acc_vs_chance"] is None
    assert rows["awq-4bit"]["keeps_above_chance"] is None and "no chance verdict" in rows["awq-4bit"]["keeps_above_chance_reason"]


def test_the_model_page_has_the_language_section_with_the_licence_note(rows):
    pages = model_pages(list(rows.values()), [], [], {})
    page = pages["models/m.md"]
    assert "### German and English" in page
    assert "CC BY-NC 4.0, non-commercial use only" in page and "arc_de" in page
    assert "at chance" in page and "1.250" in page  # the ratio
    assert "methodology/#german-against-english" in page
    plain = rows_of(make_result("m", "reference", "cpu"))
    assert "German and English" not in model_pages(list(plain.values()), [], [], {})["models/m.md"]


def test_no_plot_of_german_against_english_while_only_the_reference_has_both(rows):
    """The reference alone sits at (1, 1) by definition: its section shows the table and says why there is no plot."""
    page = model_pages(list(rows.values()), [], [], {})["models/m.md"]
    assert "kompakt-plot" in page.split("### German and English")[1]
    alone = {k: v for k, v in rows.items() if k == "reference"}
    section = model_pages(list(alone.values()), [], [], {})["models/m.md"].split("### German and English")[1]
    assert "kompakt-plot" not in section and "No plot of German against English" in section


def test_task_names_are_shown_as_the_tasks_labels(rows):
    """The left-out note and the reference's above-chance cell name tasks as readers know them, not by their lm-eval ids."""
    assert task_labels("arc_challenge/arc_de, hellaswag_llamacpp, no_such_task") == (
        "ARC-Challenge / ARC-Challenge (German, Okapi), HellaSwag (llama.cpp text), no_such_task")
    page = model_pages(list(rows.values()), [], [], {})["models/m.md"]
    section = page.split("### German and English")[1]
    assert "ARC-Challenge / ARC-Challenge (German, Okapi)" in section and "arc_challenge/arc_de" not in section
    assert "above chance: HellaSwag<" in page.split("### German and English")[0]


def test_the_language_plot_places_its_labels_and_colours_families_as_the_pareto_plots_do():
    """Many variants close together: every label is an annotation that covers no other (the shared placement), points
    keep their family's colour, and both axes share one range so the diagonal runs at 45 degrees."""
    from leaderboard.plots import family_colours, language_caption, language_figure

    ref = _result("reference", wino=0.504, arc=0.27, tqa=0.449, hs=0.42, bele_en=0.40, bele_de=0.35, arc_de=0.26, ppl_en=20.0, ppl_de=40.0)
    variants = [_result(v, wino=0.5, arc=0.27, tqa=0.449, hs=0.42, bele_en=0.4, bele_de=0.35, arc_de=0.26, ppl_en=20.0 * (1 + i / 200),
                        ppl_de=40.0 * (1 + i / 150)) for i, v in enumerate(["awq-4bit", "gptq-4bit", "rtn-8bit", "prune-8", "prune-8-lora"])]
    rows = rows_of(ref, *variants)
    fig = language_figure(list(rows.values()), "deu_Latn", "perplexity")
    notes = fig["layout"]["annotations"]
    plotted = [v for t in fig["data"] if t.get("hovertext") for v in t["text"]]
    assert sorted(plotted) == sorted(v for v in rows if v != "reference")  # the reference sits at (1, 1) by definition
    named = {v for n in notes for v in n["text"].split(", ")}
    assert named <= set(plotted) and fig["layout"]["meta"]["unlabelled"] == len(set(plotted) - named)
    assert notes and all(n["showarrow"] and "ax" in n and "ay" in n for n in notes)  # placed by annotations()
    assert not any("text" in t.get("mode", "") for t in fig["data"])  # not plotly's own text positions, which overlap
    traces = [t for t in fig["data"] if t.get("hovertext")]
    assert {t["name"] for t in traces} == {"quantization", "pruning", "pruning + healing"}
    for t in traces:
        assert t["marker"]["color"] == family_colours([t["name"]])[t["name"]]
    assert fig["layout"]["xaxis"]["range"] == fig["layout"]["yaxis"]["range"]
    diagonal = fig["data"][0]
    assert diagonal["x"] == diagonal["y"] == fig["layout"]["xaxis"]["range"]
    caption = language_caption(fig, "deu_Latn", "perplexity")
    assert "below it the method costs German more than English" in caption
    fig["layout"]["meta"]["unlabelled"] = 2
    assert "2 points left unlabelled" in language_caption(fig, "deu_Latn", "perplexity")
