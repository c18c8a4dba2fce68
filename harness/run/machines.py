"""What each machine of a cluster holds for a run, and whether the machines agree, checked before any job is sent.

Every machine that may run a job must read the same evaluation data and calibration text at the paths the
run names (``--data-dir`` or ``KOMPAKT_DATA_DIR``/``KOMPAKT_SHARED``, ``KOMPAKT_CORPORA``): otherwise a
job would fail halfway, or worse, measure other data under the same name. :func:`machine_report` runs on
each machine and hashes what the run's tasks and steps read (the same fingerprints the measurement and
artifact caches are keyed by); :func:`compare_machines` on the driver names every machine that lacks
something or holds something else. Nothing here imports Ray.
"""

from __future__ import annotations

import os
import platform
import socket
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.run.jobs import JobSpec, job_environment


@dataclass(frozen=True)
class MachineCheck:
    """What the run needs on every machine."""

    tasks: tuple[str, ...]
    """Tasks whose data must be there (the efficiency task reads none)."""
    data_dir: str | None
    """``--data-dir`` as given (None: each machine's ``KOMPAKT_DATA_DIR``, set by the run's environment)."""
    texts: tuple[tuple[str, str | None, str | None], ...]
    """``(source, split, field)`` of every calibration or training text the variants' steps read."""
    bases: tuple[Any, ...]
    """The base models (:class:`harness.build.base_model.BaseModelSpec`), whose files must be there unless downloaded."""
    environment: tuple[tuple[str, str], ...] = ()
    """The run's environment (data, corpora and cache folders), set while checking."""


def machine_check(specs: list[JobSpec]) -> MachineCheck:
    """What ``specs`` need on every machine."""
    from harness.measure.tasks import get_task

    tasks: list[str] = []
    texts: list[tuple[str, str | None, str | None]] = []
    bases: list[Any] = []
    for spec in specs:
        tasks += [t for t in spec.config.tasks if t not in tasks and get_task(t).kind != "efficiency"]
        if spec.base not in bases:
            bases.append(spec.base)
        if spec.recipe is not None and spec.build_variant is not None:
            for step in spec.recipe.variants[spec.build_variant].steps:
                texts += [t for t in step.config.data_specs() if t not in texts]
    first = specs[0] if specs else None
    data_dir = str(first.config.data_dir) if first is not None and first.config.data_dir else None
    return MachineCheck(tuple(tasks), data_dir, tuple(texts), tuple(bases), first.environment if first is not None else ())


@dataclass
class MachineReport:
    """What one machine holds for the run."""

    node: str
    """The machine's address (a Ray node's IP)."""
    host: str = ""
    """Its host name."""
    data_root: str = ""
    """The evaluation data folder as the machine resolves it."""
    tasks: dict[str, str | None] = field(default_factory=dict)
    """Task -> fingerprint of its data there (``hub``: no local copy, loaded from the hub; None: not available)."""
    texts: dict[str, str] = field(default_factory=dict)
    """``source|split|field`` -> ``sha256:<hex>`` of the text, or ``error: <why>``."""
    problems: list[str] = field(default_factory=list)
    """What cannot work there (a base model's files missing, the cache not writable)."""
    versions: dict[str, str | None] = field(default_factory=dict)
    """kompakt, Python, torch, transformers, lm-eval and Ray versions."""


def _text_key(text: tuple[str, str | None, str | None]) -> str:
    return "|".join(str(t) if t is not None else "" for t in text)


