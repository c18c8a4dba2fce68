"""Generated Markdown pages: leaderboard, one page per base model, method and hardware profile.

Pages are plain Markdown with raw HTML tables and plot placeholders; every
string that comes from a results file is escaped (``leaderboard.html.esc``).
Output is deterministic: the same database gives byte-identical pages.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kompakt.methods import METHODS
from kompakt.metrics import METRICS
from kompakt.profiles import UNSPECIFIED, Profile
from leaderboard.columns import Context, grid
from leaderboard.html import esc, fmt_bytes
from leaderboard.plots import (PLOT_TITLES, WIDE_ABOVE, embed, overview_caption, overview_figure, overview_points, page_colours, pareto_caption,
                              pareto_figure)
from leaderboard.language_page import has_language_figures, language_section

#: Rows per generated table page. 400 rows of about 1.8 KB keep every page under the
#: 1 MB budget; more rows go to numbered continuation pages.
ROWS_PER_PAGE = 400

Row = dict[str, Any]

#: Front matter for pages whose tables need the full width: Material hides the sidebars.
WIDE = "---\nhide:\n  - navigation\n  - toc\n---\n"


# ------------------------------------------------------------------------------------------ pages


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


HOW_TO_READ = (
    "Click a heading to sort (Shift-click adds a second sort); type under a heading to filter it "
    "(numbers: `>0.5`, `<=100`, `0.4..0.6`, `<1 GiB`, `95%`); search all columns in the box above; pick columns; "
    "export the rows and columns shown as CSV. The address bar keeps the view, so a link to it shows the same rows."
)

NOTES_ON_READING = (
    "Badges: **measured** rows come from the kompakt harness, **reported** rows are transcribed from a publication "
    "(see each model's page for the citation) and are never shown as measured. **limit N** marks a row with tasks "
    "scored on their first N documents only (hover it for which). **at chance** marks a score not significantly "
    "different from answering at random (see the methodology). **†** marks accuracy taken from another profile, "
    "or from a publication, for the same artifact (hover it for which). "
    "Deltas are shown only against a reference measured on the same hardware with the same task versions, few-shot "
    "counts and limits. ± is one standard error; the mean accuracy's is the standard error of the mean of the four "
    "tasks, treating them as independent. Under an accuracy, a change against the reference is called **significant** "
    "only when its paired test, Holm-adjusted over the variant's tasks, gives p < 0.05; otherwise it reads **no "
    "measurable change** (see the methodology)."
)


def leaderboard_pages(rows: Sequence[Row]) -> dict[str, str]:
    """``leaderboard/index.md`` and its continuation pages."""
    pages = {}
    chunks = _chunks(rows)
    for i, chunk in enumerate(chunks, start=1):
        prefix = "./" if i == 1 else "../"
        body = [
            WIDE,
            "# Leaderboard\n",
            f"Every variant of every base model on every piece of hardware: {len(rows)} rows"
            + (f", {ROWS_PER_PAGE} per page; sorting and filtering act within a page, the downloads have every row" if len(chunks) > 1 else "")
            + ". " + HOW_TO_READ + "\n",
            NOTES_ON_READING + "\n",
            _pager(len(chunks), i, prefix if i == 1 else "../"),
            grid(chunk, "leaderboard", Context(root="../" if i == 1 else "../../")),
            "",
        ]
        pages["leaderboard/index.md" if i == 1 else f"leaderboard/{i}.md"] = "\n".join(body)
    return pages


#: Rows in the home page's table of the newest measured results.
NEWEST = 10


def overview_block(rows: Sequence[Row], runs: Sequence[Row]) -> str:
    """The home page's overview figure and, below it, the newest measured results."""
    points = overview_points(rows)
    out = []
    if points:
        figure = overview_figure(points)
        out.append(embed(figure, "overview", overview_caption(points, figure["layout"]["meta"]["unlabelled"]), wide=True))
    else:
        out.append("<p><em>No variant has a mean accuracy to compare with its reference yet.</em></p>")
    dates = {r["run_id"]: r["run_date"] for r in runs}
    measured = [r for r in rows if "measured" in r["provenance"].split("+")]
    newest = sorted(measured, key=lambda r: (max((dates.get(i, "") for i in r["run_ids"]), default=""), r["variant_id"]), reverse=True)[:NEWEST]
    if newest:
        day = max(dates.get(i, "") for r in newest for i in r["run_ids"])[:10]
        out.append(f"\n## Newest measured results\n\nThe {len(newest)} most recently measured rows (the newest run: {esc(day)}); "
                   "the <a href=\"leaderboard/\">leaderboard</a> has every row.\n")
        out.append(grid(newest, "newest", Context(root="")))
    return "\n".join(out) + "\n"


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
    colours = page_colours(model_rows)  # one colour per family in every plot of the page
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in model_rows:
        groups[(r["profile"], r["hardware_label"])].append(r)
    for (profile, hardware), group in sorted(groups.items()):
        label = profiles[profile].label if profile in profiles else ("profile not stated by the source" if profile == UNSPECIFIED else profile)
        out.append(f"## {esc(hardware)}\n")
        out.append(f"<p>Profile <code>{esc(profile)}</code>: {esc(label)}.</p>\n")
        out.append(grid(group, f"{model_id}-{_slug(profile)}-{_slug(hardware)}", omit={"model", "hardware"}))
        points = front_by_group.get((model_id, profile, hardware), [])
        by_plot: dict[str, list[Row]] = defaultdict(list)
        for p in points:
            by_plot[p["plot"]].append(p)
        rows_by_key = {(r["variant_id"], r["backend"]): r for r in group}
        if by_plot:
            out.append('\n<div class="kompakt-plots">')
            for plot in sorted(by_plot):
                wide = len(by_plot[plot]) > WIDE_ABOVE
                figure = pareto_figure(by_plot[plot], rows_by_key, PLOT_TITLES[plot], wide=wide, colours=colours)
                caption = pareto_caption(by_plot[plot], figure["layout"]["meta"]["unlabelled"])
                out.append(embed(figure, _stable_id(f"fig-{profile}-{hardware}-{plot}"), caption, wide=wide))
            out.append("</div>\n")
        else:
            out.append("\n<p><em>No Pareto plot: fewer than two variants here have both figures of any plot.</em></p>\n")
        out.append(_lineages(group))
        if has_language_figures(group):
            out.append(language_section(group, _stable_id(f"lang-{profile}-{hardware}"), colours))
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


