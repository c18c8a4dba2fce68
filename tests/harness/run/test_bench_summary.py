"""The table ``kompakt bench`` prints at the end: changes only against comparable reference figures."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from harness.run.bench import VariantOutcome  # noqa: E402
from harness.run.summary import find_reference, summary_table  # noqa: E402
from kompakt.results import ResultsFile  # noqa: E402


def _result(variant: str, *, wino: float, limit: int | None = None, ppl: float = 30.0, quality: bool = True) -> ResultsFile:
    from leaderboard.synthetic import make_result

    r = make_result("m", variant, "cpu", run_id=f"2026{variant}")
    if not quality:
        r["metrics"] = {"throughput": r["metrics"]["throughput"]}
    else:
        r["metrics"]["accuracy"][0].update(value=wino, limit=limit)
        r["metrics"]["perplexity"][0]["word_perplexity"] = ppl
    return ResultsFile.model_validate(r)


def test_the_summary_table_shows_changes_only_against_comparable_figures() -> None:
    from kompakt.results import Status

    ok = Status(code="ok")
    ref = _result("reference", wino=0.60, ppl=20.0)
    same = _result("awq-4bit", wino=0.55, ppl=25.0)
    fewer = _result("rtn-4bit", wino=0.50, limit=40)
    outcomes = [VariantOutcome(v.variant.id, ok, results=v) for v in (ref, same, fewer)]
    table = summary_table(outcomes)
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[2:] if line.startswith("|")}
    assert "55.0 (-5.0 pp)" in rows["awq-4bit"] and "25.00 (+25.0 %)" in rows["awq-4bit"]
    assert "50.0 (n/c)" in rows["rtn-4bit"]  # 40 documents against the reference's full set
    assert "(" not in rows["reference"].split(" | ", 2)[2]  # the reference has no change against itself


def test_the_reference_for_the_summary_is_the_newest_file_with_quality(tmp_path: Path) -> None:
    from harness.run.results_writer import write_results

    with_quality = _result("reference", wino=0.6)
    speed_only = _result("reference", wino=0.6, quality=False).model_copy(update={"run_id": "2027reference"})
    for r in (with_quality, speed_only):
        write_results(r, root=tmp_path)
    found = find_reference([], "m", "cpu", root=tmp_path)
    assert found is not None and found.run_id == with_quality.run_id


def test_the_summary_table_shows_the_kl_divergence_as_it_is() -> None:
    from kompakt.results import DistributionDistance, Status

    def with_kl(r: ResultsFile, kl: float) -> ResultsFile:
        d = DistributionDistance(task="wikitext2_kl", kl_mean=kl, kl_median=kl, kl_p99=kl, top1_agreement=1.0, tokens=64,
                                 windows=1, context_length=64, top_k=8, slice="test")
        return r.model_copy(update={"metrics": r.metrics.model_copy(update={"distribution_distance": [d]})})

    ok = Status(code="ok")
    outcomes = [VariantOutcome(v.variant.id, ok, results=v) for v in (with_kl(_result("reference", wino=0.6), 0.0),
                                                                       with_kl(_result("awq-4bit", wino=0.6), 0.12345))]
    table = summary_table(outcomes)
    head = [h.strip(" |") for h in table.splitlines()[0].split(" | ")]
    rows = [line.split(" | ") for line in table.splitlines()[2:4]]
    col = head.index("KL")
    assert rows[0][col].strip(" |") == "0.0000" and rows[1][col].strip(" |") == "0.1235"  # a distance already, no change shown
    assert "KL: mean KL divergence from the reference" in table


def test_scores_at_chance_are_marked_and_the_parallel_perplexity_has_a_column_per_language() -> None:
    from kompakt.results import Perplexity, Status

    ref = _result("reference", wino=0.504)
    acc = [a.model_copy(update={"chance_level": 0.5 if a.task == "winogrande" else 0.25}) for a in ref.metrics.accuracy]
    ppl = [Perplexity(task=f"flores_ppl_{lang}", token_perplexity=v, context_length=300, parallel_language=lang)
           for lang, v in (("eng_Latn", 20.0), ("deu_Latn", 40.0))]
    ref = ref.model_copy(update={"metrics": ref.metrics.model_copy(update={"accuracy": acc, "perplexity": [*ref.metrics.perplexity, *ppl]})})
    table = summary_table([VariantOutcome("reference", Status(code="ok"), results=ref)])
    head, _, row = table.splitlines()[:3]
    assert "FLORES PPL English" in head and "FLORES PPL German" in head
    assert "50.4°" in row and "40.00" in row  # 0.504 of 1267 at 1/2: at chance
    assert "°: at chance" in table
    hs = next(a for a in acc if a.task == "hellaswag")
    assert f"{100 * hs.value:.1f}°" not in row  # the synthetic HellaSwag, 0.4 of 10042 at 1/4: above chance
