"""The GitHub workflows only call kompakt commands that exist (and that the tests run), and install the
site's pinned JavaScript before they build it."""

from __future__ import annotations

import json
import re

import typer.main
import yaml

from kompakt import paths
from kompakt_cli import app


def test_workflow_steps_are_kompakt_commands():
    names = set(typer.main.get_command(app).commands)
    used = set()
    for workflow in (paths.REPO_ROOT / ".github" / "workflows").glob("*.yml"):
        spec = yaml.safe_load(workflow.read_text())
        for job in spec["jobs"].values():
            for step in job["steps"]:
                for command in re.findall(r"\bkompakt (\w+)", step.get("run", "")):
                    assert command in names, f"{workflow.name} calls unknown `kompakt {command}`"
                    used.add(command)
    assert {"validate", "diff", "build"} <= used


def _workflows():
    for workflow in sorted((paths.REPO_ROOT / ".github" / "workflows").glob("*.yml")):
        yield workflow, yaml.safe_load(workflow.read_text())


def test_every_site_build_installs_the_pinned_grid_first():
    builds = 0
    for workflow, spec in _workflows():
        for job in spec["jobs"].values():
            steps = job["steps"]
            runs = [step.get("run", "") for step in steps]
            for i, run in enumerate(runs):
                if re.search(r"\bkompakt build\b", run):
                    builds += 1
                    earlier = steps[:i]
                    assert any("scripts/setup-frontend.sh" in s.get("run", "") for s in earlier), f"{workflow.name}: kompakt build before scripts/setup-frontend.sh"
                    node = [s for s in earlier if str(s.get("uses", "")).startswith("actions/setup-node@")]
                    assert node and str(node[0]["with"]["node-version"]) == "20", f"{workflow.name}: no Node.js 20 before the build"
    assert builds == 2


def test_make_setup_and_the_demo_install_the_grid():
    makefile = (paths.REPO_ROOT / "Makefile").read_text()
    setup = makefile.split("\nsetup:", 1)[1].split("\n\n", 1)[0]
    assert "scripts/setup-frontend.sh" in setup
    assert "scripts/setup-frontend.sh" in (paths.REPO_ROOT / "scripts" / "demo.sh").read_text()
    script = (paths.REPO_ROOT / "scripts" / "setup-frontend.sh").read_text()
    assert "npm ci" in script and "--no-grid" in script


def test_the_grid_is_pinned_exactly_by_the_committed_lockfile():
    package = json.loads((paths.REPO_ROOT / "frontend" / "package.json").read_text())
    lock = json.loads((paths.REPO_ROOT / "frontend" / "package-lock.json").read_text())
    assert package["dependencies"], "frontend/package.json lists no dependency"
    for name, version in package["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name}: pin an exact version, not {version!r}"
        locked = lock["packages"][f"node_modules/{name}"]
        assert locked["version"] == version and locked["integrity"].startswith("sha512-"), name
    assert lock["packages"][""]["dependencies"] == package["dependencies"]
