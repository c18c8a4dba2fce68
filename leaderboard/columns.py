"""Every table's columns, defined once: their group, heading, raw value and cell.

The site's tables are plain HTML tables (readable without JavaScript) that ``site/assets/kompakt.js``
turns into Tabulator grids. Everything the grid needs comes from here through the table's markup: the
column's group (``GROUPS``, in order), its key (the name in a shared URL's filters and sort), its kind
(how its filter works), whether it is shown before the reader picks columns, the CSV heading, and per
cell the raw value (``data-v``: what sorting, filtering and the CSV export use) beside the formatted,
escaped HTML (what the reader sees: ± standard errors, badges, tooltips).

Adding a column (a paired speed-up with its interval, a significance mark, flips, a KL divergence, an
at-chance mark, a German task) is one ``GridColumn`` entry in ``COLUMNS``, in the group it belongs to;
nothing in the pages or the JavaScript changes.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kompakt.metrics import METRICS, TASK_LABELS
from leaderboard.html import esc, fmt_bytes, fmt_fraction, fmt_num, fmt_percent, fmt_ratio, fmt_signed, fragment
from leaderboard.marks import chance_badge, task_labels

Row = dict[str, Any]
Kind = Literal["text", "choice", "number"]


@dataclass(frozen=True)
class Group:
    key: str
    """Id of the group (``data-group`` in the markup)."""
    label: str
    """Heading above the group's columns."""
    description: str
    """Tooltip of the heading."""


#: The groups, in the order they appear. The first is frozen: it stays in view while the grid scrolls sideways.
GROUPS: tuple[Group, ...] = (
    Group("identity", "Identity", "which base model, variant and hardware the row is"),
    Group("quality", "Quality", "accuracy on the lm-evaluation-harness tasks, ± one standard error"),
    Group("perplexity", "Perplexity", "WikiText-2 perplexities (lower is better)"),
    Group("memory", "Memory", "memory of the weights and while generating (lower is better)"),
    Group("speed", "Speed", "tokens per second on this hardware and backend (higher is better)"),
    Group("provenance", "Provenance", "where the figures come from: measured or reported, backend, methods, runs"),
)


@dataclass(frozen=True)
class Context:
    """Where a table is drawn."""

    root: str = "../../"
    """Relative path from the page to the site root (for links to model pages)."""


@dataclass(frozen=True)
class Extra:
    """A value the CSV export carries beside a column's own (its standard error, a lineage in full)."""

    suffix: str
    """Appended to the column's key to name it (``se``: ``mean_acc__se``)."""
    csv: str
    """Heading in the CSV export."""
    value: Callable[[Row], Any]
    """The value, or None."""
    kind: Kind = "number"
    """``number`` or ``text``."""
    in_title: bool = False
    """The cell's HTML already carries the value as the tooltip of its element marked ``data-x="<suffix>"``
    (a lineage in full), so the markup does not repeat it."""


@dataclass(frozen=True)
class GridColumn:
    key: str
    """Stable id: the column's name in the URL's filters and sort and in the CSV export's heading."""
    group: str
    """Key of its group in ``GROUPS``."""
    header: str
    """Column heading."""
    description: str
    """Tooltip of the heading: what the column means."""
    value: Callable[[Row], Any]
    """The raw value (number, text or None): what sorting, filtering and the CSV use."""
    cell: Callable[[Row, Context], str] | None = None
    """The cell's inner HTML, every string from a results file escaped; None: the value as text."""
    kind: Kind = "number"
    """Its filter: a number range (``>0.5``, ``0.4..0.6``, ``<1 GiB``), a pick from the values, or text."""
    shown: bool = True
    """Shown before the reader picks columns; a hidden column is still in the plain table and the chooser."""
    multi: bool = False
    """A choice column whose value lists several values, separated by ``|`` (a variant's methods)."""
    csv: str = ""
    """Heading in the CSV export, with the unit where the raw value has one; default: ``header``."""
    extras: tuple[Extra, ...] = ()
    """Values exported to the CSV as columns of their own beside this one's, while it is shown."""


def _value_or(key: str) -> Callable[[Row], Any]:
    return lambda r: r.get(key)


def _stderr(key: str, of: str) -> Extra:
    return Extra("se", f"{of} standard error", _value_or(key))


