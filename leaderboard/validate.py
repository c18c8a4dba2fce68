"""Validate results files: each on its own (schema + rules), then all together.

Checks across files: run ids unique, ``duplicate_of`` pointing at a real run,
one lineage per variant id, one name per base model, and (as a warning) a
reference variant for every base model and profile.

The cross-file rules are judged against the whole results root, also when only some
files are named (``kompakt validate FILE``): the other files under the root are read
as context. Problems are reported for the named files only, and for problems a named
file takes part in (a lineage conflict between a named file and another names both).
The files already under the root come first, so their lineage, base model name and run
ids stand and a named file that disagrees is the one the problem is reported on.

A results file that names a per-sample file gets that file checked too
(:mod:`leaderboard.samples`); a per-sample file that no results file names is a warning.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from kompakt.profiles import ProfileError, all_profiles
from leaderboard.flatten import lineage_label
from leaderboard.loading import Loaded, load_file
from leaderboard.problems import Problem, Report, display_name
from leaderboard.rules import Context, check
from leaderboard.samples import CheckedSamples, check_samples


@dataclass
class Validation:
    report: Report
    loaded: list[Loaded] = field(default_factory=list)
    """The files named (or found under the folders named)."""
    context: list[Loaded] = field(default_factory=list)
    """The other files under the results root, read only for the cross-file rules."""
    samples: dict[str, CheckedSamples] = field(default_factory=dict)
    """Per-sample files, by the name of the results file that names them."""

    @property
    def valid(self) -> list[Loaded]:
        """Named files that parsed and passed every per-file rule (their per-sample file included)."""
        bad = {p.file for p in self.report.errors}
        bad |= {name for name, s in self.samples.items() if s.problems and any(p.severity == "error" for p in s.problems)}
        return [f for f in self.loaded if f.result is not None and f.name not in bad]


@dataclass(frozen=True)
class CrossProblem:
    """A problem found across files, and every file that takes part in it."""

    problem: Problem
    """What is wrong, reported on one of the files."""
    files: frozenset[str]
    """The names of the files involved; it is reported when one of them was named."""


def _orphan_samples(paths: list[Path], named: set[Path], root: Path | None) -> list[Problem]:
    """Per-sample files under the folders validated that no results file names."""
    from kompakt.samples import SUFFIX

    out = []
    for p in paths:
        if not p.is_dir():
            continue
        for f in sorted(p.rglob(f"*{SUFFIX}")):
            if not f.name.startswith(".") and f.resolve() not in named:
                out.append(Problem(display_name(f, root), "$", "no results file names this per-sample file",
                                   "a per-sample file named in its results file's per_sample", "warning"))
    return out


def discover(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*.json") if not f.name.startswith(".")))
        elif p.is_file() or p.is_symlink():
            files.append(p)
        else:
            problems.append(Problem(str(p), "$", "no such file or folder", "an existing results file or folder"))
    return files, problems


def _lineage_signature(loaded: Loaded) -> str:
    assert loaded.result is not None  # callers pass parsed files only
    steps = [(s.method, sorted(s.params.items(), key=lambda kv: kv[0])) for s in loaded.result.variant.steps]
    return repr((loaded.result.variant.is_reference, steps))


def cross_problems(files: list[Loaded]) -> list[CrossProblem]:
    """The cross-file rules over ``files``; where files disagree, the earlier one stands."""
    out: list[CrossProblem] = []

    def add(problem: Problem, *involved: Loaded) -> None:
        out.append(CrossProblem(problem, frozenset(f.name for f in involved)))

    parsed = [f for f in files if f.result is not None]
    by_run: dict[str, list[Loaded]] = defaultdict(list)
    for f in parsed:
        by_run[f.result.run_id].append(f)
    for run_id, group in by_run.items():
        for f in group[1:]:
            add(Problem(f.name, "$.run_id", f"run id {run_id!r} is also used by {group[0].name}", "a unique run id"), f, group[0])
    for f in parsed:
        target = f.result.duplicate_of
        if target is not None and (target not in by_run or target == f.result.run_id):
            add(Problem(f.name, "$.duplicate_of", f"restates run {target!r}, which does not exist", "the run id of another results file"), f)
    lineages: dict[tuple[str, str], tuple[str, Loaded]] = {}
    names: dict[str, tuple[str, Loaded]] = {}
    groups: dict[tuple[str, str], list[Loaded]] = defaultdict(list)
    references: set[tuple[str, str]] = set()
    for f in parsed:
        r = f.result
        key = (r.base_model.id, r.variant.id)
        signature = _lineage_signature(f)
        if key in lineages and lineages[key][0] != signature:
            first = lineages[key][1]
            add(
                Problem(
                    f.name, "$.variant.steps",
                    f"variant {r.variant.id!r} of {r.base_model.id!r} has another lineage in {first.name}: "
                    f"{lineage_label(r)} here, {lineage_label(first.result)} there",
                    "one lineage per variant id (give a different variant another id)",
                ),
                f, first,
            )
        lineages.setdefault(key, (signature, f))
        if r.base_model.id in names and names[r.base_model.id][0] != r.base_model.name:
            first = names[r.base_model.id][1]
            add(
                Problem(f.name, "$.base_model.name", f"base model {r.base_model.id!r} is called {r.base_model.name!r} here but {names[r.base_model.id][0]!r} in {first.name}", "one name per base model id", "warning"),
                f, first,
            )
        names.setdefault(r.base_model.id, (r.base_model.name, f))
        groups[(r.base_model.id, r.profile)].append(f)
        if r.variant.is_reference:
            references.add((r.base_model.id, r.profile))
    for model, profile in sorted(set(groups) - references):
        add(
            Problem(f"{model}/*/{profile}", "$.variant.is_reference", f"base model {model!r} has no reference variant under profile {profile!r}; no deltas can be shown there", "a results file of the uncompressed reference under the same profile", "warning"),
            *groups[(model, profile)],
        )
    return out


def cross_checks(files: list[Loaded]) -> list[Problem]:
    """Every cross-file problem among ``files``."""
    return [c.problem for c in cross_problems(files)]


def _same_file(path: Path) -> str:
    """A key that is equal for two spellings of one path, through linked folders too (a linked file stays itself)."""
    return os.path.join(os.path.realpath(path.parent), path.name)


def validate_paths(paths: list[Path], results_root: Path | None = None) -> Validation:
    """Validate the results files found in ``paths`` (files or folders); the cross-file rules also read
    every other file under ``results_root`` and report what involves the named files."""
    report = Report()
    try:
        profiles = all_profiles()
    except ProfileError as err:
        report.add(Problem("data/profiles", "$", str(err), "valid profile files"))
        profiles = {}
    files, problems = discover(paths)
    report.extend(problems)
    validation = Validation(report)
    root = results_root.resolve() if results_root is not None else None
    for path in files:
        name = display_name(path, root)
        loaded = load_file(path, name)
        validation.loaded.append(loaded)
        report.extend(loaded.problems)
        if loaded.result is not None:
            rel = None
            if root is not None:
                try:
                    rel = path.resolve().relative_to(root)
                except ValueError:
                    rel = None
            report.extend(check(loaded.result, name, Context(profiles, rel)))
            checked = check_samples(loaded.result, path, name)
            if checked is not None:
                validation.samples[name] = checked
                report.extend(checked.problems)
    named_samples = {(f.path.parent / f.result.per_sample.path).resolve() for f in validation.loaded
                     if f.result is not None and f.result.per_sample}
    report.extend(_orphan_samples(paths, named_samples, root))
    report.files = len(files)
    if root is not None and root.is_dir():
        named = {_same_file(p) for p in files}
        rest, _ = discover([root])
        validation.context = [load_file(p, display_name(p, root)) for p in rest if _same_file(p) not in named]
    report.context_files = len(validation.context)
    named_names = {f.name for f in validation.loaded}
    # the files already there first: where a named file disagrees with them, the problem is the named file's
    for cross in cross_problems([*validation.context, *validation.loaded]):
        if cross.files & named_names:
            report.add(cross.problem)
    return validation
