"""Generated Markdown pages: leaderboard, one page per base model, method and hardware profile.

Pages are plain Markdown with raw HTML tables and plot placeholders; every
string that comes from a results file is escaped (``leaderboard.html.esc``).
Output is deterministic: the same database gives byte-identical pages.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kompakt.methods import METHODS
from kompakt.metrics import METRICS, TASK_LABELS
from kompakt.profiles import UNSPECIFIED, Profile
from leaderboard.html import (
    Column, esc, filter_bar, fmt_bytes, fmt_fraction, fmt_num, fmt_percent, fmt_ratio, fmt_signed, table,
)
from leaderboard.language_page import has_language_figures, language_section
from leaderboard.marks import score_html
from leaderboard.plots import embed, pareto_figure

#: Rows per generated table page. 400 rows of about 1.5 KB keep every page well under
#: the 1 MB budget; more rows go to numbered continuation pages.
ROWS_PER_PAGE = 400

Row = dict[str, Any]

#: Front matter for pages whose tables need the full width: Material hides the sidebars.
WIDE = "---\nhide:\n  - navigation\n  - toc\n---\n"


# ------------------------------------------------------------------------------------------ cells


def _acc_cell(task: str, metric: str) -> Column:
    col = f"acc_{task}_{metric}"

    def cell(r: Row) -> str:
        return score_html(r, col, task)

    label = TASK_LABELS.get(task, task)
    return Column(f"{label} {metric}", cell, lambda r: r.get(col), f"lm-eval {task}, metric {metric}, ± standard error", numeric=True)


def _variant_cell(r: Row) -> str:
    ref = ' <span class="kompakt-badge">reference</span>' if r["is_reference"] else ""
    backend = f' <span class="kompakt-badge kompakt-backend" title="inference backend of the memory and speed figures">{esc(r["backend"])}</span>' if r.get("backend") else ""
    return f'<span title="{esc(r["lineage"])}">{esc(r["variant_id"])}</span>{ref}{backend}<br><small>{esc(r["lineage"])}</small>'


def _source_cell(r: Row) -> str:
    parts = []
    for kind in r["provenance"].split("+"):
        parts.append(f'<span class="kompakt-badge kompakt-{esc(kind)}">{esc(kind)}</span>')
    if r.get("limit") is not None:
        parts.append(f'<span class="kompakt-badge kompakt-limit" title="partial: {esc(r.get("limited_tasks"))} on their first documents only">limit {r["limit"]}</span>')
    if r["status"] != "ok":
        parts.append(f'<span class="kompakt-badge kompakt-status" title="{esc(r.get("status_reason"))}">{esc(r["status"])}</span>')
    return " ".join(parts)


def _mean_cell(r: Row) -> str:
    if r["mean_accuracy"] is None:
        return ""
    out = fmt_fraction(r["mean_accuracy"])
    if r.get("mean_basis") and "hellaswag_llamacpp" in r["mean_basis"]:
        out += ' <span class="kompakt-badge" title="HellaSwag scored on llama.cpp\'s preprocessed text">HS llama.cpp</span>'
    if r.get("quality_from"):
        out += f' <span class="kompakt-badge" title="accuracy from {esc(r["quality_from"])}">†</span>'
    if r.get("mean_at_chance"):
        n = len(r["mean_at_chance"].split(", "))
        out += f' <span class="kompakt-badge kompakt-chance" title="at chance: {esc(r["mean_at_chance"])}">{n} at chance</span>'
    reported = r.get("reported_mean_accuracy")
    if reported is not None and abs(reported - r["mean_accuracy"]) >= 0.00005:
        out += f'<br><small title="the average as the source prints it">source: {fmt_fraction(reported)}</small>'
    return out


def _word_ppl_cell(r: Row) -> str:
    text = fmt_num(r["word_perplexity"])
    if not text or not r.get("word_perplexity_context"):
        return text
    return f'<span title="lm-eval rolling window of {r["word_perplexity_context"]} tokens">{text}</span>'


def _delta_cell(r: Row) -> str:
    if r["delta_mean_accuracy"] is None:
        return ""
    return f'{fmt_signed(r["delta_mean_accuracy"])}<br><small>keeps {fmt_percent(r["keeps_mean_accuracy"])}</small>'


def _above_chance_cell(r: Row) -> str:
    if r.get("keeps_above_chance") is None:
        if r.get("is_reference") and r.get("above_chance_tasks"):
            return f'<small title="tasks at which this reference is significantly above chance">above chance: {esc(r["above_chance_tasks"])}</small>'
        return ""
    left = f'; left out, the reference at chance: {r["at_chance_left_out"]}' if r.get("at_chance_left_out") else ""
    return (f'<span title="averaged on {esc(r["above_chance_tasks"])}{esc(left)}">{fmt_percent(r["keeps_above_chance"])}</span>'
            f'<br><small>{esc(r["above_chance_tasks"])}</small>')


def _ppl_ratio_cell(r: Row) -> str:
    ratio = r.get("parallel_ppl_ratio_deu_Latn")
    if ratio is None:
        return ""
    title = (f"German parallel perplexity {fmt_percent(r.get('rel_parallel_ppl_deu_Latn'))} of the reference's, English "
             f"{fmt_percent(r.get('rel_parallel_ppl_eng_Latn'))}; above 1: the method hurts German more")
    return f'<span title="{esc(title)}">{fmt_num(ratio, 3)}</span>'


def _speed_value(r: Row) -> tuple[float | None, str]:
    if r.get("decode_tokens_per_s") is not None:
        return r["decode_tokens_per_s"], "decode"
    if r.get("generate_tokens_per_s") is not None:
        return r["generate_tokens_per_s"], "generate"
    return None, ""


def _speed_cell(r: Row) -> str:
    value, kind = _speed_value(r)
    if value is None:
        return ""
    key = f"{kind}_tokens_per_s"
    out = fmt_num(value, 1)
    lo, hi = r.get(f"{key}_min"), r.get(f"{key}_max")
    if lo is not None and hi is not None:
        out += f' <span class="kompakt-se">[{fmt_num(lo, 1)}–{fmt_num(hi, 1)}]</span>'
    details = [kind]
    if r.get(f"{key}_batch"):
        details.append(f"batch {r[f'{key}_batch']}")
    if r.get("bandwidth_bound_share") is not None and kind == "decode":
        details.append(f"{fmt_percent(r['bandwidth_bound_share'])} of bound")
    return out + f"<br><small>{', '.join(details)}</small>"


def _memory_value(r: Row) -> float | None:
    return r.get("peak_device_bytes") or r.get("peak_host_bytes")


def _memory_cell(r: Row) -> str:
    if r["status"] == "does_not_fit" and r.get("memory_needed_bytes"):
        return f"needs {fmt_bytes(r['memory_needed_bytes'])}"
    parts = []
    if r.get("weights_bytes") is not None:
        parts.append(f"weights {fmt_bytes(r['weights_bytes'])}")
    peak = _memory_value(r)
    if peak is not None:
        parts.append(f"peak {fmt_bytes(peak)}")
    badges = "".join(f'<span class="kompakt-badge kompakt-fits" title="measured peak memory fits">fits {esc(b)}</span> ' for b in r.get("fits") or [])
    return "<br>".join(parts) + (f"<br>{badges.strip()}" if badges else "")


def leaderboard_columns(with_model: bool = True, with_hardware: bool = True, root: str = "../../") -> list[Column]:
    """The leaderboard's columns; ``root`` is the relative path from the page to the site root."""
    cols = []
    if with_model:
        cols.append(Column("Model", lambda r: f'<a href="{root}models/{esc(r["base_model_id"])}/">{esc(r["base_model_name"])}</a>', lambda r: r["base_model_name"]))
    cols.append(Column("Variant", _variant_cell, lambda r: r["variant_id"], "variant id, the backend that ran it, and its lineage (compression steps in order)"))
    if with_hardware:
        cols.append(Column("Hardware", lambda r: f'{esc(r["hardware_label"])}<br><small>profile {esc(r["profile"])}</small>', lambda r: r["hardware_label"]))
    cols += [
        Column("Source", _source_cell, lambda r: r["provenance"], "measured by the kompakt harness or reported in a publication"),
        Column("Mean acc.", _mean_cell, lambda r: r["mean_accuracy"], METRICS["mean_accuracy"].description, numeric=True),
        Column("Δ vs ref.", _delta_cell, lambda r: r["delta_mean_accuracy"], "change of mean accuracy against the reference variant on the same hardware, both averaged on the same tasks (HellaSwag's text included), and the share of the reference's accuracy kept", numeric=True),
        Column("Kept (above chance)", _above_chance_cell, lambda r: r.get("keeps_above_chance"), METRICS["keeps_above_chance"].description, numeric=True),
        Column("Word PPL", _word_ppl_cell, lambda r: r["word_perplexity"], METRICS["word_perplexity"].description, numeric=True),
        Column("DE/EN PPL", _ppl_ratio_cell, lambda r: r.get("parallel_ppl_ratio_deu_Latn"), METRICS["parallel_ppl_ratio"].description, numeric=True),
        Column("Memory", _memory_cell, _memory_value, "weights as stored and peak memory while generating; badges: common budgets the measured peak fits", numeric=True),
        Column("tok/s", _speed_cell, lambda r: _speed_value(r)[0], "decode tokens/s (median, [min–max]) or, where only that is known, whole-generate tokens/s", numeric=True),
        Column("Speed-up", lambda r: fmt_ratio(r["speedup"]), lambda r: r["speedup"], "tokens/s against the reference on the same hardware, backend and batch size", numeric=True),
        _acc_cell("winogrande", "acc"),
        _acc_cell("arc_challenge", "acc_norm"),
        _acc_cell("truthfulqa_mc2", "acc"),
        _acc_cell("hellaswag", "acc_norm"),
        _acc_cell("hellaswag_llamacpp", "acc_norm"),
        Column("Bits/byte", lambda r: fmt_num(r["bits_per_byte"], 3), lambda r: r["bits_per_byte"], METRICS["bits_per_byte"].description, numeric=True),
    ]
    return cols


