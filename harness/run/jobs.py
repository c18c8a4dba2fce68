"""The unit of a cluster run: one (base model, variant, profile) job that any machine can run.

A job (:class:`JobSpec`) carries everything needed to measure on a machine that has never seen the
driver's files: the base model as named (each machine resolves it itself), the parsed recipe, the
run's settings for one profile, and where the evaluation data, the calibration text and the cache
are on the machines. :func:`run_job` resolves the base model, builds the variant (in that machine's
cache, or in the shared one) and measures it with :func:`harness.run.bench.run_bench`, the function a
local run calls, writing into a temporary results root. Every file the run wrote there comes back in
the :class:`JobResult` with its path relative to that root: the results file and anything a task
writes beside it (per-sample files). The driver writes them into the real results folder with
:func:`harness.run.results_writer.write_job_files`, checked first and each atomically, so the results
folder looks exactly as after a local run.

A job normally holds one variant; it may hold several that must be measured in one process on one
machine (a variant whose speed is timed against its reference there).

Nothing here imports Ray: :mod:`harness.run.ray_executor` sends these jobs to a cluster, and any other
executor could send them elsewhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kompakt.profiles import Profile
from kompakt.results import BaseModelInfo, Hardware, Measured, ResultsFile, Software, Status, Variant

from harness.measure.tasks import get_task
from harness.run.bench import BenchConfig, VariantOutcome, command_line, run_bench, run_hardware
from harness.run.results_writer import latest_results, new_run_id, write_results

#: Environment variables a job sets while it runs, so that every machine reads the same data and cache.
JOB_ENVIRONMENT = ("KOMPAKT_DATA_DIR", "KOMPAKT_CORPORA", "KOMPAKT_CACHE")


# --------------------------------------------------------------------------- what a job is


@dataclass(frozen=True)
class JobSpec:
    """One job: variants of one base model measured under one profile, in one process on one machine."""

    key: str
    """``<base id>/<variant id>/<profile>``: the job's name in progress lines and reports."""
    base: Any
    """The base model as named (:class:`harness.build.base_model.BaseModelSpec`); the machine that runs the job resolves it."""
    base_id: str
    """The id its results files carry (:func:`harness.build.base_model.planned_id`)."""
    recipe: Any
    """The parsed recipe (:class:`harness.build.recipes.Recipe`), or None to measure the reference alone."""
    variant_ids: tuple[str, ...]
    """The variants, measured in this order; usually one."""
    config: BenchConfig
    """The run's settings under this job's profile; its results root is ignored (the job writes into a temporary one)."""
    environment: tuple[tuple[str, str], ...] = ()
    """``(variable, value)`` pairs set while the job runs (:data:`JOB_ENVIRONMENT`)."""
    steps: tuple[str, ...] = ()
    """A signature of each compression step of the job's variant to build (method and parameters), in order:
    jobs whose signatures start alike share a cached prefix."""
    build_variant: str | None = None
    """The variant whose steps ``steps`` are (None: nothing to build, e.g. the reference)."""

    @property
    def profile(self) -> Profile:
        return self.config.profile


@dataclass(frozen=True)
class JobStart:
    """What a job reports as it starts measuring, so that the driver can record a job whose machine dies."""

    node: str
    """The machine (a Ray node's address, else the host name)."""
    pid: int
    """The process measuring."""
    base_model: BaseModelInfo
    """The base model as resolved there."""
    hardware: Hardware
    """The hardware the results record (checked against the profile)."""
    software: Software
    """The software versions there."""


@dataclass(frozen=True)
class JobOutcome:
    """What one variant of a job came to."""

    variant_id: str
    """The variant as the job named it."""
    status: Status
    """ok, does_not_fit or failed, with the reason."""
    results_file: str | None
    """Its results file among :attr:`JobResult.files` (None: the run wrote none)."""
    cached_tasks: tuple[str, ...] = ()
    """Tasks whose measurement came from the measurement cache."""
    seconds: float = 0.0
    """Wall time of the variant."""


