"""Fixtures for the harness tests: a tiny random Llama (no download) and private caches.

The tiny model is built from a config here: a byte-level BPE tokenizer trained
in a second on a few sentences, and a 4-layer Llama with random weights. It is
small enough that every method runs on it in a second or two, which is all the
unit tests need (they test the plumbing and the algorithms' invariants, not
quality; quality is tested on the embedded model in the slow tests).
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A small model is quantized, pruned and healed on a laptop.",
    "Calibration text should never be the evaluation data.",
    "Layers that change the hidden state least are removed first.",
    "Round to nearest is the baseline every smarter method must beat.",
    "Low rank adapters are merged back into the weights after training.",
]


def make_corpus(folder: Path) -> Path:
    """A small text corpus (plain text and JSONL) for calibration in tests."""
    import json
    import random

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    docs = []
    for _ in range(200):
        docs.append(" ".join(rng.choice(SENTENCES) for _ in range(rng.randint(3, 8))))
    (folder / "text.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    with open(folder / "docs.jsonl", "w", encoding="utf-8") as fh:
        for d in docs[:100]:
            fh.write(json.dumps({"text": d}) + "\n")
    return folder


def make_tiny_model(folder: Path, *, layers: int = 4, seed: int = 0) -> Path:
    """Save a tiny random LlamaForCausalLM with a trained byte-level BPE tokenizer into ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES * 5, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def kompakt_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache and corpora folder for one test."""
    monkeypatch.setenv("KOMPAKT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KOMPAKT_CORPORA", str(make_corpus(tmp_path / "corpora")))
    return tmp_path


@pytest.fixture(scope="session")
def embedded_cache(tmp_path_factory: pytest.TempPathFactory):
    """A private artifact cache for the slow tests on the embedded model (set for the whole session)."""
    import os

    before = os.environ.get("KOMPAKT_CACHE")
    os.environ["KOMPAKT_CACHE"] = str(tmp_path_factory.mktemp("embedded-cache"))
    yield Path(os.environ["KOMPAKT_CACHE"])
    if before is None:
        os.environ.pop("KOMPAKT_CACHE", None)
    else:
        os.environ["KOMPAKT_CACHE"] = before


@pytest.fixture(scope="session")
def embedded_base(embedded_cache: Path):
    """The embedded SmolLM2-135M-Instruct, converted from its GGUF into the session's cache (no download)."""
    from harness.build.base_model import resolve

    return resolve(show_progress=False)


@pytest.fixture(autouse=True)
def _one_thread_for_tiny_models(request: pytest.FixtureRequest):
    """Tiny-model tests run on one thread: their tensors are too small to gain from a second one,
    and OpenMP's spin-waiting makes two threads several times slower when other processes share the cores.
    Tests marked slow (the embedded model) keep all threads."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fake_data_dir(tmp_path: Path) -> Path:
    """A few hand-written records of each evaluation data set, laid out as shared/benchmarks (no real data)."""
    from fake_benchmarks import write_fake_benchmarks

    return write_fake_benchmarks(tmp_path / "benchmarks")