# ------------------------------------------------------------------------------------------ cells


def _se(value: float | None) -> str:
    return "" if value is None else f' <span class="kompakt-se">± {fmt_fraction(value)}</span>'


def _model_cell(r: Row, ctx: Context) -> str:
    return f'<a href="{ctx.root}models/{esc(r["base_model_id"])}/">{esc(r["base_model_name"])}</a>'


def _variant_cell(r: Row, ctx: Context) -> str:
    ref = ' <span class="kompakt-badge">reference</span>' if r["is_reference"] else ""
    backend = f' <span class="kompakt-badge kompakt-backend">{esc(r["backend"])}</span>' if r.get("backend") else ""
    short = "" if r["is_reference"] else (
        f'<br><small class="kompakt-lineage" data-x="lineage" title="{esc(r["lineage"])}">{esc(r.get("lineage_short") or r["lineage"])}</small>'
    )
    return f"{esc(r['variant_id'])}{ref}{backend}{short}"


def _hardware_cell(r: Row, ctx: Context) -> str:
    return f'<span title="profile {esc(r["profile"])}">{esc(r["hardware_label"])}</span>'


def _source_cell(r: Row, ctx: Context) -> str:
    parts = [f'<span class="kompakt-badge kompakt-{esc(kind)}">{esc(kind)}</span>' for kind in r["provenance"].split("+")]
    if r.get("limit") is not None:
        parts.append(f'<span class="kompakt-badge kompakt-limit" title="partial: {esc(r.get("limited_tasks"))} on their first documents only">limit {r["limit"]}</span>')
    if r["status"] != "ok":
        parts.append(f'<span class="kompakt-badge kompakt-status" title="{esc(r.get("status_reason"))}">{esc(r["status"])}</span>')
    return " ".join(parts)


MEAN_SE_NOTE = "standard error of the mean of the four tasks, treating the tasks as independent: sqrt(sum of squared standard errors) / 4"


def _mean_cell(r: Row, ctx: Context) -> str:
    if r["mean_accuracy"] is None:
        return ""
    out = fmt_fraction(r["mean_accuracy"]) + _se(r.get("mean_accuracy_stderr"))
    if r.get("mean_basis") and "hellaswag_llamacpp" in r["mean_basis"]:
        out += ' <span class="kompakt-badge" title="HellaSwag scored on llama.cpp\'s preprocessed text">HS llama.cpp</span>'
    if r.get("quality_from"):
        out += f' <span class="kompakt-badge" title="accuracy from {esc(r["quality_from"])}">†</span>'
    if r.get("mean_at_chance"):
        n = len(r["mean_at_chance"].split(", "))
        out += f' <span class="kompakt-badge kompakt-chance" title="at chance: {esc(r["mean_at_chance"])}">{n} at chance</span>'
    reported = r.get("reported_mean_accuracy")
    if reported is not None and abs(reported - r["mean_accuracy"]) >= 0.00005:
        out += f' <small title="the average as the source prints it">(source: {fmt_fraction(reported)})</small>'
    return out


def _accuracy(task: str, metric: str, shown: bool = True) -> GridColumn:
    col = f"acc_{task}_{metric}"

    def cell(r: Row, ctx: Context) -> str:
        value = r.get(col)
        if value is None:
            return ""
        out = fmt_fraction(value) + _se(r.get(f"{col}_stderr"))
        limit = r.get(f"{col}_limit")
        if limit is not None:
            out += f' <span class="kompakt-badge kompakt-limit" title="only the first {esc(limit)} samples">limit {esc(limit)}</span>'
        return out + chance_badge(r, col, task) + _paired_line(r, col)

    label = TASK_LABELS.get(task, task)
    return GridColumn(
        col, "quality", f"{label} {metric}", f"lm-eval {task}, metric {metric}, ± one standard error", _value_or(col), cell,
        shown=shown, extras=(_stderr(f"{col}_stderr", f"{label} {metric}"),),
    )


