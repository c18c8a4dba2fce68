"""kompakt's task catalogue: lm-eval's own task definitions, pointed at local data where there is some.

Each task keeps everything lm-eval defines (prompt, choices, target, metrics,
version, ``process_docs``/``process_results`` functions); only where the data
comes from changes. With a local copy in the data folder (``--data-dir``,
``$KOMPAKT_DATA_DIR``, default ``shared/benchmarks/``, laid out as described in
its ``SOURCES.md``), ``dataset_path`` becomes ``json`` with ``data_files``
pointing at the copy, and the splits that have no file are set to null. Without a
local copy the task loads its hub data set as lm-eval does (online users).

``hellaswag_llamacpp`` is kompakt's own task: HellaSwag validation from
llama.cpp's preprocessed text (``hellaswag/fallback_llamacpp_format/``), scored
like lm-eval's ``hellaswag`` (same prompt layout, ``acc``/``acc_norm``), but
its text differs slightly from lm-eval's (see that folder's README), so it is a
task of its own and never reported as ``hellaswag``.

Nothing here imports torch; ``lm_eval`` is imported only by :func:`build_task`.
"""

from __future__ import annotations

import bz2
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kompakt import paths
from kompakt.atomic import write_text

LLAMACPP_HELLASWAG = "hellaswag/fallback_llamacpp_format/hellaswag_val_full.txt.bz2"
HELLASWAG_LLAMACPP_NOTE = (
    "HellaSwag validation from llama.cpp's preprocessed text (klosax/hellaswag_text_data), scored with "
    "lm-eval's hellaswag prompt and metrics; its text differs slightly from lm-eval's hellaswag "
    "(no ctx_b capitalisation, llama.cpp's bracket cleanup), so scores are close to but not equal to lm-eval's."
)


class TaskError(ValueError):
    """A task is unknown or its data is missing; the message says what to do."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    """Task name as recorded in results files."""
    kind: str
    """``accuracy`` or ``perplexity``."""
    lm_eval_task: str | None
    """lm-eval's task whose YAML is the definition (None for kompakt's own tasks)."""
    local_files: dict[str, str] = field(default_factory=dict)
    """split -> file under the data folder."""
    null_splits: tuple[str, ...] = ()
    """Config keys set to null when the local files are used (splits with no file)."""
    metrics: tuple[str, ...] = ()
    """lm-eval metrics recorded (accuracy tasks), in order."""
    label: str = ""
    notes: str | None = None


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "winogrande", "accuracy", "winogrande",
            {"validation": "winogrande/validation.jsonl"}, ("training_split",), ("acc",), "WinoGrande",
        ),
        TaskSpec(
            "arc_challenge", "accuracy", "arc_challenge",
            {"test": "arc_challenge/test.jsonl"}, ("training_split", "validation_split"), ("acc", "acc_norm"), "ARC-Challenge",
        ),
        TaskSpec(
            "truthfulqa_mc2", "accuracy", "truthfulqa_mc2",
            {"validation": "truthfulqa_mc/validation.jsonl"}, ("training_split", "test_split"), ("acc",), "TruthfulQA MC2",
        ),
        TaskSpec(
            "hellaswag", "accuracy", "hellaswag",
            {"validation": "hellaswag/validation.jsonl"}, ("training_split", "test_split"), ("acc", "acc_norm"), "HellaSwag",
        ),
        TaskSpec(
            "hellaswag_llamacpp", "accuracy", None,
            {"validation": LLAMACPP_HELLASWAG}, (), ("acc", "acc_norm"), "HellaSwag (llama.cpp text)", HELLASWAG_LLAMACPP_NOTE,
        ),
        TaskSpec(
            "wikitext", "perplexity", "wikitext",
            {"test": "wikitext2/test.jsonl"}, ("training_split", "validation_split"), (), "WikiText-2 (lm-eval, document level)",
        ),
    )
}

#: The tasks ``kompakt bench`` runs when none are named ("hellaswag" is resolved by :func:`default_tasks`).
DEFAULT_TASKS = ("winogrande", "arc_challenge", "truthfulqa_mc2", "hellaswag", "wikitext")


def data_root(data_dir: Path | str | None = None) -> Path:
    """``--data-dir``, else ``$KOMPAKT_DATA_DIR``, else ``shared/benchmarks``."""
    return Path(data_dir).expanduser() if data_dir else paths.benchmarks_dir()


def local_files(spec: TaskSpec, data_dir: Path | str | None = None) -> dict[str, Path] | None:
    """The task's local data files, or None when any is missing."""
    root = data_root(data_dir)
    found = {split: root / rel for split, rel in spec.local_files.items()}
    return found if found and all(p.is_file() for p in found.values()) else None


def default_tasks(data_dir: Path | str | None = None) -> list[str]:
    """The default task list; HellaSwag is ``hellaswag_llamacpp`` when only llama.cpp's text is here."""
    out = []
    for name in DEFAULT_TASKS:
        if name == "hellaswag" and local_files(TASKS["hellaswag"], data_dir) is None and local_files(TASKS["hellaswag_llamacpp"], data_dir):
            name = "hellaswag_llamacpp"
        out.append(name)
    return out


