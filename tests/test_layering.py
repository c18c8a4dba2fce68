"""Imports point one way: kompakt_cli on top, kompakt at the bottom, the leaderboard never importing the harness;
inside the harness, run above build and measure. Every import counts, also those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What each part may import (besides itself and the standard library and third-party packages).
ALLOWED = {
    "kompakt": set(),
    "leaderboard": {"kompakt"},
    "harness.build": {"kompakt", "harness.requirements", "harness.measure.efficiency.memory"},
    "harness.measure": {"kompakt", "harness.requirements", "harness.build.base_model"},
    "harness.run": {"kompakt", "harness.requirements", "harness.build", "harness.measure"},
    "harness.requirements": set(),
    "harness": {"kompakt"},
    "kompakt_cli": {"kompakt", "leaderboard", "harness"},
}
OURS = ("kompakt", "kompakt_cli", "leaderboard", "harness")


def _part(module: str) -> str:
    for part in sorted(ALLOWED, key=len, reverse=True):
        if module == part or module.startswith(part + "."):
            return part
    raise AssertionError(f"{module} belongs to no part")


def _imports(path: Path) -> list[tuple[str, ...]]:
    """Each imported name as its possible module paths: ``from a import b`` may import module ``a.b`` or a name of ``a``."""
    found: list[tuple[str, ...]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name,) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(f"{node.module}.{a.name}", node.module) for a in node.names]
    return [names for names in found if names[0].split(".")[0] in OURS]


def _allowed(importer: str, target: str) -> bool:
    part = _part(importer)
    return _part(target) == part or any(target == a or target.startswith(a + ".") for a in ALLOWED[part])


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_imports_point_one_way() -> None:
    wrong = []
    for package in OURS:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = _module(path)
            for names in _imports(path):
                if not any(_allowed(module, n) for n in names):
                    wrong.append(f"{module} imports {names[0]}")
    assert not wrong, "\n".join(wrong)


def test_the_rule_catches_a_wrong_import() -> None:
    assert not _allowed("leaderboard.store", "harness.run.bench")
    assert not _allowed("harness.measure.tasks.base", "harness.run.bench")
    assert not _allowed("kompakt.metrics", "leaderboard.summary")
    assert _allowed("harness.measure.tasks.lm_eval_runner", "harness.build.base_model")
    assert _allowed("kompakt_cli.bench", "harness.run.plan")
