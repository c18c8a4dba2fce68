"""Registers the harness's command groups on the ``kompakt`` CLI.

Each command module exposes ``register(app)``; importing it must not import
torch (the leaderboard side installs without it).
"""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = ("harness.variants_cli", "harness.bench_cli")


def register(app: typer.Typer) -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # not written yet
                continue
            raise
        module.register(app)