def _paired_line(r: Row, col: str) -> str:
    """Under an accuracy: the paired change against the reference, significant only by the rule (Holm-adjusted p < 0.05)."""
    diff = r.get(f"{col}_diff")
    if diff is None:
        return ""
    ci = f"[{100 * r[f'{col}_ci_low']:+.1f}, {100 * r[f'{col}_ci_high']:+.1f}]"
    flips = r.get(f"{col}_flips")
    details = f"change {100 * diff:+.1f} points, 95 % CI {ci}" + (f", flips {fmt_percent(flips)}" if flips is not None else "")
    details += f", Holm-adjusted p = {r[f'{col}_p_holm']:.3g}"
    if r.get(f"{col}_significant"):
        verdict = f'<strong class="kompakt-significant">{100 * diff:+.1f} pts, significant</strong>'
    else:
        verdict = '<span class="kompakt-no-change">no measurable change</span>'
    return f'<br><small title="{esc(details)}">{verdict}</small>'


def _flips_cell(r: Row, ctx: Context) -> str:
    if r.get("flips") is None:
        return ""
    return f'<span title="answers that changed right/wrong against the reference, mean over {esc(r["flips_tasks"])}">{fmt_percent(r["flips"])}</span>'


def _changes_cell(r: Row, ctx: Context) -> str:
    if not r.get("paired_tests"):
        return ""
    changes = r.get("significant_changes") or []
    if not changes:
        return f'<span class="kompakt-no-change" title="{r["paired_tests"]} paired tests, none significant after Holm\'s correction">no measurable change</span>'
    return "<br>".join(f'<strong class="kompakt-significant">{esc(c)}</strong>' for c in changes)


def _kl_cell(r: Row, ctx: Context) -> str:
    if r.get("kl_divergence") is None:
        return ""
    out = fmt_num(r["kl_divergence"], 4)
    if r.get("kl_divergence_stderr") is not None:
        out += f' <span class="kompakt-se">± {fmt_num(r["kl_divergence_stderr"], 4)}</span>'
    if r.get("kl_divergence_limit") is not None:
        out += f' <span class="kompakt-badge kompakt-limit" title="only the first {esc(r["kl_divergence_limit"])} windows">limit {esc(r["kl_divergence_limit"])}</span>'
    if r.get("top1_agreement") is not None:
        out += f'<br><small>same top token {fmt_percent(r["top1_agreement"])}</small>'
    return out


def _above_chance_cell(r: Row, ctx: Context) -> str:
    if r.get("keeps_above_chance") is None:
        if r.get("is_reference") and r.get("above_chance_tasks"):
            return f'<small title="tasks at which this reference is significantly above chance">above chance: {esc(task_labels(r["above_chance_tasks"]))}</small>'
        return ""
    left = f'; left out, the reference not above chance: {task_labels(r["at_chance_left_out"])}' if r.get("at_chance_left_out") else ""
    return f'<span title="averaged on {esc(task_labels(r["above_chance_tasks"] or ""))}{esc(left)}">{fmt_percent(r["keeps_above_chance"])}</span>'


def _ppl_ratio_cell(r: Row, ctx: Context) -> str:
    ratio = r.get("parallel_ppl_ratio_deu_Latn")
    if ratio is None:
        return ""
    title = (f"German parallel perplexity {fmt_percent(r.get('rel_parallel_ppl_deu_Latn'))} of the reference's, English "
             f"{fmt_percent(r.get('rel_parallel_ppl_eng_Latn'))}; above 1: the method hurts German more")
    return f'<span title="{esc(title)}">{fmt_num(ratio, 3)}</span>'


def _window_cell(key: str, context_key: str, what: str) -> Callable[[Row, Context], str]:
    def cell(r: Row, ctx: Context) -> str:
        text = fmt_num(r.get(key))
        window = r.get(context_key)
        if not text or not window:
            return text
        return f'<span title="{what} {esc(window)} tokens">{text}</span>'

    return cell


def _fmt(key: str, formatter: Callable[[Any], str]) -> Callable[[Row, Context], str]:
    return lambda r, ctx: formatter(r.get(key))


def _peak(r: Row) -> float | None:
    return r.get("peak_device_bytes") or r.get("peak_host_bytes")


def _peak_cell(r: Row, ctx: Context) -> str:
    if r["status"] == "does_not_fit" and r.get("memory_needed_bytes"):
        return f'<span class="kompakt-badge kompakt-status" title="{esc(r.get("status_reason"))}">needs {fmt_bytes(float(r["memory_needed_bytes"]))}</span>'
    peak = _peak(r)
    if peak is None:
        return ""
    where = "accelerator" if r.get("peak_device_bytes") else "host"
    return f'<span title="{where}">{fmt_bytes(float(peak))}</span>'