# ------------------------------------------------------------------------------------------ pages


def _filters() -> dict[str, Callable[[Row], str]]:
    return {
        "model": lambda r: r["base_model_name"],
        "method": lambda r: r["methods"].replace(",", "|"),
        "hardware": lambda r: r["hardware_label"],
        "backend": lambda r: r.get("backend") or "",
        "provenance": lambda r: r["provenance"].replace("+", "|"),
    }


def _filter_options(rows: Sequence[Row]) -> dict[str, list[str]]:
    options: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        for name, get in _filters().items():
            options[name].update(v for v in get(r).split("|") if v)
    return {name: sorted(options[name]) for name in _filters()}


def _chunks(rows: Sequence[Row]) -> list[Sequence[Row]]:
    return [rows[i : i + ROWS_PER_PAGE] for i in range(0, len(rows), ROWS_PER_PAGE)] or [rows]


def _pager(n_pages: int, current: int, prefix: str) -> str:
    if n_pages <= 1:
        return ""
    links = []
    for i in range(1, n_pages + 1):
        target = f"{prefix}" if i == 1 else f"{prefix}{i}/"
        links.append(f"<strong>{i}</strong>" if i == current else f'<a href="{target}">{i}</a>')
    return f'<p class="kompakt-pager">Page {" · ".join(links)}</p>'


