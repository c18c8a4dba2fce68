"""``kompakt variants list | build | clean``: build compressed variants from recipes.

Importing this module imports neither torch nor transformers: the commands
import the ML stack when they run, after :func:`harness.requirements.require`
has checked it is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

PANEL = "Harness: recipes to variants"

variants_app = typer.Typer(
    help="Build compressed variants from the recipes in data/recipes/ and manage the artifact cache.\n\n"
    "Every intermediate result is cached (KOMPAKT_CACHE, default ~/.cache/kompakt) under a key of the base "
    "weights and the steps so far, so a shared prefix such as `prune_depth n_layers=8` is built once.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(variants_app, name="variants", rich_help_panel=PANEL)


def _human(n: int | None) -> str:
    if not n:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover


def _load_recipes(names: list[str] | None, recipes_dir: Path | None) -> list:
    """The named recipes (all when none is named); any invalid one stops the command with its problems."""
    from harness.build.recipes import RecipeError, find_recipe, load_all, load_recipe

    if not names:
        recipes, errors = load_all(recipes_dir)
        if errors:
            for err in errors:
                typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1)
        return recipes
    out = []
    failed = False
    for name in names:
        try:
            out.append(load_recipe(find_recipe(name, recipes_dir)))
        except (RecipeError, KeyError) as err:
            typer.echo(f"error: {err.args[0] if isinstance(err, KeyError) else err}", err=True)
            failed = True
    if failed:
        raise typer.Exit(1)
    return out


RecipesArg = Annotated[
    Optional[list[str]],
    typer.Argument(help="Recipe names (file stems in data/recipes/) or paths to recipe files; default: every recipe."),
]
RecipesDirOpt = Annotated[Optional[Path], typer.Option(help="Folder of recipes (default: data/recipes/ or $KOMPAKT_DATA/recipes).")]


@variants_app.command("list")
def list_(
    recipes: RecipesArg = None,
    recipes_dir: RecipesDirOpt = None,
    cache: Annotated[bool, typer.Option("--cache", help="List every entry of the artifact cache instead, with its lineage.")] = False,
) -> None:
    """List the variants of the recipes, their steps and whether they are built.

    Validates the recipes (no torch needed). A variant's status is `built`,
    `k/n steps cached` or `not built`; `base not ready` means the base model
    has not been converted or downloaded yet (the first build does that).

    Example: kompakt variants list thesis
    """
    from harness.build import artifacts
    from harness.build.base_model import resolve_cached

    if cache:
        entries = artifacts.all_entries()
        for a in entries:
            chain = " > ".join(s.method for s in a.variant.steps)
            users = ", ".join(a.info.get("used_by", [])) or "(intermediate)"
            typer.echo(
                f"{a.base_model.id}/{a.key}  {a.format:4} {_human(a.info.get('disk_bytes')):>10}  "
                f"{a.info.get('build_seconds', 0):7.1f}s  {chain}  [{users}]"
            )
        stale = artifacts.stale_temporaries()
        typer.echo(f"{len(entries)} entries in {artifacts.variants_root()}" + (f"; {len(stale)} left by interrupted builds" if stale else ""))
        return
    for recipe in _load_recipes(recipes, recipes_dir):
        base = resolve_cached(recipe.base_model)
        base_name = base.info.id if base else (recipe.base_model.source or "embedded SmolLM2-135M-Instruct")
        typer.echo(f"{recipe.name}  ({recipe.path})  base: {base_name}")
        for v in recipe.variants.values():
            chain = " > ".join(f"{s.method}" for s in v.steps) or "(reference)"
            if v.is_reference:
                status = "built" if base else "base not ready"
            elif base is None:
                status = "base not ready"
            else:
                k = artifacts.cached_steps(base, v)
                status = "built" if k == len(v.steps) else (f"{k}/{len(v.steps)} steps cached" if k else "not built")
            typer.echo(f"  {v.id:28} {status:18} {chain}")


@variants_app.command()
def build(
    recipes: RecipesArg = None,
    variant: Annotated[
        Optional[list[str]], typer.Option("--variant", "-v", help="Build only these variant ids (repeatable); default: all of the recipes'.")
    ] = None,
    recipes_dir: RecipesDirOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild the variants' cache entries even if present.")] = False,
    trust_remote_code: Annotated[
        bool, typer.Option("--trust-remote-code", help="Allow the base model's repository code to run (off by default).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Build the variants of recipes (every cached prefix is reused).

    All recipes are validated and the needed packages checked before any work
    starts. Prints each variant's cache folder; its lineage.json holds the
    base model and the steps exactly as results files record them.

    Example: kompakt variants build thesis --variant prune-8-lora
    """
    from harness.build.methods import get_method
    from harness.build.recipes import RecipeError
    from harness.requirements import MissingPackageError, require

    loaded = _load_recipes(recipes, recipes_dir)
    jobs = []
    for recipe in loaded:
        if trust_remote_code:
            recipe.base_model = recipe.base_model.model_copy(update={"trust_remote_code": True})
        wanted = variant or list(recipe.variants)
        for vid in wanted:
            if vid not in recipe.variants:
                if variant and len(loaded) > 1:
                    continue  # the id may belong to another of the named recipes
                try:
                    recipe.variant(vid)
                except KeyError as err:
                    typer.echo(f"error: {err.args[0]}", err=True)
                    raise typer.Exit(1) from None
            jobs.append((recipe, recipe.variants[vid]))
    if variant:
        missing = [v for v in variant if not any(j[1].id == v for j in jobs)]
        if missing:
            typer.echo(f"error: no named recipe has the variant(s) {', '.join(missing)}", err=True)
            raise typer.Exit(1)
    groups = sorted({g for _, v in jobs for s in v.steps for g in get_method(s.method).requires})
    try:
        require(*groups, purpose="building these variants")
    except MissingPackageError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None

    from tqdm.auto import tqdm
    from transformers.utils import logging as hf_logging

    from harness.build import artifacts
    from harness.build.base_model import BaseModelError, resolve

    hf_logging.disable_progress_bar()  # the harness draws its own bars; transformers' per-file bars only add noise
    bases: dict[int, object] = {}
    results = []

    def hook(vid: str, i: int, n: int, event: str) -> None:
        if not quiet and event in ("start", "cached"):
            step = jobs_by_id[vid].steps[i].method
            tqdm.write(f"  {vid}: step {i + 1}/{n} {step}" + (" (cached)" if event == "cached" else " ..."))

    jobs_by_id = {v.id: v for _, v in jobs}
    bar = tqdm(jobs, desc="variants", unit="variant", disable=quiet)
    for recipe, v in bar:
        bar.set_postfix_str(f"{recipe.name}/{v.id}")
        try:
            base = bases.get(id(recipe))
            if base is None:
                base = bases[id(recipe)] = resolve(recipe.base_model, show_progress=not quiet)
            artifact = artifacts.build(recipe, v.id, base=base, force=force, show_progress=not quiet, hook=hook)  # type: ignore[arg-type]
        except (BaseModelError, RecipeError, artifacts.BuildError) as err:
            bar.close()
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
        results.append((recipe, v, artifact))
    for recipe, v, a in results:
        secs = a.info.get("build_seconds")
        extra = f"  last step {secs:.1f}s" if isinstance(secs, (int, float)) else ""
        typer.echo(f"{recipe.name}/{v.id}: {a.model_path}{extra}")


