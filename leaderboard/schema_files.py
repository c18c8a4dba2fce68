"""The committed JSON Schema of the results file, generated from the pydantic model."""

from __future__ import annotations

import json
from pathlib import Path

from kompakt import paths
from kompakt.results import SCHEMA_VERSION, json_schema


def schema_path() -> Path:
    return paths.schema_dir() / f"results-v{SCHEMA_VERSION}.schema.json"


def render_schema() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