NOTES_ON_READING = (
    "Badges: **measured** rows come from the kompakt harness, **reported** rows are transcribed from a publication "
    "(see each model's page for the citation) and are never shown as measured. **limit N** marks a row with tasks "
    "scored on their first N documents only (hover it for which). **at chance** marks a score not significantly "
    "different from answering at random (see the methodology). **†** marks accuracy taken from another profile, "
    "or from a publication, for the same artifact (hover it for which). "
    "Deltas are shown only against a reference measured on the same hardware with the same task versions, few-shot "
    "counts and limits."
)


def leaderboard_pages(rows: Sequence[Row]) -> dict[str, str]:
    """``leaderboard/index.md`` and its continuation pages."""
    pages = {}
    chunks = _chunks(rows)
    for i, chunk in enumerate(chunks, start=1):
        cols = leaderboard_columns(root="../" if i == 1 else "../../")
        prefix = "./" if i == 1 else "../"
        body = [
            WIDE,
            "# Leaderboard\n",
            f"Every variant of every base model on every piece of hardware: {len(rows)} rows. Click a heading to sort, use the boxes to filter.\n",
            NOTES_ON_READING + "\n",
            _pager(len(chunks), i, prefix if i == 1 else "../"),
            filter_bar("leaderboard", _filter_options(rows), {"model": "Model", "method": "Method", "hardware": "Hardware", "backend": "Backend", "provenance": "Source"}),
            table(chunk, cols, "leaderboard", _filters()),
            "",
        ]
        pages["leaderboard/index.md" if i == 1 else f"leaderboard/{i}.md"] = "\n".join(body)
    return pages


