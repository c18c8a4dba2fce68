"""What every task is: the interface ``kompakt bench`` runs tasks through.

A task is an object named in :data:`kompakt.tasks.TASKS` (``"module:attribute"``). It knows

- its catalogue entry (name, label, kind, whether it is part of the mean: :class:`kompakt.tasks.TaskInfo`);
- whether it runs on the variant loaded once for quality (``needs_model``: lm-eval tasks, the token
  perplexity) or loads the artifact itself (efficiency, which times each backend on its own copy);
- whether its data is here (:meth:`Task.available`), and a fingerprint of that data for the
  measurement cache (:meth:`Task.fingerprint`), plus any run settings that change its figures
  (:meth:`Task.cache_settings`);
- how to run (:meth:`Task.run`), returning results-file entries in a :class:`TaskPayload`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from kompakt.profiles import Profile
from kompakt.results import DistributionDistance, Perplexity, TaskAccuracy
from kompakt.tasks import TaskInfo
from kompakt.tasks import get as catalogue_entry


#: Sequences per forward pass of a quality task unless ``--batch-size`` says otherwise.
DEFAULT_BATCH_SIZE = 8


def batch_key(config: "RunSettings") -> dict[str, Any]:
    """The batch size, for the measurement key of a task that runs the model on batches of ``config.batch_size``
    sequences; absent at the default so that measurements cached before it counted keep their keys. It counts because
    some methods' outputs depend on the batch: LLM.int8() keeps in 16 bit the input columns with an outlier anywhere in
    the batch, so on the embedded model a sequence's log-probability moves by up to 3.7 nats between being scored
    alone and in a batch of 16 (float32: 1.5e-5)."""
    return {} if config.batch_size == DEFAULT_BATCH_SIZE else {"batch_size": config.batch_size}


class RunSettings(Protocol):
    """The settings of a run that tasks read (``kompakt bench``'s :class:`harness.run.bench.BenchConfig` has them)."""

    profile: Profile
    data_dir: Path | None
    """Local copies of the evaluation data (None: ``$KOMPAKT_DATA_DIR`` or ``shared/benchmarks``)."""
    num_fewshot: dict[str, int]
    batch_size: int
    ppl_context: int
    threads: int | None
    backend: str | None
    kl_windows: int
    """Windows of the KL task's WikiText-2 slice."""
    kl_context: int
    """Tokens per window of the KL task."""
    kl_top_k: int
    """Reference log-probabilities kept per token by the KL task."""
    reference_path: Path | None
    """The base model's reference checkpoint, for tasks that compare with it (None: only what is cached)."""

    def limit_for(self, task: str) -> int | None:
        """Documents (windows) of ``task`` to score; None: all."""
        ...


class ReferenceSource(Protocol):
    """The reference a variant's speed is paired with (``kompakt bench`` passes :class:`harness.run.bench.PairingReference`)."""

    key: str
    """The reference artifact's cache key (part of the measurement cache's key)."""

    def for_backend(self, backend: str) -> tuple[Path, str]:
        """The reference as ``backend`` runs it (a folder or a ``.gguf`` file) and how results files name it."""
        ...


class TaskError(ValueError):
    """A task is unknown or its data is missing; the message says what to do."""


@dataclass
class TaskContext:
    """What a task gets to run on one variant."""

    config: RunSettings
    """The run's settings (profile, limits, few-shot counts, data folder, ...)."""
    artifact: Any
    """The variant on disk (:class:`harness.build.artifacts.Artifact`)."""
    model: Any = None
    """The variant loaded for quality (tasks with ``needs_model``), else None."""
    tokenizer: Any = None
    lm: Any = None
    """The lm-eval model wrapping ``model`` (:class:`harness.measure.lm_eval_model.KompaktLM`)."""
    say: Callable[[str], None] = print
    progress_prefix: str = ""
    reference: ReferenceSource | None = None
    """What tasks that time speed pair their timings with (None: the reference itself, or no reference known)."""


@dataclass
class TaskPayload:
    """What a task measured, as results-file entries; cached as it is by the measurement cache."""

    accuracy: list[TaskAccuracy] = field(default_factory=list)
    perplexity: list[Perplexity] = field(default_factory=list)
    distance: list[DistributionDistance] = field(default_factory=list)
    """Distance from the reference's next-token distribution (the KL task)."""
    samples: list[dict[str, Any]] = field(default_factory=list)
    """Per-document results of a multiple-choice task, rows of the per-sample file (:mod:`kompakt.samples`)."""
    efficiency: dict[str, Any] = field(default_factory=dict)
    """``{"memory": ..., "throughput": [...], "energy": [...]}`` as JSON (the efficiency task only)."""
    notes: list[str] = field(default_factory=list)
    software: dict[str, str] = field(default_factory=dict)
    """Libraries the task used beyond the run's own, for ``software.other``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Bookkeeping kept in the cache entry (seconds, n, data source)."""

    def to_cache(self) -> dict[str, Any]:
        return {
            **self.extra,
            "accuracy": [a.model_dump(mode="json") for a in self.accuracy],
            "perplexity": [p.model_dump(mode="json") for p in self.perplexity],
            "distance": [d.model_dump(mode="json") for d in self.distance],
            "samples": list(self.samples),
            "efficiency": self.efficiency,
            "notes": list(self.notes),
            "software": dict(self.software),
        }

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> "TaskPayload":
        known = {"accuracy", "perplexity", "distance", "samples", "efficiency", "notes", "software", "key", "finished"}
        return cls(
            accuracy=[TaskAccuracy.model_validate(a) for a in data.get("accuracy", [])],
            perplexity=[Perplexity.model_validate(p) for p in data.get("perplexity", [])],
            distance=[DistributionDistance.model_validate(d) for d in data.get("distance", [])],
            samples=[dict(row) for row in data.get("samples", [])],
            efficiency=data.get("efficiency") or {},
            notes=list(data.get("notes", [])),
            software=dict(data.get("software", {})),
            extra={k: v for k, v in data.items() if k not in known},
        )


class Task:
    """Base class of the task objects named in :data:`kompakt.tasks.TASKS`."""

    name: str
    needs_model: ClassVar[bool] = True
    """True: runs on the variant loaded once for quality; False: loads what it needs itself."""
    pairs_with_reference: ClassVar[bool] = False
    """True: its figures are measured against the reference in the same run (the reference is part of its cache key)."""
    batched: ClassVar[bool] = False
    """True: scores batches of ``batch_size`` sequences, so the batch size is part of its cache key (:func:`batch_key`)
    and of the notes of a variant whose outputs depend on the batch."""

    @property
    def info(self) -> TaskInfo:
        return catalogue_entry(self.name)

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def label(self) -> str:
        return self.info.label

    def available(self, data_dir: Path | str | None = None) -> bool:
        """Whether the task can run here (its data is present or loadable)."""
        return True

    def fingerprint(self, data_dir: Path | str | None = None) -> str | None:
        """A hash of the task's data, for the measurement cache (None: the task reads no data)."""
        return None

    def cache_settings(self, config: RunSettings) -> dict[str, Any]:
        """Run settings besides limit and few-shot count that change the task's figures."""
        return batch_key(config) if self.batched else {}

    def artifact_settings(self, artifact: Any) -> dict[str, Any]:
        """What about the artifact, besides its key and format, changes how the task measures it (e.g. whose logits)."""
        return {}

    def complete(self, payload: TaskPayload, config: RunSettings) -> TaskPayload:
        """Add to a payload read from the measurement cache what the task now records beside its figures and
        what depends on the data alone (an accuracy's chance level); the default adds nothing."""
        return payload

    def run(self, ctx: TaskContext) -> TaskPayload:  # pragma: no cover - abstract
        raise NotImplementedError
