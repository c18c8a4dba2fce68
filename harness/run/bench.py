"""``kompakt bench`` orchestration: per variant, build, load once, measure every task, write one results file.

For each variant (in the order given):

1. build it (``harness.build.artifacts``; the reference and a local model need no build);
2. check the profile's memory budget before loading, then load it once in the
   profile's dtype on the profile's device;
3. run each task through lm-eval with kompakt's backend (``KompaktLM``), the
   token perplexity, and (``efficiency=True``) memory/speed/energy through
   ``harness.measure.efficiency``;
4. write ``data/results/<base>/<variant>/<profile>/<run_id>.json`` atomically.

Resume: every finished measurement is stored by ``harness.run.measurement_cache``
under ``<cache>/measurements/``. A run that was killed and started again reads
those back and computes only what is missing; a results file is only ever
written whole. ``harness.run.summary`` prints the table at the end.

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
from kompakt.results import (
    Hardware,
    Measured,
    Metrics,
    Perplexity,
    ResultsFile,
    Software,
    Status,
    TaskAccuracy,
)

from harness.build.base_model import saved_quantization_config
from harness.measure.tasks import lm_eval_tasks as task_catalogue
from harness.measure.tasks.token_perplexity import TASK_NAME as TOKEN_PPL_TASK
from harness.run.measurement_cache import measurement_key, measurement_path, read_measurement, store_measurement
from harness.run.results_writer import new_run_id, write_results

log = logging.getLogger(__name__)

EFFICIENCY_TASK = "efficiency"


def known_tasks() -> list[str]:
    return [*task_catalogue.TASKS, TOKEN_PPL_TASK]


def default_tasks(data_dir: Path | str | None = None) -> list[str]:
    return [*task_catalogue.default_tasks(data_dir), TOKEN_PPL_TASK]


class NotMeasurable(RuntimeError):
    """The variant's format cannot be run by the quality backend."""


class DoesNotFitError(RuntimeError):
    def __init__(self, reason: str, needed: int, budget: int):
        super().__init__(reason)
        self.needed, self.budget = int(needed), int(budget)


# --------------------------------------------------------------------------- plan


@dataclass
class VariantJob:
    """One variant to measure: an artifact already on disk, or a function that builds it."""

    id: str
    artifact: Any = None  # harness.build.artifacts.Artifact
    build: Callable[[], Any] | None = None
    is_reference: bool = False
    planned: tuple[Any, Any] | None = None
    """(BaseModelInfo, Variant) as planned, for the results file of a variant whose build fails."""

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
    batch_size: int = 8
    ppl_context: int = 2048
    results_root: Path | None = None
    allow_other_hardware: bool = False
    efficiency: bool = False
    use_cache: bool = True
    threads: int | None = None
    command: str = ""
    tokenizer_path: Path | None = None
    """Tokenizer for formats without one (a GGUF export): the base model's reference folder."""

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


# --------------------------------------------------------------------------- loading


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or "out of memory" in str(err).lower()


def weights_bytes_on_load(path: Path, dtype: str) -> int | None:
    """Bytes the weights take once loaded for evaluation: a safetensors folder as its headers say, a GGUF
    file dequantized to ``dtype`` (every tensor element at the dtype's size)."""
    try:
        if path.suffix == ".gguf":
            from gguf import GGUFReader

            size = {"float32": 4, "float16": 2, "bfloat16": 2}[dtype]
            return int(sum(int(t.n_elements) for t in GGUFReader(str(path)).tensors)) * size
        from harness.measure.efficiency.memory import checkpoint_weights_bytes

        return int(checkpoint_weights_bytes(path, dtype))
    except Exception:  # efficiency helpers missing or the file unreadable: no pre-check
        return None


#: Said on every results file whose accuracy was measured on a GGUF variant.
GGUF_QUALITY_NOTE = (
    "Accuracy and perplexity of this GGUF variant were measured on its weights dequantized to {dtype} by transformers' "
    "GGUF reader, so they measure the error of the GGUF quantization of the weights; llama.cpp's own CPU kernels also "
    "round the activations to 8 bit inside each quantized matrix product, which this does not reproduce. Memory and "
    "speed are llama.cpp's, on the file as stored."
)


def load_4bit_step(dtype: str, reason: str) -> Any:
    """The lineage step recorded when a profile loads a variant in 4 bit because it does not fit."""
    import importlib.metadata

    from kompakt.results import Step

    return Step(
        method="load_4bit",
        params={"bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": dtype},
        library=f"bitsandbytes {importlib.metadata.version('bitsandbytes')}",
        notes=f"Loaded in 4 bit at run time by the profile's on_does_not_fit: load_4bit, because {reason}.",
    )