def model_pages(rows: Sequence[Row], frontier: Sequence[Row], runs: Sequence[Row], profiles: dict[str, Profile]) -> dict[str, str]:
    by_model: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_model[r["base_model_id"]].append(r)
    front_by_group: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    for f in frontier:
        front_by_group[(f["base_model_id"], f["profile"], f["hardware_label"])].append(f)
    runs_by_model: dict[str, list[Row]] = defaultdict(list)
    for run in runs:
        runs_by_model[run["base_model_id"]].append(run)
    pages = {}
    index = ["# Base models\n", "Each base model's page shows its variants per hardware profile and the Pareto plots.\n"]
    index.append("| Model | Variants | Hardware |\n|---|---|---|")
    for model_id in sorted(by_model):
        model_rows = by_model[model_id]
        name = model_rows[0]["base_model_name"]
        index.append(f'| <a href="{esc(model_id)}/">{esc(name)}</a> | {len({r["variant_id"] for r in model_rows})} | {esc(", ".join(sorted({r["hardware_label"] for r in model_rows})))} |')
        pages[f"models/{model_id}.md"] = _model_page(model_id, model_rows, front_by_group, runs_by_model[model_id], profiles)
    pages["models/index.md"] = "\n".join(index) + "\n"
    return pages


def _model_page(model_id: str, model_rows: list[Row], front_by_group: dict, runs: list[Row], profiles: dict[str, Profile]) -> str:
    name = model_rows[0]["base_model_name"]
    out = [WIDE, f"# {esc(name)}\n"]
    if model_rows[0].get("base_model_notes"):
        out.append(f'<p class="kompakt-note">{esc(model_rows[0]["base_model_notes"])}</p>\n')
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in model_rows:
        groups[(r["profile"], r["hardware_label"])].append(r)
    for (profile, hardware), group in sorted(groups.items()):
        label = profiles[profile].label if profile in profiles else ("profile not stated by the source" if profile == UNSPECIFIED else profile)
        out.append(f"## {esc(hardware)}\n")
        out.append(f"<p>Profile <code>{esc(profile)}</code>: {esc(label)}.</p>\n")
        table_id = _stable_id(f"variants-{profile}-{hardware}")
        out.append(table(group, leaderboard_columns(with_model=False, with_hardware=False), table_id))
        points = front_by_group.get((model_id, profile, hardware), [])
        by_plot: dict[str, list[Row]] = defaultdict(list)
        for p in points:
            by_plot[p["plot"]].append(p)
        rows_by_key = {(r["variant_id"], r["backend"]): r for r in group}
        if by_plot:
            out.append('\n<div class="kompakt-plots">')
            for plot in sorted(by_plot):
                title = {"accuracy-memory": "Mean accuracy vs memory", "accuracy-speed": "Mean accuracy vs tokens/s", "perplexity-size": "Word perplexity vs size"}[plot]
                out.append(embed(pareto_figure(by_plot[plot], rows_by_key, title), _stable_id(f"fig-{profile}-{hardware}-{plot}")))
            out.append("</div>\n")
        else:
            out.append("\n<p><em>No Pareto plot: fewer than two variants here have both figures of any plot.</em></p>\n")
        if has_language_figures(group):
            out.append(language_section(group, _stable_id(f"lang-{profile}-{hardware}")))
        notes = sorted({n for r in group for n in r["notes"]})
        if notes:
            out.append("\n<details><summary>Notes on these results</summary><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul></details>\n")
    citations = sorted({r["citation"] for r in runs if r["citation"]})
    if citations:
        out.append("## Sources\n")
        out.append("<ul>" + "".join(f"<li>{esc(c)}</li>" for c in citations) + "</ul>\n")
    restated = [r for r in runs if r["duplicate_of"]]
    if restated:
        out.append("## Restated results\n")
        out.append("<p>These results files restate another run (e.g. a summary table repeating earlier tables, rounded). They are kept in the database but not ranked.</p>")
        out.append("<ul>" + "".join(f"<li><code>{esc(r['run_id'])}</code> restates <code>{esc(r['duplicate_of'])}</code></li>" for r in sorted(restated, key=lambda r: r["run_id"])) + "</ul>\n")
    return "\n".join(out)


