"""The contributing page's commands work as written (as ``test_cli_docs.py`` keeps the README's commands honest).

Every command in a ```bash block of ``site/contributing.md`` is handled here, in page order, in a sandbox that
stands for a fresh clone: a git repository on ``main`` holding a copy of ``data/`` (results, recipes, profiles),
with ``KOMPAKT_DATA`` and ``KOMPAKT_BUILD`` pointing into it, so nothing in the working tree is touched.

- ``kompakt`` commands are parsed by the real command line first (a renamed option or a removed command fails);
  ``kompakt bench`` also has its profile, recipe, variants and limits checked. Then every ``kompakt`` command
  without a ``<placeholder>`` runs for real and must exit 0, except ``kompakt bench``: measuring takes minutes, so
  the default run writes stand-in results files where it would (copies of committed files, relabelled and marked
  as stand-ins) and the ``slow`` test runs it for real on the embedded model.
- git commands run in the sandbox, except ``git clone`` (the sandbox is the clone) and ``git push`` (there is no
  remote); ``make`` targets must exist in the Makefile (the test runs in the environment ``make setup`` made).
- Any other command fails the test until this file learns how to check it.

The example of ``kompakt bench``'s summary on the page is regenerated from the committed files it shows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from kompakt import paths
from kompakt_cli import app

PAGE = paths.REPO_ROOT / "site" / "contributing.md"
PLACEHOLDER = re.compile(r"<[^<>]+>")
#: What a placeholder stands for when its command is parsed.
PLACEHOLDER_VALUES = {"<hub id or local folder>": "HuggingFaceTB/SmolLM2-360M-Instruct", "<your fork's URL>": "https://example.org/you/kompakt.git"}
BIN = Path(sys.executable).parent


def page_commands() -> list[str]:
    """Every command in the page's ```bash blocks, in order (continued lines joined, comments dropped)."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S):
        pending = ""
        for line in block.splitlines():
            line = line.split(" #")[0].rstrip() if not line.lstrip().startswith("#") else ""
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            if (pending + line).strip():
                commands.append((pending + line).strip())
            pending = ""
    return commands


def test_the_page_has_the_walk_through():
    commands = page_commands()
    names = [c.split()[1] for c in commands if c.startswith("kompakt ")]
    for needed in ("bench", "profiles", "validate", "diff", "build"):
        assert needed in names, f"the contributing page no longer shows `kompakt {needed}`"
    assert any("--model" in c for c in commands), "the page no longer shows how to measure one's own model"


def test_commands_named_in_the_text_exist():
    root = typer.main.get_command(app)
    for span in re.findall(r"`(kompakt [^`]+)`", PAGE.read_text(encoding="utf-8")):
        words, command = span.split()[1:], root
        assert words[0] in command.commands, f"the page names `{span}`, but there is no command {words[0]!r}"
        command = command.commands[words[0]]
        if getattr(command, "commands", None) and len(words) > 1:
            assert words[1] in command.commands, f"the page names `{span}`, but there is no command {' '.join(words[:2])!r}"


# ----------------------------------------------------------------------------- parsing with the real CLI


def parse(command: str) -> tuple[list[str], dict]:
    """Parse a ``kompakt`` command line with the real CLI; return (the command's path, its parameters).

    Unknown commands and options, missing arguments and values of the wrong type raise the CLI's usage errors."""
    args = shlex.split(PLACEHOLDER.sub(lambda m: PLACEHOLDER_VALUES.get(m.group(0), "x"), command))[1:]
    command_obj = typer.main.get_command(app)
    path: list[str] = []
    while getattr(command_obj, "commands", None):
        assert args, f"`{command}` names no command"
        sub = command_obj.commands.get(args[0])
        assert sub is not None, f"`{command}`: there is no command {' '.join([*path, args[0]])!r}"
        path.append(args.pop(0))
        command_obj = sub
    ctx = command_obj.make_context(" ".join(["kompakt", *path]), args, resilient_parsing=False)
    return path, ctx.params


