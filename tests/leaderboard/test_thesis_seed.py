"""The committed transcription of Schmitt (2024), tables 2.2 to 2.9 (scripts/transcribe_thesis.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kompakt import paths
from kompakt.results import ResultsFile

SCRIPT = paths.REPO_ROOT / "scripts" / "transcribe_thesis.py"
PREFIX = "schmitt2024-"


def _committed() -> dict[Path, Path]:
    """Relative path -> absolute path of every committed thesis results file."""
    root = paths.REPO_ROOT / "data" / "results"
    found = {}
    for path in sorted(root.rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if str(data.get("run_id", "")).startswith(PREFIX):
            found[path.relative_to(root)] = path
    return found


@pytest.fixture(scope="module")
def runs() -> dict[str, ResultsFile]:
    files = _committed()
    assert files, "no schmitt2024-* results files under data/results; run scripts/transcribe_thesis.py"
    out: dict[str, ResultsFile] = {}
    for rel, path in files.items():
        result = ResultsFile.model_validate_json(path.read_text(encoding="utf-8"))
        assert rel == Path(result.base_model.id) / result.variant.id / result.profile / f"{result.run_id}.json"
        assert result.run_id not in out, f"run id {result.run_id} used twice"
        out[result.run_id] = result
    return out


def _acc(result: ResultsFile, task: str) -> tuple[float, float | None]:
    [entry] = [a for a in result.metrics.accuracy if a.task == task]
    return entry.value, entry.stderr


def test_every_file_is_reported_from_the_thesis(runs):
    assert len(runs) == 57
    for result in runs.values():
        assert result.provenance.kind == "reported"
        assert result.provenance.citation.authors == "Thomas Schmitt"
        assert result.provenance.citation.table in {f"Tabelle 2.{i}" for i in range(2, 10)}
        assert result.status.code == "ok"


def test_specific_values_match_the_thesis(runs):
    mistral_awq = runs["schmitt2024-t2-2-mistral-7b-instruct-v0.2-awq-4bit"]
    assert _acc(mistral_awq, "truthfulqa_mc2") == (0.6752, 0.0151)
    assert mistral_awq.metrics.reported_mean_accuracy == 0.7041

    llama3_ref = runs["schmitt2024-t2-2-llama-3-8b-instruct-reference"]
    assert _acc(llama3_ref, "winogrande") == (0.7206, 0.0126)
    assert _acc(llama3_ref, "hellaswag") == (0.7582, 0.0043)

    prune12 = runs["schmitt2024-t2-3-mistral-7b-instruct-v0.2-prune-12"]
    assert _acc(prune12, "hellaswag") == (0.3239, 0.0047)
    assert prune12.variant.steps[0].params["n_layers"] == 12

    llama2_pruned = runs["schmitt2024-t2-4-llama-2-7b-chat-pruned"]
    assert _acc(llama2_pruned, "arc_challenge") == (0.3968, 0.0143)

    distill = runs["schmitt2024-t2-5-mistral-7b-instruct-v0.2-pruned-lora-distill"]
    assert _acc(distill, "truthfulqa_mc2") == (0.4654, 0.0162)

    awq_26 = runs["schmitt2024-t2-6-llama-3-8b-instruct-awq-4bit"]
    assert _acc(awq_26, "winogrande") == (0.7370, 0.0124)

    [ppl] = runs["schmitt2024-t2-7-llama-3-8b-instruct-pruned"].metrics.perplexity
    assert (ppl.task, ppl.word_perplexity, ppl.byte_perplexity, ppl.bits_per_byte) == ("wikitext", 53.86, 2.11, 1.08)

    [tput] = runs["schmitt2024-t2-8-llama-2-7b-chat-reference"].metrics.throughput
    assert tput.generate_tokens_per_s.value == 31.42
    assert runs["schmitt2024-t2-8-llama-2-7b-chat-reference"].profile == "a100"

    [tput] = runs["schmitt2024-t2-9-mistral-7b-instruct-v0.2-pruned-lora-awq"].metrics.throughput
    assert tput.generate_tokens_per_s.value == 38.99
    assert runs["schmitt2024-t2-9-mistral-7b-instruct-v0.2-pruned-lora-awq"].profile == "t4"


def test_duplicates_point_to_existing_runs(runs):
    duplicates = {rid: r.duplicate_of for rid, r in runs.items() if r.duplicate_of is not None}
    assert len(duplicates) == 8
    for rid, target in duplicates.items():
        assert target in runs, f"{rid} restates {target}, which does not exist"
        assert target != rid
        assert runs[target].duplicate_of is None, f"{rid} restates {target}, itself a restatement"
        assert runs[target].base_model.id == runs[rid].base_model.id
        assert runs[target].variant.id == runs[rid].variant.id
        assert runs[rid].notes, f"{rid} restates another run without saying what differs"


def test_one_lineage_per_variant(runs):
    lineages: dict[tuple[str, str], str] = {}
    for result in runs.values():
        key = (result.base_model.id, result.variant.id)
        signature = result.variant.model_dump_json()
        assert lineages.setdefault(key, signature) == signature, key


def test_generator_reproduces_committed_files(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    generated = {p.relative_to(out): p for p in sorted(out.rglob("*.json"))}
    committed = _committed()
    assert set(generated) == set(committed), "rerun scripts/transcribe_thesis.py and commit data/results"
    for rel, path in generated.items():
        assert path.read_bytes() == committed[rel].read_bytes(), f"{rel} differs from the generator's output"
