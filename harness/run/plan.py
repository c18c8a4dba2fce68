"""What ``kompakt bench`` will measure: the base model and one job per variant, from a recipe or a model alone.

A job builds its variant only when it runs (:meth:`harness.run.bench.VariantJob.get`), so a
variant that fails to build is recorded as failed without stopping the others.

Planning has three parts, so that a cluster run (:mod:`harness.run.jobs`) can do the first two on
the driver and the last on the worker that measures: :func:`choose_recipe` (which recipe holds the
variants), :func:`base_spec` (which base model, without loading it) and :func:`variant_jobs` (the
jobs, given the base model resolved where they run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.run.bench import PairingReference, VariantJob


class PlanError(ValueError):
    """The recipe, variants or model asked for cannot be planned; the message says what to name instead."""


def _planned(base_info: Any, rv: Any) -> Any:
    from kompakt.results import Step, Variant

    try:
        return base_info, Variant(id=rv.id, is_reference=False, steps=[Step(method=s.method, params=s.params()) for s in rv.steps], notes=rv.notes)
    except Exception:  # parameters the results schema cannot hold: no planned lineage
        return None


def choose_recipe(recipe_name: str | None, variant_ids: list[str], recipes_dir: Path | None = None,
                  say: Callable[[str], None] = print) -> Any:
    """The recipe named, else the first recipe that has every variant asked for, else None (the reference alone)."""
    if recipe_name:
        from harness.build.recipes import find_recipe, load_recipe

        return load_recipe(find_recipe(recipe_name, recipes_dir))
    if variant_ids and any(v != "reference" for v in variant_ids):
        from harness.build.recipes import load_all

        recipes, _ = load_all(recipes_dir)
        holders = [r for r in recipes if all(v in r.variants or v == "reference" for v in variant_ids)]
        if not holders:
            raise PlanError(f"no recipe has the variant(s) {', '.join(variant_ids)}; name one with --recipe")
        if len(holders) > 1:
            say(f"note: variants found in recipes {', '.join(r.name for r in holders)}; using {holders[0].name} (choose with --recipe)")
        return holders[0]
    return None


def base_spec(model: str | None, recipe: Any, trust_remote_code: bool = False) -> Any:
    """The base model to compress: ``model`` if given (it replaces the recipe's), else the recipe's, else the embedded one."""
    from harness.build.base_model import BaseModelSpec

    if model:
        return BaseModelSpec(source=model, trust_remote_code=trust_remote_code)
    if recipe is not None:
        spec = recipe.base_model or BaseModelSpec()
        return spec.model_copy(update={"trust_remote_code": True}) if trust_remote_code else spec
    return BaseModelSpec(trust_remote_code=trust_remote_code)


def variant_ids_of(recipe: Any, variant_ids: list[str]) -> list[str]:
    """The variants a run measures: those named, else every variant of the recipe, else the reference."""
    if recipe is None:
        return ["reference"]
    return list(variant_ids) or list(recipe.variants)


def variant_jobs(base: Any, recipe: Any, variant_ids: list[str], build_options: dict[str, Any] | None = None) -> list[VariantJob]:
    """One job per variant of ``recipe`` (all of them when ``variant_ids`` is empty) on the resolved ``base``;
    ``build_options`` go to :func:`harness.build.artifacts.build` (a progress hook, ``show_progress``)."""
    from harness.build.artifacts import build, reference_artifact

    if recipe is None:
        ref = reference_artifact(base)
        return [VariantJob("reference", artifact=ref, is_reference=True, reference=PairingReference(ref, base))]
    ids = variant_ids_of(recipe, variant_ids)
    # Every variant's speed is timed against the recipe's reference (its own id and notes), on the same backend; the
    # reference's own against a second load of itself (the A/A check).
    ref_rv = next((rv for rv in recipe.variants.values() if rv.is_reference), None)
    pairing = PairingReference(reference_artifact(base, ref_rv.id, ref_rv.notes) if ref_rv else reference_artifact(base), base)
    jobs = []
    for vid in ids:
        if vid == "reference" and vid not in recipe.variants:
            jobs.append(VariantJob("reference", artifact=reference_artifact(base), is_reference=True, reference=pairing))
            continue
        rv = recipe.variant(vid)
        if rv.is_reference:
            jobs.append(VariantJob(vid, artifact=reference_artifact(base, vid, rv.notes), is_reference=True, reference=pairing))
        else:
            jobs.append(VariantJob(vid, build=(lambda r=recipe, v=vid: build(r, v, base=base, **(build_options or {}))),
                                   planned=_planned(base.info, rv), reference=pairing))
    return jobs


def plan_jobs(model: str | None, recipe_name: str | None, variant_ids: list[str], recipes_dir: Path | None = None,
              trust_remote_code: bool = False, say: Callable[[str], None] = print) -> tuple[Any, list]:
    """The resolved base model and the variant jobs to run."""
    from harness.build.base_model import resolve

    recipe = choose_recipe(recipe_name, variant_ids, recipes_dir, say)
    base = resolve(base_spec(model, recipe, trust_remote_code))
    return base, variant_jobs(base, recipe, variant_ids)
