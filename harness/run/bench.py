"""``kompakt bench`` orchestration: per variant, build, load once, run every task, write one results file.

For each variant (in the order given):

1. build it (:mod:`harness.build.artifacts`; the reference and a local model need no build);
2. check the profile's memory budget before loading (:func:`harness.run.loading.plan_fit`),
   then load it once in the profile's dtype on the profile's device;
3. run each task (:mod:`harness.measure.tasks`): those that need the loaded model first
   (lm-eval tasks through kompakt's backend ``KompaktLM``, the token perplexity), then,
   with the quality model freed, those that load the artifact themselves (efficiency);
4. write ``data/results/<base>/<variant>/<profile>/<run_id>.json`` atomically
   (:mod:`harness.run.results_writer`).

Resume: every finished measurement is stored by :mod:`harness.run.measurement_cache`
under ``<cache>/measurements/``. A run that was killed and started again reads
those back and computes only what is missing; a results file is only ever
written whole. :mod:`harness.run.summary` prints the table at the end.

Failures do not stop the run: a variant that fails to build or load is
written with status ``failed`` and the reason; one that exceeds the profile's
memory (or runs out of memory) with ``does_not_fit``; a task that fails is
left out with a note, and the other tasks go on.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kompakt.profiles import Profile
from kompakt.results import Hardware, Measured, Metrics, ResultsFile, Software, Status

from harness.measure.fit import DoesNotFit, is_out_of_memory, out_of_memory
from harness.measure.tasks import TaskContext, TaskError, TaskPayload, default_tasks, get_task, known_tasks
from harness.measure.tasks.base import DEFAULT_BATCH_SIZE
from harness.run.loading import (GGUF_QUALITY_NOTE, NotMeasurable, batch_note, fallback_variant, load_for_eval, make_lm,
                                 packed_quality_note, plan_fit)
from harness.run.measurement_cache import measurement_key, measurement_path, read_measurement, store_measurement
from harness.run.results_writer import new_run_id, write_results, write_samples

log = logging.getLogger(__name__)

__all__ = ["BenchConfig", "PairingReference", "VariantJob", "VariantOutcome", "default_tasks", "known_tasks", "measure_variant", "run_bench"]


# --------------------------------------------------------------------------- plan


@dataclass
class PairingReference:
    """The reference a variant's speed is timed against, as each efficiency backend runs it."""

    artifact: Any
    """The reference's :class:`harness.build.artifacts.Artifact`."""
    base: Any
    """The resolved base model (:class:`harness.build.base_model.ResolvedBase`), for writing the reference as GGUF."""

    @property
    def key(self) -> str:
        return self.artifact.key

    def for_backend(self, backend: str) -> tuple[Path, str]:
        """The reference as ``backend`` runs it: its checkpoint, or (llama.cpp) its weights as an F32 GGUF."""
        from harness.measure.backends import backend_class

        formats = backend_class(backend).formats
        if self.artifact.format in formats:
            path = self.artifact.model_path
        elif "gguf" in formats:
            from harness.build.as_gguf import f32_gguf

            path, _ = f32_gguf(self.artifact, self.base)
        else:
            raise ValueError(f"the {backend} backend cannot run the reference's {self.artifact.format!r} checkpoint")
        return Path(path), f"{self.artifact.variant.id} (artifact {self.key[:12]}, {Path(path).name})"


@dataclass
class VariantJob:
    """One variant to measure: an artifact already on disk, or a function that builds it."""

    id: str
    artifact: Any = None  # harness.build.artifacts.Artifact
    build: Callable[[], Any] | None = None
    is_reference: bool = False
    planned: tuple[Any, Any] | None = None
    """(BaseModelInfo, Variant) as planned, for the results file of a variant whose build fails."""
    reference: PairingReference | None = None
    """What its speed is paired with: the reference (for the reference itself a second load of itself, the A/A check);
    None: timed alone."""

    def get(self) -> Any:
        if self.artifact is None:
            if self.build is None:
                raise ValueError(f"variant {self.id}: neither an artifact nor a function to build it")
            self.artifact = self.build()
        return self.artifact


