"""lm-eval tasks: lm-eval's own task definitions, pointed at local data where there is some.

Each task keeps everything lm-eval defines (prompt, choices, target, metrics,
version, ``process_docs``/``process_results`` functions); only where the data
comes from changes. With a local copy in the data folder (``--data-dir``,
``$KOMPAKT_DATA_DIR``, default ``shared/benchmarks/``, laid out as described in
its ``SOURCES.md``), ``dataset_path`` becomes ``json`` with ``data_files``
pointing at the copy, and the splits that have no file are set to null. Without a
local copy the task loads its hub data set as lm-eval does (online users).

:class:`LmEvalTask` is one such task; the instances live in modules by language
(:mod:`harness.measure.tasks.english`), each named in :data:`kompakt.tasks.TASKS`.

Nothing here imports torch; ``lm_eval`` is imported only when a task is built.
"""

from __future__ import annotations

import bz2
import hashlib
import itertools
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kompakt import paths
from kompakt.atomic import write_text
from kompakt.hashing import sha256_file

from harness.measure.tasks.base import Task, TaskContext, TaskError, TaskPayload

LLAMACPP_HELLASWAG = "hellaswag/fallback_llamacpp_format/hellaswag_val_full.txt.bz2"
HELLASWAG_LLAMACPP_NOTE = (
    "HellaSwag validation from llama.cpp's preprocessed text (klosax/hellaswag_text_data), scored with "
    "lm-eval's hellaswag prompt and metrics; its text differs slightly from lm-eval's hellaswag "
    "(no ctx_b capitalisation, llama.cpp's bracket cleanup), so scores are close to but not equal to lm-eval's."
)