def _stable_id(text: str) -> str:
    """A deterministic HTML id from any text (Python's ``hash`` changes per process)."""
    import hashlib

    return "k" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def method_pages(rows: Sequence[Row]) -> dict[str, str]:
    pages = {}
    index = ["# Methods\n", "Compression methods kompakt knows, by family. Each page lists the variants that use the method.\n", "| Method | Family | Variants | Summary |\n|---|---|---|---|"]
    for name, m in METHODS.items():
        using = [r for r in rows if name in r["methods"].split(",")]
        index.append(f'| <a href="{name}/">{esc(m.label)}</a> | {m.family} | {len(using)} | {esc(m.summary)} |')
        body = [WIDE, f"# {esc(m.label)}\n", f"<p>{esc(m.summary)}</p>\n", f"<p>Family: {m.family}. Name in recipes and results files: <code>{name}</code>.</p>\n"]
        body += _rows_block(using, f"method-{name}", {"model": "Model", "hardware": "Hardware", "provenance": "Source"},
                            "variants", "<p><em>No results use this method yet.</em></p>", hide="method")
        pages[f"methods/{name}.md"] = "\n".join(body) + "\n"
    pages["methods/index.md"] = "\n".join(index) + "\n"
    return pages


def _rows_block(using: Sequence[Row], table_id: str, labels: dict[str, str], noun: str, empty: str, hide: str | None = None) -> list[str]:
    """Filter bar and the first page of ``using`` as a leaderboard table (a method's or a profile's page)."""
    if not using:
        return [empty]
    chunks = _chunks(using)
    out = [
        filter_bar(table_id, {k: v for k, v in _filter_options(using).items() if k != hide}, labels),
        table(chunks[0], leaderboard_columns(), table_id, _filters()),
    ]
    if len(chunks) > 1:
        out.append(f"\n<p>Showing the first {ROWS_PER_PAGE} of {len(using)} {noun}; the <a href=\"../../leaderboard/\">leaderboard</a> "
                   "and the <a href=\"../../downloads/\">downloads</a> have them all.</p>")
    return out


