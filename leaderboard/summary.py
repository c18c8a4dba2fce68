"""From runs and long-form metrics to leaderboard rows, deltas and Pareto frontiers.

A leaderboard row is one variant of one base model on one piece of hardware
under one profile and one inference backend: the same variant timed on PyTorch
and on llama.cpp is two rows. Accuracy and perplexity belong to the artifact and
are shown on each of its rows; memory, speed and energy belong to the backend
that ran it (memory and energy figures take the backend of the speed figures in
the same results file: ``leaderboard.flatten.run_backend``). Its figures are the
latest value of each metric over the runs with that key (restated runs excluded),
so a later run that measured only speed does not hide an earlier run's accuracy;
a figure is never displaced by a later, less complete one (``--limit``: a quick
demo run on 40 documents hides neither the full run nor one on 1,000). Each figure
remembers the run it came from.

Comparisons are only made between like and like: a delta against the reference
needs the same task version, lm-eval version, few-shot count and limit, and a
mean accuracy needs all four tasks; otherwise it is absent, never mixed.

Paired figures (:mod:`leaderboard.paired`: the difference with its interval, flips,
agreement and the Holm-adjusted test) join a row's accuracy figure only when they were
computed from the very run that figure comes from; a row's ``flips`` is the mean over the
mean accuracy's right/wrong tasks of each one's share of changed answers, and
``significant_changes`` lists the changes the rule calls significant.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kompakt.metrics import MEAN_TASKS, PAIRED_KEYS, Basis, comparable, lower_is_better
from kompakt.paired import contains_one
from kompakt.tasks import TASKS
from leaderboard.budgets import fitting
from leaderboard.chance_rows import add_above_chance, figure_verdict
from leaderboard.frontier import pareto_mask, relative
from leaderboard.languages import LANGUAGE_COLUMNS, add_language_figures, fill_parallel

RowKey = tuple[str, str, str, str, str | None]  # base_model_id, variant_id, profile, hardware_label, backend

#: Accuracy columns shown on the leaderboard, in order: (task, metric).
SHOWN_ACCURACY = [
    ("winogrande", "acc"),
    ("arc_challenge", "acc"),
    ("arc_challenge", "acc_norm"),
    ("truthfulqa_mc2", "acc"),
    ("hellaswag", "acc_norm"),
    ("hellaswag_llamacpp", "acc_norm"),
]
#: Then every other accuracy task of the catalogue at its headline metric (the German suite, Belebele's English side).
SHOWN_ACCURACY += [(t.name, t.headline) for t in TASKS.values() if t.kind == "accuracy" and t.headline and (t.name, t.headline) not in SHOWN_ACCURACY]

#: Pareto plots per base model and hardware: (x candidates in order of preference, y).
#: The first x key that at least two variants have is used for the whole plot.
PLOTS: list[tuple[str, list[str], str]] = [
    ("accuracy-memory", ["peak_device_bytes", "peak_host_bytes", "weights_bytes", "disk_bytes"], "mean_accuracy"),
    ("accuracy-speed", ["decode_tokens_per_s_paired", "decode_tokens_per_s", "generate_tokens_per_s"], "mean_accuracy"),
    ("perplexity-size", ["weights_bytes", "disk_bytes"], "word_perplexity"),
    ("kl-memory", ["weights_bytes", "disk_bytes"], "kl_divergence"),
]

#: Figures that measure a distance from the reference: zero on the reference by definition, so their plot waits for a
#: variant (the reference on two backends would be two points at zero).
FROM_THE_REFERENCE = {"kl_divergence"}

#: Paired figures attached to each shown accuracy column (``acc_<task>_<metric>_<field>``).
PAIRED_FIELDS = ("diff", "ci_low", "ci_high", "flips", "agreement", "p_holm", "significant")
#: The distance figures a row shows (from the KL task).
DISTANCE_COLUMNS = ["kl_divergence", "kl_divergence_stderr", "kl_divergence_limit", "kl_median", "kl_p99", "top1_agreement"]


@dataclass(frozen=True)
class Figure:
    """One metric value with the context needed to decide what it may be compared with."""

    value: float
    run_id: str
    stderr: float | None = None
    n: int | None = None
    limit: int | None = None
    num_fewshot: int | None = None
    task_version: str | None = None
    lm_eval_version: str | None = None
    batch_size: int | None = None
    backend: str | None = None
    min: float | None = None
    max: float | None = None
    p90: float | None = None
    repeats: int | None = None
    context_length: int | None = None
    chance_level: float | None = None
    """An accuracy's chance level on the documents scored (not part of its basis: it follows from the documents)."""
    language: str | None = None
    """A parallel-text perplexity's language."""
    ci_low: float | None = None
    """A paired speed-up's confidence interval (low end)."""
    ci_high: float | None = None
    blocks: int | None = None
    """Pairs of blocks a paired speed-up was computed from."""

    def basis(self) -> Basis:
        """What must be equal for two figures of one metric to be compared (:class:`kompakt.metrics.Basis`)."""
        return Basis(self.limit, self.num_fewshot, self.task_version, self.lm_eval_version, self.context_length,
                     self.batch_size, self.backend)

    def comparable(self, other: Figure) -> bool:
        return comparable(self.basis(), other.basis())


