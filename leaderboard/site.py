"""Assemble the MkDocs docs folder from the hand-written pages and the database, then build it.

Steps of ``kompakt build``:

1. ingest the results files into ``build/kompakt.duckdb`` (atomic; any invalid file stops here);
2. read the leaderboard, frontier and runs back from that database;
3. write the docs folder: hand-written pages from ``site/``, generated pages, the plotly bundle and
   the grid library (Tabulator, installed by ``npm ci`` into ``frontend/node_modules`` at the version
   ``frontend/package-lock.json`` pins; copied, with its licence, once for the whole site), and the
   downloads (CSV, Parquet, the DuckDB file);
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
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from kompakt import paths
from kompakt.atomic import atomic_dir
from kompakt.profiles import all_profiles
from kompakt.results import json_schema
from leaderboard import contributing
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


#: The folder whose package.json and package-lock.json pin the site's JavaScript libraries.
FRONTEND = paths.REPO_ROOT / "frontend"
#: The data-grid library every table uses, and the files of it the site ships (under assets/vendor/tabulator/).
GRID_PACKAGE = "tabulator-tables"
GRID_FILES = {"tabulator.min.js": "dist/js/tabulator.min.js", "tabulator.min.css": "dist/css/tabulator.min.css", "LICENSE.txt": "LICENSE"}
GRID_ASSETS = "assets/vendor/tabulator"
INSTALL_HINT = "run scripts/setup-frontend.sh (npm ci in frontend/; `make setup` runs it) or build with plain tables: kompakt build --no-grid"


@dataclass(frozen=True)
class Vendored:
    """A third-party library the site ships."""

    name: str
    """Package name."""
    version: str
    """Version shipped."""
    licence: str
    """Licence name."""
    licence_file: str
    """Path of its licence text inside the site."""


def grid_library(frontend: Path | None = None) -> tuple[Vendored, dict[str, Path]]:
    """The pinned grid library in ``frontend/node_modules`` and its files; a clear ``SiteError`` when it is
    missing or not the version the lockfile pins."""
    frontend = frontend or FRONTEND
    lockfile = frontend / "package-lock.json"
    try:
        lock = json.loads(lockfile.read_text(encoding="utf-8"))
        pinned = lock["packages"][f"node_modules/{GRID_PACKAGE}"]["version"]
    except (OSError, ValueError, KeyError) as err:
        raise SiteError(f"{lockfile}: cannot read the pinned version of {GRID_PACKAGE} ({err})") from None
    package = frontend / "node_modules" / GRID_PACKAGE
    try:
        meta = json.loads((package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise SiteError(f"the grid library {GRID_PACKAGE} {pinned} is not installed in {package.parent}: {INSTALL_HINT}") from None
    if meta.get("version") != pinned:
        raise SiteError(f"{package} is {GRID_PACKAGE} {meta.get('version')}, but {lockfile} pins {pinned}: {INSTALL_HINT}")
    files = {name: package / rel for name, rel in GRID_FILES.items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise SiteError(f"{GRID_PACKAGE} {pinned} is incomplete (missing {', '.join(missing)}): {INSTALL_HINT}")
    return Vendored(GRID_PACKAGE, pinned, meta.get("license", "see the licence file"), f"{GRID_ASSETS}/LICENSE.txt"), files


def _plotly_licence() -> Path | None:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        files = distribution("plotly").files or []
    except PackageNotFoundError:
        return None
    for f in files:
        if f.name.upper().startswith("LICENSE"):
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    return None


def _vendor(docs: Path, grid: bool) -> list[Vendored]:
    """Copy the plotly bundle and (``grid``) the grid library into the docs folder; what was shipped."""
    import plotly

    scripts = docs / "assets" / "javascripts"
    scripts.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_plotly_bundle(), scripts / "plotly.min.js")
    shipped = [Vendored("plotly.js (from the plotly Python package " + plotly.__version__ + ")", _plotly_js_version(), "MIT", "assets/javascripts/plotly.min.js")]
    licence = _plotly_licence()
    if licence is not None:
        shutil.copyfile(licence, scripts / "plotly-LICENSE.txt")
        shipped[0] = Vendored(shipped[0].name, shipped[0].version, "MIT", "assets/javascripts/plotly-LICENSE.txt")
    if grid:
        info, files = grid_library()
        target = docs / GRID_ASSETS
        target.mkdir(parents=True, exist_ok=True)
        for name, source in files.items():
            shutil.copyfile(source, target / name)
        shipped.append(info)
    return shipped


def _plotly_js_version() -> str:
    with _plotly_bundle().open(encoding="utf-8", errors="replace") as f:
        head = f.read(200)
    marker = "plotly.js v"
    return head.split(marker, 1)[1].split()[0] if marker in head else "unknown"


def _downloads(docs: Path, database: Path, shipped: Sequence[Vendored] = ()) -> str:
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
    if shipped:
        lines.append("## Software this site ships\n")
        lines.append("Served from this site itself, never from a CDN:\n")
        for v in shipped:
            lines.append(f"- {v.name} {v.version}, {v.licence} licence: [licence text]({v.licence_file})")
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


def generate_docs(docs: Path, database: Path, source: Path | None = None, fragments: Path | None = None, grid: bool = True) -> tuple[dict[str, str], list[dict]]:
    """Write the complete docs folder for MkDocs into ``docs`` and the HTML fragments into
    ``fragments`` (default: beside ``docs``); return the generated pages and runs. ``grid``: ship the
    grid library (without it the tables stay plain HTML tables)."""
    source = source or paths.REPO_ROOT / "site"
    rows, frontier, runs = load_tables(database)
    profiles = all_profiles()
    shutil.copytree(source, docs, dirs_exist_ok=True)
    shipped = _vendor(docs, grid)
    generated: dict[str, str] = {}
    generated.update(gen.leaderboard_pages(rows))
    generated.update(gen.model_pages(rows, frontier, runs, profiles))
    generated.update(gen.method_pages(rows))
    generated.update(gen.hardware_pages(rows, profiles))
    generated["schema.md"] = gen.schema_page(json_schema())
    generated["downloads.md"] = _downloads(docs, database, shipped)
    blocks = {
        "summary": _summary_block(rows, runs),
        "metrics": gen.metrics_table(),
        "overview": gen.overview_block(rows, runs),
        # the contributing page's example pull-request summary and refusals, from the real checks
        "pr-summary": contributing.pr_summary_block(),
        "refusals": contributing.refusals_table(),
    }
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


def build_site(results_root: Path, out: Path, strict: bool = True, database: Path | None = None, grid: bool = True) -> SiteResult:
    """Ingest ``results_root`` and build the site into ``out``. ``grid``: turn every table into a Tabulator
    grid (needs the pinned library in ``frontend/node_modules``; checked before anything is written)."""
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    if grid:
        grid_library()  # fail before ingesting when the library is missing
    database = database or out.parent / "kompakt.duckdb"
    try:
        ingest(results_root, database)
    except IngestError as err:
        from leaderboard.report import print_report

        print_report(err.report)
        raise SiteError(f"{err}; the previous site and database were left untouched") from None
    docs_target = out.parent / "docs"
    with atomic_dir(fragments_dir(docs_target)) as fragments, atomic_dir(docs_target) as docs:
        generated, runs = generate_docs(docs, database, fragments=fragments, grid=grid)
    rows, _, _ = load_tables(database)
    with atomic_dir(out) as site_tmp, _source_date(runs):
        config = load_config(
            config_file=str(paths.REPO_ROOT / "mkdocs.yml"),
            docs_dir=str(docs_target),
            site_dir=str(site_tmp),
            strict=strict,
            nav=_nav(rows, generated),
        )
        if not grid:  # plain tables: do not link the library that was not shipped
            for key in ("extra_javascript", "extra_css"):
                config[key] = [item for item in config[key] if GRID_ASSETS not in str(item)]
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