def _fits_cell(r: Row, ctx: Context) -> str:
    return " ".join(f'<span class="kompakt-badge kompakt-fits">{esc(b)}</span>' for b in r.get("fits") or [])


def _speed_cell(key: str) -> Callable[[Row, Context], str]:
    def cell(r: Row, ctx: Context) -> str:
        value = r.get(key)
        if value is None:
            return ""
        details = [f"batch {r[f'{key}_batch']}"] if r.get(f"{key}_batch") not in (None, 1) else []
        if key == "decode_tokens_per_s" and r.get("bandwidth_bound_share") is not None:
            details.append(f"{fmt_percent(r['bandwidth_bound_share'])} of the bandwidth bound")
        out = f'<span title="{esc("; ".join(details))}">{fmt_num(value, 1)}</span>' if details else fmt_num(value, 1)
        lo, hi = r.get(f"{key}_min"), r.get(f"{key}_max")
        if lo is not None and hi is not None:
            out += f' <span class="kompakt-se">[{fmt_num(lo, 1)}–{fmt_num(hi, 1)}]</span>'
        return out

    return cell


def _speedup_cell(r: Row, ctx: Context) -> str:
    """``1.32× [1.28–1.36]`` for a paired speed-up (timed side by side with the reference in one run), ``≈ 1 [0.97–1.04]
    no measurable difference`` when its interval contains 1, ``1.10×`` for a ratio of two separate runs (older files);
    the reference's own row shows its A/A check (against a separately loaded copy of itself) where it has one."""
    value = r.get("speedup")
    if r.get("is_reference") and r.get("decode_speedup") is not None:
        lo, hi = r.get("decode_speedup_low"), r.get("decode_speedup_high")
        interval = f" [{fmt_num(lo, 2)}–{fmt_num(hi, 2)}]" if lo is not None and hi is not None else ""
        return (f'<small title="the reference against a separately loaded copy of itself, paired like a variant: '
                f'near 1 is what the protocol should give">A/A {fmt_ratio(r["decode_speedup"])}{interval}</small>')
    if value is None or not r.get("speedup_paired"):
        return fmt_ratio(value)
    interval = f'<span class="kompakt-se">[{fmt_num(r["speedup_low"], 2)}–{fmt_num(r["speedup_high"], 2)}]</span>'
    title = esc(f"paired decode speed-up over {r['speedup_blocks']} pairs of blocks, 95 % bootstrap interval")
    if not r.get("speedup_measurable"):
        return (f'<span title="measured {fmt_ratio(value)}; the 95 % interval contains 1">≈ 1</span> {interval}'
                '<br><small class="kompakt-no-change">no measurable difference</small>')
    return f'<span title="{title}">{fmt_ratio(value)}</span> {interval}'


def _speedup_value(r: Row) -> float | None:
    """What the grid sorts and filters a speed-up by: 1 where its interval contains 1 (its digits are not a rank)."""
    if r.get("speedup_paired") and not r.get("speedup_measurable"):
        return 1.0
    return r.get("speedup")


def _delta_ppl(value: float | None) -> str:
    return "" if value is None else fmt_signed(value, 2)


# ------------------------------------------------------------------------------------------ registry

