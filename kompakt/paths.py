"""Where kompakt finds its data and writes its outputs.

Everything can be moved with an environment variable, so tests and CI run on
temporary copies and nothing outside the repository is written.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (this file is ``<root>/kompakt/paths.py``).
REPO_ROOT = Path(__file__).resolve().parents[1]


def _env_path(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else default


def data_dir() -> Path:
    """``data/``: results, recipes, profiles, schema (``KOMPAKT_DATA``)."""
    return _env_path("KOMPAKT_DATA", REPO_ROOT / "data")


def results_dir() -> Path:
    return data_dir() / "results"


def profiles_dir() -> Path:
    return data_dir() / "profiles"


def recipes_dir() -> Path:
    return data_dir() / "recipes"


def schema_dir() -> Path:
    return data_dir() / "schema"


def build_dir() -> Path:
    """Build outputs: database, generated pages, the built site (``KOMPAKT_BUILD``); git-ignored."""
    return _env_path("KOMPAKT_BUILD", REPO_ROOT / "build")


def database_path() -> Path:
    return build_dir() / "kompakt.duckdb"


def shared_dir() -> Path:
    """The read-only ``shared/`` folder beside the repository (``KOMPAKT_SHARED``)."""
    return _env_path("KOMPAKT_SHARED", REPO_ROOT.parent / "shared")


def benchmarks_dir() -> Path:
    """Local copies of the evaluation data sets (``KOMPAKT_DATA_DIR``)."""
    return _env_path("KOMPAKT_DATA_DIR", shared_dir() / "benchmarks")


def corpora_dir() -> Path:
    """Calibration and training text (``KOMPAKT_CORPORA``); never evaluation data."""
    return _env_path("KOMPAKT_CORPORA", shared_dir() / "corpora")


def cache_dir() -> Path:
    """Built variants and measurement caches (``KOMPAKT_CACHE``); git-ignored."""
    return _env_path("KOMPAKT_CACHE", Path.home() / ".cache" / "kompakt")
