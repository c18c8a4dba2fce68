"""The tasks ``kompakt bench`` runs: one object per task, found through :data:`kompakt.tasks.IMPLEMENTATIONS`.

- :mod:`~harness.measure.tasks.base`: the :class:`Task` interface, its context and payload;
- :mod:`~harness.measure.tasks.lm_eval_tasks`: lm-eval tasks on local data (:class:`LmEvalTask`),
  and :mod:`~harness.measure.tasks.lm_eval_runner`, which runs one and reads lm-eval's output;
- :mod:`~harness.measure.tasks.english`: the thesis's English tasks;
- :mod:`~harness.measure.tasks.german`: the German tasks and Belebele's English side;
- :mod:`~harness.measure.tasks.parallel_perplexity`: English and German perplexity of the same passages;
- :mod:`~harness.measure.tasks.token_perplexity`: WikiText-2 token perplexity at a fixed context;
- :mod:`~harness.measure.tasks.efficiency`: memory, speed and energy.

Importing this package imports neither torch nor lm-eval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kompakt import tasks as catalogue
from kompakt.registry import suggest

from harness.measure.tasks.base import Task, TaskContext, TaskError, TaskPayload

__all__ = ["Task", "TaskContext", "TaskError", "TaskPayload", "default_tasks", "expand_tasks", "get_task", "known_tasks"]


def get_task(name: str) -> Any:
    """The task object called ``name``; an unknown name raises :class:`TaskError` with a did-you-mean."""
    if name not in catalogue.TASKS:
        raise TaskError(f"unknown task {name!r}{suggest(name, catalogue.TASKS)}; known tasks: {', '.join(catalogue.TASKS)}")
    return catalogue.IMPLEMENTATIONS.load(name)


def known_tasks() -> list[str]:
    """Every task name, in catalogue order."""
    return list(catalogue.TASKS)


def _substitute(names: list[str], data_dir: Path | str | None) -> list[str]:
    """Each accuracy task whose data is not here replaced by another task of its mean slot whose data is
    (HellaSwag in llama.cpp's text)."""
    out = []
    for name in names:
        info = catalogue.TASKS[name]
        if info.mean_slot and not get_task(name).local_paths(data_dir):
            for other in catalogue.TASKS.values():
                if other.mean_slot == info.mean_slot and other.name != name and get_task(other.name).local_paths(data_dir):
                    name = other.name
                    break
        out.append(name)
    return out


def default_tasks(data_dir: Path | str | None = None) -> list[str]:
    """The tasks ``kompakt bench`` runs when none are named: the catalogue's defaults, where an
    accuracy task's data is not here but another task of the same mean slot has it (HellaSwag in
    llama.cpp's text), that one instead."""
    return _substitute([info.name for info in catalogue.TASKS.values() if info.default], data_dir)


def expand_tasks(names: list[str], data_dir: Path | str | None = None) -> list[str]:
    """Task and suite names (:data:`kompakt.tasks.SUITES`) as the tasks they name, each once, in the order given.
    A suite's tasks get the same substitution as the defaults; an unknown name raises :class:`TaskError`."""
    out: list[str] = []
    for name in names:
        if name in catalogue.SUITES:
            expanded = _substitute(catalogue.suite(name), data_dir)
        elif name in catalogue.TASKS:
            expanded = [name]
        else:
            known = [*catalogue.TASKS, *catalogue.SUITES]
            raise TaskError(f"unknown task {name!r}{suggest(name, known)}; known tasks: {', '.join(catalogue.TASKS)}; "
                            f"suites: {', '.join(catalogue.SUITES)}")
        out += [t for t in expanded if t not in out]
    return out