def _lineages(group: Sequence[Row]) -> str:
    """Every variant's lineage with all its parameters, behind a disclosure (the table shows it in one line)."""
    seen: dict[str, Row] = {}
    for r in group:
        if not r["is_reference"]:
            seen.setdefault(r["variant_id"], r)
    if not seen:
        return ""
    items = "".join(
        f"<dt><code>{esc(v)}</code> — {esc(r.get('lineage_short') or r['lineage'])}</dt><dd><code>{esc(r['lineage'])}</code></dd>"
        for v, r in sorted(seen.items())
    )
    return f'\n<details class="kompakt-lineages"><summary>Lineages with every parameter</summary><dl>{items}</dl></details>\n'


def _slug(text: str) -> str:
    """Lower-case letters, digits and dashes: a readable, stable part of an id or file name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


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
        body += _rows_block(using, f"method-{name}", "variants", "<p><em>No results use this method yet.</em></p>")
        pages[f"methods/{name}.md"] = "\n".join(body) + "\n"
    pages["methods/index.md"] = "\n".join(index) + "\n"
    return pages


def _rows_block(using: Sequence[Row], table_id: str, noun: str, empty: str) -> list[str]:
    """The first page of ``using`` as a leaderboard grid (a method's or a profile's page)."""
    if not using:
        return [empty]
    chunks = _chunks(using)
    out = [grid(chunks[0], table_id)]
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
        head += _rows_block(using, f"hardware-{name}", "rows", "<p><em>No results under this profile yet.</em></p>")
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
