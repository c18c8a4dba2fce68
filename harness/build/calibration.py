"""Text for calibration and training: loading, hashing, licences, token blocks.

A data source is named by one string:

- a path to a text file or a folder (relative paths are looked up under
  :func:`kompakt.paths.corpora_dir`, env ``KOMPAKT_CORPORA``). ``.txt``, ``.raw``
  and ``.tokens`` files are split into documents at blank lines; ``.jsonl``
  files hold one document per line (field ``text``, or the instruction fields
  ``instruction``/``input``/``output`` joined). A folder means every such file
  below it, in path order;
- ``hub:<dataset>[:<config>]`` for a hub dataset (needs network access and the
  ``datasets`` package); ``data_split`` and ``data_field`` pick the split and
  text column.

The sha256 of exactly what was read is recorded, and so is the licence of the
files kompakt knows (the corpora shipped in ``shared/corpora``, see its
SOURCES.md). Evaluation data (``shared/benchmarks``,
:func:`kompakt.paths.benchmarks_dir`) is refused: calibrating or training on
the test set would make every perplexity and accuracy on it meaningless.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kompakt import paths
from kompakt.hashing import sha256_file

if TYPE_CHECKING:  # pragma: no cover
    import torch

TEXT_SUFFIXES = (".txt", ".raw", ".tokens", ".partial", ".jsonl")
HUB_PREFIX = "hub:"


class DataError(ValueError):
    """A data source cannot be used; the message says why and how to fix it."""


@dataclass(frozen=True)
class Licence:
    name: str
    non_commercial: bool = False


#: Licences of the corpora in ``shared/corpora`` (paths relative to it), from its
#: SOURCES.md. Folders apply to everything below them.
KNOWN_LICENCES: dict[str, Licence] = {
    "wikitext2_train": Licence("CC BY-SA 3.0 (WikiText-2 train, tokenized <unk> version, first 88 %)"),
    "wikitext2_valid": Licence("CC BY-SA 3.0 (WikiText-2 validation; do not use if validation perplexity is reported)"),
    "calib/c4_demo_llamafactory.jsonl": Licence("ODC-BY 1.0 (C4 sample from LLaMA-Factory, Apache-2.0 repo)"),
    "calib/c4_exllamav2.jsonl": Licence("ODC-BY 1.0 (C4 sample from exllamav2, MIT repo)"),
    "calib/wikipedia_en_exllamav2.jsonl": Licence("CC BY-SA (Wikipedia text from exllamav2, MIT repo)"),
    "calib/wikipedia_en_demo_llamafactory.jsonl": Licence("CC BY-SA (Wikipedia text from LLaMA-Factory, Apache-2.0 repo)"),
    "instruct/alpaca_en_demo_llamafactory.jsonl": Licence(
        "CC BY-NC 4.0, NON-COMMERCIAL (Alpaca / Alpaca-GPT4 sample, OpenAI terms on the outputs)", non_commercial=True
    ),
    "instruct/self_instruct_seed_tasks.jsonl": Licence("Apache-2.0 (self-instruct seed tasks)"),
    "tinyshakespeare": Licence("public domain (Shakespeare; BSD-3-Clause repo)"),
    "german/books": Licence("public domain (Grimm, Heinrich Mann, Verne translations; MIT repo)"),
    "german/bundestag": Licence("official documents, free of copyright under § 5 UrhG (assessment, not verified)"),
}

#: Default calibration text: C4 web text under ODC-BY, a permissive licence, and
#: the kind of text AWQ and GPTQ calibrate on (their own default, the Pile
#: validation set, is not available here).
DEFAULT_CALIBRATION = "calib/c4_demo_llamafactory.jsonl"
#: Default healing and distillation text: English Wikipedia articles (CC BY-SA),
#: 2,349 articles, enough tokens for a few hundred CPU training steps; not
#: WikiText, so healing does not train on the domain that perplexity is measured on.
DEFAULT_TRAINING = "calib/wikipedia_en_exllamav2.jsonl"


@dataclass
class TextSource:
    """A resolved data source: what was read, its hash and its licence."""

    spec: str
    files: list[Path] = field(default_factory=list)
    hub: str | None = None
    split: str | None = None
    text_field: str | None = None
    sha256: str = ""
    licence: str = "unknown: not recorded for this source; check it before publishing"
    non_commercial: bool = False
    fingerprint: str | None = None
    """For a hub dataset: the ``datasets`` fingerprint of what was loaded (its files are not hashed here)."""

    def record(self, prefix: str = "data") -> dict[str, Any]:
        """The source as lineage ``record`` entries (``data_sha256``, ``data_licence``, ...)."""
        if self.hub is not None:
            out: dict[str, Any] = {f"{prefix}_hub_fingerprint": self.fingerprint, f"{prefix}_licence": self.licence}
        else:
            out = {f"{prefix}_sha256": self.sha256, f"{prefix}_licence": self.licence}
        if self.non_commercial:
            out[f"{prefix}_non_commercial"] = True
        return out

    def notes(self) -> str | None:
        if self.non_commercial:
            return f"Trained or calibrated on {self.spec}, licensed {self.licence}: the result may not be used commercially."
        return None


def _relative_to(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _licence_for(files: list[Path]) -> tuple[str, bool]:
    root = paths.corpora_dir()
    names: list[str] = []
    non_commercial = False
    for f in files:
        rel = _relative_to(f, root)
        found = None
        if rel is not None:
            for key, lic in KNOWN_LICENCES.items():
                if rel == key or rel.startswith(key + "/"):
                    found = lic
                    break
        if found is None:
            return "unknown: not recorded for this source; check it before publishing", False
        non_commercial |= found.non_commercial
        if found.name not in names:
            names.append(found.name)
    return "; ".join(names), non_commercial


def resolve_source(spec: str, *, split: str | None = None, text_field: str | None = None) -> TextSource:
    """Find the files of ``spec``, hash them and look up their licence."""
    if not spec or not spec.strip():
        raise DataError("data: empty data source; name a file or folder under the corpora folder, or hub:<dataset>")
    if spec.startswith(HUB_PREFIX):
        name = spec[len(HUB_PREFIX) :]
        if not name:
            raise DataError(f"data: {spec!r} names no dataset; write hub:<org>/<dataset>[:<config>]")
        # A hub dataset is keyed by its name, split and column; what was loaded is
        # recorded as the datasets fingerprint once it is loaded.
        digest = hashlib.sha256(f"{name}|{split}|{text_field}".encode()).hexdigest()
        return TextSource(spec=spec, hub=name, split=split or "train", text_field=text_field or "text", sha256=digest)
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = paths.corpora_dir() / path
    if not path.exists():
        raise DataError(
            f"data: {spec!r} does not exist (looked for {path}); name a file or folder under {paths.corpora_dir()} "
            "(KOMPAKT_CORPORA) or an absolute path"
        )
    bench = paths.benchmarks_dir()
    if _relative_to(path, bench) is not None or _relative_to(bench, path) is not None:
        raise DataError(
            f"data: {path} is (or contains) evaluation data ({bench}); it must never be used for calibration or "
            "training. Use a corpus under the corpora folder instead."
        )
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
        if not files:
            raise DataError(f"data: folder {path} holds no text files ({', '.join(TEXT_SUFFIXES)})")
    else:
        files = [path]
    if path.is_dir():
        # A folder: sha256 over each file's relative path and sha256, in path order.
        h = hashlib.sha256()
        for f in files:
            h.update(f"{_relative_to(f, path)}\0".encode())
            h.update(bytes.fromhex(sha256_file(f)))
        digest = h.hexdigest()
    else:  # a single file: its plain sha256, as `sha256sum` prints it
        digest = sha256_file(path)
    licence, nc = _licence_for(files)
    return TextSource(spec=spec, files=files, split=split, text_field=text_field, sha256=digest, licence=licence, non_commercial=nc)


def _json_text(record: dict[str, Any], text_field: str | None, where: str) -> str:
    if text_field:
        if text_field not in record:
            raise DataError(f"{where}: no field {text_field!r} (fields: {', '.join(record)})")
        return str(record[text_field])
    if "text" in record:
        return str(record["text"])
    if "instruction" in record:
        parts = [record.get("instruction"), record.get("input"), record.get("output")]
        return "\n\n".join(str(p) for p in parts if p)
    raise DataError(f"{where}: no 'text' or 'instruction' field; set data_field to the text column (fields: {', '.join(record)})")


def load_documents(source: TextSource) -> list[str]:
    """The documents of ``source`` as strings, in file order."""
    if source.hub is not None:
        from harness.requirements import require

        require("hub_data", purpose=f"the hub dataset {source.hub}")
        import datasets

        name, _, config = source.hub.partition(":")
        try:
            ds = datasets.load_dataset(name, config or None, split=source.split)
        except Exception as err:
            raise DataError(f"data: could not load hub dataset {source.hub!r}: {err}") from err
        source.fingerprint = getattr(ds, "_fingerprint", None)
        return [str(t) for t in ds[source.text_field] if t and str(t).strip()]
    docs: list[str] = []
    for f in source.files:
        text = f.read_text(encoding="utf-8")
        if f.suffix == ".jsonl":
            for i, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise DataError(f"{f}:{i}: not valid JSON ({err})") from None
                    docs.append(_json_text(record, source.text_field, f"{f}:{i}"))
        else:
            # Blank lines (possibly a single space, as WikiText writes them) separate documents.
            block: list[str] = []
            for line in text.splitlines():
                if line.strip():
                    block.append(line)
                elif block:
                    docs.append("\n".join(block))
                    block = []
            if block:
                docs.append("\n".join(block))
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise DataError(f"data: {source.spec} holds no text")
    return docs


def token_blocks(
    tokenizer: Any, documents: list[str], n_samples: int, seq_len: int, seed: int, *, min_samples: int | None = None
) -> "torch.Tensor":
    """``n_samples`` blocks of ``seq_len`` token ids, shape ``[n_samples, seq_len]``.

    With ``min_samples``, fewer blocks (at least that many) are returned when
    the text is too short for ``n_samples``.

    The documents are shuffled with ``seed``, joined with the end-of-text token
    and tokenized in that order until enough tokens are there, then cut into
    consecutive blocks: deterministic, and drawn from many documents rather
    than the first few.
    """
    import torch

    need = n_samples * seq_len
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    sep = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids: list[int] = []
    for i in order:
        ids.extend(tokenizer(documents[i], add_special_tokens=False)["input_ids"])
        ids.extend(sep)
        if len(ids) >= need:
            break
    if len(ids) < need and min_samples is not None and len(ids) >= min_samples * seq_len:
        n_samples = len(ids) // seq_len
        need = n_samples * seq_len
    if len(ids) < need:
        raise DataError(
            f"data: only {len(ids)} tokens of text, but {n_samples} samples of {seq_len} tokens need {need}; "
            "use fewer samples, shorter sequences or more text"
        )
    return torch.tensor(ids[:need], dtype=torch.long).view(n_samples, seq_len)


def calibration_tokens(
    tokenizer: Any,
    spec: str,
    n_samples: int,
    seq_len: int,
    seed: int,
    *,
    split: str | None = None,
    text_field: str | None = None,
    min_samples: int | None = None,
) -> tuple["torch.Tensor", TextSource]:
    """Resolve ``spec``, load it and cut it into token blocks; returns the blocks and the source."""
    source = resolve_source(spec, split=split, text_field=text_field)
    blocks = token_blocks(tokenizer, load_documents(source), n_samples, seq_len, seed, min_samples=min_samples)
    return blocks, source
