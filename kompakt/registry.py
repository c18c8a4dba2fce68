"""Lazy ``"module:Class"`` registries with did-you-mean, as lm-evaluation-harness does.

A registry maps a short name to the dotted path of its implementation; the
module is imported only when the entry is used, so listing what exists never
imports heavy optional dependencies. Every registry of kompakt has this shape:

- methods: :data:`kompakt.methods.IMPLEMENTATIONS` (catalogue: :data:`kompakt.methods.METHODS`);
- tasks: :data:`kompakt.tasks.IMPLEMENTATIONS` (catalogue: :data:`kompakt.tasks.TASKS`);
- efficiency backends: :data:`harness.measure.backends.BACKENDS`.

Hardware profiles are one YAML file each (:mod:`kompakt.profiles`).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from typing import Any


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_object(path: str) -> Any:
    """Import ``"package.module:Attribute"`` and return the attribute."""
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"registry entry {path!r} must look like 'module:Attribute'")
    module = importlib.import_module(module_name)
    return getattr(module, attribute)


class Registry:
    """Names mapped to lazily imported implementations."""

    def __init__(self, kind: str, entries: dict[str, str]):
        self.kind = kind
        self._entries = dict(entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def names_in_order(self) -> list[str]:
        """The names in the order they were registered (the order of preference where it matters)."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def path(self, name: str) -> str:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}{suggest(name, self._entries)}; known: {', '.join(self.names())}"
            ) from None

    def load(self, name: str) -> Any:
        """Import and return the implementation of ``name`` (unknown names: ``KeyError`` with a did-you-mean)."""
        return load_object(self.path(name))

    def add(self, name: str, path: str) -> None:
        """Register ``name`` (a plugin, or a test's throwaway entry); ``path`` is ``"module:Attribute"``."""
        if ":" not in path:
            raise ValueError(f"registry entry {path!r} must look like 'module:Attribute'")
        self._entries[name] = path

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)