def machine_report(check: MachineCheck, node: str | None = None) -> MachineReport:
    """Run on a machine: fingerprint the run's data there and note what is missing."""
    import importlib.metadata

    from kompakt import __version__, paths

    from harness.build.calibration import DataError, resolve_source
    from harness.measure.tasks import get_task
    from harness.measure.tasks.lm_eval_tasks import data_root

    report = MachineReport(node=node or socket.gethostname(), host=socket.gethostname())
    with job_environment(check.environment):
        report.data_root = str(data_root(check.data_dir))
        for task in check.tasks:
            spec = get_task(task)
            try:
                report.tasks[task] = spec.fingerprint(check.data_dir) if spec.available(check.data_dir) else None
            except OSError:
                report.tasks[task] = None
        for text in check.texts:
            try:
                report.texts[_text_key(text)] = "sha256:" + resolve_source(text[0], split=text[1], text_field=text[2]).sha256
            except (DataError, OSError) as err:
                report.texts[_text_key(text)] = f"error: {err}"
        for base in check.bases:
            report.problems += _base_problems(base)
        cache = paths.cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=cache, prefix=".kompakt-check-"):
                pass
        except OSError as err:
            report.problems.append(f"the cache folder {cache} is not writable: {err}")
    report.versions = {"kompakt": __version__, "python": platform.python_version()}
    for dist in ("torch", "transformers", "lm_eval", "ray"):
        try:
            report.versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            report.versions[dist] = None
    return report


def _base_problems(base: Any) -> list[str]:
    """Why ``base`` cannot be resolved on this machine without a download, if it cannot."""
    import re

    from harness.build.base_model import BaseModelError, embedded_gguf_path

    if base.source is None:
        try:
            embedded_gguf_path()
        except BaseModelError as err:
            return [f"the embedded base model is not installed: {err}"]
        return []
    source = Path(base.source).expanduser()
    if source.exists():
        return []
    if source.suffix != ".gguf" and re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", base.source) and not os.path.isabs(base.source):
        return []  # a hub id: each machine downloads it
    return [f"the base model {base.source} does not exist there"]


def compare_machines(reports: list[MachineReport]) -> tuple[list[str], list[str]]:
    """(problems, warnings) across the machines' reports: a machine that lacks a task's data or a text, or holds
    another version of it than the others, is a problem; differing library versions are a warning."""
    problems: list[str] = []
    warnings: list[str] = []
    for r in reports:
        problems += [f"node {_name(r)}: {p}" for p in r.problems]
    tasks = sorted({t for r in reports for t in r.tasks})
    for task in tasks:
        values = {_name(r): r.tasks.get(task) for r in reports}
        missing = [n for n, v in values.items() if v is None]
        local = {n: v for n, v in values.items() if v not in (None, "hub")}
        hub = [n for n, v in values.items() if v == "hub"]
        for r in reports:
            n = _name(r)
            if n in missing:
                problems.append(f"node {n} lacks the data of task {task} (looked in {r.data_root})")
            elif n in hub and local:
                problems.append(f"node {n} has no local copy of task {task} in {r.data_root}, which "
                                f"{', '.join(sorted(local))} have; it would load the hub data set instead")
        if len(set(local.values())) > 1:
            problems.append(f"the nodes hold different data for task {task}: " + _groups(local))
        if hub and not local and not missing:
            warnings.append(f"task {task} has no local copy on any node; each loads its hub data set (needs network access)")
    texts = sorted({t for r in reports for t in r.texts})
    for text in texts:
        values = {_name(r): r.texts.get(text, "error: not checked") for r in reports}
        for n, v in values.items():
            if v.startswith("error: "):
                problems.append(f"node {n}: calibration text {text.split('|')[0]!r}: {v[len('error: '):]}")
        good = {n: v for n, v in values.items() if not v.startswith("error: ")}
        if len(set(good.values())) > 1:
            problems.append(f"the nodes hold different calibration text {text.split('|')[0]!r}: " + _groups(good))
    for lib in ("kompakt", "python", "torch", "transformers", "lm_eval", "ray"):
        seen = {_name(r): str(r.versions.get(lib)) for r in reports if r.versions}
        if len(set(seen.values())) > 1:
            warnings.append(f"the nodes run different {lib} versions: {_groups(seen)} (each results file records its own)")
    return problems, warnings


def _name(report: MachineReport) -> str:
    return f"{report.node} ({report.host})" if report.host and report.host != report.node else report.node


def _groups(values: dict[str, str]) -> str:
    by: dict[str, list[str]] = defaultdict(list)
    for n, v in values.items():
        by[v].append(n)
    return "; ".join(f"{v}: {', '.join(sorted(ns))}" for v, ns in sorted(by.items()))
