"""Every CLI command has an example in its help and a place in the README (as sqlite-utils does)."""

from __future__ import annotations

import typer.main

from kompakt import paths
from kompakt_cli import app


def commands():
    """(full name, click command) for every leaf command, groups included."""
    root = typer.main.get_command(app)
    stack = [("", root)]
    out = []
    while stack:
        prefix, cmd = stack.pop()
        subcommands = getattr(cmd, "commands", None)
        if subcommands:
            stack.extend(((f"{prefix} {name}").strip(), sub) for name, sub in subcommands.items())
        else:
            out.append((prefix, cmd))
    return sorted(out, key=lambda x: x[0])


def test_there_are_commands():
    names = [n for n, _ in commands()]
    assert {"validate", "ingest", "build", "serve", "schema", "methods", "profiles"} <= set(names)


def test_every_command_has_an_example():
    for name, cmd in commands():
        assert "Example: kompakt" in (cmd.help or ""), f"`kompakt {name}` has no 'Example:' in its help"


def test_every_command_is_in_the_readme():
    readme = (paths.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for name, _ in commands():
        assert f"kompakt {name}" in readme, f"`kompakt {name}` is not documented in README.md"


def test_validate_exit_codes(tmp_path):
    from typer.testing import CliRunner

    from leaderboard.synthetic import make_result, write_result

    root = tmp_path / "results"
    write_result(root, make_result("m", "reference", "cpu"))
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", "--results-dir", str(root)])
    assert ok.exit_code == 0, ok.output
    (root / "m" / "reference" / "cpu" / "bad.json").write_text("{")
    bad = runner.invoke(app, ["validate", "--results-dir", str(root)])
    assert bad.exit_code == 1
    assert "m/reference/cpu/bad.json: $: error: invalid JSON" in bad.output


def test_validate_one_file_against_the_results_dir(tmp_path):
    from typer.testing import CliRunner

    from leaderboard.synthetic import make_result, write_result

    root = tmp_path / "results"
    write_result(root, make_result("m", "reference", "cpu"))
    variant = write_result(root, make_result("m", "awq-4bit", "cpu"))
    out = CliRunner().invoke(app, ["validate", str(variant), "--results-dir", str(root)])
    assert out.exit_code == 0, out.output
    assert "1 file checked (cross-file rules also against 1 other file under the results root): 0 errors, 0 warnings: ok" in out.output
