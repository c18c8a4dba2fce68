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
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

from typing import Any

from pydantic import ValidationError

from kompakt import paths
from kompakt import samples as samples_file
from kompakt.atomic import write_bytes, write_text
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


class JobFilesError(ValueError):
    """Files a job sent back cannot go into the results folder; the message names the file and what is wrong."""


def check_job_files(files: Mapping[str, bytes], root: Path | None = None) -> tuple[dict[PurePosixPath, ResultsFile], dict[PurePosixPath, bytes]]:
    """Check the files a job wrote into its own results root (relative POSIX path -> content) before any is written:
    every path stays inside the folder; every ``.json`` file is a valid results file lying where its ids say (the
    leaderboard reads every ``.json`` under the results root as one); every other file is the per-sample file a
    results file of the job names beside it, with the sha256 it records, and every per-sample file a results file
    names came back; nothing would replace an existing file. Returns (results files, other files)."""
    root = Path(root) if root else paths.results_dir()
    results: dict[PurePosixPath, ResultsFile] = {}
    others: dict[PurePosixPath, bytes] = {}
    for name, data in files.items():
        rel = PurePosixPath(name)
        if not rel.parts or rel.is_absolute() or any(part in ("", ".", "..") for part in rel.parts) or "\\" in name:
            raise JobFilesError(f"{name!r}: not a path inside the results folder")
        if rel.suffix == ".json":
            try:
                found = ResultsFile.model_validate_json(data)
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(x) for x in first["loc"]) or "(top level)"
                raise JobFilesError(f"{name}: not a valid results file: {where}: {first['msg']} ({err.error_count()} problem(s))") from None
            expected = PurePosixPath(found.base_model.id, found.variant.id, found.profile, f"{found.run_id}.json")
            if rel != expected:
                raise JobFilesError(f"{name}: a results file must lie where its ids say, at {expected}")
            results[rel] = found
        else:
            others[rel] = bytes(data)
    named = {rel.parent / found.per_sample.path: (rel, found.per_sample.sha256) for rel, found in results.items() if found.per_sample}
    stray = [str(rel) for rel in others if rel not in named]
    if stray:
        raise JobFilesError(f"{', '.join(sorted(stray))}: not the per-sample file of a results file of the same job")
    for sample, (rel, sha256) in named.items():
        if sample not in others:
            raise JobFilesError(f"{rel}: names the per-sample file {sample.name}, which the job did not send back")
        if hashlib.sha256(others[sample]).hexdigest() != sha256:
            raise JobFilesError(f"{sample}: its sha256 is not the one {rel} records (per_sample.sha256); the file changed on its way")
    there = [str(rel) for rel in [*others, *results] if (root / rel).exists()]
    if there:
        raise JobFilesError(f"{', '.join(sorted(there))}: already in {root}; a measurement is never written twice")
    return results, others


def write_job_files(files: Mapping[str, bytes], root: Path | None = None) -> list[Path]:
    """Write what a job measured elsewhere into the results folder exactly as a local run writes it: all checked first
    (:func:`check_job_files`; nothing is written when one is wrong), each file atomically, the files beside a
    results file before it, the results files last (rendered by :func:`write_results`, as a local run renders
    them). Returns the results files written."""
    results, others = check_job_files(files, root)
    root = Path(root) if root else paths.results_dir()
    for rel, data in others.items():
        write_bytes(root / rel, data)
    return [write_results(found, root) for found in results.values()]


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