@dataclass(frozen=True)
class JobResult:
    """What a job sends back: every file it wrote, with paths relative to the results root, and how it went."""

    key: str
    """The job's :attr:`JobSpec.key`."""
    files: dict[str, bytes]
    """Relative POSIX path -> content of every file the run wrote into its results root."""
    outcomes: tuple[JobOutcome, ...]
    """One per variant, in order."""
    node: str
    """The machine that ran it."""
    pid: int
    """The process that ran it."""
    seconds: float
    """Wall time of the job, resolving the base model and building included."""
    builds: tuple[str, ...] = ()
    """Build events, ``<variant> step i/n built`` or ``... cached``."""
    log: tuple[str, ...] = ()
    """The run's progress lines (the last 200)."""


# --------------------------------------------------------------------------- planning (on the driver)


def _step_signatures(recipe: Any, variant_id: str) -> tuple[str, ...]:
    if recipe is None or variant_id not in recipe.variants:
        return ()
    return tuple(json.dumps([s.method, s.params()], sort_keys=True, default=str) for s in recipe.variants[variant_id].steps)


def plan_cluster_jobs(models: list[str | None], recipe_name: str | None, variant_ids: list[str], profiles: list[Profile],
                      config: BenchConfig, *, environment: dict[str, str] | None = None, recipes_dir: Path | None = None,
                      trust_remote_code: bool = False, say: Callable[[str], None] = print) -> list[JobSpec]:
    """One job per base model, profile and variant, planned without loading any model (the driver of a cluster
    need not hold the weights). ``config`` holds the run's settings; each job gets it under its profile."""
    from harness.build.base_model import planned_id
    from harness.run.plan import base_spec, choose_recipe, variant_ids_of

    recipe = choose_recipe(recipe_name, variant_ids, recipes_dir, say)
    ids = variant_ids_of(recipe, variant_ids)
    for vid in ids:
        if recipe is not None and not (vid == "reference" and vid not in recipe.variants):
            recipe.variant(vid)  # KeyError with a did-you-mean
    env = tuple(sorted((environment or {}).items()))
    command = config.command or command_line()
    specs = []
    for model in models or [None]:
        base = base_spec(model, recipe, trust_remote_code)
        bid = planned_id(base)
        for profile in profiles:
            settings = dataclasses.replace(config, profile=profile, results_root=None, tokenizer_path=None, reference_path=None,
                                           command=command)
            for vid in ids:
                steps = _step_signatures(recipe, vid)
                specs.append(JobSpec(key=f"{bid}/{vid}/{profile.name}", base=base, base_id=bid, recipe=recipe, variant_ids=(vid,),
                                     config=settings, environment=env, steps=steps, build_variant=vid if steps else None))
    keys = Counter(s.key for s in specs)
    doubled = [k for k, n in keys.items() if n > 1]
    if doubled:
        raise ValueError(f"the run names the same job twice: {', '.join(doubled)}")
    return specs


@dataclass(frozen=True)
class PrefixBuild:
    """Steps several jobs share, built once before them (with a cache every machine reads)."""

    key: str
    """``<base id>/<variant id>[:n]``: a variant that has the prefix and the prefix's length."""
    job: JobSpec
    """A job whose variant starts with the prefix (its base model, recipe, settings and environment)."""
    n_steps: int
    """The prefix's length."""
    after: str | None = None
    """The key of the shorter shared prefix to build first, if any."""


def plan_prefix_builds(specs: list[JobSpec]) -> tuple[list[PrefixBuild], dict[str, str]]:
    """The step prefixes more than one job needs, each to be built once before those jobs run: the builds, shortest
    first, and for each job that needs one the key of the build it waits for (its longest shared prefix)."""
    count: Counter[tuple[Any, ...]] = Counter()
    for spec in specs:
        for k in range(1, len(spec.steps) + 1):
            count[(spec.base_id, str(spec.base), spec.steps[:k])] += 1
    shared = sorted((p for p, n in count.items() if n > 1), key=lambda p: len(p[2]))
    builds: dict[tuple[Any, ...], PrefixBuild] = {}
    for prefix in shared:
        owner = next(s for s in specs if (s.base_id, str(s.base), s.steps[: len(prefix[2])]) == prefix)
        shorter = [p for p in builds if p[:2] == prefix[:2] and prefix[2][: len(p[2])] == p[2]]
        after = builds[max(shorter, key=lambda p: len(p[2]))].key if shorter else None
        n = len(prefix[2])
        key = f"{owner.base_id}/{owner.build_variant}" + (f"[:{n}]" if n < len(owner.steps) else "")
        builds[prefix] = PrefixBuild(key=key, job=owner, n_steps=n, after=after)
    waits = {}
    for spec in specs:
        mine = [p for p in builds if p[:2] == (spec.base_id, str(spec.base)) and spec.steps[: len(p[2])] == p[2]]
        if mine:
            waits[spec.key] = builds[max(mine, key=lambda p: len(p[2]))].key
    return list(builds.values()), waits