def _latest_figures(runs: list[dict[str, Any]], metrics_by_run: dict[str, list[dict[str, Any]]]) -> dict[tuple, Figure]:
    """The latest figure per metric identity over ``runs`` (sorted oldest first)."""
    out: dict[tuple, Figure] = {}
    for run in runs:
        for m in metrics_by_run.get(run["run_id"], []):
            backend = m["backend"]
            ident = (m["key"], m["task"], m["batch_size"], backend, m["context_length"] if m["key"] == "token_perplexity" else None)
            if ident in out and not at_least_as_complete(m["limit"], out[ident].limit):
                continue  # a partial measurement does not replace a more complete one
            out[ident] = Figure(
                value=m["value"], run_id=run["run_id"], stderr=m["stderr"], n=m["n"], limit=m["limit"], num_fewshot=m["num_fewshot"],
                task_version=m["task_version"], lm_eval_version=run["lm_eval_version"], batch_size=m["batch_size"], backend=backend,
                min=m["min"], max=m["max"], p90=m["p90"], repeats=m["repeats"], context_length=m["context_length"],
                chance_level=m.get("chance_level"), language=m.get("language"),
                ci_low=m.get("ci_low"), ci_high=m.get("ci_high"), blocks=m.get("blocks"),
            )
    return out


def at_least_as_complete(limit: int | None, than: int | None) -> bool:
    """Whether a figure on ``limit`` documents (None: all) covers at least as much as one on ``than``."""
    return limit is None or (than is not None and limit >= than)


def split_by_backend(figures: dict[tuple, Figure]) -> dict[str | None, dict[tuple, Figure]]:
    """The figures of each backend's row: quality figures (and backend-less ones) go to every row,
    memory, speed and energy figures only to their backend's. No backend named: one row, keyed None."""
    backends = sorted({ident[3] for ident in figures if ident[3] is not None})
    if not backends:
        return {None: figures}
    return {b: {ident: f for ident, f in figures.items() if ident[3] is None or ident[3] == b} for b in backends}


def _pick(figures: dict[tuple, Figure], key: str, task: str | None = None) -> Figure | None:
    """The figure for ``key`` (and ``task``) at the ranked batch size: 1, else unstated, else the smallest."""
    candidates = [(ident, f) for ident, f in figures.items() if ident[0] == key and (task is None or ident[1] == task)]
    if not candidates:
        return None

    def rank(item: tuple[tuple, Figure]) -> tuple:
        f = item[1]
        bs = f.batch_size
        # on a backend's row, its own figure before one that names no backend (a hand-written file)
        return (0 if bs == 1 else 1 if bs is None else 2, bs or 0, f.backend is None, f.backend or "", f.context_length or 0)

    return sorted(candidates, key=rank)[0][1]


def mean_accuracy(figures: dict[tuple, Figure], basis_of: str | None = None) -> tuple[float | None, str | None, list[Figure]]:
    """Mean over the four thesis tasks; (None, None, []) unless every slot is filled.

    A slot with several tasks (HellaSwag) takes the first that was measured, or with ``basis_of``
    (a mean's basis, e.g. ``winogrande+arc_challenge+truthfulqa_mc2+hellaswag_llamacpp``) exactly that one.
    """
    wanted = set(basis_of.split("+")) if basis_of else None
    chosen: list[Figure] = []
    basis: list[str] = []
    for _slot, options in MEAN_TASKS.items():
        for task, metric in options:
            if wanted is not None and task not in wanted:
                continue
            f = _pick(figures, f"acc:{task}:{metric}", task)
            if f is not None:
                chosen.append(f)
                basis.append(task)
                break
        else:
            return None, None, []
    return statistics.fmean(f.value for f in chosen), "+".join(basis), chosen


