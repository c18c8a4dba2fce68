"""Printing validation reports for people: one line per problem, then a summary."""

from __future__ import annotations

import sys

from leaderboard.problems import Report


def _printable(text: str) -> str:
    """Escape control characters so a hostile file name cannot drive the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def print_report(report: Report, quiet_ok: bool = False) -> None:
    for problem in report.problems:
        print(_printable(str(problem)), file=sys.stderr)
    errors, warnings = len(report.errors), len(report.warnings)
    if errors or warnings or not quiet_ok:
        status = "FAILED" if errors else "ok"
        n = report.context_files
        against = f" (cross-file rules also against {n} other file{'' if n == 1 else 's'} under the results root)" if n else ""
        print(f"{report.files} file{'' if report.files == 1 else 's'} checked{against}: {errors} errors, {warnings} warnings: {status}", file=sys.stderr)
