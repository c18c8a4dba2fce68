"""Assemble the MkDocs docs folder from the hand-written pages and the database, then build it.

Steps of ``kompakt build``:

1. ingest the results files into ``build/kompakt.duckdb`` (atomic; any invalid file stops here);
2. read the leaderboard, frontier and runs back from that database;
3. write the docs folder: hand-written pages from ``site/``, generated pages, the plotly bundle
   (once, for the whole site), and the downloads (CSV, Parquet, the DuckDB file);
4. ``mkdocs build --strict`` into a temporary folder, renamed over the old site only on success.

The build date shown anywhere (the sitemap) comes from the newest result, not the clock, so the
same results give byte-identical pages.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import json
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from kompakt import paths
from kompakt.atomic import atomic_dir
from kompakt.profiles import all_profiles
from kompakt.results import json_schema
from leaderboard import pages as gen
from leaderboard.mkdocs_hooks import fragments_dir
from leaderboard.store import IngestError, ingest

#: Above this many base models the navigation lists only the index pages: every page
#: carries the whole navigation, so listing thousands of models would bloat each page.
MAX_NAV_MODELS = 40


class SiteError(Exception):
    pass


@dataclass(frozen=True)
class SiteResult:
    site_dir: Path
    database: Path
    pages: int


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def load_tables(database: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Leaderboard rows, frontier rows and runs, read back from the database."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        if "base_model_id" not in {c[0] for c in con.execute("DESCRIBE leaderboard").fetchall()}:
            return [], [], []
        rows = _fetch(con, "SELECT * FROM leaderboard ORDER BY base_model_id, profile, hardware_label, NOT is_reference, variant_id")
        frontier = _fetch(con, "SELECT * FROM frontier ORDER BY base_model_id, profile, hardware_label, plot, variant_id")
        runs = _fetch(con, "SELECT * FROM runs ORDER BY run_id")
    finally:
        con.close()
    for r in rows:
        for col in ("run_ids", "citations", "notes", "fits", "significant_changes"):
            r[col] = json.loads(r[col]) if r.get(col) else []
    return rows, frontier, runs


def _substitute(text: str, blocks: dict[str, str]) -> str:
    for name, block in blocks.items():
        text = text.replace(f"<!-- kompakt:{name} -->", block)
    return text


def _summary_block(rows: list[dict], runs: list[dict]) -> str:
    models = sorted({(r["base_model_id"], r["base_model_name"]) for r in rows})
    measured = sum(1 for r in runs if r["provenance"] == "measured")
    reported = sum(1 for r in runs if r["provenance"] == "reported")
    links = ", ".join(f'<a href="models/{gen.esc(m)}/">{gen.esc(n)}</a>' for m, n in models[:20])
    more = f" and {len(models) - 20} more" if len(models) > 20 else ""
    return (
        f"<p><strong>{len(runs)}</strong> results files ({measured} measured, {reported} reported), "
        f"<strong>{len(rows)}</strong> leaderboard rows, <strong>{len(models)}</strong> base models: {links}{more}.</p>"
    )


def _plotly_bundle() -> Path:
    import plotly

    bundle = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not bundle.is_file():
        raise SiteError(f"plotly's JavaScript bundle is missing at {bundle}; reinstall plotly")
    return bundle


def _downloads(docs: Path, database: Path) -> str:
    out = docs / "downloads"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(database, out / "kompakt.duckdb")
    con = duckdb.connect(str(database), read_only=True)
    try:
        con.execute(f"COPY (SELECT * FROM leaderboard ORDER BY ALL) TO '{out / 'leaderboard.csv'}' (HEADER)")
        for table in ("leaderboard", "runs", "metrics", "paired"):
            con.execute(f"COPY (SELECT * FROM {table} ORDER BY ALL) TO '{out / (table + '.parquet')}' (FORMAT parquet)")
    finally:
        con.close()
    lines = [
        "# Downloads\n",
        "Everything on this site, as data. The DuckDB file holds the tables `runs` (one row per results file), "
        "`metrics` (long form), `samples` (each document's result from the per-sample files), `paired` (each variant "
        "against its reference, per task and metric: change with its interval, flips, agreement, p-values), "
        "`leaderboard` and `frontier`, and the views `latest_runs`, `latest_metrics` and `deltas`.\n",
        "| File | Contents | Size |\n|---|---|---|",
    ]
    for name, what in (
        ("leaderboard.csv", "the leaderboard table"),
        ("leaderboard.parquet", "the leaderboard table"),
        ("runs.parquet", "one row per results file"),
        ("metrics.parquet", "every figure in long form"),
        ("paired.parquet", "the paired figures against the reference"),
        ("kompakt.duckdb", "the whole database"),
    ):
        lines.append(f"| [{name}](downloads/{name}) | {what} | {gen.fmt_bytes((out / name).stat().st_size)} |")
    lines.append('\nQuery it with `duckdb kompakt.duckdb "SELECT * FROM deltas"`.\n')
    return "\n".join(lines) + "\n"


def _nav(rows: list[dict], pages: dict[str, str]) -> list[Any]:
    models = sorted({(r["base_model_id"], r["base_model_name"]) for r in rows})
    model_nav: list[Any] = ["models/index.md"]
    if len(models) <= MAX_NAV_MODELS:
        # Navigation labels are ids (slugs), never free text from a results file.
        model_nav += [{m: f"models/{m}.md"} for m, _ in models]
    extra_leaderboard = sorted((p for p in pages if p.startswith("leaderboard/") and p != "leaderboard/index.md"), key=lambda p: int(Path(p).stem))
    return [
        {"Home": "index.md"},
        {"Leaderboard": ["leaderboard/index.md", *extra_leaderboard]},
        {"Models": model_nav},
        {"Methods": ["methods/index.md", *sorted(p for p in pages if p.startswith("methods/") and p != "methods/index.md")]},
        {"Hardware": ["hardware/index.md", *sorted(p for p in pages if p.startswith("hardware/") and p != "hardware/index.md")]},
        {"Methodology": "methodology.md"},
        {"Contributing": ["contributing.md", "schema.md"]},
        {"Downloads": "downloads.md"},
    ]


@contextmanager
def _source_date(runs: list[dict]):
    """Pin the build date (MkDocs reads SOURCE_DATE_EPOCH) to the newest result's date."""
    dates = [dt.datetime.fromisoformat(r["run_date"]) for r in runs]
    dates = [d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc) for d in dates]
    epoch = int(max(dates).timestamp()) if dates else 0
    old = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = old