COLUMNS: tuple[GridColumn, ...] = (
    # identity
    GridColumn("model", "identity", "Model", "base model", _value_or("base_model_name"), _model_cell, kind="choice"),
    GridColumn("variant", "identity", "Variant", "variant id, the backend that ran it, and its lineage in one line (hover it for every parameter)",
               _value_or("variant_id"), _variant_cell, kind="text",
               extras=(Extra("lineage", "Lineage", lambda r: None if r["is_reference"] else r["lineage"], "text", in_title=True),)),
    GridColumn("hardware", "identity", "Hardware", "the hardware the figures were measured on (hover it for the profile)", _value_or("hardware_label"), _hardware_cell, kind="choice"),
    # quality
    GridColumn("mean_acc", "quality", "Mean acc.", METRICS["mean_accuracy"].description + " ± " + MEAN_SE_NOTE + ".", _value_or("mean_accuracy"), _mean_cell,
               csv="Mean accuracy", extras=(_stderr("mean_accuracy_stderr", "Mean accuracy"),)),
    GridColumn("delta_acc", "quality", "Δ mean", "change of mean accuracy against the reference on the same hardware, both averaged on the same tasks (HellaSwag's text included)",
               _value_or("delta_mean_accuracy"), _fmt("delta_mean_accuracy", fmt_signed), csv="Δ mean accuracy vs reference"),
    GridColumn("kept", "quality", "Kept", "share of the reference's mean accuracy the variant keeps", _value_or("keeps_mean_accuracy"), _fmt("keeps_mean_accuracy", fmt_percent),
               csv="Mean accuracy kept (fraction of the reference)"),
    GridColumn("kept_above_chance", "quality", "Kept (above chance)", METRICS["keeps_above_chance"].description, _value_or("keeps_above_chance"),
               _above_chance_cell, csv="Mean accuracy kept, tasks above chance (fraction of the reference)"),
    GridColumn("changes", "quality", "Changes", "changes against the reference that are significant by the rule (paired test, Holm-adjusted p < 0.05 "
               "over the variant's tasks); otherwise no measurable change", lambda r: len(r.get("significant_changes") or []) if r.get("paired_tests") else None,
               _changes_cell),
    GridColumn("flips", "quality", "Flips", "share of answers that changed between right and wrong against the reference (mean over the mean "
               "accuracy's right/wrong tasks)", _value_or("flips"), _flips_cell),
    _accuracy("winogrande", "acc"),
    _accuracy("arc_challenge", "acc_norm"),
    _accuracy("arc_challenge", "acc", shown=False),
    _accuracy("truthfulqa_mc2", "acc"),
    _accuracy("hellaswag", "acc_norm"),
    _accuracy("hellaswag_llamacpp", "acc_norm"),
    # perplexity
    GridColumn("word_ppl", "perplexity", "Word PPL", METRICS["word_perplexity"].description, _value_or("word_perplexity"),
               _window_cell("word_perplexity", "word_perplexity_context", "rolling window")),
    GridColumn("byte_ppl", "perplexity", "Byte PPL", METRICS["byte_perplexity"].description, _value_or("byte_perplexity"), _fmt("byte_perplexity", lambda v: fmt_num(v, 4))),
    GridColumn("bits_per_byte", "perplexity", "Bits/byte", METRICS["bits_per_byte"].description, _value_or("bits_per_byte"), _fmt("bits_per_byte", lambda v: fmt_num(v, 4))),
    GridColumn("token_ppl", "perplexity", "Token PPL", METRICS["token_perplexity"].description, _value_or("token_perplexity"),
               _window_cell("token_perplexity", "token_perplexity_context", "windows")),
    GridColumn("de_en_ppl", "perplexity", "DE/EN PPL", METRICS["parallel_ppl_ratio"].description, _value_or("parallel_ppl_ratio_deu_Latn"), _ppl_ratio_cell),
    GridColumn("kl", "perplexity", "KL", METRICS["kl_divergence"].description + " ± standard error over windows; share of tokens with the same top token",
               _value_or("kl_divergence"), _kl_cell, extras=(Extra("se", "KL standard error", _value_or("kl_divergence_stderr")),)),
    GridColumn("delta_word_ppl", "perplexity", "Δ word PPL", "change of word perplexity against the reference (same rolling window)", _value_or("delta_word_perplexity"),
               _fmt("delta_word_perplexity", _delta_ppl), shown=False),
    # memory
    GridColumn("weights", "memory", "Weights", METRICS["weights_bytes"].description, _value_or("weights_bytes"), _fmt("weights_bytes", fmt_bytes), csv="Weights (bytes)"),
    GridColumn("peak", "memory", "Peak", "peak memory while generating: the accelerator's where there is one, else the host's (the tooltip says which)", _peak, _peak_cell,
               csv="Peak memory (bytes)"),
    GridColumn("fits", "memory", "Fits", "common memory budgets the measured peak fits", lambda r: "|".join(r.get("fits") or []) or None, _fits_cell, kind="choice", multi=True),
    GridColumn("memory_ratio", "memory", "Mem. ratio", "memory against the reference on the same hardware and backend (peak where both have it, else weights)",
               _value_or("memory_ratio"), _fmt("memory_ratio", fmt_ratio), shown=False),
    GridColumn("disk", "memory", "Disk", METRICS["disk_bytes"].description, _value_or("disk_bytes"), _fmt("disk_bytes", fmt_bytes), shown=False, csv="Disk (bytes)"),
    # speed
    GridColumn("decode", "speed", "Decode tok/s", METRICS["decode_tokens_per_s"].description + " [min–max of the repeats]; batch 1 unless the tooltip says otherwise", _value_or("decode_tokens_per_s"), _speed_cell("decode_tokens_per_s")),
    GridColumn("generate", "speed", "Generate tok/s", METRICS["generate_tokens_per_s"].description + " [min–max of the repeats]", _value_or("generate_tokens_per_s"), _speed_cell("generate_tokens_per_s")),
    GridColumn("speedup", "speed", "Speed-up", "decode tokens/s against the reference on the same hardware, backend and batch size. "
               "[low–high]: the 95 % interval where the two were timed side by side in one run (paired blocks); ≈ 1: that interval "
               "contains 1, no measurable difference (sorted and filtered as 1). Without an interval: a ratio of two separate runs "
               "(older results). On the reference's row: its A/A check against a separately loaded copy of itself",
               _speedup_value, _speedup_cell, csv="Speed-up vs reference (1 where no measurable difference)",
               extras=(Extra("measured", "Speed-up as measured", _value_or("speedup")),
                       Extra("low", "Speed-up 95 % interval low", _value_or("speedup_low")),
                       Extra("high", "Speed-up 95 % interval high", _value_or("speedup_high")))),
    GridColumn("prefill", "speed", "Prefill tok/s", METRICS["prefill_tokens_per_s"].description, _value_or("prefill_tokens_per_s"), _speed_cell("prefill_tokens_per_s"), shown=False),
    GridColumn("ttft", "speed", "TTFT (ms)", METRICS["time_to_first_token_ms"].description, _value_or("time_to_first_token_ms"), _fmt("time_to_first_token_ms", lambda v: fmt_num(v, 1)), shown=False),
    GridColumn("bound_share", "speed", "Share of bound", METRICS["bandwidth_bound_share"].description, _value_or("bandwidth_bound_share"), _fmt("bandwidth_bound_share", fmt_percent), shown=False),
    GridColumn("energy", "speed", "J/token", METRICS["joules_per_token"].description, _value_or("joules_per_token"), _fmt("joules_per_token", lambda v: fmt_num(v, 3)), shown=False),
    # provenance
    GridColumn("source", "provenance", "Source", "measured by the kompakt harness or reported in a publication; limit N: tasks scored on their first N documents",
               lambda r: r["provenance"].replace("+", "|"), _source_cell, kind="choice", multi=True),
    GridColumn("backend", "provenance", "Backend", "inference backend of the memory and speed figures", _value_or("backend"), kind="choice"),
    GridColumn("methods", "provenance", "Methods", "compression methods in the lineage", lambda r: r["methods"].replace(",", "|"),
               lambda r, ctx: esc(r["methods"].replace(",", ", ")), kind="choice", multi=True),
    GridColumn("profile", "provenance", "Profile", "the measurement protocol (see Hardware)", _value_or("profile"), kind="choice", shown=False),
    GridColumn("citation", "provenance", "Citation", "the publication a reported figure comes from", lambda r: "; ".join(r.get("citations") or []) or None, kind="text", shown=False),
    GridColumn("runs", "provenance", "Runs", "ids of the results files behind the row", lambda r: " ".join(r.get("run_ids") or []) or None, kind="text", shown=False),
)