def fallback_variant(variant: Any, step: Any) -> Any:
    """``variant`` as loaded in 4 bit: a variant of its own (``<id>-4bit``), never the reference."""
    return variant.model_copy(update={
        "id": f"{variant.id}-4bit"[:120],
        "is_reference": False,
        "steps": [*variant.steps, step],
    })


def plan_fit(artifact: Any, config: BenchConfig) -> Any:
    """Check the profile's memory budget before loading: None (loads as it is), the ``load_4bit``
    step (the profile loads it in 4 bit instead), or :class:`DoesNotFitError`."""
    profile = config.profile
    if artifact.format not in ("hf", "gguf"):
        return None
    path = Path(artifact.model_path)
    needed = weights_bytes_on_load(path, profile.dtype)
    if needed is None or needed <= profile.memory_budget_bytes:
        return None
    reason = (f"the weights take {needed / 2**30:.2f} GiB in {profile.dtype}, more than the "
              f"{profile.memory_budget_bytes / 2**30:.2f} GiB budget of profile {profile.name}")
    # A GGUF file or a bitsandbytes checkpoint is already quantized: loading it in 4 bit would quantize it a second time.
    already_quantized = artifact.format == "gguf" or saved_quantization_config(path) is not None
    # 4-bit weights take about a quarter of 16-bit ones (an eighth of float32); if even that is over, it cannot fit.
    if profile.on_does_not_fit != "load_4bit" or already_quantized or needed / 4 > profile.memory_budget_bytes:
        raise DoesNotFitError(reason, needed, profile.memory_budget_bytes)
    return load_4bit_step(profile.dtype, reason)


