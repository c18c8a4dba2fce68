"""Meaning checks on one parsed results file, keyed by schema version (as MLPerf's checker does).

The loader (``leaderboard.loading``) refuses non-finite numbers and control characters
while reading; the schema (``kompakt.results``) checks shapes and types; these rules check
what the numbers mean: accuracies are fractions, perplexities at least one,
reported results cite their source, measured ones name their hardware, and so
on. Each rule yields ``Problem``s; none raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kompakt import methods as method_catalogue
from kompakt.profiles import UNSPECIFIED, Profile
from kompakt.registry import suggest
from kompakt.results import ResultsFile
from leaderboard.problems import Problem, json_path

Rule = Callable[[ResultsFile, str, "Context"], Iterator[Problem]]


class Context:
    """What rules may consult besides the file: the profiles and where the file lies."""

    def __init__(self, profiles: dict[str, Profile], relative_path: Path | None):
        self.profiles = profiles
        self.relative_path = relative_path


def _err(name: str, loc: tuple[Any, ...], message: str, expected: str = "") -> Problem:
    return Problem(name, json_path(loc), message, expected)


def _warn(name: str, loc: tuple[Any, ...], message: str, expected: str = "") -> Problem:
    return Problem(name, json_path(loc), message, expected, severity="warning")


# ----------------------------------------------------------------------------- rules


def accuracy_ranges(r: ResultsFile, name: str, ctx: Context) -> Iterator[Problem]:
    seen: dict[tuple[str, str], int] = {}
    for i, a in enumerate(r.metrics.accuracy):
        loc = ("metrics", "accuracy", i)
        if not 0.0 <= a.value <= 1.0:
            yield _err(name, (*loc, "value"), f"accuracy {a.value} outside [0, 1]", "a fraction between 0 and 1")
        if a.stderr is not None and not 0.0 <= a.stderr <= 1.0:
            yield _err(name, (*loc, "stderr"), f"standard error {a.stderr} outside [0, 1]", "a standard error >= 0")
        if a.n is not None and a.limit is not None and a.n > a.limit:
            yield _err(name, (*loc, "n"), f"{a.n} samples scored with limit {a.limit}", "n <= limit")
        key = (a.task, a.metric)
        if key in seen:
            yield _err(name, (*loc, "metric"), f"{a.task}/{a.metric} already given at accuracy[{seen[key]}]", "one entry per task and metric")
        seen[key] = i


def perplexity_ranges(r: ResultsFile, name: str, ctx: Context) -> Iterator[Problem]:
    for i, p in enumerate(r.metrics.perplexity):
        loc = ("metrics", "perplexity", i)
        for field in ("word_perplexity", "byte_perplexity", "token_perplexity"):
            value = getattr(p, field)
            if value is not None and value < 1.0:
                yield _err(name, (*loc, field), f"perplexity {value} below 1", "a perplexity >= 1")
        if p.bits_per_byte is not None and p.bits_per_byte < 0:
            yield _err(name, (*loc, "bits_per_byte"), f"bits per byte {p.bits_per_byte} below 0", "bits per byte >= 0")
        if p.token_perplexity is not None and p.context_length is None:
            yield _err(name, (*loc, "context_length"), "token perplexity without its context length", "the context length in tokens")
        if r.provenance.kind == "measured" and p.word_perplexity is not None and p.context_length is None:
            yield _warn(name, (*loc, "context_length"), "measured word perplexity without its rolling window: it is compared only "
                        "with others that lack one", "lm-eval's window in tokens (the model's max_length)")
        if all(getattr(p, f) is None for f in ("word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity")):
            yield _err(name, loc, "perplexity entry without any value", "at least one perplexity figure")


def distance_ranges(r: ResultsFile, name: str, ctx: Context) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for i, d in enumerate(r.metrics.distribution_distance or []):
        loc = ("metrics", "distribution_distance", i)
        for field in ("kl_mean", "kl_stderr", "kl_median", "kl_p99", "kl_gap_bound"):
            value = getattr(d, field)
            if value is not None and value < 0:
                yield _err(name, (*loc, field), f"{value} is negative", "a KL divergence >= 0")
        if d.kl_p99 < d.kl_median:
            yield _err(name, (*loc, "kl_p99"), f"99th percentile {d.kl_p99} below the median {d.kl_median}", "p99 >= median")
        for field in ("top1_agreement", "tail_mass_mean"):
            value = getattr(d, field)
            if value is not None and not 0.0 <= value <= 1.0:
                yield _err(name, (*loc, field), f"{value} outside [0, 1]", "a share between 0 and 1")
        if d.tokens != d.windows * d.context_length:
            yield _err(name, (*loc, "tokens"), f"{d.tokens} tokens in {d.windows} windows of {d.context_length}", "tokens = windows * context_length")
        if d.limit is not None and d.limit != d.windows:
            yield _err(name, (*loc, "limit"), f"limit {d.limit} with {d.windows} windows scored", "the number of windows scored")
        if d.task in seen:
            yield _err(name, (*loc, "task"), f"{d.task} already given at distribution_distance[{seen[d.task]}]", "one entry per task")
        seen[d.task] = i


def speeds_positive(r: ResultsFile, name: str, ctx: Context) -> Iterator[Problem]:
    for i, t in enumerate(r.metrics.throughput):
        loc = ("metrics", "throughput", i)
        figures = ("prefill_tokens_per_s", "decode_tokens_per_s", "generate_tokens_per_s", "time_to_first_token_ms", "ms_per_token")
        if all(getattr(t, f) is None for f in figures):
            yield _err(name, loc, "throughput entry without any figure", "at least one speed figure")
        for field in figures:
            stat = getattr(t, field)
            if stat is None:
                continue
            for part in ("value", "p90", "min", "max"):
                value = getattr(stat, part)
                if value is not None and value <= 0:
                    yield _err(name, (*loc, field, part), f"{value} is not positive", "a speed or time > 0")
            if stat.min is not None and stat.max is not None and stat.min > stat.max:
                yield _err(name, (*loc, field, "min"), f"min {stat.min} above max {stat.max}", "min <= value <= max")
            elif stat.min is not None and stat.max is not None and not stat.min <= stat.value <= stat.max:
                yield _err(name, (*loc, field, "value"), f"median {stat.value} outside [min, max] = [{stat.min}, {stat.max}]", "min <= value <= max")
    for i, e in enumerate(r.metrics.energy):
        if e.joules_per_token <= 0:
            yield _err(name, ("metrics", "energy", i, "joules_per_token"), f"{e.joules_per_token} is not positive", "energy > 0")
    mean = r.metrics.reported_mean_accuracy
    if mean is not None and not 0 <= mean <= 1:
        yield _err(name, ("metrics", "reported_mean_accuracy"), f"{mean} outside [0, 1]", "a fraction between 0 and 1")


def paired_consistent(r: ResultsFile, name: str, ctx: Context) -> Iterator[Problem]:
    """A paired speed-up's interval is an interval, its block lists (and bandwidths) have as many entries as it has
    blocks, the block figures are positive, only the reference's own file is an A/A check, and a record contended
    throughout has no speed-ups and says why."""
    for i, t in enumerate(r.metrics.throughput):
        if t.paired is None:
            continue
        loc = ("metrics", "throughput", i, "paired")
        if t.paired.aa_check and not r.variant.is_reference:
            yield _err(name, (*loc, "aa_check"), "an A/A check in the file of a variant that is not the reference",
                       "aa_check: true only when the reference is timed against a copy of itself")
        for figure in ("decode_tokens_per_s", "prefill_tokens_per_s", "time_to_first_token_ms"):
            f = getattr(t.paired, figure)
            if f is None:
                continue
            if f.ci_low > f.ci_high:
                yield _err(name, (*loc, figure, "ci_low"), f"interval [{f.ci_low}, {f.ci_high}] is empty", "ci_low <= ci_high")
            for side in ("variant_blocks", "reference_blocks"):
                values = getattr(f, side)
                if len(values) != f.blocks:
                    yield _err(name, (*loc, figure, side), f"{len(values)} block figures for {f.blocks} blocks", "one figure per block")
                if any(v <= 0 for v in values):
                    yield _err(name, (*loc, figure, side), "a block figure that is not positive", "speeds and times > 0")
            bw = t.paired.bandwidth_gbps
            if bw is not None and len(bw) != f.blocks:
                yield _err(name, (*loc, "bandwidth_gbps"), f"{len(bw)} bandwidth figures for the {f.blocks} pairs of {figure}",
                           "one bandwidth per pair the speed-ups use")
        if t.paired.bandwidth_gbps is not None and any(b <= 0 for b in t.paired.bandwidth_gbps):
            yield _err(name, (*loc, "bandwidth_gbps"), "a bandwidth that is not positive", "GB/s > 0")
        present = [f for f in ("decode_tokens_per_s", "prefill_tokens_per_s", "time_to_first_token_ms") if getattr(t.paired, f) is not None]
        if t.paired.speedup_absent_reason is not None:
            if present:
                yield _err(name, (*loc, present[0]), "a speed-up beside speedup_absent_reason, which says there is none",
                           "either the speed-ups or the reason they are absent")
            if not t.paired.bandwidth_contended:
                yield _err(name, (*loc, "bandwidth_contended"), "speedup_absent_reason given, bandwidth_contended false",
                           "bandwidth_contended: true (too few pairs at the free-bus floor is the one reason a speed-up is absent)")
        elif t.paired.bandwidth_contended and t.paired.left_out_pairs:
            # a file from before the free-bus rule (every pair counted) says so by left_out_pairs 0
            yield _err(name, (*loc, "speedup_absent_reason"), f"contended throughout with {t.paired.left_out_pairs} pair(s) left out, "
                       "but no reason why the speed-ups are absent", "speedup_absent_reason, and no speed-ups")


def status_consistent(r: ResultsFile, name: str, ctx: Context) -> Iterator[Problem]:
    s = r.status
    if s.code != "ok" and not s.reason:
        yield _err(name, ("status", "reason"), f"status {s.code!r} without a reason", "why the run did not finish")
    if s.code == "does_not_fit" and s.memory_needed_bytes is None:
        yield _err(name, ("status", "memory_needed_bytes"), "does_not_fit without the memory it needed", "memory_needed_bytes")
    if s.code != "does_not_fit" and (s.memory_needed_bytes is not None or s.memory_budget_bytes is not None):
        yield _err(name, ("status",), "memory figures on a status other than does_not_fit", "them only with does_not_fit")


def lineage(r: ResultsFile, name: str, ctx: Context) -> Iterator[Problem]:
    v = r.variant
    if v.is_reference and v.steps:
        yield _err(name, ("variant", "steps"), "the reference variant has compression steps", "no steps on the reference (is_reference: true)")
    if not v.is_reference and not v.steps:
        yield _err(name, ("variant", "steps"), "a variant without steps that is not the reference", "its steps, or is_reference: true")
    for i, step in enumerate(v.steps):
        if step.method not in method_catalogue.METHODS:
            yield _err(
                name,
                ("variant", "steps", i, "method"),
                f"unknown method {step.method!r}{suggest(step.method, method_catalogue.METHODS)}",
                "one of " + ", ".join(method_catalogue.METHODS),
            )


def provenance_and_profile(r: ResultsFile, name: str, ctx: Context) -> Iterator[Problem]:
    p = r.provenance
    if p.kind == "reported":
        if not (p.citation.table or p.citation.page or p.citation.url):
            yield _err(name, ("provenance", "citation"), "citation names neither table, page nor URL", "where in the source the numbers stand")
    else:
        if r.hardware is None:
            yield _err(name, ("hardware",), "measured result without detected hardware", "the hardware the run used")
        if r.profile == UNSPECIFIED:
            yield _err(name, ("profile",), "measured result with profile 'unspecified'", "the profile the harness ran under")
    if r.profile != UNSPECIFIED and r.profile not in ctx.profiles:
        yield _err(name, ("profile",), f"unknown profile {r.profile!r}{suggest(r.profile, ctx.profiles)}", "one of " + ", ".join([*ctx.profiles, UNSPECIFIED]))
    profile = ctx.profiles.get(r.profile)
    if profile is not None and r.hardware is not None:
        accelerator = r.hardware.accelerator.name if r.hardware.accelerator else None
        if not profile.accepts(accelerator) and not r.hardware.other_than_profile:
            yield _err(
                name,
                ("hardware",),
                f"hardware {accelerator or 'CPU only'!r} is not what profile {profile.name!r} describes ({profile.label})",
                "matching hardware, or hardware.other_than_profile: true (--allow-other-hardware)",
            )
        if profile.device == "cpu" and r.hardware.accelerator is not None and not r.hardware.other_than_profile:
            yield _warn(name, ("hardware", "accelerator"), "a CPU-profile run lists an accelerator", "no accelerator for the CPU profile")


def location(r: ResultsFile, name: str, ctx: Context) -> Iterator[Problem]:
    rel = ctx.relative_path
    if rel is None:
        return
    expected = Path(r.base_model.id) / r.variant.id / r.profile / f"{r.run_id}.json"
    if rel != expected:
        yield _err(name, ("run_id",), f"file lies at {rel.as_posix()}", f"data/results/{expected.as_posix()} (base_model.id/variant.id/profile/run_id.json)")


RULES: dict[int, list[Rule]] = {
    1: [
        accuracy_ranges,
        perplexity_ranges,
        distance_ranges,
        speeds_positive,
        paired_consistent,
        status_consistent,
        lineage,
        provenance_and_profile,
        location,
    ],
}


def check(r: ResultsFile, name: str, ctx: Context) -> list[Problem]:
    problems: list[Problem] = []
    for rule in RULES[r.schema_version]:
        problems.extend(rule(r, name, ctx))
    return problems