def get_spec(name: str) -> TaskSpec:
    from kompakt.registry import suggest

    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}{suggest(name, TASKS)}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def data_source(spec: TaskSpec, data_dir: Path | str | None = None) -> str:
    """Where the task's data comes from: ``local:<file>`` or ``hub:<dataset>``."""
    files = local_files(spec, data_dir)
    if files:
        return "local:" + ",".join(f"{Path(p).parent.name}/{Path(p).name}" for p in files.values())
    if spec.lm_eval_task is None:
        raise TaskError(f"{spec.name}: its data {spec.local_files} is not in {data_root(data_dir)}")
    return "hub"


def data_fingerprint(spec: TaskSpec, data_dir: Path | str | None = None) -> str:
    """sha256 of the local files (names, sizes, mtimes are not enough to key a cache), or ``hub``."""
    files = local_files(spec, data_dir)
    if not files:
        return "hub"
    h = hashlib.sha256()
    for split in sorted(files):
        h.update(split.encode() + b"\0")
        h.update(_file_sha256(files[split]).encode())
    return h.hexdigest()[:16]


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


# --------------------------------------------------------------------------- hellaswag_llamacpp


def llamacpp_hellaswag_jsonl(source: Path) -> Path:
    """Convert llama.cpp's 6-line HellaSwag text into JSONL once (cached by the source's sha256).

    Each record: ``query`` (line 1: ``activity_label: context``), ``choices`` (lines 3-6),
    ``label`` (line 2, the gold index) and ``gold``. The text is kept as the file has it.
    """
    digest = _file_sha256(source)[:16]
    target = paths.cache_dir() / "data" / f"hellaswag_llamacpp-{digest}.jsonl"
    if target.is_file():
        return target
    opener = bz2.open if source.suffix == ".bz2" else open
    with opener(source, "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) % 6:
        raise TaskError(f"{source}: {len(lines)} lines, not a multiple of 6 (llama.cpp's HellaSwag format)")
    records = []
    for i in range(0, len(lines), 6):
        query, label, *endings = lines[i : i + 6]
        gold = int(label)
        if not 0 <= gold < 4:
            raise TaskError(f"{source}: line {i + 2}: label {label!r} is not 0-3")
        records.append(json.dumps({"query": query, "choices": endings, "label": gold, "gold": gold}, ensure_ascii=False))
    write_text(target, "\n".join(records) + "\n")
    return target


def _hellaswag_llamacpp_config(data_dir: Path | str | None) -> dict[str, Any]:
    files = local_files(TASKS["hellaswag_llamacpp"], data_dir)
    if not files:
        raise TaskError(
            f"hellaswag_llamacpp needs {LLAMACPP_HELLASWAG} under the data folder {data_root(data_dir)} (see its SOURCES.md)"
        )
    jsonl = llamacpp_hellaswag_jsonl(files["validation"])
    return {
        "task": "hellaswag_llamacpp",
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"validation": str(jsonl)}},
        "output_type": "multiple_choice",
        "training_split": None,
        "validation_split": "validation",
        "test_split": None,
        "doc_to_text": "{{query}}",
        "doc_to_target": "{{label}}",
        "doc_to_choice": "choices",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0, "kompakt_source": "llama.cpp hellaswag_val_full.txt"},
    }


# --------------------------------------------------------------------------- building lm-eval tasks


def task_config(name: str, data_dir: Path | str | None = None, task_manager: Any = None) -> dict[str, Any]:
    """lm-eval's full config of the task (includes resolved), with local data when there is some."""
    spec = get_spec(name)
    if spec.lm_eval_task is None:
        return _hellaswag_llamacpp_config(data_dir)
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    tm = task_manager or TaskManager()
    entry = tm.task_index.get(spec.lm_eval_task)
    if entry is None or entry.yaml_path is None:
        raise TaskError(f"lm-eval has no task {spec.lm_eval_task!r}; this lm_eval version is not supported")
    cfg = load_yaml(entry.yaml_path, resolve_func=True)
    for key in ("tag", "group"):
        cfg.pop(key, None)
    cfg["task"] = spec.name
    files = local_files(spec, data_dir)
    if files:
        cfg["dataset_path"] = "json"
        cfg["dataset_name"] = None
        cfg["dataset_kwargs"] = {"data_files": {split: str(p) for split, p in files.items()}}
        for key in spec.null_splits:
            cfg[key] = None
    return cfg


def build_task(name: str, *, data_dir: Path | str | None = None, num_fewshot: int | None = None, task_manager: Any = None) -> Any:
    """An lm-eval ``Task`` object for ``name`` (data loaded), with ``num_fewshot`` set when given."""
    from lm_eval.tasks import TaskManager

    tm = task_manager or TaskManager()
    cfg = task_config(name, data_dir, tm)
    if num_fewshot is not None:
        cfg["num_fewshot"] = num_fewshot
    loaded = tm.load([cfg])
    return loaded["tasks"][name]


def task_version(cfg_or_task: Any) -> str | None:
    meta = cfg_or_task.get("metadata") if isinstance(cfg_or_task, dict) else getattr(cfg_or_task.config, "metadata", None)
    version = (meta or {}).get("version")
    return None if version is None else str(version)