def check_bench_arguments(params: dict) -> None:
    """What ``kompakt bench`` checks before it starts: the profile, the recipe and its variants, the limits."""
    from kompakt_cli.bench import parse_limits
    from harness.build.recipes import find_recipe, load_recipe
    from kompakt.profiles import get_profile

    for name in [p for item in params["profile"] or ["cpu"] for p in item.split(",")]:
        get_profile(name)
    parse_limits(params["limit"])
    variants = [v for item in params["variant"] or [] for v in item.split(",")]
    if params["recipe"]:
        recipe = load_recipe(find_recipe(params["recipe"]))
        for v in variants:
            if v != "reference" or v in recipe.variants:
                recipe.variant(v)


def test_every_kompakt_command_parses():
    kompakt = [c for c in page_commands() if c.startswith("kompakt ")]
    assert kompakt
    for command in kompakt:
        path, params = parse(command)
        if path == ["bench"]:
            check_bench_arguments(params)


def test_make_targets_exist():
    makefile = (paths.REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    for command in page_commands():
        if command.startswith("make "):
            for target in command.split()[1:]:
                assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), f"`{command}`: no target {target!r} in the Makefile"


# ----------------------------------------------------------------------------- running the walk-through


def _git(sandbox: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", *args], cwd=sandbox, env=env, check=True, capture_output=True)


def make_sandbox(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh 'clone': a git repository on ``main`` with a copy of ``data/``; the environment to run in."""
    sandbox = tmp_path / "kompakt"
    for part in ("results", "recipes", "profiles"):
        shutil.copytree(paths.REPO_ROOT / "data" / part, sandbox / "data" / part)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "KOMPAKT_DATA": str(sandbox / "data"),
        "KOMPAKT_BUILD": str(sandbox / "build"),
        "GIT_AUTHOR_NAME": "kompakt test", "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "kompakt test", "GIT_COMMITTER_EMAIL": "test@example.org",
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
    }
    _git(sandbox, env, "init", "-q", "-b", "main")
    _git(sandbox, env, "add", "data")
    _git(sandbox, env, "commit", "-q", "-m", "main's results")
    return sandbox, env


def _quality_file(variant: str) -> dict:
    """The newest committed results file of the embedded model's ``variant`` that holds accuracies."""
    folder = paths.REPO_ROOT / "data" / "results" / "smollm2-135m-instruct" / variant / "cpu"
    found = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    found = [r for r in found if r["metrics"]["accuracy"]]
    return max(found, key=lambda r: r["provenance"]["date"])


def stand_in_bench(command: str, results: Path) -> list[Path]:
    """Write the results files ``kompakt bench`` would write for ``command`` without measuring: copies of
    committed files of the embedded model (the reference's, else ``prune-8``'s), relabelled with the
    variant's lineage from its recipe and the command's limits, and marked as stand-ins."""
    from kompakt_cli.bench import parse_limits
    from harness.build.recipes import find_recipe, load_recipe

    _, params = parse(command)
    recipe = load_recipe(find_recipe(params["recipe"]))
    overall, per_task = parse_limits(params["limit"])
    written = []
    for i, vid in enumerate(v for item in params["variant"] for v in item.split(",")):
        r = _quality_file("reference" if vid == "reference" else "prune-8")
        r["run_id"] = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-standin{i}"
        r.pop("per_sample", None)  # a stand-in has no per-sample file of its own
        r["provenance"]["date"] = dt.datetime.now(dt.timezone.utc).isoformat()
        r["provenance"]["command"] = command
        if vid != "reference":
            r["variant"] = {"id": vid, "is_reference": False, "steps": [{"method": s.method, "params": s.params()} for s in recipe.variant(vid).steps],
                            "notes": "stand-in written by tests/test_contributing_page.py: prune-8's figures, not measured"}
        for a in r["metrics"]["accuracy"]:
            limit = per_task.get(a["task"], overall)
            if limit is not None:
                a["limit"], a["n"] = limit, min(a.get("n") or limit, limit)
        for p in r["metrics"]["perplexity"]:
            if p["task"] in per_task:
                p["limit"] = per_task[p["task"]]
        path = results / r["base_model"]["id"] / vid / r["profile"] / f"{r['run_id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def run_walk_through(tmp_path: Path, measure: bool) -> dict[str, subprocess.CompletedProcess]:
    """Handle every command of the page in order; return the output of each command that ran."""
    sandbox, env = make_sandbox(tmp_path)
    if measure:
        env["KOMPAKT_CACHE"] = str(tmp_path / "cache")  # from nothing, as on a fresh machine
    outputs: dict[str, subprocess.CompletedProcess] = {}
    for command in page_commands():
        words = command.split()
        if command.startswith("kompakt ") and PLACEHOLDER.search(command):
            continue  # parsed in test_every_kompakt_command_parses; it needs the reader's own model
        if command.startswith("kompakt bench") and not measure:
            assert stand_in_bench(command, sandbox / "data" / "results")
            continue
        if words[0] == "kompakt" or (words[0] == "git" and words[1] not in ("clone", "push")):
            done = subprocess.run(command, shell=True, cwd=sandbox, env=env, capture_output=True, text=True, timeout=3600)
            assert done.returncode == 0, f"`{command}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            outputs[command] = done
        elif words[0] == "make" or command == "source .venv/bin/activate":
            continue  # the environment make setup creates is the one this test runs in; the targets are checked above
        elif words[0] == "cd" or words[:2] in (["git", "clone"], ["git", "push"]):
            continue  # the sandbox is the clone; it has no remote
        else:
            pytest.fail(f"the contributing page has a command this test does not know how to check: `{command}`")
    return outputs


def _output(outputs: dict[str, subprocess.CompletedProcess], prefix: str) -> str:
    done = next(v for k, v in outputs.items() if k.startswith(prefix))
    return done.stdout + done.stderr


def test_the_walk_through_runs(tmp_path):
    outputs = run_walk_through(tmp_path, measure=False)
    assert "0 errors" in _output(outputs, "kompakt validate")
    summary = _output(outputs, "kompakt diff")
    assert "### New rows (1)" in summary and "`prune-11`" in summary, summary
    assert "Refused" not in summary
    assert "site built" in _output(outputs, "kompakt build")
    assert (tmp_path / "kompakt-main" / "data" / "results").is_dir()


@pytest.mark.slow
def test_the_walk_through_runs_with_a_real_measurement(tmp_path):
    if not (paths.benchmarks_dir() / "arc_challenge" / "test.jsonl").is_file():
        pytest.skip("the evaluation data (shared/benchmarks) is not present; set KOMPAKT_SHARED")
    outputs = run_walk_through(tmp_path, measure=True)
    bench = _output(outputs, "kompakt bench")
    assert "| variant | status |" in bench and "| prune-11 | ok |" in bench, bench
    summary = _output(outputs, "kompakt diff")
    assert "`prune-11`" in summary and "Refused" not in summary, summary
    print(bench)
    print(summary)


# ----------------------------------------------------------------------------- the example of bench's summary

#: The committed full-suite results files the page's example of ``kompakt bench``'s summary shows.
BENCH_EXAMPLE = {
    "reference": "reference/cpu/20261123T164314Z-7df5d1.json",
    "rtn4": "rtn4/cpu/20261123T214345Z-2d57cf.json",
    "prune-8": "prune-8/cpu/20261123T191018Z-2714b9.json",
}


def test_the_bench_summary_example_is_what_bench_prints():
    from harness.run.bench import VariantOutcome
    from harness.run.summary import summary_table
    from kompakt.results import ResultsFile

    outcomes = []
    for vid, rel in BENCH_EXAMPLE.items():
        path = paths.REPO_ROOT / "data" / "results" / "smollm2-135m-instruct" / rel
        r = ResultsFile.model_validate_json(path.read_text(encoding="utf-8"))
        outcomes.append(VariantOutcome(vid, r.status, path, r))
    expected = summary_table(outcomes)
    page = PAGE.read_text(encoding="utf-8")
    shown = re.search(r"<!-- bench-summary:start -->\n```text\n(.*?)\n```\n<!-- bench-summary:end -->", page, flags=re.S)
    assert shown, "the page's bench-summary markers are gone"
    assert shown.group(1) == expected, f"site/contributing.md shows another summary than kompakt bench prints; replace it with:\n{expected}"
