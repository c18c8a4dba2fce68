"""The task catalogue: lm-eval's own task definitions pointed at local data; hellaswag_llamacpp."""

from __future__ import annotations

import bz2
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from harness.measure.tasks import default_tasks, get_task  # noqa: E402
from harness.measure.tasks import lm_eval_tasks as tc  # noqa: E402
from harness.measure.tasks.lm_eval_runner import shared_task_manager  # noqa: E402
from kompakt import paths  # noqa: E402

SHARED = paths.benchmarks_dir()
needs_shared = pytest.mark.skipif(not (SHARED / "arc_challenge" / "test.jsonl").is_file(), reason="shared/benchmarks is not here")

HS_TEXT = (
    "Roof shingle removal: A man is sitting on a roof. he\n3\nis using wrap to wrap a pair of skis.\nis ripping level tiles off.\n"
    "is holding a rubik's cube.\nstarts pulling up roofing on a roof.\n"
    "Clean and jerk: A lady walks to a barbell. She bends down and grabs the pole. the lady\n3\nswings and lands in her arms.\n"
    "pulls the barbell forward.\npulls a rope attached to the barbell.\nstands and lifts the weight over her head.\n"
)


@pytest.fixture
def data_dir(fake_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small data folder laid out as shared/benchmarks (hand-written records, tests/harness/fake_benchmarks.py)."""
    monkeypatch.setenv("KOMPAKT_CACHE", str(tmp_path / "cache"))
    hs = fake_data_dir / tc.LLAMACPP_HELLASWAG
    hs.parent.mkdir(parents=True)
    hs.write_bytes(bz2.compress(HS_TEXT.encode()))
    return fake_data_dir


def tc_names() -> list[str]:
    from harness.measure.tasks import known_tasks

    return known_tasks()


def test_catalogue_names_lm_eval_tasks():
    assert {"winogrande", "arc_challenge", "truthfulqa_mc2", "hellaswag", "hellaswag_llamacpp", "wikitext"} <= set(tc_names())
    assert get_task("arc_challenge").metrics == ("acc", "acc_norm")
    assert get_task("hellaswag_llamacpp").lm_eval_task is None


def test_unknown_task_suggests():
    with pytest.raises(tc.TaskError, match="did you mean 'arc_challenge'"):
        get_task("arc_challange")


def test_local_override_keeps_lm_eval_definition(data_dir: Path):
    tm = shared_task_manager()
    cfg = get_task("arc_challenge").config(data_dir, tm)
    assert cfg["dataset_path"] == "json" and cfg["dataset_name"] is None
    assert cfg["dataset_kwargs"] == {"data_files": {"test": str(data_dir / "arc_challenge/test.jsonl")}}
    assert cfg["training_split"] is None and cfg["validation_split"] is None and cfg["test_split"] == "test"
    # everything else is lm-eval's: prompt, target, metrics, version
    assert cfg["doc_to_text"] == "Question: {{question}}\nAnswer:"
    assert [m["metric"] for m in cfg["metric_list"]] == ["acc", "acc_norm"]
    wiki = get_task("wikitext").config(data_dir, tm)
    assert wiki["training_split"] is None and wiki["validation_split"] is None and wiki["test_split"] == "test"
    assert callable(wiki["process_results"])
    wino = get_task("winogrande").config(data_dir, tm)
    assert wino["training_split"] is None and wino["validation_split"] == "validation"


def test_tasks_load_offline_from_local_files(data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tm = shared_task_manager()
    arc = get_task("arc_challenge").build(data_dir=data_dir, task_manager=tm)
    docs = list(arc.eval_docs)
    assert len(docs) == 5 and docs[0]["id"] == "fake_0"
    assert arc.doc_to_text(docs[0]).startswith("Question: Which gas do plants")
    tqa = get_task("truthfulqa_mc2").build(data_dir=data_dir, task_manager=tm)
    assert tqa.doc_to_text(list(tqa.eval_docs)[0]).endswith("\nA:")
    wiki = get_task("wikitext").build(data_dir=data_dir, num_fewshot=0, task_manager=tm)
    assert list(wiki.eval_docs)[0]["page"].startswith(" = Test Article = ")
    assert tc.task_version(arc) == "1.0"


def test_missing_local_data_falls_back_to_the_hub(tmp_path: Path):
    spec = get_task("hellaswag")
    assert spec.local_paths(tmp_path) is None
    assert spec.data_source(tmp_path) == "hub"
    cfg = get_task("hellaswag").config(tmp_path, shared_task_manager())
    assert cfg["dataset_path"] == "Rowan/hellaswag"  # lm-eval's own, untouched


def test_default_tasks_pick_the_hellaswag_that_exists(data_dir: Path, tmp_path: Path):
    assert "hellaswag_llamacpp" in default_tasks(data_dir)
    (data_dir / "hellaswag" / "validation.jsonl").write_text("{}\n")
    assert "hellaswag" in default_tasks(data_dir) and "hellaswag_llamacpp" not in default_tasks(data_dir)
    assert "hellaswag" in default_tasks(tmp_path / "empty")  # nothing local: the hub task


def test_llamacpp_hellaswag_conversion(data_dir: Path):
    out = tc.llamacpp_hellaswag_jsonl(data_dir / tc.LLAMACPP_HELLASWAG)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2
    assert rows[0]["query"] == "Roof shingle removal: A man is sitting on a roof. he"
    assert rows[0]["label"] == 3 and len(rows[0]["choices"]) == 4
    assert rows[1]["choices"][3] == "stands and lifts the weight over her head."
    assert tc.llamacpp_hellaswag_jsonl(data_dir / tc.LLAMACPP_HELLASWAG) == out  # cached


def test_llamacpp_hellaswag_rejects_a_broken_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KOMPAKT_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.txt"
    bad.write_text("one\n2\nthree\n")
    with pytest.raises(tc.TaskError, match="multiple of 6"):
        tc.llamacpp_hellaswag_jsonl(bad)


def test_hellaswag_llamacpp_task(data_dir: Path):
    task = get_task("hellaswag_llamacpp").build(data_dir=data_dir, task_manager=shared_task_manager())
    doc = list(task.eval_docs)[0]
    assert task.doc_to_text(doc) == "Roof shingle removal: A man is sitting on a roof. he"
    assert task.doc_to_target(doc) == 3
    assert task.doc_to_choice(doc)[3] == "starts pulling up roofing on a roof."
    assert "llama.cpp" in get_task("hellaswag_llamacpp").notes


def test_hellaswag_llamacpp_needs_its_file(tmp_path: Path):
    with pytest.raises(tc.TaskError, match="hellaswag_llamacpp needs"):
        get_task("hellaswag_llamacpp").config(tmp_path)


def test_data_fingerprint_follows_the_content(data_dir: Path):
    spec = get_task("winogrande")
    before = spec.fingerprint(data_dir)
    f = data_dir / "winogrande" / "validation.jsonl"
    shutil.copy(f, f.with_suffix(".bak"))
    f.write_text(f.read_text() + "\n")
    assert spec.fingerprint(data_dir) != before
    assert get_task("hellaswag").fingerprint(data_dir) == "hub"


@needs_shared
def test_shared_data_matches_sources_md():
    """The full local files have the record counts SOURCES.md gives."""
    counts = {"arc_challenge/test.jsonl": 1172, "winogrande/validation.jsonl": 1267, "truthfulqa_mc/validation.jsonl": 817, "wikitext2/test.jsonl": 62}
    for rel, n in counts.items():
        assert sum(1 for _ in open(SHARED / rel, encoding="utf-8")) == n, rel


def test_per_sample_rows_pick_the_answers_lm_eval_scores(data_dir: Path, tiny_model_dir: Path):
    """Each row's chosen answers are the ones lm-eval's acc and acc_norm judged (right exactly when they are the
    gold answer), its values are lm-eval's per-document metrics, and their mean is the reported figure."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.measure.lm_eval_model import KompaktLM
    from harness.measure.tasks.lm_eval_runner import run_task
    from fake_benchmarks import ARC, WINO

    lm = KompaktLM(pretrained=AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer=AutoTokenizer.from_pretrained(tiny_model_dir), batch_size=4)
    gold = {"arc_challenge": ["ABCD".index(a) for _, _, a in ARC], "winogrande": [int(a) - 1 for *_, a in WINO]}
    for task in ("arc_challenge", "winogrande", "truthfulqa_mc2"):
        run = run_task(lm, task, data_dir=data_dir, bootstrap_iters=0)
        assert [r["doc_id"] for r in run.samples] == list(range(run.n))
        assert all(len(r["doc_hash"]) == 16 and r["task"] == task for r in run.samples)
        for entry in run.accuracy:
            assert entry.value == pytest.approx(sum(r[entry.metric] for r in run.samples) / run.n)
        for r in run.samples:
            assert r["choice"] == max(range(len(r["loglikelihoods"])), key=lambda i: r["loglikelihoods"][i])
            if task in gold:
                assert r["acc"] == float(r["choice"] == gold[task][r["doc_id"]])
            if task == "arc_challenge":
                assert r["acc_norm"] == float(r["choice_norm"] == gold[task][r["doc_id"]])
            else:
                assert r["choice_norm"] is None and r["acc_norm"] is None
        if task == "truthfulqa_mc2":
            assert all(0.0 <= r["acc"] <= 1.0 for r in run.samples) and any(0.0 < r["acc"] < 1.0 for r in run.samples)
