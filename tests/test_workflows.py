"""The GitHub workflows only call kompakt commands that exist (and that the tests run)."""

from __future__ import annotations

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