def load_for_eval(artifact: Any, config: BenchConfig, fallback_step: Any = None) -> tuple[Any, Any]:
    """The variant's model (profile dtype and device, eval mode; in 4 bit when ``fallback_step``) and tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    profile = config.profile
    if artifact.format == "gguf":
        # transformers reads the GGUF file and dequantizes every tensor to the profile's dtype (GGUF_QUALITY_NOTE)
        if config.tokenizer_path is None:
            raise NotMeasurable("a GGUF variant needs the base model's tokenizer folder (BenchConfig.tokenizer_path)")
        gguf = Path(artifact.model_path)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=profile.dtype, device_map=profile.device)
        model.eval()
        return model, AutoTokenizer.from_pretrained(config.tokenizer_path)
    if artifact.format != "hf":
        raise NotMeasurable(
            f"format {artifact.format!r} cannot be run by the PyTorch quality backend (transformers); "
            "its accuracy and perplexity are not measured here"
        )
    from harness.build.methods.bnb import log_repeated_warnings_once

    log_repeated_warnings_once()  # bitsandbytes' per-matmul cast warning, once
    path = Path(artifact.model_path)
    kwargs: dict[str, Any] = {}
    if fallback_step is not None:
        import torch
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=getattr(torch, profile.dtype),
        )
    model = AutoModelForCausalLM.from_pretrained(path, dtype=profile.dtype, device_map=profile.device, use_safetensors=True, **kwargs)
    model.eval()
    tok_path = path if any(path.glob("tokenizer*")) else config.tokenizer_path
    tokenizer = AutoTokenizer.from_pretrained(tok_path or path)
    return model, tokenizer


def make_lm(model: Any, tokenizer: Any, config: BenchConfig) -> Any:
    from harness.measure.lm_eval_model import KompaktLM

    return KompaktLM(pretrained=model, tokenizer=tokenizer, batch_size=config.batch_size)


# --------------------------------------------------------------------------- one variant


def _status_ok() -> Status:
    return Status(code="ok")


def measure_variant(job: VariantJob, config: BenchConfig, *, hardware: Hardware, software: Software,
                    say: Callable[[str], None] = print) -> VariantOutcome:
    """Build, load and measure one variant and write its results file (whatever happens)."""
    start = time.perf_counter()
    notes: list[str] = []
    accuracy: list[TaskAccuracy] = []
    perplexity: list[Perplexity] = []
    efficiency: dict[str, Any] = {}
    cached_tasks: list[str] = []
    other_software: dict[str, str] = {}
    status = _status_ok()
    artifact = None
    try:
        artifact = job.get()
    except Exception as err:  # a failed build is a result too
        log.debug("build failed", exc_info=True)
        status = Status(code="failed", reason=f"building the variant failed: {type(err).__name__}: {str(err)[:1500]}")
    if artifact is None:
        return _write_failed_build(job, status, config, hardware, software, start)

    variant = artifact.variant
    try:
        fallback_step = plan_fit(artifact, config)
    except DoesNotFitError as err:
        status = Status(code="does_not_fit", reason=str(err), memory_needed_bytes=err.needed, memory_budget_bytes=err.budget)
        say(f"  {job.id}: does not fit: {err}")
        return _write_results(job, artifact, variant, status, Metrics(), [], {}, config, hardware, software, start, [])
    if fallback_step is not None:
        variant = fallback_variant(variant, fallback_step)
        say(f"  {job.id}: does not fit profile {config.profile.name}; loaded in 4 bit and recorded as {variant.id}")
    model = tokenizer = lm = None
    pending = []
    for task in config.tasks:
        path = measurement_path(artifact, config, task)
        cached = read_measurement(path) if config.use_cache else None
        if cached is not None:
            accuracy += cached["accuracy"]
            perplexity += cached["perplexity"]
            notes += cached.get("notes", [])
            other_software.update(cached.get("software", {}))
            if task == EFFICIENCY_TASK:
                efficiency = cached.get("efficiency", {})
            cached_tasks.append(task)
        else:
            pending.append((task, path))
    if cached_tasks:
        say(f"  {job.id}: {len(cached_tasks)} measurement(s) from the cache: {', '.join(cached_tasks)}")

    quality = [(t, p) for t, p in pending if t != EFFICIENCY_TASK]
    if quality:
        try:
            model, tokenizer = load_for_eval(artifact, config, fallback_step)
            lm = make_lm(model, tokenizer, config)
            lm.progress_prefix = f"{job.id} · "
        except NotMeasurable as err:
            notes.append(f"Accuracy and perplexity not measured: {err}.")
            quality = []
        except DoesNotFitError as err:
            status = Status(code="does_not_fit", reason=str(err), memory_needed_bytes=err.needed, memory_budget_bytes=err.budget)
            quality = []
        except Exception as err:
            if _is_oom(err):
                budget = config.profile.memory_budget_bytes
                status = Status(code="does_not_fit", reason=f"ran out of memory while loading: {str(err)[:500]}",
                                memory_needed_bytes=budget + 1, memory_budget_bytes=budget)
            else:
                log.debug("load failed", exc_info=True)
                status = Status(code="failed", reason=f"loading the variant failed: {type(err).__name__}: {str(err)[:1500]}")
            quality = []

    for i, (task, path) in enumerate(quality, 1):
        say(f"  {job.id}: task {i}/{len(quality)} {task}")
        key = measurement_key(artifact, config, task)
        try:
            payload = _run_quality_task(task, lm, model, tokenizer, config)
        except Exception as err:
            if _is_oom(err):
                budget = config.profile.memory_budget_bytes
                status = Status(code="does_not_fit", reason=f"ran out of memory in {task}: {str(err)[:500]}",
                                memory_needed_bytes=budget + 1, memory_budget_bytes=budget)
                break
            log.debug("task failed", exc_info=True)
            notes.append(f"{task} failed and is left out: {type(err).__name__}: {str(err)[:300]}")
            say(f"  {job.id}: {task} FAILED: {type(err).__name__}: {err}")
            continue
        accuracy += payload["accuracy"]
        perplexity += payload["perplexity"]
        notes += payload.get("notes", [])
        store_measurement(path, key, payload)

    if artifact.format == "gguf" and (accuracy or perplexity):
        notes.append(GGUF_QUALITY_NOTE.format(dtype=config.profile.dtype))
    # free the quality model before efficiency loads its own copy
    del lm, model, tokenizer
    gc.collect()

    if fallback_step is not None and any(t == EFFICIENCY_TASK for t, _ in pending):
        notes.append("Memory and speed are not measured for a variant loaded in 4 bit by the profile's fallback: "
                     "the efficiency backends load a variant as it is stored.")
    elif status.code == "ok" and any(t == EFFICIENCY_TASK for t, _ in pending):
        path = measurement_path(artifact, config, EFFICIENCY_TASK)
        try:
            payload = _run_efficiency(artifact, config, say)
        except DoesNotFitError as err:
            status = Status(code="does_not_fit", reason=str(err), memory_needed_bytes=err.needed, memory_budget_bytes=err.budget)
        except Exception as err:
            log.debug("efficiency failed", exc_info=True)
            notes.append(f"Efficiency measurement failed: {type(err).__name__}: {str(err)[:300]}")
        else:
            efficiency = payload["efficiency"]
            notes += payload.get("notes", [])
            other_software.update(payload.get("software", {}))
            store_measurement(path, measurement_key(artifact, config, EFFICIENCY_TASK), payload)

    metrics = Metrics(accuracy=accuracy, perplexity=perplexity, **_efficiency_metrics(efficiency))
    if status.code == "ok" and not (accuracy or perplexity or efficiency):
        status = Status(code="failed", reason=" ".join(notes)[:2000] or "no measurement succeeded")
    return _write_results(job, artifact, variant, status, metrics, notes, other_software, config, hardware, software, start,
                          cached_tasks)


def _write_results(job: VariantJob, artifact: Any, variant: Any, status: Status, metrics: Metrics, notes: list[str],
                   other_software: dict[str, str], config: BenchConfig, hardware: Hardware, software: Software,
                   start: float, cached_tasks: list[str]) -> VariantOutcome:
    results = ResultsFile(
        schema_version=1,
        run_id=new_run_id(salt=variant.id),
        status=status,
        base_model=artifact.base_model,
        variant=variant,
        profile=config.profile.name,
        hardware=hardware,
        software=software.model_copy(update={"other": {**software.other, **other_software}}),
        provenance=Measured(kind="measured", command=config.command or command_line(), date=dt.datetime.now(dt.timezone.utc)),
        metrics=metrics,
        notes=_dedupe(notes)[:50],
    )
    target = write_results(results, config.results_root)
    return VariantOutcome(job.id, status, target, results, time.perf_counter() - start, cached_tasks)


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
    info = job.planned
    if info is None:
        return VariantOutcome(job.id, status, None, None, time.perf_counter() - start)
    base_model, variant = info
    results = ResultsFile(
        schema_version=1,
        run_id=new_run_id(salt=job.id),
        status=status,
        base_model=base_model,
        variant=variant,
        profile=config.profile.name,
        hardware=hardware,
        software=software,
        provenance=Measured(kind="measured", command=config.command or command_line(), date=dt.datetime.now(dt.timezone.utc)),
    )
    target = write_results(results, config.results_root)
    return VariantOutcome(job.id, status, target, results, time.perf_counter() - start)


def _run_quality_task(task: str, lm: Any, model: Any, tokenizer: Any, config: BenchConfig) -> dict[str, Any]:
    if task == TOKEN_PPL_TASK:
        from harness.measure.tasks.token_perplexity import TASK_NAME, token_perplexity, wikitext2_text

        t0 = time.perf_counter()
        res = token_perplexity(model, tokenizer, wikitext2_text(config.data_dir), context_length=config.ppl_context,
                               limit=config.limit_for(task), progress_desc=f"{lm.progress_prefix}{TASK_NAME}")
        entry = Perplexity(
            task=TASK_NAME,
            token_perplexity=res.perplexity,
            context_length=res.context_length,
            limit=res.windows if res.windows < res.windows_total else None,
            notes=res.note,
        )
        return {"accuracy": [], "perplexity": [entry], "seconds": time.perf_counter() - t0, "n": res.windows}
    from harness.measure.tasks.lm_eval_runner import run_task

    run = run_task(lm, task, data_dir=config.data_dir, limit=config.limit_for(task), num_fewshot=config.num_fewshot.get(task))
    return {"accuracy": run.accuracy, "perplexity": run.perplexity, "seconds": run.seconds, "n": run.n,
            "num_fewshot": run.num_fewshot, "data_source": run.data_source}


def _run_efficiency(artifact: Any, config: BenchConfig, say: Callable[[str], None]) -> dict[str, Any]:
    from harness.measure.efficiency import DoesNotFit, measure

    backend = "llama.cpp" if artifact.format == "gguf" else "pytorch"
    try:
        eff = measure(artifact.model_path, config.profile, backend=backend, artifact_path=artifact.path, log=say)
    except DoesNotFit as err:
        raise DoesNotFitError(err.reason, err.needed_bytes, err.budget_bytes) from err
    return {
        "efficiency": {
            "memory": eff.memory.model_dump(mode="json") if eff.memory else None,
            "throughput": [t.model_dump(mode="json") for t in eff.throughput],
            "energy": [e.model_dump(mode="json") for e in eff.energy],
        },
        "notes": list(eff.notes),
        "software": dict(eff.software),
    }


def _efficiency_metrics(eff: dict[str, Any]) -> dict[str, Any]:
    if not eff:
        return {}
    from kompakt.results import Energy, Memory, Throughput

    return {
        "memory": Memory.model_validate(eff["memory"]) if eff.get("memory") else None,
        "throughput": [Throughput.model_validate(t) for t in eff.get("throughput", [])],
        "energy": [Energy.model_validate(e) for e in eff.get("energy", [])],
    }


# --------------------------------------------------------------------------- the run


def run_bench(jobs: list[VariantJob], config: BenchConfig, *, say: Callable[[str], None] = print) -> list[VariantOutcome]:
    """Measure every job in order; returns one outcome per variant (a results file each where possible)."""
    from harness.measure.hardware import check_profile, detect_hardware, detect_software

    unknown = [t for t in config.tasks if t not in known_tasks() and t != EFFICIENCY_TASK]
    if unknown:
        raise task_catalogue.TaskError(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(known_tasks())}")
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    hardware = check_profile(config.profile, detect_hardware(use_accelerator=True), allow_other=config.allow_other_hardware)
    if config.profile.device == "cpu" and hardware.accelerator is not None:
        hardware = hardware.model_copy(update={"accelerator": None})  # a CPU profile does not use the GPU
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
