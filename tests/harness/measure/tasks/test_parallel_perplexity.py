"""The parallel-text perplexity: Belebele's passages deduplicated and aligned, each scored whole from its first token."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from fake_benchmarks import BELEBELE  # noqa: E402

from harness.build.tiny_model import tiny_model_and_tokenizer  # noqa: E402
from harness.measure.tasks import TaskContext, TaskError, get_task  # noqa: E402
from harness.measure.tasks.parallel_perplexity import FILES, parallel_passages, passage_perplexity, prefix_token, read_passages  # noqa: E402
from kompakt import paths  # noqa: E402


def test_passages_are_deduplicated_and_aligned(fake_data_dir: Path):
    texts = parallel_passages(fake_data_dir)
    assert list(texts) == ["eng_Latn", "deu_Latn"]
    assert texts["eng_Latn"] == [en for _, en, _, _ in BELEBELE]  # 4 questions on 3 passages
    assert texts["deu_Latn"] == [de for _, _, de, _ in BELEBELE]


def test_a_link_with_two_passages_is_refused(tmp_path: Path):
    bad = tmp_path / "test.jsonl"
    bad.write_text(json.dumps({"link": "a", "flores_passage": "one"}) + "\n" + json.dumps({"link": "a", "flores_passage": "two"}) + "\n")
    with pytest.raises(TaskError, match="line 2: link 'a' names two different passages"):
        read_passages(bad)
    bad.write_text('{"link": "a"}\n')
    with pytest.raises(TaskError, match="line 1: not a Belebele record"):
        read_passages(bad)


def test_languages_out_of_step_are_refused(fake_data_dir: Path):
    de = fake_data_dir / FILES["deu_Latn"]
    rows = [json.loads(line) for line in de.read_text().splitlines()]
    de.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    with pytest.raises(TaskError, match="not the eng_Latn passages in the same order"):
        parallel_passages(fake_data_dir)
    de.unlink()
    with pytest.raises(TaskError, match="needs german/belebele_deu_Latn/test.jsonl"):
        parallel_passages(fake_data_dir)


def _direct(model, tokenizer, passages: list[str]) -> tuple[float, int]:
    """Total NLL and token count, one passage at a time, each after the prefix token: what the batched scoring must equal."""
    prefix, _ = prefix_token(tokenizer)
    nll, count = 0.0, 0
    with torch.no_grad():
        for p in passages:
            ids = torch.tensor([[prefix, *tokenizer(p, add_special_tokens=False).input_ids]])
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
            nll -= logp.gather(1, ids[0, 1:, None]).sum().item()
            count += ids.shape[1] - 1
    return nll, count


def test_batched_scoring_equals_one_passage_at_a_time():
    model, tokenizer = tiny_model_and_tokenizer(seed=5)
    passages = ["The quick brown fox jumps over the lazy dog.", "A small model.", "Layers that change the hidden state least are removed first. " * 3]
    score = passage_perplexity(model, tokenizer, passages, batch_size=2, progress_desc="test")
    nll, count = _direct(model, tokenizer, passages)
    assert score.tokens == count and score.passages == 3 and score.words == sum(len(p.split()) for p in passages)
    assert math.isclose(score.token_perplexity, math.exp(nll / count), rel_tol=1e-5)
    assert math.isclose(score.word_perplexity, math.exp(nll / score.words), rel_tol=1e-5)
    assert math.isclose(score.bits_per_byte, nll / math.log(2) / sum(len(p.encode()) for p in passages), rel_tol=1e-5)
    assert score.tokens_per_word == count / score.words
    assert score.longest == max(len(tokenizer(p, add_special_tokens=False).input_ids) for p in passages) + 1


class _Settings:
    def __init__(self, data_dir: Path, limit: int | None = None):
        self.data_dir, self.limit, self.batch_size = data_dir, limit, 4

    def limit_for(self, task: str) -> int | None:
        return self.limit


def test_the_task_writes_one_entry_per_language(fake_data_dir: Path):
    model, tokenizer = tiny_model_and_tokenizer(seed=5)
    task = get_task("flores_ppl")
    assert task.available(fake_data_dir) and not task.available(fake_data_dir / "nothing")
    payload = task.run(TaskContext(config=_Settings(fake_data_dir), artifact=None, model=model, tokenizer=tokenizer))
    en, de = payload.perplexity
    assert (en.task, en.parallel_language, de.task, de.parallel_language) == ("flores_ppl_eng_Latn", "eng_Latn", "flores_ppl_deu_Latn", "deu_Latn")
    texts = parallel_passages(fake_data_dir)
    for entry, lang in ((en, "eng_Latn"), (de, "deu_Latn")):
        nll, count = _direct(model, tokenizer, texts[lang])
        assert entry.documents == 3 and entry.limit is None and entry.tokens == count
        assert math.isclose(entry.token_perplexity, math.exp(nll / count), rel_tol=1e-5)
        assert entry.tokens_per_word == entry.tokens / entry.words and entry.context_length >= 2
        assert "each scored whole from its first token" in entry.notes
    limited = task.run(TaskContext(config=_Settings(fake_data_dir, limit=2), artifact=None, model=model, tokenizer=tokenizer))
    assert [(p.documents, p.limit) for p in limited.perplexity] == [(2, 2), (2, 2)]
    assert "first 2 passages" in limited.perplexity[1].notes


def test_the_fingerprint_follows_both_files(fake_data_dir: Path):
    task = get_task("flores_ppl")
    before = task.fingerprint(fake_data_dir)
    de = fake_data_dir / FILES["deu_Latn"]
    de.write_text(de.read_text() + "\n")
    assert task.fingerprint(fake_data_dir) != before


@pytest.mark.skipif(not (paths.benchmarks_dir() / FILES["deu_Latn"]).is_file(), reason="shared/benchmarks/german is not here")
def test_the_shared_files_hold_488_parallel_passages():
    texts = parallel_passages()
    assert [len(t) for t in texts.values()] == [488, 488]
