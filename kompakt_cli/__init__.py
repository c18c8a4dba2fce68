"""The ``kompakt`` command line: one command per stage, files between stages.

The commands live here, above everything else: they import ``leaderboard`` and ``harness``,
which import ``kompakt``; nothing imports this package.

Every command's help ends with an example; ``tests/test_cli_docs.py`` fails when
a command has no example or is missing from the README's command reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kompakt import paths

app = typer.Typer(
    help="kompakt: an honest leaderboard for compressed LLMs.\n\nData flows one way: recipe -> variant -> measurements -> results file -> DuckDB -> pages.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)

LEADERBOARD = "Leaderboard: results files to site"
REFERENCE = "Reference"


@app.command(rich_help_panel=LEADERBOARD)
def validate(
    files: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Results files or folders to check (default: everything under data/results/)."),
    ] = None,
    results_dir: Annotated[Optional[Path], typer.Option(help="Results root (default: data/results/ or $KOMPAKT_DATA/results).")] = None,
) -> None:
    """Check results files against the schema and the meaning rules.

    The cross-file rules (unique run ids, duplicate_of targets, one lineage per
    variant id, one name per base model, a reference per base model and profile)
    are judged against every file under the results root, also when only some
    files are named; problems are reported for the named files (and those they
    clash with). Prints each problem as file, JSON path, what is wrong and what
    was expected; exits 1 on any error (warnings alone exit 0).

    Example: kompakt validate data/results/smollm2-135m-instruct
    """
    from leaderboard.report import print_report
    from leaderboard.validate import validate_paths

    root = results_dir or paths.results_dir()
    report = validate_paths(files or [root], results_root=root).report
    print_report(report)
    raise typer.Exit(1 if report.errors else 0)


@app.command(rich_help_panel=LEADERBOARD)
def ingest(
    results_dir: Annotated[Optional[Path], typer.Option(help="Results root to load.")] = None,
    database: Annotated[Optional[Path], typer.Option(help="DuckDB file to (re)build (default: build/kompakt.duckdb).")] = None,
) -> None:
    """Validate every results file and build the DuckDB database.

    The database is built into a new file and renamed into place: with any
    invalid file the old database is left untouched.

    Example: kompakt ingest --database /tmp/kompakt.duckdb
    """
    from leaderboard.report import print_report
    from leaderboard.store import IngestError, ingest as do_ingest

    try:
        summary = do_ingest(results_dir or paths.results_dir(), database or paths.database_path())
    except IngestError as err:
        print_report(err.report)
        typer.echo(f"ingest refused: {err}; the existing database was left untouched.", err=True)
        raise typer.Exit(1) from None
    print_report(summary.report, quiet_ok=True)
    typer.echo(f"{summary.runs} runs, {summary.metrics} metric values -> {summary.database}")


@app.command(rich_help_panel=LEADERBOARD)
def build(
    results_dir: Annotated[Optional[Path], typer.Option(help="Results root to load.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the built site (default: build/site).")] = None,
    strict: Annotated[bool, typer.Option(help="Run mkdocs with --strict (warnings are errors).")] = True,
    grid: Annotated[
        bool, typer.Option(help="Ship the Tabulator grid (installed by scripts/setup-frontend.sh); --no-grid: plain HTML tables, no npm needed.")
    ] = True,
) -> None:
    """Ingest, generate pages and figures, and build the static site with MkDocs.

    Example: kompakt build && python -m http.server -d build/site
    """
    from leaderboard.site import SiteError, build_site

    try:
        result = build_site(results_dir or paths.results_dir(), out or paths.build_dir() / "site", strict=strict, grid=grid)
    except SiteError as err:
        typer.echo(f"build failed: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"site built: {result.site_dir} ({result.pages} pages). Open {result.site_dir / 'index.html'} or run `kompakt serve`.")


@app.command(rich_help_panel=LEADERBOARD)
def diff(
    base: Annotated[Path, typer.Argument(help="Results root before the change (e.g. the base branch checked out elsewhere).")],
    head: Annotated[Optional[Path], typer.Argument(help="Results root after the change (default: data/results/).")] = None,
    summary: Annotated[Optional[Path], typer.Option(help="Also append the Markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY).")] = None,
) -> None:
    """Check a submission and summarise what it changes on the leaderboard.

    Refuses a run id that comes back with different content and any change to a
    reported (cited) result; removing a file is allowed. Prints as Markdown: new
    rows with their headline figures beside their reference's, removed rows,
    figures that changed by more than their standard error, the rank moves
    (only where the order of rows on both sides changed; a row entering or
    leaving is one line) and every changed figure; exits 1 when refused.

    Example: kompakt diff ../base/data/results data/results --summary summary.md
    """
    from leaderboard.diff import diff as do_diff, markdown

    result = do_diff(base, head or paths.results_dir())
    text = markdown(result)
    typer.echo(text, nl=False)
    if summary is not None:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text)
    raise typer.Exit(0 if result.ok else 1)


@app.command(rich_help_panel=LEADERBOARD)
def serve(
    site_dir: Annotated[Optional[Path], typer.Option(help="Built site to serve (default: build/site).")] = None,
    port: Annotated[int, typer.Option(help="Port on localhost.")] = 8000,
) -> None:
    """Serve the built site on localhost for browsing.

    Example: kompakt serve --port 8000
    """
    from leaderboard.site import serve as do_serve

    do_serve(site_dir or paths.build_dir() / "site", port)


@app.command(rich_help_panel=REFERENCE)
def schema(
    write: Annotated[bool, typer.Option("--write", help="Write the schema to data/schema/ instead of printing it.")] = False,
) -> None:
    """Print (or write) the JSON Schema of the results file generated from its pydantic model.

    Example: kompakt schema --write
    """
    from leaderboard.schema_files import render_schema, schema_path
    from kompakt.atomic import write_text

    text = render_schema()
    if write:
        write_text(schema_path(), text)
        typer.echo(f"wrote {schema_path()}")
    else:
        typer.echo(text, nl=False)


@app.command(rich_help_panel=REFERENCE)
def methods() -> None:
    """List the compression methods results files and recipes may name.

    Example: kompakt methods
    """
    from kompakt.methods import METHODS

    for m in METHODS.values():
        typer.echo(f"{m.name:12} {m.family:13} {m.summary}")


@app.command(rich_help_panel=REFERENCE)
def profiles() -> None:
    """List and check the hardware profiles in data/profiles/.

    Example: kompakt profiles
    """
    from kompakt.profiles import ProfileError, all_profiles

    try:
        found = all_profiles()
    except ProfileError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None
    for p in found.values():
        budget = p.memory_budget_bytes / 2**30
        typer.echo(f"{p.name:6} {p.device:4} {p.dtype:9} {budget:6.1f} GiB  batch {p.batch_sizes}  {p.label}")


def _register_harness() -> None:
    """Add the harness's commands (``kompakt_cli.variants``, ``kompakt_cli.bench``); importing them
    imports no torch: each command checks the ``[harness]`` extra before any work starts."""
    from kompakt_cli import bench, variants

    variants.register(app)
    bench.register(app)


_register_harness()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