def hardware_pages(rows: Sequence[Row], profiles: dict[str, Profile]) -> dict[str, str]:
    pages = {}
    index = ["# Hardware profiles\n", "A profile is a measurement protocol: device, dtype, memory budget, batch sizes, and what happens when a variant does not fit. The hardware a run really used is recorded beside it.\n", "| Profile | Device | dtype | Memory budget | Batch sizes | Rows |\n|---|---|---|---|---|---|"]
    names = sorted(set(profiles) | {r["profile"] for r in rows})
    for name in names:
        p = profiles.get(name)
        using = [r for r in rows if r["profile"] == name]
        if p is not None:
            index.append(f'| <a href="{name}/">{esc(p.label)}</a> | {p.device} | {p.dtype} | {fmt_bytes(p.memory_budget_bytes)} | {", ".join(map(str, p.batch_sizes))} | {len(using)} |')
            head = [WIDE, f"# {esc(p.label)}\n", f"<p>{esc(p.description)}</p>\n",
                    f"<p>Device <code>{p.device}</code>, dtype <code>{p.dtype}</code>, memory budget {fmt_bytes(p.memory_budget_bytes)}, "
                    f"batch sizes {', '.join(map(str, p.batch_sizes))}, prompt {p.prompt_tokens} tokens, {p.new_tokens} new tokens, "
                    f"peak memory at {p.context_length} tokens of context; a variant that does not fit: <code>{p.on_does_not_fit}</code>.</p>\n"]
        else:
            index.append(f'| <a href="{name}/">{esc(name)}</a> | | | | | {len(using)} |')
            head = [WIDE, f"# {esc(name)}\n", "<p>Reported results whose source does not say on which hardware it measured.</p>\n"]
        head += _rows_block(using, f"hardware-{name}", {"model": "Model", "method": "Method", "hardware": "Hardware", "backend": "Backend", "provenance": "Source"},
                            "rows", "<p><em>No results under this profile yet.</em></p>")
        pages[f"hardware/{name}.md"] = "\n".join(head) + "\n"
    pages["hardware/index.md"] = "\n".join(index) + "\n"
    return pages


def metrics_table() -> str:
    lines = ["| Metric | Unit | Better | Definition |", "|---|---|---|---|"]
    for m in METRICS.values():
        lines.append(f"| {esc(m.label)} (`{m.key}`) | {esc(m.unit) or '–'} | {'lower' if m.lower_is_better else 'higher'} | {esc(m.description)} |")
    return "\n".join(lines) + "\n"


def schema_page(schema: dict[str, Any]) -> str:
    """The results-file reference, generated from the JSON Schema's field descriptions."""
    defs = schema.get("$defs", {})
    out = [
        "# Results file reference\n",
        "Generated from the JSON Schema in `data/schema/results-v1.schema.json`, which is generated from the pydantic model "
        "`kompakt.results.ResultsFile`. Unknown keys are errors.\n",
    ]

    def section(title: str, node: dict[str, Any]) -> None:
        out.append(f"## {title}\n")
        if node.get("description"):
            out.append(esc(node["description"]) + "\n")
        required = set(node.get("required", []))
        out.append("| Field | Type | Required | Description |\n|---|---|---|---|")
        for field, spec in node.get("properties", {}).items():
            out.append(f"| `{field}` | {esc(_type_name(spec))} | {'yes' if field in required else ''} | {esc(spec.get('description', ''))} |")
        out.append("")

    section("ResultsFile (top level)", schema)
    for name in sorted(defs):
        section(name, defs[name])
    return "\n".join(out)


def _type_name(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        return spec["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in spec:
        return " or ".join(_type_name(s) for s in spec["anyOf"])
    if "oneOf" in spec:
        return " or ".join(_type_name(s) for s in spec["oneOf"])
    if "enum" in spec:
        return " | ".join(repr(v) for v in spec["enum"])
    if "const" in spec:
        return repr(spec["const"])
    t = spec.get("type", "any")
    if t == "array":
        return f"list of {_type_name(spec.get('items', {}))}"
    if t == "object" and "additionalProperties" in spec and isinstance(spec["additionalProperties"], dict):
        return f"map to {_type_name(spec['additionalProperties'])}"
    return str(t)


_FRAGMENT = re.compile(r"<!--kf-->(.*?)<!--/kf-->", re.S)


def write_pages(docs: Path, pages: dict[str, str], fragments: Path) -> None:
    """Write the pages; move each marked HTML block into ``fragments`` behind a placeholder."""
    for rel, text in pages.items():
        counter = iter(range(1_000_000))

        def park(match: re.Match, rel: str = rel) -> str:
            name = f"{rel}.{next(counter)}.html"
            target = fragments / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(match.group(1), encoding="utf-8")
            return f'<div data-kompakt-fragment="{name}"></div>'

        path = docs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_FRAGMENT.sub(park, text), encoding="utf-8")
