"""The one registry shape: lazy ``"module:Class"`` entries with did-you-mean, and the catalogues built on it."""

from __future__ import annotations

import sys

import pytest

from kompakt import methods, tasks
from kompakt.registry import Registry, load_object, suggest


def test_entries_import_only_when_loaded() -> None:
    reg = Registry("thing", {"decoder": "json.decoder:JSONDecoder"})
    sys.modules.pop("json.tool", None)
    lazy = Registry("tool", {"tool": "json.tool:main"})
    assert "json.tool" not in sys.modules and lazy.names() == ["tool"]
    assert reg.load("decoder").__name__ == "JSONDecoder"


def test_unknown_names_get_a_did_you_mean() -> None:
    reg = Registry("backend", {"pytorch": "x:y", "llama.cpp": "x:z"})
    with pytest.raises(KeyError, match="unknown backend 'pytorh' \\(did you mean 'pytorch'\\?\\); known: llama.cpp, pytorch"):
        reg.path("pytorh")
    assert suggest("zzz", ["pytorch"]) == ""


def test_add_remove_and_order() -> None:
    reg = Registry("backend", {"b": "x:y"})
    reg.add("a", "x:z")
    assert reg.names() == ["a", "b"] and reg.names_in_order() == ["b", "a"]
    with pytest.raises(ValueError, match="module:Attribute"):
        reg.add("c", "no-colon")
    reg.remove("a")
    assert "a" not in reg
    with pytest.raises(ValueError, match="module:Attribute"):
        load_object("json")


def test_every_catalogued_implementation_is_a_registry_entry() -> None:
    buildable = {m.name for m in methods.METHODS.values() if m.implementation}
    assert set(methods.IMPLEMENTATIONS.names()) == buildable
    assert set(tasks.IMPLEMENTATIONS.names()) == set(tasks.TASKS)
    with pytest.raises(KeyError, match="did you mean 'arc_challenge'"):
        tasks.get("arc_challange")


def test_method_and_task_catalogues_are_readable_without_torch() -> None:
    # reading the catalogues never imports an implementation
    assert methods.get("awq").implementation == "harness.build.methods.awq:AWQ"
    assert tasks.get("wikitext").implementation.startswith("harness.measure.tasks.")