@dataclass
class BenchConfig:
    profile: Profile
    tasks: list[str]
    limit: int | None = None
    """Documents per task (windows of the token perplexity); None: all."""
    task_limits: dict[str, int] = field(default_factory=dict)
    """Per-task limits that override ``limit`` (e.g. a fixed HellaSwag subset)."""
    num_fewshot: dict[str, int] = field(default_factory=dict)
    data_dir: Path | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    ppl_context: int = 2048
    results_root: Path | None = None
    allow_other_hardware: bool = False
    efficiency: bool = False
    use_cache: bool = True
    threads: int | None = None
    command: str = ""
    tokenizer_path: Path | None = None
    """Tokenizer for formats without one (a GGUF export): the base model's reference folder."""
    repeats_per_block: int | None = None
    """Timed runs in each block of the paired speed timing; None: :class:`harness.measure.efficiency.PairedRule`'s. Fewer
    make a shorter run with as many blocks (a GPU lent for minutes)."""
    backend: str | None = None
    """Efficiency backend (:data:`harness.measure.backends.BACKENDS`); None: the first that runs the artifact's format."""
    kl_windows: int = 32
    """Windows of the KL task's WikiText-2 slice (:mod:`harness.measure.tasks.kl_divergence`)."""
    kl_context: int = 512
    """Tokens per window of the KL task."""
    kl_top_k: int = 1024
    """Reference log-probabilities kept per token by the KL task."""
    reference_path: Path | None = None
    """The base model's reference checkpoint, from which the KL task computes the reference's distributions when they
    are not cached yet (None: only cached ones are used)."""

    def limit_for(self, task: str) -> int | None:
        return self.task_limits.get(task, self.limit)


@dataclass
class VariantOutcome:
    variant_id: str
    status: Status
    path: Path | None = None
    results: ResultsFile | None = None
    seconds: float = 0.0
    cached_tasks: list[str] = field(default_factory=list)


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["kompakt", *sys.argv[1:]])[:2000]


# --------------------------------------------------------------------------- one variant


@dataclass
class _Collected(TaskPayload):
    """What the tasks of one variant measured so far (their payloads merged), and the variant's status."""

    cached_tasks: list[str] = field(default_factory=list)
    status: Status = field(default_factory=lambda: Status(code="ok"))

    def add(self, payload: TaskPayload) -> None:
        self.accuracy += payload.accuracy
        self.perplexity += payload.perplexity
        self.distance += payload.distance
        self.samples += payload.samples
        self.efficiency = payload.efficiency or self.efficiency
        self.notes += payload.notes
        self.software.update(payload.software)

    def does_not_fit(self, err: DoesNotFit) -> None:
        self.status = err.status()

    def metrics(self) -> Metrics:
        return Metrics(accuracy=self.accuracy, perplexity=self.perplexity, distribution_distance=self.distance or None,
                       **_efficiency_metrics(self.efficiency))


def _run_quality_task(task: str, ctx: TaskContext) -> TaskPayload:
    """Run one task on the loaded variant (a seam for tests that interrupt a run)."""
    return get_task(task).run(ctx)


def measure_variant(job: VariantJob, config: BenchConfig, *, hardware: Hardware, software: Software,
                    say: Callable[[str], None] = print) -> VariantOutcome:
    """Build, load and measure one variant and write its results file (whatever happens)."""
    start = time.perf_counter()
    try:
        artifact = job.get()
    except Exception as err:  # a failed build is a result too
        log.debug("build failed", exc_info=True)
        status = Status(code="failed", reason=f"building the variant failed: {type(err).__name__}: {str(err)[:1500]}")
        return _write_failed_build(job, status, config, hardware, software, start)

    got = _Collected()
    # The build's own hash, not the recipe's key: GPTQ or training on another CPU can round to other weights.
    variant = artifact.variant if artifact.variant.is_reference else artifact.variant.model_copy(update={"content_hash": artifact.content_hash()})
    try:
        fallback_step = plan_fit(artifact, config)
    except DoesNotFit as err:
        got.does_not_fit(err)
        say(f"  {job.id}: does not fit: {err}")
        return _write_results(job, artifact, variant, got, config, hardware, software, start)
    if fallback_step is not None:
        variant = fallback_variant(variant, fallback_step)
        say(f"  {job.id}: does not fit profile {config.profile.name}; loaded in 4 bit and recorded as {variant.id}")

    pending = _from_cache(job, artifact, config, got, say)
    quality = [t for t in pending if get_task(t).needs_model]
    if quality:
        _run_on_loaded_model(job, artifact, config, fallback_step, quality, got, say)
    if artifact.format == "gguf" and (got.accuracy or got.perplexity or got.distance):
        got.notes.append(GGUF_QUALITY_NOTE.format(dtype=config.profile.dtype))
    if (got.accuracy or got.perplexity or got.distance) and (note := packed_quality_note(artifact)):
        got.notes.append(note)
    batched = (got.accuracy or got.perplexity) and any(get_task(t).batched for t in config.tasks)
    if batched and (note := batch_note(artifact, config.batch_size)):
        got.notes.append(note)

    others = [t for t in pending if not get_task(t).needs_model]
    if others and fallback_step is not None:
        got.notes.append("Memory and speed are not measured for a variant loaded in 4 bit by the profile's fallback: "
                         "the efficiency backends load a variant as it is stored.")
    elif others and got.status.code == "ok":
        ctx = TaskContext(config=config, artifact=artifact, say=say, progress_prefix=f"{job.id} · ", reference=job.reference)
        for task in others:
            _run_and_store(task, ctx, artifact, config, got, say)

    if got.status.code == "ok" and not (got.accuracy or got.perplexity or got.distance or got.efficiency):
        got.status = Status(code="failed", reason=" ".join(got.notes)[:2000] or "no measurement succeeded")
    return _write_results(job, artifact, variant, got, config, hardware, software, start)