def stderr_of_mean(stderrs: list[float | None]) -> float | None:
    """Standard error of the mean of k estimates with standard errors ``stderrs``, treating them as
    independent: sqrt(sum of squares) / k. None when there are none or any is unknown."""
    if not stderrs or any(s is None for s in stderrs):
        return None
    return math.sqrt(math.fsum(s * s for s in stderrs)) / len(stderrs)


def build_rows(runs: Iterable[dict[str, Any]], metrics: Iterable[dict[str, Any]],
               paired: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Leaderboard rows from run rows and metric rows (as produced by ``leaderboard.flatten``) and the paired
    figures (``leaderboard.paired``)."""
    metrics_by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in metrics:
        metrics_by_run[m["run_id"]].append(m)
    groups: dict[RowKey, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        if run["duplicate_of"] is None:
            groups[(run["base_model_id"], run["variant_id"], run["profile"], run["hardware_label"])].append(run)
    rows = []
    for key, group in groups.items():
        group.sort(key=lambda r: (r["run_date"], r["run_id"]))
        ok = [r for r in group if r["status"] == "ok"]
        latest = group[-1]
        for backend, figures in split_by_backend(_latest_figures(ok, metrics_by_run)).items():
            rows.append(_row((*key, backend), group, latest, figures))
    _add_paired(rows, paired)
    _borrow_quality(rows)
    _add_deltas(rows)
    for r in rows:  # after the deltas, which may rebase the mean on the reference's tasks (what they compare)
        r["mean_accuracy_stderr"] = stderr_of_mean([f.stderr for f in r["_mean_figures"] or []])
        add_above_chance(r, r["_reference"])
        add_language_figures(r, r["_reference"])
    rows.sort(key=lambda r: (r["base_model_id"], r["profile"], r["hardware_label"], not r["is_reference"], r["variant_id"], r["backend"] or ""))
    return rows


def row_key(row: dict[str, Any]) -> RowKey:
    """The identity of a leaderboard row."""
    return (row["base_model_id"], row["variant_id"], row["profile"], row["hardware_label"], row["backend"])


def row_label(row: dict[str, Any]) -> str:
    """The variant id, with the backend where the row has one (``reference · llama.cpp``)."""
    return f'{row["variant_id"]} · {row["backend"]}' if row.get("backend") else row["variant_id"]


def _row(key: RowKey, group: list[dict[str, Any]], latest: dict[str, Any], figures: dict[tuple, Figure]) -> dict[str, Any]:
    base_model_id, variant_id, profile, hardware, backend = key
    row: dict[str, Any] = {
        "base_model_id": base_model_id,
        "base_model_name": latest["base_model_name"],
        "base_model_notes": latest["base_model_notes"],
        "variant_id": variant_id,
        "is_reference": latest["is_reference"],
        "lineage": latest["lineage"],
        "lineage_short": latest.get("lineage_short") or latest["lineage"],
        "trained_on": latest.get("trained_on"),
        "bits_per_weight_linears": latest.get("bits_per_weight_linears"),
        "bits_per_weight_model": latest.get("bits_per_weight_model"),
        "methods": latest["methods"],
        "method_families": latest["method_families"],
        "profile": profile,
        "hardware_label": hardware,
        "backend": backend,
        "status": "ok" if figures else latest["status"],
        "status_reason": None if figures else latest["status_reason"],
        "memory_needed_bytes": None if figures else latest["memory_needed_bytes"],
        "provenance": "+".join(sorted({r["provenance"] for r in group})),
        "run_ids": [r["run_id"] for r in group],
        "citations": sorted({r["citation"] for r in group if r["citation"]}),
        "notes": [n for r in group for n in json.loads(r["notes"])] + [n for n in (latest["variant_notes"],) if n],
        "reported_mean_accuracy": next((r["reported_mean_accuracy"] for r in reversed(group) if r["reported_mean_accuracy"] is not None), None),
        "quality_from": None,
        "_builds": {r["variant_content_hash"] for r in group if r.get("variant_content_hash")},
        "_figures": figures,
    }
    _fill_quality(row, figures)
    for metric in ("weights_bytes", "disk_bytes", "peak_device_bytes", "peak_host_bytes"):
        f = _pick(figures, metric)
        row[metric] = f.value if f else None
    row["fits"] = fitting(row["peak_device_bytes"], row["peak_host_bytes"])
    for metric in ("decode_tokens_per_s", "prefill_tokens_per_s", "generate_tokens_per_s", "time_to_first_token_ms", "bandwidth_bound_share", "joules_per_token"):
        f = _pick(figures, metric)
        row[metric] = f.value if f else None
        row[f"{metric}_min"] = f.min if f else None
        row[f"{metric}_max"] = f.max if f else None
        row[f"{metric}_batch"] = f.batch_size if f else None
    for metric in PAIRED_KEYS.values():
        f = _pick(figures, metric)
        row[metric] = f.value if f else None
        row[f"{metric}_low"] = f.ci_low if f else None
        row[f"{metric}_high"] = f.ci_high if f else None
        row[f"{metric}_blocks"] = f.blocks if f else None
        row[f"{metric}_batch"] = f.batch_size if f else None
    return row


def _fill_quality(row: dict[str, Any], figures: dict[tuple, Figure]) -> None:
    limits: dict[str, int] = {}  # task -> limit, for the tasks of this row measured on a subset
    shown: dict[str, Figure] = {}
    for task, metric in SHOWN_ACCURACY:
        f = _pick(figures, f"acc:{task}:{metric}", task)
        col = f"acc_{task}_{metric}"
        row[col] = f.value if f else None
        row[f"{col}_stderr"] = f.stderr if f else None
        row[f"{col}_limit"] = f.limit if f else None
        row[f"{col}_chance"] = f.chance_level if f else None
        row[f"{col}_vs_chance"] = figure_verdict(task, f)
        if f is not None:
            shown[col] = f
        if f is not None and f.limit is not None:
            limits[task] = f.limit
    row["_shown_figures"] = shown
    mean, basis, chosen = mean_accuracy(figures)
    row["mean_accuracy"] = mean
    row["mean_basis"] = basis
    row["_mean_figures"] = chosen
    at = [task for task, f in zip((basis or "").split("+"), chosen) if figure_verdict(task, f) == "at"]
    row["mean_at_chance"] = ", ".join(at) or None
    fill_parallel(row, lambda key, task: _pick(figures, key, task), limits)
    for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte", "token_perplexity"):
        f = _pick(figures, metric)
        row[metric] = f.value if f else None
        if f is not None and f.limit is not None:
            limits["token perplexity" if metric == "token_perplexity" else "wikitext"] = f.limit
        if metric in ("word_perplexity", "token_perplexity"):
            row[f"{metric}_context"] = f.context_length if f else None
    kl = _pick(figures, "kl_divergence")
    row["kl_divergence"] = kl.value if kl else None
    row["kl_divergence_stderr"] = kl.stderr if kl else None
    row["kl_divergence_limit"] = kl.limit if kl else None
    for metric in ("kl_median", "kl_p99", "top1_agreement"):
        f = _pick(figures, metric)
        row[metric] = f.value if f else None
    if kl is not None and kl.limit is not None:
        limits["KL windows"] = kl.limit
    row["limit"] = max(limits.values()) if limits else None
    row["limited_tasks"] = ", ".join(f"{task} ({n})" for task, n in sorted(limits.items())) or None


QUALITY_COLUMNS = [
    *[f"acc_{t}_{m}{s}" for t, m in SHOWN_ACCURACY for s in ("", "_stderr", "_limit", "_chance", "_vs_chance")],
    *[f"acc_{t}_{m}_{f}" for t, m in SHOWN_ACCURACY for f in PAIRED_FIELDS],
    "flips", "flips_tasks", "paired_tests", "significant_changes", *DISTANCE_COLUMNS,
    "mean_accuracy", "mean_basis", "_mean_figures", "mean_at_chance", "_shown_figures", "word_perplexity", "byte_perplexity", "bits_per_byte",
    "token_perplexity", "token_perplexity_context", "word_perplexity_context", "limit", "limited_tasks", "reported_mean_accuracy",
    *LANGUAGE_COLUMNS,
]


def _has_quality(row: dict[str, Any]) -> bool:
    return (row["mean_accuracy"] is not None or row["word_perplexity"] is not None or row["kl_divergence"] is not None
            or any(row[f"acc_{t}_{m}"] is not None for t, m in SHOWN_ACCURACY))


def _add_paired(rows: list[dict[str, Any]], paired: Iterable[dict[str, Any]]) -> None:
    """Attach each row's paired figures: only those computed from the run whose figure the row shows."""
    from kompakt.tasks import TASKS

    by_group: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for p in paired:
        by_group[(p["base_model_id"], p["variant_id"], p["profile"], p["hardware_label"])].append(p)
    headline = {task for slot in MEAN_TASKS.values() for task, _ in slot}
    for row in rows:
        row["flips"] = row["flips_tasks"] = None
        row["paired_tests"] = 0
        row["significant_changes"] = []
        for task, metric in SHOWN_ACCURACY:
            for f in PAIRED_FIELDS:
                row[f"acc_{task}_{metric}_{f}"] = None
        if row["is_reference"]:
            continue
        flips: dict[str, float] = {}
        attached = []
        group = by_group.get((row["base_model_id"], row["variant_id"], row["profile"], row["hardware_label"]), [])
        for p in sorted(group, key=lambda p: (p["task"], p["metric"])):
            task, metric = p["task"], p["metric"]
            shown = _pick(row["_figures"], f"acc:{task}:{metric}", task)
            if shown is None or shown.run_id != p["variant_run_id"]:
                continue
            attached.append(p)
            if (task, metric) in SHOWN_ACCURACY:
                col = f"acc_{task}_{metric}"
                for f, source in (("diff", "difference"), ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("flips", "flips"),
                                  ("agreement", "agreement"), ("p_holm", "p_holm"), ("significant", "significant")):
                    row[f"{col}_{f}"] = p[source]
            info = TASKS.get(task)
            if task in headline and info is not None and metric == info.headline and p["flips"] is not None:
                flips[task] = p["flips"]
        row["paired_tests"] = len(attached)
        row["significant_changes"] = [
            f"{TASKS[p['task']].label if p['task'] in TASKS else p['task']} {p['metric']} {100 * p['difference']:+.1f} points"
            for p in attached if p["significant"]
        ]
        if flips:
            row["flips"] = statistics.fmean(flips.values())
            row["flips_tasks"] = ", ".join(sorted(flips))


def _borrow_quality(rows: list[dict[str, Any]]) -> None:
    """Rows with speed or memory but no accuracy take the variant's accuracy measured elsewhere.

    Accuracy and perplexity do not depend on the hardware for one artifact, so a
    speed-only row (the thesis measured tokens/s on an A100 and accuracy apart from
    it) can sit on an accuracy/speed plot. The row says where its accuracy came from. A variant whose training ran on
    a GPU is another artifact than the CPU-built one of the same id (``trained_on``), so it borrows only from its own.
    Where both rows' files record the weights they measured (``variant.content_hash``) and no build is in both, the
    two measured other artifacts of the id (GPTQ rebuilt on another CPU, say): nothing is borrowed.
    """
    with_quality: dict[tuple[str, str, str | None], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if _has_quality(r):
            with_quality[(r["base_model_id"], r["variant_id"], r.get("trained_on"))].append(r)
    for r in rows:
        if _has_quality(r) or r["status"] != "ok":
            continue
        # a donor of the row's own provenance first (measured speed takes measured accuracy), then
        # hardware-independent reported figures, then any
        donors = sorted(
            (d for d in with_quality.get((r["base_model_id"], r["variant_id"], r.get("trained_on")), [])
             if not (r["_builds"] and d["_builds"] and r["_builds"].isdisjoint(d["_builds"]))),
            key=lambda d: (d["provenance"] != r["provenance"], d["profile"] != "unspecified", d["profile"], d["hardware_label"]),
        )
        if donors:
            donor = donors[0]
            for col in QUALITY_COLUMNS:
                r[col] = donor[col]
            where = donor["hardware_label"] if donor["profile"] != "unspecified" else "unspecified hardware"
            r["quality_from"] = where if donor["provenance"] == r["provenance"] else f"{where} ({donor['provenance']})"
            r["_quality_figures"] = donor["_figures"]


def _comparable_means(a: list[Figure], b: list[Figure]) -> bool:
    return len(a) == len(b) and all(x.comparable(y) for x, y in zip(a, b))


def _mean_pair(r: dict[str, Any], ref: dict[str, Any]) -> tuple[tuple[float, str, list[Figure]], float] | None:
    """(the row's mean, its basis and figures; the reference's mean) on the same tasks, or None when the two
    cannot be compared.

    The HellaSwag slot can be filled by two tasks. A row that has the reference's task is averaged on it;
    otherwise the reference is averaged on the row's task, for the delta only. Figures that are not
    comparable (limit, shots, versions) give no pair either way.
    """
    if r["mean_basis"] is None or ref["mean_basis"] is None:
        return None
    own = (r["mean_accuracy"], r["mean_basis"], r["_mean_figures"])
    if r["mean_basis"] == ref["mean_basis"]:
        return (own, ref["mean_accuracy"]) if _comparable_means(own[2], ref["_mean_figures"]) else None
    rebased = mean_accuracy(r.get("_quality_figures") or r["_figures"], ref["mean_basis"])
    if rebased[0] is not None and _comparable_means(rebased[2], ref["_mean_figures"]):
        return rebased, ref["mean_accuracy"]
    ref_mean, _, ref_chosen = mean_accuracy(ref.get("_quality_figures") or ref["_figures"], r["mean_basis"])
    if ref_mean is not None and _comparable_means(own[2], ref_chosen):
        return own, ref_mean
    return None


def _add_deltas(rows: list[dict[str, Any]]) -> None:
    """Deltas against the reference on the same hardware: accuracy against any of its rows (accuracy
    belongs to the artifact), speed-up and memory ratio only against its row on the same backend."""
    refs: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["is_reference"] and r["status"] == "ok":
            refs[(r["base_model_id"], r["profile"], r["hardware_label"])].append(r)
    for r in rows:
        candidates = refs.get((r["base_model_id"], r["profile"], r["hardware_label"]), [])
        same_backend = next((c for c in candidates if c["backend"] == r["backend"]), None)
        ref = same_backend or (candidates[0] if candidates else None)
        r["reference_variant"] = ref["variant_id"] if ref else None
        r["delta_mean_accuracy"] = r["keeps_mean_accuracy"] = None
        r["delta_word_perplexity"] = r["speedup"] = r["memory_ratio"] = None
        r["_reference"] = ref
        _paired_speedup(r, same_backend)
        if ref is None or r["variant_id"] == ref["variant_id"] or r["status"] != "ok":
            continue
        pair = _mean_pair(r, ref)
        if pair is not None:
            # the row shows the mean its delta is taken on
            (r["mean_accuracy"], r["mean_basis"], r["_mean_figures"]), ref_mean = pair
            r["delta_mean_accuracy"] = r["mean_accuracy"] - ref_mean
            r["keeps_mean_accuracy"] = relative(r["mean_accuracy"], ref_mean, False)
        fr = _pick(r.get("_quality_figures") or r["_figures"], "word_perplexity")
        fref = _pick(ref.get("_quality_figures") or ref["_figures"], "word_perplexity")
        if fr is not None and fref is not None and fr.comparable(fref):
            r["delta_word_perplexity"] = fr.value - fref.value
        if ref is not same_backend:
            continue  # llama.cpp and PyTorch differ by several times in speed and in memory
        for speed in ("decode_tokens_per_s", "generate_tokens_per_s"):
            if r["speedup_paired"]:
                break  # measured side by side with the reference: that figure, not a ratio of two runs
            fs, fref_s = _pick(r["_figures"], speed), _pick(ref["_figures"], speed)
            if fs is not None and fref_s is not None and fs.batch_size == fref_s.batch_size:
                r["speedup"] = fs.value / fref_s.value
                break
        for mem in ("peak_device_bytes", "peak_host_bytes", "weights_bytes"):
            if r[mem] is not None and ref[mem] is not None:
                r["memory_ratio"] = r[mem] / ref[mem]
                break


def _paired_speedup(r: dict[str, Any], ref: dict[str, Any] | None) -> None:
    """The row's paired decode speed-up (timed against the reference in the same run), where it has one.

    ``speedup`` takes it with its interval (``speedup_low``, ``speedup_high``); ``speedup_measurable`` is False
    when the interval contains 1.0 (no measurable difference: not a number to rank). ``decode_tokens_per_s_paired``,
    the x of the speed plots, is the reference's decode tokens/s on the same backend and batch size times the
    paired speed-up (its ``_min``/``_max``, the plot's bars, times the interval's ends), so a backend's variants sit where they were measured against the reference, not where the
    machine's mood of another minute put them; elsewhere it is the row's own figure. The reference's own row
    (whose paired figure is an A/A check) gets no speed-up."""
    r["speedup_low"] = r["speedup_high"] = r["speedup_blocks"] = r["speedup_measurable"] = None
    r["speedup_paired"] = False
    r["decode_tokens_per_s_paired"] = r.get("decode_tokens_per_s")
    r["decode_tokens_per_s_paired_min"] = r.get("decode_tokens_per_s_min")
    r["decode_tokens_per_s_paired_max"] = r.get("decode_tokens_per_s_max")
    if r["is_reference"] or r["status"] != "ok":
        return
    f = _pick(r["_figures"], "decode_speedup")
    if f is None or f.ci_low is None or f.ci_high is None:
        return
    r["speedup"], r["speedup_low"], r["speedup_high"], r["speedup_blocks"] = f.value, f.ci_low, f.ci_high, f.blocks
    r["speedup_paired"] = True
    r["speedup_measurable"] = not contains_one(f.ci_low, f.ci_high)
    fref = _pick(ref["_figures"], "decode_tokens_per_s") if ref is not None else None
    if fref is not None and fref.batch_size == f.batch_size:
        # the bars of the speed plot: the paired interval on the reference's figure, not the variant's own repeats
        r["decode_tokens_per_s_paired"] = fref.value * f.value
        r["decode_tokens_per_s_paired_min"] = fref.value * f.ci_low
        r["decode_tokens_per_s_paired_max"] = fref.value * f.ci_high


def _plot_basis(row: dict[str, Any], y_key: str) -> tuple | None:
    """What a row's plotted ``y_key`` was measured on: the mean's tasks and their figures' bases, or the
    word perplexity's basis (its window included). Points with different bases are not on one plot."""
    if y_key == "mean_accuracy":
        return (row["mean_basis"], tuple(f.basis() for f in row["_mean_figures"] or []))
    f = _pick(row.get("_quality_figures") or row["_figures"], y_key)
    return f.basis() if f is not None else None


def _same_basis(points: list[dict[str, Any]], y_key: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the points one plot may show together, the ones left out). The reference's basis decides where the
    reference is a point; otherwise the basis most points share (ties: the first in row order)."""
    if not points:
        return [], []
    bases = [_plot_basis(p, y_key) for p in points]
    ref = next((b for p, b in zip(points, bases) if p["is_reference"]), None)
    if ref is None:
        counts = Counter(bases)
        ref = max(counts, key=lambda b: (counts[b], -bases.index(b)))
    kept = [p for p, b in zip(points, bases) if b == ref]
    return kept, [p for p, b in zip(points, bases) if b != ref]


def frontier_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pareto frontier membership per base model, profile, hardware and plot; each backend's row is a point of its own.

    A plot only holds points measured alike (``_same_basis``): a word perplexity over another rolling
    window, or a mean over other tasks, documents or versions, is left out and named in ``left_out``."""
    out = []
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["status"] == "ok":
            groups[(r["base_model_id"], r["profile"], r["hardware_label"])].append(r)
    for (model, profile, hardware), group in sorted(groups.items()):
        for plot, x_candidates, y_key in PLOTS:
            for x_key in x_candidates:
                points, left = _same_basis([r for r in group if r.get(x_key) is not None and r.get(y_key) is not None], y_key)
                if len(points) >= 2 and (y_key not in FROM_THE_REFERENCE or any(not p["is_reference"] for p in points)):
                    break
            else:
                continue
            left_out = ", ".join(sorted(row_label(r) for r in left)) or None
            mask = pareto_mask([(p[x_key], p[y_key]) for p in points], lower_is_better(x_key), lower_is_better(y_key))
            for p, on in zip(points, mask):
                out.append(
                    {
                        "base_model_id": model, "profile": profile, "hardware_label": hardware, "plot": plot,
                        "x_key": x_key, "y_key": y_key, "variant_id": p["variant_id"], "backend": p["backend"], "x": p[x_key], "y": p[y_key], "on_frontier": on,
                        "left_out": left_out,
                    }
                )
    return out


def public(row: dict[str, Any]) -> dict[str, Any]:
    """The row without its private bookkeeping (keys starting with an underscore)."""
    return {k: v for k, v in row.items() if not k.startswith("_")}