_GROUP_KEYS = [g.key for g in GROUPS]
#: Names the address bar uses besides the columns' filters (kompakt.js): the search, the sort, the columns shown.
RESERVED_KEYS = {"q", "sort", "cols"}


def check_registry(columns: Sequence[GridColumn] = COLUMNS) -> None:
    """Keys unique and URL-safe, every group known, columns in the order of their groups (the grid
    draws a group's columns together)."""
    keys = [c.key for c in columns]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"column keys used twice: {', '.join(dupes)}")
    for c in columns:
        if not c.key.replace("_", "").isalnum() or not c.key.islower():
            raise ValueError(f"column key {c.key!r}: use lower-case letters, digits and underscores")
        if c.key in RESERVED_KEYS or "__" in c.key:
            raise ValueError(f"column key {c.key!r}: reserved for the address bar or the CSV extras; pick another")
        if c.group not in _GROUP_KEYS:
            raise ValueError(f"column {c.key!r}: unknown group {c.group!r}; groups: {', '.join(_GROUP_KEYS)}")
        if c.multi and c.kind != "choice":
            raise ValueError(f"column {c.key!r}: multi needs kind 'choice'")
        for e in c.extras:
            if not e.suffix.isalnum() or not e.suffix.islower():
                raise ValueError(f"column {c.key!r}: extra {e.suffix!r}: use lower-case letters and digits")
    order = [_GROUP_KEYS.index(c.group) for c in columns]
    if order != sorted(order):
        raise ValueError("columns must be listed group by group, in the order of GROUPS")