def _from_cache(job: VariantJob, artifact: Any, config: BenchConfig, got: _Collected, say: Callable[[str], None]) -> list[str]:
    """Take every finished measurement from the cache into ``got``; returns the tasks still to run."""
    pending = []
    ref_key = job.reference.key if job.reference is not None else None
    for task in config.tasks:
        path = measurement_path(artifact, config, task, ref_key)
        cached = read_measurement(path) if config.use_cache else None
        if cached is None:
            pending.append(task)
            continue
        before = cached.to_cache()
        try:
            cached = get_task(task).complete(cached, config)
        except Exception as err:  # what completing needs is missing: the figures are still good
            log.debug("completing a cached measurement failed", exc_info=True)
            say(f"  {job.id}: {task}: the cached figures lack what kompakt now records beside them ({type(err).__name__}: {err})")
        if cached.to_cache() != before:
            store_measurement(path, measurement_key(artifact, config, task, ref_key), cached)
        got.add(cached)
        got.cached_tasks.append(task)
    if got.cached_tasks:
        say(f"  {job.id}: {len(got.cached_tasks)} measurement(s) from the cache: {', '.join(got.cached_tasks)}")
    return pending


def _run_on_loaded_model(job: VariantJob, artifact: Any, config: BenchConfig, fallback_step: Any, tasks: list[str],
                         got: _Collected, say: Callable[[str], None]) -> None:
    """Load the variant once and run ``tasks`` on it; the model is freed before returning."""
    try:
        model, tokenizer = load_for_eval(artifact, config, fallback_step)
        lm = make_lm(model, tokenizer, config)
        lm.progress_prefix = f"{job.id} · "
    except NotMeasurable as err:
        got.notes.append(f"Accuracy, perplexity and the KL divergence from the reference not measured: {err}.")
        return
    except DoesNotFit as err:
        got.does_not_fit(err)
        return
    except Exception as err:
        if is_out_of_memory(err):
            got.does_not_fit(out_of_memory(err, config.profile, "while loading"))
        else:
            log.debug("load failed", exc_info=True)
            got.status = Status(code="failed", reason=f"loading the variant failed: {type(err).__name__}: {str(err)[:1500]}")
        return
    ctx = TaskContext(config=config, artifact=artifact, model=model, tokenizer=tokenizer, lm=lm, say=say,
                      progress_prefix=lm.progress_prefix)
    for i, task in enumerate(tasks, 1):
        say(f"  {job.id}: task {i}/{len(tasks)} {task}")
        if not _run_and_store(task, ctx, artifact, config, got, say):
            break
    del ctx, lm, model, tokenizer
    gc.collect()  # free the quality model before efficiency loads its own copy


def _run_and_store(task: str, ctx: TaskContext, artifact: Any, config: BenchConfig, got: _Collected,
                   say: Callable[[str], None]) -> bool:
    """Run one task, add what it measured to ``got`` and cache it; False when the variant ran out of memory."""
    t0 = time.perf_counter()
    try:
        payload = _run_quality_task(task, ctx)
    except DoesNotFit as err:
        got.does_not_fit(err)
        return False
    except Exception as err:
        if is_out_of_memory(err):
            got.does_not_fit(out_of_memory(err, config.profile, f"in {task}"))
            return False
        log.debug("task failed", exc_info=True)
        got.notes.append(f"{task} failed and is left out: {type(err).__name__}: {str(err)[:300]}")
        say(f"  {ctx.artifact.variant.id if ctx.artifact else ''}: {task} FAILED: {type(err).__name__}: {err}")
        return True
    payload.extra.setdefault("seconds", round(time.perf_counter() - t0, 3))
    got.add(payload)
    ref_key = ctx.reference.key if ctx.reference is not None else None
    store_measurement(measurement_path(artifact, config, task, ref_key), measurement_key(artifact, config, task, ref_key), payload)
    return True


