"""``kompakt bench``: build the variants it needs, measure each, write one results file per variant and profile.

Importing this module imports neither torch nor lm-eval: the command checks
that the ML stack is installed before any work starts and imports it only then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

PANEL = "Harness: variants to results files"


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(bench)


def _require() -> None:
    """Stop before any work when the ML stack is missing, naming what and how to install it."""
    from harness.requirements import MissingPackageError, require

    try:
        require("bench", "packed", purpose="kompakt bench")
    except MissingPackageError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from None


def _tasks_help() -> str:
    from kompakt.tasks import SUITES, TASKS, suite

    names = ", ".join(TASKS)
    defaults = ", ".join(t.name for t in TASKS.values() if t.default)
    suites = "; ".join(f"{name} ({', '.join(suite(name))}): {what}" for name, what in SUITES.items())
    return (f"Tasks or suites (repeatable or comma-separated). Tasks: {names}. Suites: {suites}. Default: {defaults} "
            "(HellaSwag in llama.cpp's text where only that is in the data folder, in a suite too).")


def _task_list(tasks: list[str] | None, efficiency: bool, data_dir: Path | None) -> list[str]:
    from harness.measure.tasks import TaskError, expand_tasks
    from harness.run.bench import default_tasks

    try:
        task_list = expand_tasks(_split(tasks), data_dir) if _split(tasks) else default_tasks(data_dir)
    except TaskError as err:
        raise typer.BadParameter(str(err), param_hint="--tasks") from None
    if efficiency and "efficiency" not in task_list:
        task_list.append("efficiency")
    return task_list


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


def bench(
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Base model: a local folder of safetensors, a .gguf file or a hub id. Default: the embedded SmolLM2-135M-Instruct (no download).")] = None,
    recipe: Annotated[Optional[str], typer.Option("--recipe", "-r", help="Recipe (name in data/recipes/ or a path) whose variants to measure; all of them unless --variant is given.")] = None,
    variant: Annotated[Optional[list[str]], typer.Option("--variant", "-v", help="Variant id(s) of the recipe to measure (repeatable or comma-separated). Without --recipe and --variant: the reference only.")] = None,
    profile: Annotated[str, typer.Option("--profile", "-p", help="Hardware profile (data/profiles/).")] = "cpu",
    tasks: Annotated[Optional[list[str]], typer.Option("--tasks", "-t", help=_tasks_help())] = None,
    limit: Annotated[Optional[list[str]], typer.Option("--limit", "-l", help="Score only the first N documents of each task (N windows of the token perplexity), or TASK=N for one task (repeatable, e.g. hellaswag_llamacpp=1000); recorded in the results and shown on the site.")] = None,
    num_fewshot: Annotated[Optional[list[str]], typer.Option("--num-fewshot", help="Few-shot examples: N for every task or TASK=N (repeatable). Default: each task's lm-eval default (0).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Local copies of the data sets, laid out as shared/benchmarks/ (default: $KOMPAKT_DATA_DIR or shared/benchmarks). Tasks without a local copy load their hub data set.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sequences per forward pass.")] = 8,
    ppl_context: Annotated[int, typer.Option("--ppl-context", min=16, help="Context length of the token perplexity, in tokens.")] = 2048,
    efficiency: Annotated[bool, typer.Option("--efficiency/--no-efficiency", help="Also measure memory, speed and energy (harness.measure.efficiency).")] = False,
    backend: Annotated[Optional[str], typer.Option("--backend", help="Efficiency backend: pytorch or llama.cpp (default: the first that runs the variant's format: pytorch for checkpoints, llama.cpp for GGUF files).")] = None,
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

    from harness.measure.hardware import HardwareMismatch
    from harness.measure.tasks import TaskError
    from harness.run.bench import BenchConfig, run_bench
    from harness.run.plan import plan_jobs
    from harness.run.summary import find_reference, summary_table
    from kompakt.profiles import ProfileError, get_profile

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    try:
        prof = get_profile(profile)
    except ProfileError as err:
        raise typer.BadParameter(str(err), param_hint="--profile") from None
    task_list = _task_list(tasks, efficiency, data_dir)
    if backend is not None:
        from harness.measure.backends import BACKENDS

        if backend not in BACKENDS:
            from kompakt.registry import suggest

            raise typer.BadParameter(f"unknown backend {backend!r}{suggest(backend, BACKENDS.names())}; known: {', '.join(BACKENDS.names())}",
                                     param_hint="--backend")
    overall_limit, task_limits = parse_limits(limit)
    stray = [t for t in task_limits if t not in task_list]
    if stray:
        raise typer.BadParameter(f"limit for {', '.join(stray)}, which is not among the tasks run ({', '.join(task_list)})",
                                 param_hint="--limit")
    try:
        base, jobs = plan_jobs(model, recipe, _split(variant), trust_remote_code=trust_remote_code, say=typer.echo)
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
        reference_path=base.path,
        backend=backend,
    )
    typer.echo(f"kompakt bench: {base.info.name} ({base.info.id}), {len(jobs)} variant(s), profile {prof.name}, "
               f"tasks {', '.join(task_list)}" + (f", limit {', '.join(_split(limit))}" if limit else ""))
    try:
        outcomes = run_bench(jobs, config, say=typer.echo)
    except (HardwareMismatch, TaskError) as err:
        typer.echo(f"kompakt bench: {err}", err=True)
        raise typer.Exit(2) from None
    reference = find_reference(outcomes, base.info.id, prof.name, root=results_dir)
    typer.echo("")
    typer.echo(summary_table(outcomes, reference))
    if any(o.status.code == "failed" for o in outcomes):
        raise typer.Exit(1)