def _covers(results: ResultsFile, config: BenchConfig) -> bool:
    """Whether ``results`` holds every task ``config`` asks for, on the same documents and few-shot count."""
    if results.status.code == "does_not_fit":
        return True  # the same profile gives the same answer
    if results.status.code != "ok":
        return False
    for task in config.tasks:
        if get_task(task).kind == "efficiency":
            if not (results.metrics.throughput or results.metrics.memory):
                return False
            continue
        entries = [e for _, section in results.metrics for e in (section if isinstance(section, list) else [])
                   if getattr(e, "task", None) == task]
        if not entries:
            return False
        want = config.limit_for(task)
        for e in entries:
            limit_ok = e.limit == want or (e.limit is None and want is not None and (getattr(e, "n", None) or 0) <= want)
            shots = getattr(e, "num_fewshot", None)
            if not limit_ok or (task in config.num_fewshot and shots is not None and shots != config.num_fewshot[task]):
                return False
    return True


def finished_results(spec: JobSpec, root: Path | None = None) -> list[Path] | None:
    """The results files under ``root`` that already hold what ``spec`` would measure (one per variant: the newest
    with status ok and every task on the same documents and few-shot count, or does_not_fit), or None when a
    variant lacks one. A rerun skips such jobs, so a measurement is never written twice."""
    from harness.run.results_writer import results_path

    found = []
    for vid in spec.variant_ids:
        hit = None
        for folder in (vid, f"{vid}-4bit"):  # a variant the profile loads in 4 bit is recorded as <id>-4bit
            hit = latest_results(spec.base_id, folder, spec.profile.name, root, where=lambda r: _covers(r, spec.config))
            if hit is not None:
                break
        if hit is None:
            return None
        found.append(results_path(hit, root))
    return found


# --------------------------------------------------------------------------- running (on any machine)