def data_root(data_dir: Path | str | None = None) -> Path:
    """``--data-dir``, else ``$KOMPAKT_DATA_DIR``, else ``shared/benchmarks``."""
    return Path(data_dir).expanduser() if data_dir else paths.benchmarks_dir()


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per process for each (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


# --------------------------------------------------------------------------- hellaswag_llamacpp


def llamacpp_hellaswag_jsonl(source: Path) -> Path:
    """Convert llama.cpp's 6-line HellaSwag text into JSONL once (cached by the source's sha256).

    Each record: ``query`` (line 1: ``activity_label: context``), ``choices`` (lines 3-6),
    ``label`` (line 2, the gold index) and ``gold``. The text is kept as the file has it.
    """
    digest = file_sha256(source)[:16]
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


def task_version(cfg_or_task: Any) -> str | None:
    meta = cfg_or_task.get("metadata") if isinstance(cfg_or_task, dict) else getattr(cfg_or_task.config, "metadata", None)
    version = (meta or {}).get("version")
    return None if version is None else str(version)


# --------------------------------------------------------------------------- the task object


@dataclass(frozen=True)
class LmEvalTask(Task):
    """An lm-eval task run on local copies of its data (where they exist)."""

    batched = True

    name: str
    """Task name as recorded in results files (its entry in :data:`kompakt.tasks.TASKS`)."""
    lm_eval_task: str | None
    """lm-eval's task whose YAML is the definition (None for kompakt's own tasks)."""
    local_files: dict[str, str] = field(default_factory=dict)
    """split -> file under the data folder."""
    null_splits: tuple[str, ...] = ()
    """Config keys set to null when the local files are used (splits with no file)."""
    metrics: tuple[str, ...] = ()
    """lm-eval metrics recorded (accuracy tasks), in order."""
    notes: str | None = None
    """Said on every figure of the task."""
    chance_from: Literal["choices", "mc2_labels"] = "choices"
    """How the chance level is computed (:meth:`chance_level`): 1 / number of choices, or for TruthfulQA's
    mc2 the share of true answers (``doc["mc2_targets"]["labels"]`` after lm-eval's ``process_docs``)."""

    def local_paths(self, data_dir: Path | str | None = None) -> dict[str, Path] | None:
        """The task's local data files, or None when any is missing."""
        root = data_root(data_dir)
        found = {split: root / rel for split, rel in self.local_files.items()}
        return found if found and all(p.is_file() for p in found.values()) else None

    def available(self, data_dir: Path | str | None = None) -> bool:
        return self.local_paths(data_dir) is not None or self.lm_eval_task is not None

    def data_source(self, data_dir: Path | str | None = None) -> str:
        """Where the task's data comes from: ``local:<files>`` or ``hub``."""
        files = self.local_paths(data_dir)
        if files:
            return "local:" + ",".join(f"{Path(p).parent.name}/{Path(p).name}" for p in files.values())
        if self.lm_eval_task is None:
            raise TaskError(f"{self.name}: its data {self.local_files} is not in {data_root(data_dir)}")
        return "hub"

    def fingerprint(self, data_dir: Path | str | None = None) -> str:
        """sha256 of the local files (names, sizes, mtimes are not enough to key a cache), or ``hub``."""
        files = self.local_paths(data_dir)
        if not files:
            return "hub"
        h = hashlib.sha256()
        for split in sorted(files):
            h.update(split.encode() + b"\0")
            h.update(file_sha256(files[split]).encode())
        return h.hexdigest()[:16]

    def config(self, data_dir: Path | str | None = None, task_manager: Any = None) -> dict[str, Any]:
        """lm-eval's full config of the task (includes resolved), with local data when there is some."""
        from lm_eval.tasks import TaskManager
        from lm_eval.tasks._yaml_loader import load_yaml

        tm = task_manager or TaskManager()
        entry = tm.task_index.get(self.lm_eval_task)
        if entry is None or entry.yaml_path is None:
            raise TaskError(f"lm-eval has no task {self.lm_eval_task!r}; this lm_eval version is not supported")
        cfg = load_yaml(entry.yaml_path, resolve_func=True)
        for key in ("tag", "group"):
            cfg.pop(key, None)
        cfg["task"] = self.name
        files = self.local_paths(data_dir)
        if files:
            cfg["dataset_path"] = "json"
            cfg["dataset_name"] = None
            cfg["dataset_kwargs"] = {"data_files": {split: str(p) for split, p in files.items()}}
            for key in self.null_splits:
                cfg[key] = None
        return cfg

    def build(self, *, data_dir: Path | str | None = None, num_fewshot: int | None = None, task_manager: Any = None) -> Any:
        """An lm-eval ``Task`` object (data loaded), with ``num_fewshot`` set when given."""
        from lm_eval.tasks import TaskManager

        tm = task_manager or TaskManager()
        cfg = self.config(data_dir, tm)
        if num_fewshot is not None:
            cfg["num_fewshot"] = num_fewshot
        loaded = tm.load([cfg])
        return loaded["tasks"][self.name]

    def chance_level(self, task: Any, limit: int | None = None) -> float | None:
        """The chance level over the documents lm-eval scores (the first ``limit``), from the built lm-eval ``task``:
        the mean of 1 / number of choices, or of the share of true answers (mc2). None: not multiple choice."""
        if getattr(task, "OUTPUT_TYPE", None) != "multiple_choice" or self.kind != "accuracy":
            return None
        levels = []
        for doc in itertools.islice(task.eval_docs, limit):
            choices = task.doc_to_choice(doc)
            if not choices:
                raise TaskError(f"{self.name}: a document without choices: {str(doc)[:200]}")
            if self.chance_from == "mc2_labels":
                labels = list(doc["mc2_targets"]["labels"])
                if len(labels) != len(choices):
                    raise TaskError(f"{self.name}: {len(labels)} mc2 labels for {len(choices)} choices in {str(doc)[:200]}")
                levels.append(sum(1 for label in labels if label == 1) / len(choices))
            else:
                levels.append(1 / len(choices))
        return statistics.fmean(levels) if levels else None

    def complete(self, payload: TaskPayload, config: Any) -> TaskPayload:
        """Add the chance level to accuracy entries cached before it was recorded (it depends on the data alone)."""
        if not payload.accuracy or all(a.chance_level is not None for a in payload.accuracy):
            return payload
        from harness.measure.tasks.lm_eval_runner import offline_datasets, shared_task_manager

        if self.data_source(config.data_dir).startswith("local:"):
            offline_datasets()
        limit = config.limit_for(self.name)
        chance = self.chance_level(self.build(data_dir=config.data_dir, task_manager=shared_task_manager()), limit)
        if chance is None:
            return payload
        payload.accuracy = [a if a.chance_level is not None else a.model_copy(update={"chance_level": chance}) for a in payload.accuracy]
        return payload

    def run(self, ctx: TaskContext) -> TaskPayload:
        from harness.measure.tasks.lm_eval_runner import run_task

        config = ctx.config
        run = run_task(ctx.lm, self.name, data_dir=config.data_dir, limit=config.limit_for(self.name),
                       num_fewshot=config.num_fewshot.get(self.name))
        return TaskPayload(accuracy=run.accuracy, perplexity=run.perplexity, samples=run.samples,
                           extra={"seconds": run.seconds, "n": run.n, "num_fewshot": run.num_fewshot, "data_source": run.data_source})


@dataclass(frozen=True)
class LlamaCppHellaSwag(LmEvalTask):
    """HellaSwag validation from llama.cpp's preprocessed text, scored like lm-eval's ``hellaswag``.

    Its text differs slightly from lm-eval's (see the data folder's README), so it is a task of its
    own and never reported as ``hellaswag``.
    """

    def config(self, data_dir: Path | str | None = None, task_manager: Any = None) -> dict[str, Any]:
        files = self.local_paths(data_dir)
        if not files:
            raise TaskError(
                f"{self.name} needs {self.local_files['validation']} under the data folder {data_root(data_dir)} (see its SOURCES.md)"
            )
        jsonl = llamacpp_hellaswag_jsonl(files["validation"])
        return {
            "task": self.name,
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
