"""``kompakt bench``: build the variants it needs, measure each, write one results file per variant and profile.

Importing this module imports neither torch nor lm-eval: the command checks
that the ML stack is installed before any work starts and imports it only then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

PANEL = "Harness: variants to results files"
HINT = "pip install -e '.[harness]'  (install torch==2.13.0, the CPU build, first)"


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(bench)


def _require() -> None:
    import importlib.util

    try:
        from harness.requirements import MissingPackageError, require
    except ImportError:  # pragma: no cover - the requirements module is part of the harness
        require = None
    if require is not None:
        try:
            require("hub_data", purpose="kompakt bench")
        except MissingPackageError as err:
            typer.echo(str(err), err=True)
            raise typer.Exit(2) from None
    missing = [m for m in ("torch", "transformers", "lm_eval", "datasets") if importlib.util.find_spec(m) is None]
    if missing:
        typer.echo(f"kompakt bench needs {', '.join(missing)}, which is not installed. Install with: {HINT}", err=True)
        raise typer.Exit(2)


def parse_fewshot(values: list[str] | None, tasks: list[str]) -> dict[str, int]:
    """``["5"]`` (every task) or ``["arc_challenge=25", "hellaswag=10"]``."""
    out: dict[str, int] = {}
    for value in values or []:
        name, sep, count = value.partition("=")
        try:
            if sep:
                out[name.strip()] = int(count)
            else:
                out.update({t: int(name) for t in tasks})
        except ValueError:
            raise typer.BadParameter(f"--num-fewshot {value!r}: expected N or TASK=N") from None
    return out


def parse_limits(values: list[str] | None) -> tuple[int | None, dict[str, int]]:
    """``["100"]`` (every task) and/or ``["hellaswag_llamacpp=1000"]`` (one task)."""
    overall: int | None = None
    per_task: dict[str, int] = {}
    for value in _split(values):
        name, sep, count = value.partition("=")
        try:
            n = int(count if sep else name)
        except ValueError:
            raise typer.BadParameter(f"{value!r}: expected N or TASK=N", param_hint="--limit") from None
        if n < 1:
            raise typer.BadParameter(f"{value!r}: a limit must be at least 1", param_hint="--limit")
        if sep:
            per_task[name.strip()] = n
        else:
            overall = n
    return overall, per_task


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _planned(base_info: Any, rv: Any) -> Any:
    from kompakt.results import Step, Variant

    try:
        return base_info, Variant(id=rv.id, is_reference=False, steps=[Step(method=s.method, params=s.params()) for s in rv.steps], notes=rv.notes)
    except Exception:  # parameters the results schema cannot hold: no planned lineage
        return None


def plan_jobs(model: str | None, recipe_name: str | None, variant_ids: list[str], recipes_dir: Path | None = None,
              trust_remote_code: bool = False) -> tuple[Any, list]:
    """The resolved base model and the variant jobs to run."""
    from harness.build.base_model import BaseModelSpec, resolve
    from harness.run.bench import VariantJob

    recipe = None
    if recipe_name:
        from harness.build.recipes import find_recipe, load_recipe

        recipe = load_recipe(find_recipe(recipe_name, recipes_dir))
    elif variant_ids and any(v != "reference" for v in variant_ids):
        from harness.build.recipes import load_all

        recipes, _ = load_all(recipes_dir)
        holders = [r for r in recipes if all(v in r.variants or v == "reference" for v in variant_ids)]
        if not holders:
            raise typer.BadParameter(f"no recipe has the variant(s) {', '.join(variant_ids)}; name one with --recipe")
        recipe = holders[0]
        if len(holders) > 1:
            typer.echo(f"note: variants found in recipes {', '.join(r.name for r in holders)}; using {recipe.name} (choose with --recipe)")
    if model:
        base = resolve(BaseModelSpec(source=model, trust_remote_code=trust_remote_code))
    elif recipe is not None:
        spec = recipe.base_model or BaseModelSpec()
        base = resolve(spec.model_copy(update={"trust_remote_code": True}) if trust_remote_code else spec)
    else:
        base = resolve(BaseModelSpec(trust_remote_code=trust_remote_code))
    from harness.build.artifacts import build, reference_artifact

    if recipe is None:
        return base, [VariantJob("reference", artifact=reference_artifact(base), is_reference=True)]
    ids = variant_ids or list(recipe.variants)
    jobs = []
    for vid in ids:
        if vid == "reference" and vid not in recipe.variants:
            jobs.append(VariantJob("reference", artifact=reference_artifact(base), is_reference=True))
            continue
        rv = recipe.variant(vid)
        if rv.is_reference:
            jobs.append(VariantJob(vid, artifact=reference_artifact(base, vid, rv.notes), is_reference=True))
        else:
            jobs.append(VariantJob(vid, build=(lambda r=recipe, v=vid: build(r, v, base=base)), planned=_planned(base.info, rv)))
    return base, jobs


def bench(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Base model: a local folder of safetensors, a .gguf file or a hub id. Default: the embedded SmolLM2-135M-Instruct (no download).")] = None,
    recipe: Annotated[Optional[str], typer.Option("--recipe", "-r", help="Recipe (name in data/recipes/ or a path) whose variants to measure; all of them unless --variant is given.")] = None,
    variant: Annotated[Optional[list[str]], typer.Option("--variant", "-v", help="Variant id(s) of the recipe to measure (repeatable or comma-separated). Without --recipe and --variant: the reference only.")] = None,
    profile: Annotated[str, typer.Option("--profile", "-p", help="Hardware profile (data/profiles/).")] = "cpu",
    tasks: Annotated[Optional[list[str]], typer.Option("--tasks", "-t", help="Tasks (repeatable or comma-separated): winogrande, arc_challenge, truthfulqa_mc2, hellaswag, hellaswag_llamacpp, wikitext, wikitext2_tokens, efficiency. Default: the four accuracy tasks, wikitext and token perplexity.")] = None,
    limit: Annotated[Optional[list[str]], typer.Option("--limit", "-l", help="Score only the first N documents of each task (N windows of the token perplexity), or TASK=N for one task (repeatable, e.g. hellaswag_llamacpp=1000); recorded in the results and shown on the site.")] = None,
    num_fewshot: Annotated[Optional[list[str]], typer.Option("--num-fewshot", help="Few-shot examples: N for every task or TASK=N (repeatable). Default: each task's lm-eval default (0).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Local copies of the data sets, laid out as shared/benchmarks/ (default: $KOMPAKT_DATA_DIR or shared/benchmarks). Tasks without a local copy load their hub data set.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sequences per forward pass.")] = 8,
    ppl_context: Annotated[int, typer.Option("--ppl-context", min=16, help="Context length of the token perplexity, in tokens.")] = 2048,
    efficiency: Annotated[bool, typer.Option("--efficiency/--no-efficiency", help="Also measure memory, speed and energy (harness.measure.efficiency).")] = False,
    allow_other_hardware: Annotated[bool, typer.Option("--allow-other-hardware", help="Run a GPU profile on other hardware; the results are labelled with the real hardware.")] = False,
    results_dir: Annotated[Optional[Path], typer.Option("--results-dir", help="Results root (default: data/results/).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Measure again even where a finished measurement is cached.")] = False,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for torch (default: torch's choice).")] = None,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow the base model's repository code to run (off by default; models that need it are refused without it).")] = False,
) -> None:
    """Measure variants: accuracy and perplexity through lm-eval (local data), one results file per variant.

    Builds the variants it needs (cached), loads each once and runs every task on
    it, then writes data/results/<model>/<variant>/<profile>/<run_id>.json. A run
    killed and started again reuses every finished measurement. Ends with a table
    of each variant's change against the reference.

    Example: kompakt bench --recipe thesis --variant reference,awq4 --limit 100
    """
    _require()
    import logging

    from harness.run.bench import BenchConfig, default_tasks, known_tasks, run_bench
    from harness.run.summary import find_reference, summary_table
    from harness.measure.tasks.lm_eval_tasks import TaskError
    from harness.measure.hardware import HardwareMismatch
    from kompakt.profiles import ProfileError, get_profile

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    try:
        prof = get_profile(profile)
    except ProfileError as err:
        raise typer.BadParameter(str(err), param_hint="--profile") from None
    task_list = _split(tasks) or default_tasks(data_dir)
    unknown = [t for t in task_list if t not in [*known_tasks(), "efficiency"]]
    if unknown:
        from kompakt.registry import suggest

        raise typer.BadParameter(
            "; ".join(f"unknown task {t!r}{suggest(t, known_tasks())}" for t in unknown) + f". Known: {', '.join(known_tasks())}, efficiency",
            param_hint="--tasks",
        )
    overall_limit, task_limits = parse_limits(limit)
    stray = [t for t in task_limits if t not in task_list]
    if stray:
        raise typer.BadParameter(f"limit for {', '.join(stray)}, which is not among the tasks run ({', '.join(task_list)})",
                                 param_hint="--limit")
    if efficiency and "efficiency" not in task_list:
        task_list.append("efficiency")
    try:
        base, jobs = plan_jobs(model, recipe, _split(variant), trust_remote_code=trust_remote_code)
    except (KeyError, ValueError) as err:
        typer.echo(f"kompakt bench: {err}", err=True)
        raise typer.Exit(2) from None
    config = BenchConfig(
        profile=prof,
        tasks=task_list,
        limit=overall_limit,
        task_limits=task_limits,
        num_fewshot=parse_fewshot(num_fewshot, task_list),
        data_dir=data_dir,
        batch_size=batch_size,
        ppl_context=ppl_context,
        results_root=results_dir,
        allow_other_hardware=allow_other_hardware,
        use_cache=not no_cache,
        threads=threads,
        tokenizer_path=base.path,
    )
    typer.echo(f"kompakt bench: {base.info.name} ({base.info.id}), {len(jobs)} variant(s), profile {prof.name}, "
               f"tasks {', '.join(task_list)}" + (f", limit {', '.join(_split(limit))}" if limit else ""))
    try:
        outcomes = run_bench(jobs, config, say=typer.echo)
    except HardwareMismatch as err:
        typer.echo(f"kompakt bench: {err}", err=True)
        raise typer.Exit(2) from None
    except TaskError as err:
        typer.echo(f"kompakt bench: {err}", err=True)
        raise typer.Exit(2) from None
    reference = find_reference(outcomes, base.info.id, prof.name, root=results_dir)
    typer.echo("")
    typer.echo(summary_table(outcomes, reference))
    if any(o.status.code == "failed" for o in outcomes):
        raise typer.Exit(1)
