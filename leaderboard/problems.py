"""Problems found in results files: what is wrong, where, and what was expected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class Problem:
    file: str
    """The file, relative to the results root where possible."""
    path: str
    """JSON path of the offending value, e.g. ``$.metrics.accuracy[0].value``; ``$`` for the whole file."""
    message: str
    """What is wrong."""
    expected: str = ""
    """What was expected instead."""
    severity: Literal["error", "warning"] = "error"
    """Errors fail validation; warnings are printed only."""

    def __str__(self) -> str:
        tail = f" (expected {self.expected})" if self.expected else ""
        return f"{self.file}: {self.path}: {self.severity}: {self.message}{tail}"


@dataclass
class Report:
    files: int = 0
    """Files checked (named, or found under the folders named)."""
    context_files: int = 0
    """Other files under the results root, read only for the cross-file rules."""
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def extend(self, problems: list[Problem]) -> None:
        self.problems.extend(problems)


def display_name(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies inside it, else as given."""
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def json_path(loc: tuple[int | str, ...]) -> str:
    """``$.a.b[0].c`` from a pydantic error location."""
    out = "$"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).isidentifier():
            out += f".{part}"
        else:
            out += f"[{str(part)!r}]"
    return out