@contextlib.contextmanager
def job_environment(pairs: tuple[tuple[str, str], ...]) -> Iterator[None]:
    """Set the job's environment variables for the duration of the job (a worker process runs many jobs)."""
    before = {k: os.environ.get(k) for k, _ in pairs}
    os.environ.update(dict(pairs))
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def collect_files(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (relative POSIX path -> content); a link is refused."""
    out: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise ValueError(f"{path}: a job's results root may hold no links")
        if path.is_file():
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def _failing_build(message: str) -> Callable[[], Any]:
    def fail() -> Any:
        raise RuntimeError(message)

    return fail


def run_job(spec: JobSpec, *, prefix_error: str | None = None, node: str | None = None,
            on_start: Callable[[JobStart], None] | None = None, say: Callable[[str], None] | None = None) -> JobResult:
    """Measure the job's variants here, exactly as a local ``kompakt bench`` does, and return every file written.

    ``prefix_error``: a shared prefix the variant needs failed to build elsewhere; the variant is recorded as
    failed with that reason rather than built again. ``on_start`` is told where the job runs once the base model
    is resolved and the hardware checked."""
    from harness.build.base_model import resolve
    from harness.measure.hardware import detect_software
    from harness.run.plan import variant_jobs

    t0 = time.perf_counter()
    node = node or socket.gethostname()
    lines: list[str] = []
    builds: list[str] = []

    def log(msg: str) -> None:
        lines.append(msg)
        if say is not None:
            say(msg)

    def hook(variant_id: str, i: int, n: int, event: str) -> None:
        if event in ("done", "cached"):
            builds.append(f"{variant_id} step {i + 1}/{n} {'built' if event == 'done' else 'cached'}")

    with job_environment(spec.environment):
        config = dataclasses.replace(spec.config)
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)  # not Ray's or the node's default: scores and timings must not depend on it
        base = resolve(spec.base, show_progress=False)
        if on_start is not None:
            on_start(JobStart(node=node, pid=os.getpid(), base_model=base.info, hardware=run_hardware(config),
                              software=detect_software()))
        jobs = variant_jobs(base, spec.recipe, list(spec.variant_ids), build_options={"show_progress": False, "hook": hook})
        if prefix_error is not None:
            for job in jobs:
                if job.build is not None:
                    job.build = _failing_build(prefix_error)
        with tempfile.TemporaryDirectory(prefix="kompakt-job-") as tmp:
            config = dataclasses.replace(config, results_root=Path(tmp), tokenizer_path=base.path, reference_path=base.path)
            outcomes = run_bench(jobs, config, say=log)
            files = collect_files(Path(tmp))
    return JobResult(
        key=spec.key,
        files=files,
        outcomes=tuple(JobOutcome(o.variant_id, o.status, o.path.relative_to(config.results_root).as_posix() if o.path else None,
                                  tuple(o.cached_tasks), round(o.seconds, 3)) for o in outcomes),
        node=node,
        pid=os.getpid(),
        seconds=round(time.perf_counter() - t0, 3),
        builds=tuple(builds),
        log=tuple(lines[-200:]),
    )


def run_prefix_build(build: PrefixBuild) -> tuple[str | None, tuple[str, ...]]:
    """Build the first ``n_steps`` steps of the build's variant into the cache here; returns (the error, or None,
    and the build events). Never raises: a failure is passed on to the jobs that wait for it, which record it."""
    from harness.build.artifacts import build as build_artifact
    from harness.build.base_model import resolve

    events: list[str] = []

    def hook(variant_id: str, i: int, n: int, event: str) -> None:
        if event in ("done", "cached"):
            events.append(f"{variant_id} step {i + 1}/{n} {'built' if event == 'done' else 'cached'}")

    spec = build.job
    try:
        with job_environment(spec.environment):
            if spec.config.threads:
                import torch

                torch.set_num_threads(spec.config.threads)
            base = resolve(spec.base, show_progress=False)
            build_artifact(spec.recipe, spec.build_variant, base=base, show_progress=False, hook=hook, upto=build.n_steps)
    except Exception as err:
        return f"building the variant failed: {type(err).__name__}: {str(err)[:1500]}", tuple(events)
    return None, tuple(events)


# --------------------------------------------------------------------------- a job that died


def planned_variant(spec: JobSpec, variant_id: str) -> Variant:
    """The variant's lineage as planned (for a job that died before recording it)."""
    from harness.run.plan import _planned

    recipe = spec.recipe
    if recipe is None or (variant_id == "reference" and variant_id not in recipe.variants):
        return Variant(id=variant_id, is_reference=True, steps=[])
    if variant_id not in recipe.variants:  # the job named a variant its recipe lacks: that is why it died
        return Variant(id=variant_id, is_reference=False, steps=[])
    rv = recipe.variants[variant_id]
    if rv.is_reference:
        return Variant(id=variant_id, is_reference=True, steps=[], notes=rv.notes)
    planned = _planned(None, rv)
    return planned[1] if planned else Variant(id=variant_id, is_reference=False, steps=[])


def record_lost_job(spec: JobSpec, start: JobStart, status: Status, root: Path | None = None) -> list[VariantOutcome]:
    """Write a results file with ``status`` for every variant of a job whose process or machine died before it
    sent anything back, with the base model, hardware and software it reported as it started."""
    outcomes = []
    for vid in spec.variant_ids:
        results = ResultsFile(
            schema_version=1,
            run_id=new_run_id(salt=vid),
            status=status,
            base_model=start.base_model,
            variant=planned_variant(spec, vid),
            profile=spec.profile.name,
            hardware=start.hardware,
            software=start.software,
            provenance=Measured(kind="measured", command=spec.config.command or command_line(), date=dt.datetime.now(dt.timezone.utc)),
        )
        outcomes.append(VariantOutcome(vid, status, write_results(results, root), results))
    return outcomes


@dataclass
class JobReport:
    """How a job of a cluster run ended, for the driver's progress lines and summary."""

    spec: JobSpec
    state: str
    """``ok`` (every variant ok), ``measured`` (results written, some not ok), ``failed``, ``lost``, ``skipped``
    (results exist), ``not_run`` (no machine has its hardware)."""
    reason: str = ""
    outcomes: list[VariantOutcome] = field(default_factory=list)
    node: str | None = None
    pid: int | None = None
    seconds: float = 0.0
    builds: tuple[str, ...] = ()
    log: tuple[str, ...] = ()
