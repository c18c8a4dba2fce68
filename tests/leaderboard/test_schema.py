"""The committed JSON Schema is exactly what the pydantic model generates."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from kompakt.results import ResultsFile
from leaderboard.schema_files import render_schema, schema_path
from leaderboard.synthetic import make_result


def test_committed_schema_matches_model():
    assert schema_path().read_text(encoding="utf-8") == render_schema(), "run `kompakt schema --write` and commit data/schema/"


def test_schema_forbids_unknown_keys_everywhere():
    schema = json.loads(render_schema())
    objects = [schema, *schema["$defs"].values()]
    for node in objects:
        if node.get("type") == "object":
            assert node.get("additionalProperties") is False, node.get("title")


def test_every_field_is_documented():
    schema = json.loads(render_schema())
    for node in [schema, *schema["$defs"].values()]:
        for name, spec in node.get("properties", {}).items():
            assert spec.get("description"), f"{node.get('title')}.{name} has no description"


def test_model_rejects_misspelt_key():
    data = make_result()
    data["varaint"] = data.pop("variant")
    with pytest.raises(ValidationError):
        ResultsFile.model_validate(data)


def test_round_trip():
    data = make_result()
    parsed = ResultsFile.model_validate(data)
    assert ResultsFile.model_validate_json(parsed.model_dump_json()) == parsed
