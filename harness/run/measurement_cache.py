"""The measurement cache behind ``kompakt bench``'s resume: one small JSON file per finished measurement.

A measurement is keyed by everything that can change its figures: the base model and
the artifact (weights), the profile's whole protocol, the task, its limit and few-shot
count, the data's fingerprint and the versions of kompakt, torch, transformers and
lm-eval. A run that was killed and started again reads finished measurements back
and computes only what is missing. Entries that cannot be read, or that lack what a
results file now records (a perplexity's window, a multiple-choice task's per-document
results), are measured again. An entry holds the task's per-document results too, so a
resumed run writes the same per-sample file as an uninterrupted one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kompakt import __version__ as KOMPAKT_VERSION
from kompakt import paths
from kompakt.atomic import write_text

from harness.measure.tasks import TaskPayload, get_task

if TYPE_CHECKING:  # pragma: no cover
    from harness.run.bench import BenchConfig

#: Bump when a change in the harness changes what a cached measurement means. 2: weights are counted after a
#: forward pass with what packed kernels hold; packed checkpoints load on their kernels.
MEASUREMENT_VERSION = 2


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"kompakt": KOMPAKT_VERSION, "measurement": str(MEASUREMENT_VERSION)}
    for dist in ("torch", "transformers", "lm_eval"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _quality_kernel(artifact: Any, spec: Any) -> dict[str, str]:
    """The kernel a quality task runs a packed checkpoint on, where it is not the checkpoint's own (absent otherwise, so
    the keys of every other measurement stay as they were)."""
    if not spec.needs_model:
        return {}
    from harness.run.loading import quality_format

    fmt = quality_format(artifact)
    return {"quality_kernel": fmt.quality_backend} if fmt is not None else {}


def measurement_key(artifact: Any, config: BenchConfig, task: str, reference: str | None = None) -> dict[str, Any]:
    """Everything that can change the figures of ``task`` on ``artifact`` under ``config``; ``reference`` is the key of
    the reference artifact a task that pairs its timings with it (efficiency) was measured against."""
    spec = get_task(task)
    paired = {"reference": reference} if spec.pairs_with_reference and reference is not None else {}
    return {
        "base": artifact.base_model.content_hash,
        "artifact": artifact.key,
        # the recipe's key names the build's steps, the hash the weights they gave on this machine (GPTQ and training
        # can round to others on another CPU)
        "content": artifact.content_hash(),
        "format": artifact.format,
        "profile": config.profile.name,
        "device": config.profile.device,
        "dtype": config.profile.dtype,
        # the whole protocol: a changed budget can change how the variant is loaded (load_4bit)
        "protocol": hashlib.sha256(json.dumps(config.profile.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16],
        "task": task,
        "limit": config.limit_for(task),
        "num_fewshot": config.num_fewshot.get(task),
        **spec.cache_settings(config),
        **spec.artifact_settings(artifact),
        **_quality_kernel(artifact, spec),
        "data": spec.fingerprint(config.data_dir),
        "versions": _versions(),
        **paired,
    }


def measurement_path(artifact: Any, config: BenchConfig, task: str, reference: str | None = None) -> Path:
    key = measurement_key(artifact, config, task, reference)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    art = (artifact.key or "unknown")[:40]
    return paths.cache_dir() / "measurements" / artifact.base_model.id / art / config.profile.name / f"{task}-{digest}.json"


def read_measurement(path: Path) -> TaskPayload | None:
    """The cached measurement at ``path``, or None when it is absent, unreadable or from an older harness."""
    try:
        payload = TaskPayload.from_cache(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # absent or unreadable: measure again
    if any(p.context_length is None for p in payload.perplexity):
        return None  # from before perplexity windows were recorded: measure again rather than guess the window
    if payload.accuracy and not payload.samples:
        return None  # from before per-document results were kept: measure again, so the run has its per-sample file
    return payload


def store_measurement(path: Path, key: dict[str, Any], payload: TaskPayload) -> None:
    """Write one finished measurement atomically."""
    data = {"key": key, "finished": dt.datetime.now(dt.timezone.utc).isoformat(), **payload.to_cache()}
    write_text(path, json.dumps(data, indent=1, default=str) + "\n")
