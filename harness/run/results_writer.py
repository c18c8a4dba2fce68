"""Assemble and write results files: validated, whole or not at all.

Path: ``<results root>/<base_model.id>/<variant.id>/<profile>/<run_id>.json``
(see ``kompakt.results``). The file is validated by the pydantic model before
anything is written and then written atomically (``kompakt.atomic``), so a
killed run never leaves a half file. The per-sample file of the multiple-choice
tasks (:mod:`kompakt.samples`) is written first, beside it, as
``<run_id>.samples.parquet``; the results file records its name and sha256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from typing import Any

from kompakt import paths
from kompakt import samples as samples_file
from kompakt.atomic import write_text
from kompakt.results import SCHEMA_VERSION, PerSampleFile, ResultsFile


def new_run_id(when: dt.datetime | None = None, salt: str = "") -> str:
    """``YYYYMMDDTHHMMSSZ-<6 hex>``: sortable by time, unique between parallel runs."""
    when = (when or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    token = hashlib.sha256(f"{when.isoformat()}{os.getpid()}{salt}{os.urandom(8).hex()}".encode()).hexdigest()[:6]
    return f"{when:%Y%m%dT%H%M%SZ}-{token}"


def results_path(results: ResultsFile, root: Path | None = None) -> Path:
    root = Path(root) if root else paths.results_dir()
    return root / results.base_model.id / results.variant.id / results.profile / f"{results.run_id}.json"


def write_samples(rows: list[dict[str, Any]], *, base_model: str, variant: str, profile: str, run_id: str,
                  root: Path | None = None) -> PerSampleFile | None:
    """Write the per-sample file of run ``run_id`` where its results file will lie; None when there are no rows."""
    if not rows:
        return None
    folder = (Path(root) if root else paths.results_dir()) / base_model / variant / profile
    name = samples_file.file_name(run_id)
    digest = samples_file.write(rows, folder / name)
    return PerSampleFile(path=name, sha256=digest, rows=len(rows))


def render(results: ResultsFile) -> str:
    return json.dumps(results.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def write_results(results: ResultsFile | dict, root: Path | None = None) -> Path:
    """Validate ``results`` and write it atomically; returns the path written."""
    if not isinstance(results, ResultsFile):
        results = ResultsFile.model_validate(results)
    if results.schema_version != SCHEMA_VERSION:
        raise ValueError(f"schema_version: this harness writes version {SCHEMA_VERSION}, not {results.schema_version}")
    target = results_path(results, root)
    write_text(target, render(results))
    return target


def latest_results(base_id: str, variant_id: str, profile: str, root: Path | None = None,
                   where: Callable[[ResultsFile], bool] | None = None) -> ResultsFile | None:
    """The newest valid results file of a variant under a profile (run ids sort by time) for which
    ``where`` holds, or None."""
    folder = (Path(root) if root else paths.results_dir()) / base_id / variant_id / profile
    for path in sorted(folder.glob("*.json"), reverse=True):
        try:
            found = ResultsFile.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if where is None or where(found):
            return found
    return None
