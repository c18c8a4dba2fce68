"""Run one task on a loaded model and turn lm-eval's output into results-file entries.

One call evaluates one task through ``lm_eval.simple_evaluate`` with lm-eval's
own seeds and bootstrap settings; the model object is passed in, so one model
load serves all tasks of a variant. The entries come back as
``TaskAccuracy``/``Perplexity`` objects of ``kompakt.results``, and for a
multiple-choice task each document's result from lm-eval's own ``log_samples``
output, as rows of the per-sample file (:mod:`kompakt.samples`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kompakt.results import Perplexity, TaskAccuracy


log = logging.getLogger(__name__)


@dataclass
class TaskRun:
    task: str
    accuracy: list[TaskAccuracy] = field(default_factory=list)
    perplexity: list[Perplexity] = field(default_factory=list)
    seconds: float = 0.0
    n: int | None = None
    num_fewshot: int | None = None
    data_source: str = ""
    samples: list[dict[str, Any]] = field(default_factory=list)
    """Per-document rows (:mod:`kompakt.samples`) of a multiple-choice task."""


_TASK_MANAGER: Any = None


def shared_task_manager() -> Any:
    """One lm-eval ``TaskManager`` per process (indexing lm-eval's task folder takes seconds)."""
    global _TASK_MANAGER
    if _TASK_MANAGER is None:
        from lm_eval.tasks import TaskManager

        _TASK_MANAGER = TaskManager()
    return _TASK_MANAGER


def offline_datasets() -> None:
    """Never wait on the hub for data sets that are local (``datasets`` would otherwise look online first)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _clean(value: Any) -> float | None:
    if value is None or value == "N/A":
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def rolling_window(lm: Any) -> int | None:
    """The window of lm-eval's rolling log-likelihood on ``lm``: its ``max_length`` in tokens, None if unknown."""
    try:
        value = int(lm.max_length)
    except (AttributeError, TypeError, ValueError):
        return None
    return value if value > 0 else None


def run_task(
    lm: Any,
    name: str,
    *,
    data_dir: Path | str | None = None,
    limit: int | None = None,
    num_fewshot: int | None = None,
    task_manager: Any = None,
    bootstrap_iters: int = 100000,
) -> TaskRun:
    """Evaluate ``name`` on ``lm`` (an lm-eval ``LM``); ``limit`` scores the first ``limit`` documents."""
    from lm_eval.evaluator import simple_evaluate

    from harness.measure.tasks import get_task

    spec = get_task(name)
    source = spec.data_source(data_dir)
    if source.startswith("local:"):
        offline_datasets()
    task_manager = task_manager or shared_task_manager()
    task = spec.build(data_dir=data_dir, num_fewshot=num_fewshot, task_manager=task_manager)
    if hasattr(lm, "progress_desc"):
        lm.progress_desc = getattr(lm, "progress_prefix", "") + name
    start = time.perf_counter()
    out = simple_evaluate(
        model=lm,
        tasks=[task],
        limit=limit,
        bootstrap_iters=bootstrap_iters,
        log_samples=spec.kind == "accuracy",
        task_manager=task_manager,
        verbosity="WARNING",
    )
    seconds = time.perf_counter() - start
    if out is None:
        raise RuntimeError(f"{name}: lm-eval returned no results")
    res = out["results"][name]
    samples = out.get("n-samples", {}).get(name, {})
    n = samples.get("effective")
    shots = out.get("n-shot", {}).get(name)
    version = out.get("versions", {}).get(name)
    version = None if version is None else str(version)
    record_limit = limit if limit and n is not None and n < (samples.get("original") or 0) else None
    run = TaskRun(name, seconds=seconds, n=n, num_fewshot=shots, data_source=source)
    notes = [spec.notes] if spec.notes else []
    if source.startswith("local:"):
        notes.append(f"lm-eval task on a local copy of its data ({source.removeprefix('local:')}).")
        if shots and not task.has_training_docs():
            notes.append("Few-shot examples drawn from the evaluated split (no training split locally), as lm-eval does then.")
    chance = spec.chance_level(task, limit) if spec.kind == "accuracy" else None
    _add_entries(run, spec, res, lm, " ".join(notes) or None, record_limit, version, chance)
    if spec.kind == "accuracy":
        run.samples = sample_rows(task, name, out.get("samples", {}).get(name, []))
    return run


def sample_rows(task: Any, name: str, logged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """lm-eval's logged samples of a multiple-choice task as per-sample rows (:mod:`kompakt.samples`).

    The log-likelihoods and per-document metric values are lm-eval's; the chosen answers are picked as
    lm-eval's ``process_results`` picks them (``argmax`` of the log-likelihoods, and for ``acc_norm`` of the
    log-likelihoods divided by each choice's length in characters).
    """
    import numpy as np

    if getattr(task, "OUTPUT_TYPE", None) != "multiple_choice":
        return []
    rows = []
    for ex in logged:
        if ex.get("filter", "none") != "none":
            continue
        lls = np.array([float(resp[0]) for resp in ex["filtered_resps"]], dtype=np.float64)
        row: dict[str, Any] = {
            "task": name,
            "doc_id": int(ex["doc_id"]),
            "doc_hash": str(ex["doc_hash"])[:16],
            "loglikelihoods": lls.tolist(),
            "choice": int(np.argmax(lls)),
            "choice_norm": None,
            "acc": float(ex["acc"]),
            "acc_norm": None,
        }
        if "acc_norm" in ex:
            lengths = np.array([float(len(c)) for c in task.doc_to_choice(ex["doc"])])
            row["choice_norm"] = int(np.argmax(lls / lengths))
            row["acc_norm"] = float(ex["acc_norm"])
        rows.append(row)
    return rows


def _add_entries(run: TaskRun, spec: Any, res: dict[str, Any], lm: Any, note: str | None, record_limit: int | None,
                 version: str | None, chance: float | None = None) -> None:
    """lm-eval's figures for one task as results-file entries: one per accuracy metric, or the perplexities."""
    if spec.kind == "accuracy":
        for metric in spec.metrics:
            value = _clean(res.get(f"{metric},none"))
            if value is None:
                continue
            run.accuracy.append(
                TaskAccuracy(
                    task=run.task,
                    metric=metric,
                    value=value,
                    stderr=_clean(res.get(f"{metric}_stderr,none")),
                    n=run.n or None,
                    num_fewshot=run.num_fewshot,
                    limit=record_limit,
                    task_version=version,
                    notes=note,
                    chance_level=chance,
                )
            )
        return
    run.perplexity.append(
        Perplexity(
            task=run.task,
            word_perplexity=_clean(res.get("word_perplexity,none")),
            byte_perplexity=_clean(res.get("byte_perplexity,none")),
            bits_per_byte=_clean(res.get("bits_per_byte,none")),
            # lm-eval scores each document in disjoint windows of the model's max_length
            # (8192 for SmolLM2): another window gives another perplexity, so it is recorded
            context_length=rolling_window(lm),
            limit=record_limit,
            task_version=version,
            notes=note,
        )
    )
