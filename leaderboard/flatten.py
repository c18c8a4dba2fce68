"""Turn a parsed results file into database rows: one run row, many long-form metric rows."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from kompakt import methods as method_catalogue
from kompakt.metrics import PAIRED_KEYS, accuracy_key, lower_is_better
from kompakt.paired import batched
from kompakt.profiles import UNSPECIFIED
from kompakt.results import Perplexity, ResultsFile, Step, Throughput


def step_label(step: Step) -> str:
    """``awq(bits=4, group_size=128)``: a step as one short string."""
    if not step.params:
        return step.method
    params = ", ".join(f"{k}={v}" for k, v in step.params.items())
    return f"{step.method}({params})"


def lineage_label(r: ResultsFile) -> str:
    if r.variant.is_reference:
        return "reference"
    return " → ".join(step_label(s) for s in r.variant.steps)


def lineage_short(r: ResultsFile) -> str:
    """The lineage in a few words per step, ``prune 8 layers → LoRA r16 → AWQ 4-bit g64`` (``MethodInfo.short``);
    ``lineage_label`` has every parameter."""
    if r.variant.is_reference:
        return "reference"
    catalogue = method_catalogue.METHODS
    return " → ".join((catalogue[s.method].short_label(s.params) if s.method in catalogue else s.method) + _packed(s)
                      + _trained(s) for s in r.variant.steps)


def trained_on(r: ResultsFile) -> str | None:
    """The device a training step of the lineage ran on when it was not the CPU (``record.build_device``, e.g.
    ``cuda:0 (NVIDIA H200)``; :mod:`harness.build.build_device`), else None. Such an artifact is not the CPU-built one
    of the same id, so its row borrows no quality from it."""
    return next((str(s.record["build_device"]) for s in r.variant.steps if s.record.get("build_device")), None)


def _trained(step: Step) -> str:
    """`` (trained on NVIDIA H200)`` for a step trained on a GPU, else nothing."""
    device = step.record.get("build_device")
    if not device:
        return ""
    name = str(device).split("(", 1)[1].rstrip(")") if "(" in str(device) else str(device)
    return f" (trained on {name})"


#: How a packed checkpoint's format reads in a lineage (a quantizer step's ``record.format``).
PACKED_FORMATS = {"awq-gemm": "AWQ GEMM", "gptq": "GPTQ"}


def _packed(step: Step) -> str:
    """`` (packed AWQ GEMM)`` for a quantizer step that stored its integers packed, else nothing."""
    fmt = step.record.get("format") if step.record.get("storage") == "packed" else None
    return f" (packed {PACKED_FORMATS.get(str(fmt), str(fmt))})" if fmt else ""


def bits_per_weight(r: ResultsFile) -> dict[str, float | None]:
    """Bits per weight of a packed artifact as its last step recorded them: over the quantized linears and over the
    whole model (what stays float included); None for everything else."""
    for step in reversed(r.variant.steps):
        linears, model = step.record.get("bits_per_weight_linears"), step.record.get("bits_per_weight_model")
        if isinstance(linears, (int, float)) and isinstance(model, (int, float)):
            return {"bits_per_weight_linears": float(linears), "bits_per_weight_model": float(model)}
    return {"bits_per_weight_linears": None, "bits_per_weight_model": None}


def hardware_label(r: ResultsFile) -> str:
    """The hardware a row is ranked under: the accelerator, else the CPU, else the profile."""
    h = r.hardware
    if h is not None and h.accelerator is not None:
        count = f"{h.accelerator.count}× " if h.accelerator.count > 1 else ""
        return f"{count}{h.accelerator.name}"
    if h is not None and h.cpu_model:
        cores = f", {h.cpu_cores} cores" if h.cpu_cores else ""
        return f"CPU: {h.cpu_model}{cores}"
    return "unspecified" if r.profile == UNSPECIFIED else f"profile {r.profile}"


def citation_label(r: ResultsFile) -> str | None:
    p = r.provenance
    if p.kind != "reported":
        return None
    c = p.citation
    where = ", ".join(x for x in (c.table, f"p. {c.page}" if c.page else None) if x)
    return f"{c.authors} ({c.year}): {c.title}" + (f", {where}" if where else "")


def run_row(r: ResultsFile, file: str) -> dict[str, Any]:
    p = r.provenance
    h = r.hardware
    families = sorted({method_catalogue.METHODS[s.method].family for s in r.variant.steps if s.method in method_catalogue.METHODS})
    return {
        "run_id": r.run_id,
        "file": file,
        "schema_version": r.schema_version,
        "status": r.status.code,
        "status_reason": r.status.reason,
        "memory_needed_bytes": r.status.memory_needed_bytes,
        "memory_budget_bytes": r.status.memory_budget_bytes,
        "base_model_id": r.base_model.id,
        "base_model_name": r.base_model.name,
        "base_model_source": r.base_model.source,
        "base_model_ref": r.base_model.source_ref,
        "base_model_hash": r.base_model.content_hash,
        "base_model_parameters": r.base_model.parameters,
        "base_model_notes": r.base_model.notes,
        "variant_id": r.variant.id,
        "is_reference": r.variant.is_reference,
        "lineage": lineage_label(r),
        "lineage_short": lineage_short(r),
        "trained_on": trained_on(r),
        "variant_content_hash": r.variant.content_hash,
        **bits_per_weight(r),
        "lineage_json": json.dumps([s.model_dump(mode="json", exclude_none=True) for s in r.variant.steps], ensure_ascii=False),
        "methods": ",".join(dict.fromkeys(s.method for s in r.variant.steps)) or "reference",
        "method_families": ",".join(families),
        "variant_notes": r.variant.notes,
        "profile": r.profile,
        "hardware_label": hardware_label(r),
        "accelerator": h.accelerator.name if h and h.accelerator else None,
        "cpu_model": h.cpu_model if h else None,
        "other_than_profile": bool(h and h.other_than_profile),
        "hardware_json": h.model_dump_json(exclude_none=True) if h else None,
        "provenance": p.kind,
        "run_date": run_date(p.date),
        "command": p.command if p.kind == "measured" else None,
        "citation": citation_label(r),
        "citation_json": p.citation.model_dump_json(exclude_none=True) if p.kind == "reported" else None,
        "duplicate_of": r.duplicate_of,
        "lm_eval_version": r.software.lm_eval,
        "kompakt_version": r.software.kompakt,
        "software_json": r.software.model_dump_json(exclude_none=True),
        "reported_mean_accuracy": r.metrics.reported_mean_accuracy,
        "notes": json.dumps(list(r.notes), ensure_ascii=False),
        "per_sample_file": r.per_sample.path if r.per_sample else None,
        "per_sample_sha256": r.per_sample.sha256 if r.per_sample else None,
    }


METRIC_COLUMNS = [
    "run_id", "key", "family", "task", "metric", "value", "stderr", "n", "limit", "num_fewshot", "task_version",
    "batch_size", "backend", "prompt_tokens", "generated_tokens", "context_length", "p90", "min", "max", "repeats",
    "lower_is_better", "notes", "chance_level", "language", "ci_low", "ci_high", "blocks",
]


def _row(run_id: str, key: str, family: str, value: float, **extra: Any) -> dict[str, Any]:
    row = dict.fromkeys(METRIC_COLUMNS)
    row.update(run_id=run_id, key=key, family=family, value=float(value), lower_is_better=lower_is_better(key))
    row.update(extra)
    return row


def run_date(date: Any) -> str:
    """The run date as UTC ISO text with microseconds, so ordering the text orders the instants.
    A date alone (a publication's) is taken as UTC midnight, a time without a zone as UTC."""
    if not isinstance(date, dt.datetime):
        date = dt.datetime.combine(date, dt.time())
    date = date.replace(tzinfo=dt.timezone.utc) if date.tzinfo is None else date.astimezone(dt.timezone.utc)
    return date.isoformat(timespec="microseconds")


def run_backend(r: ResultsFile) -> str | None:
    """The one backend a file's speed figures name, or None when they name none or several.

    Memory and energy are measured in the same process as the speed figures, so they belong
    to that backend: the same variant's memory on llama.cpp and on PyTorch are two figures.
    """
    backends = {t.backend for t in r.metrics.throughput if t.backend is not None}
    return next(iter(backends)) if len(backends) == 1 else None


def perplexity_rows(run_id: str, p: Perplexity) -> list[dict[str, Any]]:
    """One row per figure of a perplexity entry. Parallel text (``parallel_language`` set) goes under the
    ``parallel_`` keys with its language, beside its tokens per word, never under WikiText's keys."""
    prefix = "parallel_" if p.parallel_language else ""
    common = {"task": p.task, "limit": p.limit, "task_version": p.task_version, "context_length": p.context_length, "notes": p.notes,
              "language": p.parallel_language}
    rows = []
    for field in ("word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity"):
        value = getattr(p, field)
        if value is not None:
            rows.append(_row(run_id, prefix + field, "perplexity", value, metric=field, **common))
    if p.parallel_language and p.tokens_per_word is not None:
        rows.append(_row(run_id, "tokens_per_word", "tokenizer", p.tokens_per_word, metric="tokens_per_word", **common))
    return rows


def metric_rows(r: ResultsFile) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    m = r.metrics
    backend = run_backend(r)
    for a in m.accuracy:
        rows.append(_row(r.run_id, accuracy_key(a.task, a.metric), "accuracy", a.value, task=a.task, metric=a.metric, stderr=a.stderr, n=a.n, limit=a.limit, num_fewshot=a.num_fewshot, task_version=a.task_version, notes=a.notes, chance_level=a.chance_level))
    for p in m.perplexity:
        rows.extend(perplexity_rows(r.run_id, p))
    for d in m.distribution_distance or []:
        basis = {"task": d.task, "limit": d.limit, "task_version": d.task_version, "context_length": d.context_length, "n": d.tokens}
        rows.append(_row(r.run_id, "kl_divergence", "distance", d.kl_mean, metric="kl_mean", stderr=d.kl_stderr, notes=d.notes, **basis))
        for key, value in (("kl_median", d.kl_median), ("kl_p99", d.kl_p99), ("top1_agreement", d.top1_agreement)):
            rows.append(_row(r.run_id, key, "distance", value, metric=key, **basis))
    if m.memory is not None:
        mem = m.memory
        for key, value in (
            ("weights_bytes", mem.weights_bytes),
            ("disk_bytes", mem.disk_bytes),
            ("peak_device_bytes", mem.peak_device_allocated_bytes),
            ("peak_host_bytes", mem.peak_host_bytes),
        ):
            if value is not None:
                rows.append(_row(r.run_id, key, "memory", value, backend=backend, context_length=mem.context_length))
    for t in m.throughput:
        for key in ("decode_tokens_per_s", "prefill_tokens_per_s", "generate_tokens_per_s", "time_to_first_token_ms"):
            stat = getattr(t, key)
            if stat is not None:
                rows.append(
                    _row(r.run_id, key, "speed", stat.value, batch_size=t.batch_size, backend=t.backend, prompt_tokens=t.prompt_tokens, generated_tokens=t.generated_tokens, p90=stat.p90, min=stat.min, max=stat.max, repeats=stat.repeats, notes=t.notes)
                )
        if t.bandwidth_bound_share is not None and t.decode_tokens_per_s is not None:
            rows.append(_row(r.run_id, "bandwidth_bound_share", "speed", t.bandwidth_bound_share, batch_size=t.batch_size, backend=t.backend))
        rows += paired_rows(r.run_id, t)
    for e in m.energy:
        rows.append(_row(r.run_id, "joules_per_token", "energy", e.joules_per_token, batch_size=e.batch_size, backend=backend, notes=f"energy counter: {e.source}"))
    return rows


def paired_rows(run_id: str, t: Throughput) -> list[dict[str, Any]]:
    """The paired speed-ups of one throughput entry (``Throughput.paired``), one row per figure, with their interval; none
    for a record timed on a memory bus contended throughout."""
    p = t.paired
    if p is None:
        return []
    what = "A/A check: the reference against a separately loaded copy of itself" if p.aa_check else f"paired with {p.reference}"
    if p.passes > 1:
        what += f"; pairs timed in {p.passes} passes minutes apart, pooled"
        d = p.decode_tokens_per_s
        if d is not None and d.pass_speedups and batched(len(d.pass_speedups)):
            what += f" (the passes' own decode speed-ups {', '.join(f'{x:.2f}x' for x in d.pass_speedups)}; interval covers their batch means)"
    if p.bandwidth_contended:
        # no free-bus speed-up: the new form has none, and the figures of a file from before the rule counted pairs timed
        # on a contended bus, another state of the machine than the profile's (kompakt.paired.free_bus)
        return []
    if p.left_out_pairs:
        own = f", their own decode speed-up {p.left_out_decode_speedup:.2f}x" if p.left_out_decode_speedup else ""
        what += f"; {p.left_out_pairs} pair(s) timed below {p.bandwidth_floor_gbps} GB/s of memory bandwidth left out{own}"
    if p.headroom_pairs:
        what += (f"; {p.headroom_pairs} pair(s) below {p.bandwidth_floor_gbps} GB/s counted: neither side drew more than "
                 f"{p.bus_headroom_share:.0%} of the bandwidth its probe read")
    rows = []
    for figure, key in PAIRED_KEYS.items():
        f = getattr(p, figure)
        if f is not None:
            rows.append(_row(run_id, key, "speed", f.speedup, batch_size=t.batch_size, backend=t.backend, prompt_tokens=t.prompt_tokens,
                             generated_tokens=t.generated_tokens, ci_low=f.ci_low, ci_high=f.ci_high, blocks=f.blocks,
                             notes=f"{what}; {p.loading.replace('_', ' ')}; {p.confidence_level:.0%} interval by {p.method}"))
    return rows