@variants_app.command()
def clean(
    recipes: RecipesArg = None,
    recipes_dir: RecipesDirOpt = None,
    orphans: Annotated[bool, typer.Option("--orphans", help="Remove entries that no variant of the recipes needs (neither as result nor as prefix).")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Remove every cache entry and every converted base model.")] = False,
    variant: Annotated[
        Optional[list[str]], typer.Option("--variant", "-v", help="Remove these variants' entries (and prefixes no other variant needs).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would be removed.")] = False,
) -> None:
    """Remove cache entries; leftovers of interrupted builds are always removed.

    Without --orphans, --variant or --all only the leftovers go. With
    --variant, entries that other recipe variants still build on are kept.

    Example: kompakt variants clean --orphans --dry-run
    """
    from harness.build import artifacts
    from kompakt import paths

    targets: list[Path] = list(artifacts.stale_temporaries())
    if all_:
        root = artifacts.variants_root()
        targets += [p for p in sorted(root.glob("*/*"))] if root.is_dir() else []
        base_root = paths.cache_dir() / "base"
        targets += sorted(base_root.glob("*")) if base_root.is_dir() else []
    elif orphans or variant:
        everything = _load_recipes(None, recipes_dir)
        named = _load_recipes(recipes, recipes_dir) if recipes else []
        targets += artifacts.unneeded_entries(everything, named, variant or [], orphans=orphans)
    if not targets:
        typer.echo("nothing to remove")
        return
    total = 0
    for t in targets:
        size = artifacts.disk_bytes(t) if t.exists() else 0
        total += size
        typer.echo(f"{'would remove' if dry_run else 'remove'} {t}  ({_human(size)})")
    if not dry_run:
        artifacts.remove(targets)
    typer.echo(f"{'would free' if dry_run else 'freed'} {_human(total)}")