def generate_docs(docs: Path, database: Path, source: Path | None = None, fragments: Path | None = None) -> tuple[dict[str, str], list[dict]]:
    """Write the complete docs folder for MkDocs into ``docs`` and the HTML fragments into
    ``fragments`` (default: beside ``docs``); return the generated pages and runs."""
    source = source or paths.REPO_ROOT / "site"
    rows, frontier, runs = load_tables(database)
    profiles = all_profiles()
    shutil.copytree(source, docs, dirs_exist_ok=True)
    scripts = docs / "assets" / "javascripts"
    scripts.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_plotly_bundle(), scripts / "plotly.min.js")
    generated: dict[str, str] = {}
    generated.update(gen.leaderboard_pages(rows))
    generated.update(gen.model_pages(rows, frontier, runs, profiles))
    generated.update(gen.method_pages(rows))
    generated.update(gen.hardware_pages(rows, profiles))
    generated["schema.md"] = gen.schema_page(json_schema())
    generated["downloads.md"] = _downloads(docs, database)
    blocks = {"summary": _summary_block(rows, runs), "metrics": gen.metrics_table()}
    for name in ("index.md", "methodology.md", "contributing.md"):
        generated[name] = _substitute((source / name).read_text(encoding="utf-8"), blocks)
    gen.write_pages(docs, generated, fragments or fragments_dir(docs))
    return generated, runs


class _WarningCollector(logging.Handler):
    """Keeps MkDocs's warnings so a strict-mode failure can say what they were."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def build_site(results_root: Path, out: Path, strict: bool = True, database: Path | None = None) -> SiteResult:
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    database = database or out.parent / "kompakt.duckdb"
    try:
        ingest(results_root, database)
    except IngestError as err:
        from leaderboard.report import print_report

        print_report(err.report)
        raise SiteError(f"{err}; the previous site and database were left untouched") from None
    docs_target = out.parent / "docs"
    with atomic_dir(fragments_dir(docs_target)) as fragments, atomic_dir(docs_target) as docs:
        generated, runs = generate_docs(docs, database, fragments=fragments)
    rows, _, _ = load_tables(database)
    with atomic_dir(out) as site_tmp, _source_date(runs):
        config = load_config(
            config_file=str(paths.REPO_ROOT / "mkdocs.yml"),
            docs_dir=str(docs_target),
            site_dir=str(site_tmp),
            strict=strict,
            nav=_nav(rows, generated),
        )
        collector = _WarningCollector()
        logger = logging.getLogger("mkdocs")
        logger.addHandler(collector)
        try:
            mkdocs_build(config)
        except (MkDocsException, SystemExit) as err:
            details = "".join(f"\n  {m}" for m in collector.messages)
            raise SiteError(f"mkdocs build failed: {err}{details}\nthe previous site was left untouched") from None
        finally:
            logger.removeHandler(collector)
    return SiteResult(out, database, len(generated))


def serve(site_dir: Path, port: int) -> None:
    if not (site_dir / "index.html").is_file():
        raise SystemExit(f"no built site in {site_dir}: run `kompakt build` first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site_dir))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {site_dir} on http://127.0.0.1:{port}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