check_registry()


# ------------------------------------------------------------------------------------------ markup


def _raw(value: Any) -> str:
    """A raw value as ``data-v`` text: numbers at full precision, without trailing noise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return f"{value:.10g}"
    return str(value)


_TAG = re.compile(r"<[^>]*>")


def text_of(markup: str) -> str:
    """The text a browser shows for a cell's HTML (what the grid reads when a cell has no ``data-v``)."""
    return html.unescape(_TAG.sub("", markup))


def grid(rows: Sequence[Row], table_id: str, ctx: Context | None = None, omit: Collection[str] = (), columns: Sequence[GridColumn] = COLUMNS) -> str:
    """A plain HTML table with grouped headings that ``kompakt.js`` turns into a grid; its id is
    ``kt-<table_id>`` (the prefix keeps it apart from the ids MkDocs gives headings) and its CSV export
    is named ``<table_id>.csv``. ``omit``: keys of columns to leave out (a model page has no model column)."""
    ctx = ctx or Context()
    columns = [c for c in columns if c.key not in omit]
    spans: list[list[Any]] = []
    for c in columns:
        if spans and spans[-1][0] == c.group:
            spans[-1][1] += 1
        else:
            spans.append([c.group, 1])
    groups = {g.key: g for g in GROUPS}
    group_row = "".join(
        f'<th colspan="{n}" data-group="{key}" title="{esc(groups[key].description)}">{esc(groups[key].label)}</th>' for key, n in spans
    )
    head = []
    for c in columns:
        attrs = [f'data-key="{c.key}"', f'data-group="{c.group}"', f'data-kind="{c.kind}"']
        if not c.shown:
            attrs.append("data-hidden")
        if c.multi:
            attrs.append("data-multi")
        if c.csv:
            attrs.append(f'data-csv="{esc(c.csv)}"')
        if c.extras:
            spec = [[e.suffix, e.csv, e.kind, e.in_title] for e in c.extras]
            attrs.append(f"data-extras=\"{esc(json.dumps(spec, ensure_ascii=False, separators=(',', ':')))}\"")
        head.append(f'<th {" ".join(attrs)} title="{esc(c.description)}">{esc(c.header)}</th>')
    body = []
    for r in rows:
        cells = []
        for c in columns:
            raw = _raw(c.value(r))
            inner = c.cell(r, ctx) if c.cell is not None else esc(raw)
            attrs = ""
            # the raw value goes into the markup unless the cell's text is that value (a formatted number never is)
            if inner != esc(raw) and ((c.kind == "number" and raw != "") or text_of(inner) != raw):
                attrs += f' data-v="{esc(raw)}"'
            for e in c.extras:
                extra = None if e.in_title else e.value(r)
                if extra is not None:
                    attrs += f' data-x-{e.suffix}="{esc(_raw(extra))}"'
            cells.append(f"<td{attrs}>{inner}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return fragment(
        f'<div class="kompakt-table-wrap"><table class="kompakt-table" id="kt-{esc(table_id)}" data-csv-name="{esc(table_id)}">'
        f'<thead><tr class="kompakt-groups">{group_row}</tr><tr>{"".join(head)}</tr></thead><tbody>\n' + "\n".join(body) + "\n</tbody></table></div>"
    )
