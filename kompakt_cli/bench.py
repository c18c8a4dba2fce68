"""``kompakt bench``: build the variants it needs, measure each, write one results file per variant and profile.

Importing this module imports neither torch nor lm-eval: the command checks
that the ML stack is installed before any work starts and imports it only then.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from harness.measure.tasks.base import DEFAULT_BATCH_SIZE

PANEL = "Harness: variants to results files"


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(bench)


def _require(*groups: str, purpose: str = "kompakt bench") -> None:
    """Stop before any work when the ML stack (or Ray, for ``--executor ray``) is missing, naming what and how to install it."""
    from harness.requirements import MissingPackageError, require

    try:
        require(*groups, purpose=purpose)
    except MissingPackageError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from None


def _require_methods(jobs: list[Any]) -> None:
    """Stop before any work when a planned variant's methods need packages that are missing (e.g. gptqmodel)."""
    from harness.build.methods import get_method

    groups = sorted({g for job in jobs if job.planned for s in job.planned[1].steps for g in get_method(s.method).requires})
    _require(*groups, purpose="building and loading these variants")


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
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="Base model(s) (repeatable or comma-separated): a local folder of safetensors, a .gguf file or a hub id. Default: the embedded SmolLM2-135M-Instruct (no download). Each replaces the recipe's base model.")] = None,
    recipe: Annotated[Optional[str], typer.Option("--recipe", "-r", help="Recipe (name in data/recipes/ or a path) whose variants to measure; all of them unless --variant is given.")] = None,
    variant: Annotated[Optional[list[str]], typer.Option("--variant", "-v", help="Variant id(s) of the recipe to measure (repeatable or comma-separated). Without --recipe and --variant: the reference only.")] = None,
    profile: Annotated[Optional[list[str]], typer.Option("--profile", "-p", help="Hardware profile(s) (data/profiles/; repeatable or comma-separated). Default: cpu.")] = None,
    tasks: Annotated[Optional[list[str]], typer.Option("--tasks", "-t", help=_tasks_help())] = None,
    limit: Annotated[Optional[list[str]], typer.Option("--limit", "-l", help="Score only the first N documents of each task (N windows of the token perplexity), or TASK=N for one task (repeatable, e.g. hellaswag_llamacpp=1000); recorded in the results and shown on the site.")] = None,
    num_fewshot: Annotated[Optional[list[str]], typer.Option("--num-fewshot", help="Few-shot examples: N for every task or TASK=N (repeatable). Default: each task's lm-eval default (0).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Local copies of the data sets, laid out as shared/benchmarks/ (default: $KOMPAKT_DATA_DIR or shared/benchmarks). Tasks without a local copy load their hub data set.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sequences per forward pass of the quality tasks (part of the measurement's cache key where it is not 8: some methods' scores depend on the batch).")] = DEFAULT_BATCH_SIZE,
    ppl_context: Annotated[int, typer.Option("--ppl-context", min=16, help="Context length of the token perplexity, in tokens.")] = 2048,
    efficiency: Annotated[bool, typer.Option("--efficiency/--no-efficiency", help="Also measure memory, speed and energy (harness.measure.efficiency).")] = False,
    backend: Annotated[Optional[str], typer.Option("--backend", help="Efficiency backend: pytorch or llama.cpp (default: the first that runs the variant's format: pytorch for checkpoints, llama.cpp for GGUF files).")] = None,
    allow_other_hardware: Annotated[bool, typer.Option("--allow-other-hardware", help="Run a GPU profile on other hardware; the results are labelled with the real hardware.")] = False,
    results_dir: Annotated[Optional[Path], typer.Option("--results-dir", help="Results root (default: data/results/).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Measure again even where a finished measurement is cached (with --executor ray: also jobs whose results exist).")] = False,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for torch (default: torch's choice; with --executor ray: 1). With --executor ray each job asks Ray for this many CPUs and pins its thread count to it.")] = None,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow the base model's repository code to run (off by default; models that need it are refused without it).")] = False,
    executor: Annotated[str, typer.Option("--executor", help="Where the jobs run: local (here, one after another) or ray (one Ray task per base model, variant and profile on a Ray cluster; needs the [ray] extra).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="With --executor ray: the cluster's address (host:port, or ray://host:10001 for Ray Client). Default: $RAY_ADDRESS, else the cluster started on this machine with `ray start --head`; `local` starts a cluster for this run alone.")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="The artifact and measurement cache (default: $KOMPAKT_CACHE or ~/.cache/kompakt). With --executor ray: a folder every node shares (e.g. NFS); then step prefixes several variants share are built once, and a rerun finds every measurement; without it each node uses its own cache.")] = None,
    wait_for_hardware: Annotated[float, typer.Option("--wait-for-hardware", min=0, help="With --executor ray: seconds a job whose GPU type no node has may wait for an autoscaler to add one (default 0: it is not sent, and the run says so).")] = 0.0,
    max_retries: Annotated[int, typer.Option("--max-retries", min=0, help="With --executor ray: how often Ray reruns a job whose worker died (killed, node lost, out of memory); a job that raises is not rerun.")] = 1,
    repeats_per_block: Annotated[Optional[int], typer.Option("--repeats-per-block", min=1, help="With the efficiency task: timed runs in each block of the paired speed timing (default 3; at least 10 blocks per side either way). Fewer make a shorter run, e.g. 1 on a GPU lent for minutes; recorded in the results file.")] = None,
    build_device: Annotated[Optional[str], typer.Option("--build-device", help="Where training steps (LoRA healing) run while building: cpu or cuda[:i] (default: $KOMPAKT_BUILD_DEVICE, else cpu). A GPU-trained step is its own artifact, with its own cache key and the GPU named in its lineage; every other step stays on the CPU.")] = None,
) -> None:
    """Measure variants: accuracy and perplexity through lm-eval (local data), one results file per variant.

    Builds the variants it needs (cached), loads each once and runs every task on
    it, then writes data/results/<model>/<variant>/<profile>/<run_id>.json. A run
    killed and started again reuses every finished measurement. Ends with a table
    of each variant's change against the reference. With --executor ray, every
    (model, variant, profile) is one job on a Ray cluster, placed on a node with
    the profile's GPU; a rerun skips the jobs whose results exist.

    Example: kompakt bench --recipe thesis --variant reference,awq4 --limit 100
    """
    _check_executor(executor, ray_address, wait_for_hardware, max_retries)
    # What is needed before any work: Ray for its executor (and, on the driver, everything a node may need); lm-eval and
    # datasets for quality tasks; scipy for the efficiency task's intervals. The packing stack (gptqmodel) is checked
    # once the variants are known (_require_methods), so timing float variants needs none of it.
    _require(*(("ray", "bench", "packed") if executor == "ray" else ()), purpose="kompakt bench" + (" --executor ray" if executor == "ray" else ""))
    import logging

    from harness.measure.tasks import TaskError
    from harness.run.bench import BenchConfig
    from kompakt.profiles import ProfileError, get_profile

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    try:
        profiles = [get_profile(name) for name in (_split(profile) or ["cpu"])]
    except ProfileError as err:
        raise typer.BadParameter(str(err), param_hint="--profile") from None
    task_list = _task_list(tasks, efficiency, data_dir)
    _require("bench" if any(t != "efficiency" for t in task_list) else "efficiency")
    _check_backend(backend)
    overall_limit, task_limits = parse_limits(limit)
    stray = [t for t in task_limits if t not in task_list]
    if stray:
        raise typer.BadParameter(f"limit for {', '.join(stray)}, which is not among the tasks run ({', '.join(task_list)})",
                                 param_hint="--limit")
    if cache_dir is not None:
        os.environ["KOMPAKT_CACHE"] = str(cache_dir.expanduser().resolve())
    if build_device is not None:
        from harness.build.build_device import ENV, BuildDeviceError
        from harness.build.build_device import build_device as named_device

        try:
            os.environ[ENV] = named_device(build_device)
        except BuildDeviceError as err:
            raise typer.BadParameter(str(err), param_hint="--build-device") from None
    if executor == "ray" and threads is None:
        threads = 1
    config = BenchConfig(
        profile=profiles[0],
        tasks=task_list,
        limit=overall_limit,
        task_limits=task_limits,
        num_fewshot=parse_fewshot(num_fewshot, task_list),
        data_dir=data_dir.expanduser().resolve() if data_dir else None,
        batch_size=batch_size,
        ppl_context=ppl_context,
        results_root=results_dir,
        allow_other_hardware=allow_other_hardware,
        use_cache=not no_cache,
        threads=threads,
        backend=backend,
        repeats_per_block=repeats_per_block,
    )
    models: list[Optional[str]] = list(_split(model)) or [None]
    described = (f"{len(models)} base model(s), profile(s) {', '.join(p.name for p in profiles)}, tasks {', '.join(task_list)}"
                 + (f", limit {', '.join(_split(limit))}" if limit else ""))
    try:
        if executor == "ray":
            failed = _bench_on_ray(models, recipe, _split(variant), profiles, config, described, cache_dir, ray_address,
                                   wait_for_hardware, max_retries, trust_remote_code)
        else:
            failed = _bench_here(models, recipe, _split(variant), profiles, config, ", ".join(_split(limit)), trust_remote_code)
    except TaskError as err:
        typer.echo(f"kompakt bench: {err}", err=True)
        raise typer.Exit(2) from None
    if failed:
        raise typer.Exit(1)


def _check_executor(executor: str, ray_address: Optional[str], wait_for_hardware: float, max_retries: int) -> None:
    if executor not in ("local", "ray"):
        raise typer.BadParameter(f"{executor!r}: choose local or ray", param_hint="--executor")
    if executor == "local":
        given = [name for name, value, default in (("--ray-address", ray_address, None), ("--wait-for-hardware", wait_for_hardware, 0.0),
                                                  ("--max-retries", max_retries, 1)) if value != default]
        if given:
            raise typer.BadParameter(f"{', '.join(given)} only apply with --executor ray", param_hint="--executor")


def _check_backend(backend: Optional[str]) -> None:
    if backend is not None:
        from harness.measure.backends import BACKENDS

        if backend not in BACKENDS:
            from kompakt.registry import suggest

            raise typer.BadParameter(f"unknown backend {backend!r}{suggest(backend, BACKENDS.names())}; known: {', '.join(BACKENDS.names())}",
                                     param_hint="--backend")


def _bench_here(models: list[Optional[str]], recipe: Optional[str], variants: list[str], profiles: list[Any], config: Any,
                limits: str, trust_remote_code: bool) -> bool:
    """The local executor: every base model and profile in turn, here. True when a variant failed."""
    import dataclasses

    from harness.measure.hardware import HardwareMismatch
    from harness.run.bench import run_bench
    from harness.run.plan import plan_jobs
    from harness.run.summary import find_reference, summary_table

    failed = False
    for model in models:
        try:
            base, jobs = plan_jobs(model, recipe, variants, trust_remote_code=trust_remote_code, say=typer.echo)
        except (KeyError, ValueError) as err:
            typer.echo(f"kompakt bench: {err}", err=True)
            raise typer.Exit(2) from None
        _require_methods(jobs)
        for prof in profiles:
            run = dataclasses.replace(config, profile=prof, tokenizer_path=base.path, reference_path=base.path)
            typer.echo(f"kompakt bench: {base.info.name} ({base.info.id}), {len(jobs)} variant(s), profile {prof.name}, "
                       f"tasks {', '.join(config.tasks)}" + (f", limit {limits}" if limits else ""))
            try:
                outcomes = run_bench(jobs, run, say=typer.echo)
            except HardwareMismatch as err:
                typer.echo(f"kompakt bench: {err}", err=True)
                raise typer.Exit(2) from None
            reference = find_reference(outcomes, base.info.id, prof.name, root=config.results_root)
            typer.echo("")
            typer.echo(summary_table(outcomes, reference))
            failed = failed or any(o.status.code == "failed" for o in outcomes)
    return failed


def _bench_on_ray(models: list[Optional[str]], recipe: Optional[str], variants: list[str], profiles: list[Any], config: Any,
                  described: str, cache_dir: Optional[Path], address: Optional[str], wait_for_hardware: float, max_retries: int,
                  trust_remote_code: bool) -> bool:
    """The Ray executor: one job per base model, variant and profile on a cluster. True when a job failed or was not run."""
    from harness.run.jobs import plan_cluster_jobs
    from harness.run.ray_executor import ClusterError, RayOptions, ray_accelerator_type, run_on_ray
    from harness.run.summary import find_reference, summary_table
    from kompakt import paths

    environment = {"KOMPAKT_DATA_DIR": str(Path(config.data_dir or paths.benchmarks_dir()).expanduser().resolve()),
                   "KOMPAKT_CORPORA": str(paths.corpora_dir().expanduser().resolve())}
    if cache_dir is not None:
        environment["KOMPAKT_CACHE"] = str(cache_dir.expanduser().resolve())
    if os.environ.get("KOMPAKT_BUILD_DEVICE"):
        environment["KOMPAKT_BUILD_DEVICE"] = os.environ["KOMPAKT_BUILD_DEVICE"]
    try:
        if not config.allow_other_hardware:
            for prof in profiles:
                ray_accelerator_type(prof)  # a GPU profile Ray cannot place stops the run before it starts
        specs = plan_cluster_jobs(models, recipe, variants, profiles, config, environment=environment,
                                  trust_remote_code=trust_remote_code, say=typer.echo)
    except (KeyError, ValueError, ClusterError) as err:
        typer.echo(f"kompakt bench: {str(err).strip(chr(34))}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"kompakt bench on ray: {len(specs)} job(s): {described}; {config.threads} CPU thread(s) per job; "
               f"data {environment['KOMPAKT_DATA_DIR']}, corpora {environment['KOMPAKT_CORPORA']}, "
               + (f"shared cache {environment['KOMPAKT_CACHE']}" if cache_dir else "each node's own cache"))
    options = RayOptions(address=address, wait_for_hardware=wait_for_hardware, max_retries=max_retries, shared_cache=cache_dir is not None)
    try:
        run = run_on_ray(specs, config.results_root, options, say=typer.echo)
    except ClusterError as err:
        typer.echo(f"kompakt bench: {err}", err=True)
        raise typer.Exit(2) from None
    groups: dict[tuple[str, str], list[Any]] = {}
    for report in run.jobs:
        groups.setdefault((report.spec.base_id, report.spec.profile.name), []).extend(report.outcomes)
    for (base_id, prof), outcomes in groups.items():
        if outcomes:
            typer.echo(f"\n{base_id} under profile {prof}:")
            typer.echo(summary_table(outcomes, find_reference(outcomes, base_id, prof, root=config.results_root)))
    states = [r.state for r in run.jobs]
    typer.echo("\nkompakt bench on ray: " + ", ".join(f"{states.count(s)} {s.replace('_', ' ')}" for s in dict.fromkeys(states)))
    return any(r.state in ("failed", "lost", "not_run") or any(o.status.code == "failed" for o in r.outcomes) for r in run.jobs)
