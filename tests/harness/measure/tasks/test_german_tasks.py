"""The German suite: lm-eval's own German task definitions on local files, their chance levels and licence notes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from fake_benchmarks import ARC_DE, BELEBELE, TRUTHFUL_DE  # noqa: E402

from harness.measure.tasks import TaskError, expand_tasks, get_task  # noqa: E402
from harness.measure.tasks.lm_eval_runner import shared_task_manager  # noqa: E402
from kompakt import paths  # noqa: E402
from kompakt import tasks as catalogue  # noqa: E402

GERMAN = ["belebele_eng_Latn", "belebele_deu_Latn", "arc_de", "truthfulqa_de_mc2", "xnli_de", "paws_de"]
SHARED = paths.benchmarks_dir()
needs_shared = pytest.mark.skipif(not (SHARED / "german" / "arc_de" / "test.jsonl").is_file(), reason="shared/benchmarks/german is not here")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_every_german_task_is_an_lm_eval_task_of_this_version():
    index = shared_task_manager().task_index
    for name in GERMAN:
        assert get_task(name).lm_eval_task in index, name
        assert catalogue.TASKS[name].suites == ("german",)


def test_the_german_suite_and_the_english_one():
    assert expand_tasks(["german"]) == [*GERMAN, "flores_ppl"]
    english = expand_tasks(["english"], SHARED)
    assert english[:3] == ["winogrande", "arc_challenge", "truthfulqa_mc2"] and "wikitext" in english
    # a suite and a task: each task once, in the order given
    assert expand_tasks(["arc_de", "german", "efficiency"])[:2] == ["arc_de", "belebele_eng_Latn"]
    assert expand_tasks(["arc_de", "german"]).count("arc_de") == 1
    with pytest.raises(TaskError, match="did you mean 'german'"):
        expand_tasks(["germn"])


def test_splits_without_a_file_are_null(fake_data_dir: Path):
    tm = shared_task_manager()
    xnli = get_task("xnli_de").config(fake_data_dir, tm)
    assert xnli["training_split"] is None and xnli["validation_split"] == "validation"
    assert xnli["dataset_kwargs"] == {"data_files": {"validation": str(fake_data_dir / "german/xnli_de/validation.jsonl")}}
    paws = get_task("paws_de").config(fake_data_dir, tm)
    assert paws["training_split"] is None and paws["validation_split"] is None and paws["test_split"] == "test"
    arc = get_task("arc_de").config(fake_data_dir, tm)
    assert set(arc["dataset_kwargs"]["data_files"]) == {"train", "validation", "test"} and arc["test_split"] == "test"
    tqa = get_task("truthfulqa_de_mc2").config(fake_data_dir, tm)
    assert tqa["validation_split"] == "val" and tqa["training_split"] is None and callable(tqa["process_results"])


def test_german_tasks_load_offline_from_local_files(fake_data_dir: Path, offline: None):
    tm = shared_task_manager()
    built = {name: get_task(name).build(data_dir=fake_data_dir, task_manager=tm) for name in GERMAN}
    docs = {name: list(task.eval_docs) for name, task in built.items()}
    assert {name: len(d) for name, d in docs.items()} == {
        "belebele_eng_Latn": 4, "belebele_deu_Latn": 4, "arc_de": 3, "truthfulqa_de_mc2": 2, "xnli_de": 3, "paws_de": 2}
    bele = built["belebele_deu_Latn"]
    assert bele.doc_to_text(docs["belebele_deu_Latn"][0]).startswith("P: Der Fluss tritt jeden Frühling")
    assert bele.doc_to_target(docs["belebele_deu_Latn"][2]) == 2  # correct_answer_num "3"
    arc = built["arc_de"]
    assert arc.doc_to_text(docs["arc_de"][0]) == "Question: Welches Gas nehmen Pflanzen aus der Luft auf?\nAnswer:"
    assert arc.doc_to_choice(docs["arc_de"][1]) == ["ein Barometer", "ein Lineal", "ein Thermometer"]  # option_d/e null: dropped
    assert arc.doc_to_target(docs["arc_de"][2]) == 3
    xnli = built["xnli_de"]
    assert xnli.doc_to_choice(docs["xnli_de"][0])[0] == "Der Mann liest ein Buch im Park., richtig? Ja, Ein Mann liest."
    paws = built["paws_de"]
    assert paws.doc_to_choice(docs["paws_de"][0])[1].startswith("Die Stadt liegt am Fluss und hat eine alte Brücke, richtig? Ja, die Stadt")
    tqa = built["truthfulqa_de_mc2"]
    assert tqa.doc_to_choice(docs["truthfulqa_de_mc2"][0]) == TRUTHFUL_DE[0][2]


def test_chance_levels_come_from_the_documents(fake_data_dir: Path, offline: None):
    tm = shared_task_manager()
    arc = get_task("arc_de")
    task = arc.build(data_dir=fake_data_dir, task_manager=tm)
    counts = [sum(o is not None for o in opts) for _, opts, _ in ARC_DE]  # 4, 3, 4 choices
    assert arc.chance_level(task) == pytest.approx(sum(1 / k for k in counts) / 3)
    assert arc.chance_level(task, limit=2) == pytest.approx((1 / 4 + 1 / 3) / 2)  # lm-eval's first two documents
    tqa = get_task("truthfulqa_de_mc2")
    shares = [sum(labels) / len(labels) for _, _, _, labels in TRUTHFUL_DE]  # 2/3 and 1/2 true answers
    assert tqa.chance_level(tqa.build(data_dir=fake_data_dir, task_manager=tm)) == pytest.approx(sum(shares) / 2)
    assert get_task("xnli_de").chance_level(get_task("xnli_de").build(data_dir=fake_data_dir, task_manager=tm)) == pytest.approx(1 / 3)
    assert get_task("paws_de").chance_level(get_task("paws_de").build(data_dir=fake_data_dir, task_manager=tm)) == pytest.approx(1 / 2)


def test_cached_figures_get_their_chance_level(fake_data_dir: Path, offline: None):
    from harness.measure.tasks.base import TaskPayload
    from kompakt.results import TaskAccuracy

    class Settings:
        data_dir = fake_data_dir

        def limit_for(self, task: str) -> int | None:
            return None

    old = TaskPayload(accuracy=[TaskAccuracy(task="belebele_deu_Latn", metric="acc", value=0.5, n=4)])
    done = get_task("belebele_deu_Latn").complete(old, Settings())
    assert [a.chance_level for a in done.accuracy] == [0.25]
    assert get_task("belebele_deu_Latn").complete(done, Settings()) is done  # nothing to add


def test_non_commercial_tasks_say_so_on_every_figure():
    for name in ("arc_de", "truthfulqa_de_mc2", "xnli_de"):
        assert catalogue.TASKS[name].non_commercial and "CC BY-NC 4.0" in get_task(name).notes, name
    for name in ("belebele_deu_Latn", "paws_de"):
        assert not catalogue.TASKS[name].non_commercial and get_task(name).notes is None
    assert catalogue.TASKS["arc_de"].translation.startswith("machine") and catalogue.TASKS["belebele_deu_Latn"].translation == "human"


def test_belebele_files_are_parallel_record_for_record(fake_data_dir: Path):
    en = [json.loads(line) for line in (fake_data_dir / "belebele_eng_Latn/test.jsonl").read_text().splitlines()]
    de = [json.loads(line) for line in (fake_data_dir / "german/belebele_deu_Latn/test.jsonl").read_text().splitlines()]
    assert [(r["link"], r["correct_answer_num"]) for r in en] == [(r["link"], r["correct_answer_num"]) for r in de]
    assert len({r["link"] for r in en}) == len(BELEBELE)


@needs_shared
def test_shared_german_data_loads_offline_with_the_sources_md_counts(offline: None):
    tm = shared_task_manager()
    counts = {"belebele_eng_Latn": 900, "belebele_deu_Latn": 900, "arc_de": 1169, "truthfulqa_de_mc2": 788, "xnli_de": 2490, "paws_de": 2000}
    for name, n in counts.items():
        assert get_task(name).data_source().startswith("local:"), name
        assert len(list(get_task(name).build(task_manager=tm).eval_docs)) == n, name


@needs_shared
def test_truthfulqa_mc2_chance_on_the_english_file(offline: None):
    """The issue's figure, computed from the data: the mean share of true answers of the English mc2 file is 0.448."""
    spec = get_task("truthfulqa_mc2")
    assert spec.chance_level(spec.build(task_manager=shared_task_manager())) == pytest.approx(0.448, abs=0.0005)


def test_bench_help_and_errors_name_the_suites():
    import typer

    from kompakt_cli.bench import _task_list, _tasks_help

    text = _tasks_help()
    assert "Suites: english (winogrande," in text and "german (belebele_eng_Latn, belebele_deu_Latn, arc_de" in text
    assert _task_list(["german,efficiency"], False, None)[-2:] == ["flores_ppl", "efficiency"]
    with pytest.raises(typer.BadParameter, match="did you mean 'german'"):
        _task_list(["germa"], False, None)