def _efficiency_metrics(eff: dict[str, Any]) -> dict[str, Any]:
    if not eff:
        return {}
    from kompakt.results import Energy, Memory, Throughput

    return {
        "memory": Memory.model_validate(eff["memory"]) if eff.get("memory") else None,
        "throughput": [Throughput.model_validate(t) for t in eff.get("throughput", [])],
        "energy": [Energy.model_validate(e) for e in eff.get("energy", [])],
    }


# --------------------------------------------------------------------------- writing


def _provenance(config: BenchConfig) -> Measured:
    return Measured(kind="measured", command=config.command or command_line(), date=dt.datetime.now(dt.timezone.utc))


def _write_results(job: VariantJob, artifact: Any, variant: Any, got: _Collected, config: BenchConfig, hardware: Hardware,
                   software: Software, start: float) -> VariantOutcome:
    run_id = new_run_id(salt=variant.id)
    results = ResultsFile(
        schema_version=1,
        run_id=run_id,
        status=got.status,
        base_model=artifact.base_model,
        variant=variant,
        profile=config.profile.name,
        hardware=hardware,
        software=software.model_copy(update={"other": {**software.other, **got.software}}),
        provenance=_provenance(config),
        metrics=got.metrics(),
        notes=_dedupe(got.notes)[:50],
        per_sample=write_samples(got.samples, base_model=artifact.base_model.id, variant=variant.id, profile=config.profile.name,
                                 run_id=run_id, root=config.results_root),
    )
    target = write_results(results, config.results_root)
    return VariantOutcome(job.id, got.status, target, results, time.perf_counter() - start, got.cached_tasks)


def _dedupe(items: list[str]) -> list[str]:
    seen, out = set(), []
    for s in items:
        if s and s not in seen:
            seen.add(s)
            out.append(s[:2000])
    return out


def _write_failed_build(job: VariantJob, status: Status, config: BenchConfig, hardware: Hardware, software: Software,
                        start: float) -> VariantOutcome:
    """A results file for a variant that could not be built: its lineage as planned, if known."""
    if job.planned is None:
        return VariantOutcome(job.id, status, None, None, time.perf_counter() - start)
    base_model, variant = job.planned
    results = ResultsFile(
        schema_version=1,
        run_id=new_run_id(salt=job.id),
        status=status,
        base_model=base_model,
        variant=variant,
        profile=config.profile.name,
        hardware=hardware,
        software=software,
        provenance=_provenance(config),
    )
    target = write_results(results, config.results_root)
    return VariantOutcome(job.id, status, target, results, time.perf_counter() - start)


# --------------------------------------------------------------------------- the run


def run_hardware(config: BenchConfig) -> Hardware:
    """The hardware a run records: as detected here, checked against the profile
    (:class:`harness.measure.hardware.HardwareMismatch` unless ``allow_other_hardware``)."""
    from harness.measure.hardware import check_profile, detect_hardware

    hardware = check_profile(config.profile, detect_hardware(use_accelerator=True), allow_other=config.allow_other_hardware)
    if config.profile.device == "cpu" and hardware.accelerator is not None:
        hardware = hardware.model_copy(update={"accelerator": None})  # a CPU profile does not use the GPU
    return hardware


def run_bench(jobs: list[VariantJob], config: BenchConfig, *, say: Callable[[str], None] = print) -> list[VariantOutcome]:
    """Measure every job in order; returns one outcome per variant (a results file each where possible)."""
    from harness.measure.hardware import detect_software

    unknown = [t for t in config.tasks if t not in known_tasks()]
    if unknown:
        raise TaskError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(known_tasks())}")
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    hardware = run_hardware(config)
    software = detect_software()
    outcomes = []
    t0 = time.perf_counter()
    for i, job in enumerate(jobs, 1):
        eta = ""
        if i > 1:
            per = (time.perf_counter() - t0) / (i - 1)
            eta = f" (about {per * (len(jobs) - i + 1) / 60:.0f} min left)"
        say(f"[{i}/{len(jobs)}] {job.id}{eta}")
        try:
            outcome = measure_variant(job, config, hardware=hardware, software=software, say=say)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # a bug must not lose the other variants
            log.debug("variant crashed", exc_info=True)
            traceback.print_exc()
            outcome = VariantOutcome(job.id, Status(code="failed", reason=f"{type(err).__name__}: {str(err)[:1500]}"))
        where = f" -> {outcome.path}" if outcome.path else ""
        say(f"  {job.id}: {outcome.status.code}{' (' + outcome.status.reason[:200] + ')' if outcome.status.reason else ''}{where}")
        outcomes.append(outcome)
    return outcomes
