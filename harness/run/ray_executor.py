"""``kompakt bench --executor ray``: the jobs of a run (:mod:`harness.run.jobs`) as tasks on a Ray cluster.

1. Connect: ``--ray-address`` (``ray://...`` for Ray Client, or ``host:port``), else ``$RAY_ADDRESS``, else the
   cluster started on this machine with ``ray start --head``; ``local`` starts a cluster for this run alone.
2. Skip every job whose results are already in the results folder (:func:`harness.run.jobs.finished_results`):
   running the same command again finishes what is missing and writes nothing twice.
3. Place each job from its profile (:func:`placement`): a GPU profile asks for one GPU of the profile's
   accelerator type, as Ray names it (``a100`` -> ``accelerator_type:A100``, ``t4`` -> ``accelerator_type:T4``),
   every job for ``--threads`` CPUs, the thread count it pins. A job whose hardware no node offers is not sent,
   and says so (Ray would keep it pending forever), unless ``--wait-for-hardware`` gives an autoscaler time to
   add such a node; ``--allow-other-hardware`` places it on other hardware instead, labelled so in its results.
4. Check every node that may run a job before sending any (:mod:`harness.run.machines`): the evaluation data
   and calibration text hash alike everywhere, a local base model is there, the cache is writable.
5. With a cache every node shares (``--cache-dir``), build each step prefix that several jobs need once, as a
   CPU task those jobs wait for.
6. Run the jobs. As each ends, what it sent back is checked and written into the results folder atomically
   (:func:`harness.run.results_writer.write_job_files`). A job whose worker dies (killed, its node lost, out of
   memory) is retried by Ray up to ``--max-retries`` times, then recorded with the reason (``failed``, or
   ``does_not_fit`` when Ray's memory monitor stopped it on a node with at least the profile's memory budget);
   a job that raises is recorded as failed; the other jobs go on.
7. One progress bar over the jobs, with a line per job as it starts (node, process) and ends (status, file).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kompakt import paths
from kompakt.profiles import Profile
from kompakt.results import ResultsFile, Status

from harness.run.bench import VariantOutcome
from harness.run.jobs import (JobReport, JobResult, JobSpec, JobStart, PrefixBuild, finished_results, plan_prefix_builds,
                              record_lost_job, run_job, run_prefix_build)
from harness.run.machines import MachineCheck, MachineReport, compare_machines, machine_check, machine_report
from harness.run.results_writer import JobFilesError, write_job_files


class ClusterError(RuntimeError):
    """The cluster cannot run the jobs; the message names the node and what it lacks, and how to fix it."""


@dataclass(frozen=True)
class RayOptions:
    """How ``kompakt bench`` uses the cluster."""

    address: str | None = None
    """Ray's address; None: ``$RAY_ADDRESS``, else the cluster running on this machine; ``local``: start one for the run."""
    wait_for_hardware: float = 0.0
    """Seconds a job whose hardware no node offers may wait for an autoscaler to add it (0: it is not sent)."""
    max_retries: int = 1
    """How often Ray runs a job again whose worker died (never one that raised)."""
    shared_cache: bool = False
    """Every node reads and writes the same cache (``--cache-dir``): shared step prefixes are built once."""
    poll_seconds: float = 0.5
    """How often the driver looks at the jobs' progress."""


@dataclass(frozen=True)
class Placement:
    """What one job asks Ray for."""

    num_cpus: float
    """CPUs, the thread count the job pins."""
    num_gpus: float = 0
    """GPUs (one for a GPU profile)."""
    accelerator_type: str | None = None
    """Ray's accelerator type (``A100``, ``T4``); None: any."""

    def resources(self) -> dict[str, float]:
        """The Ray resources it needs on one node (an accelerator type is the resource ``accelerator_type:<type>``)."""
        out = {"CPU": float(self.num_cpus)}
        if self.num_gpus:
            out["GPU"] = float(self.num_gpus)
        if self.accelerator_type:
            out[f"accelerator_type:{self.accelerator_type}"] = 0.001  # as Ray asks for it
        return out

    def options(self) -> dict[str, Any]:
        """Keyword arguments of Ray's ``.options()``."""
        out: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.accelerator_type:
            out["accelerator_type"] = self.accelerator_type
        return out

    def describe(self) -> str:
        cpus = f"{self.num_cpus:g} CPU{'s' if self.num_cpus != 1 else ''}"
        if not self.num_gpus:
            return cpus
        gpu = f"1 GPU of type {self.accelerator_type} (Ray resource accelerator_type:{self.accelerator_type})" if self.accelerator_type else "1 GPU"
        return f"{gpu} and {cpus}"


def ray_accelerator_types() -> dict[str, str]:
    """Ray's accelerator type names (``ray.util.accelerators``), keyed by their lower-case form."""
    from ray.util import accelerators

    return {v.lower(): v for k, v in vars(accelerators).items() if k.isupper() and isinstance(v, str)}


def ray_accelerator_type(profile: Profile, known: dict[str, str] | None = None) -> str | None:
    """The Ray accelerator type a profile's jobs ask for: its ``accelerator_pattern`` as Ray names the GPU
    (None for a CPU profile)."""
    if profile.device == "cpu":
        return None
    known = known if known is not None else ray_accelerator_types()
    found = known.get((profile.accelerator_pattern or "").lower())
    if found is None:
        raise ClusterError(
            f"profile {profile.name}: accelerator_pattern {profile.accelerator_pattern!r} is not one of Ray's accelerator types, "
            f"so its jobs cannot be placed on a cluster. Set it to one of: {', '.join(sorted(known.values()))} "
            "(ray.util.accelerators), or run with --allow-other-hardware."
        )
    return found


def fits(p: Placement, resources: dict[str, float]) -> bool:
    """Whether a node with ``resources`` (its totals) can ever run a job placed as ``p``."""
    return all(resources.get(k, 0.0) >= v for k, v in p.resources().items())


def placement(profile: Profile, threads: int | None, allow_other: bool, nodes: list[dict[str, float]],
              known: dict[str, str] | None = None) -> Placement:
    """What a job under ``profile`` asks for: one GPU of the profile's type (GPU profiles) and ``threads`` CPUs.
    With ``allow_other`` and no node of that type, any GPU (the results name it)."""
    cpus = float(threads or 1)
    if profile.device == "cpu":
        return Placement(cpus)
    if not allow_other:
        return Placement(cpus, 1, ray_accelerator_type(profile, known))
    known = known if known is not None else ray_accelerator_types()
    exact = known.get((profile.accelerator_pattern or "").lower())
    candidates = ([Placement(cpus, 1, exact)] if exact else []) + [Placement(cpus, 1)]  # a GPU profile needs a GPU
    return next((c for c in candidates if any(fits(c, n) for n in nodes)), candidates[0])


def _node_summary(nodes: list[dict[str, Any]]) -> str:
    parts = []
    for n in nodes:
        res = n["Resources"]
        shown = [f"CPU {res.get('CPU', 0):g}"] + ([f"GPU {res['GPU']:g}"] if res.get("GPU") else [])
        shown += [k for k in res if k.startswith("accelerator_type:")]
        parts.append(f"{n['NodeManagerAddress']} ({', '.join(shown)})")
    return "; ".join(parts) or "none"


# --------------------------------------------------------------------------- what runs on the workers


class JobBoard:
    """A Ray actor where each job says where it runs as it starts; the driver reads it for its progress lines and
    to record a job whose worker died."""

    def __init__(self) -> None:
        self._started: dict[str, JobStart] = {}

    def started(self, key: str, start: JobStart) -> None:
        self._started[key] = start

    def snapshot(self) -> dict[str, JobStart]:
        return dict(self._started)


def _ray_job(board: Any, spec: JobSpec, *prefixes: tuple[str | None, tuple[str, ...]]) -> JobResult:
    """A Ray task: one job, after the shared prefixes it waits for (Ray passes their results in)."""
    import ray

    prefix_error = next((err for err, _ in prefixes if err), None)
    return run_job(spec, prefix_error=prefix_error, node=ray.util.get_node_ip_address(),
                   on_start=lambda start: ray.get(board.started.remote(spec.key, start)))


def _ray_prefix_build(build: PrefixBuild, *after: tuple[str | None, tuple[str, ...]]) -> tuple[str | None, tuple[str, ...]]:
    """A Ray task: one shared prefix, after the shorter one it extends."""
    failed = next((err for err, _ in after if err), None)
    return (failed, ()) if failed else run_prefix_build(build)


def _ray_machine_report(check: MachineCheck) -> MachineReport:
    import ray

    return machine_report(check, node=ray.util.get_node_ip_address())


# --------------------------------------------------------------------------- the driver


def connect(address: str | None) -> bool:
    """Connect this process to Ray; True when it started (or joined) a cluster it must leave at the end."""
    import ray

    if ray.is_initialized():
        return False
    if address == "local":
        ray.init(log_to_driver=False, include_dashboard=False)
        return True
    target = address or os.environ.get("RAY_ADDRESS") or "auto"
    try:
        ray.init(address=target, log_to_driver=False)
    except Exception as err:  # ConnectionError, or a Ray Client error
        raise ClusterError(
            f"could not connect to a Ray cluster at {target!r}: {err}. Start one on this machine with "
            "`ray start --head --num-cpus 2` (or see the README, \"Measuring on a cluster\"), name it with --ray-address, "
            "or pass --ray-address local to start one for this run. A cluster with token authentication (Ray's default for "
            "clusters that ray.init starts) also needs RAY_AUTH_MODE=token here, with its token in RAY_AUTH_TOKEN or "
            "~/.ray/auth_token."
        ) from None
    return True


@dataclass
class ClusterRun:
    """What a cluster run did."""

    jobs: list[JobReport]
    """One report per job, in the order planned."""
    prefix_builds: dict[str, tuple[str | None, tuple[str, ...]]] = field(default_factory=dict)
    """Shared prefix -> (its error or None, its build events)."""
    machines: list[MachineReport] = field(default_factory=list)
    """What each node that could run a job holds."""
    warnings: list[str] = field(default_factory=list)
    """What the nodes differ in that does not stop the run (library versions, data loaded from the hub)."""


def run_on_ray(specs: list[JobSpec], results_root: Path | None, options: RayOptions = RayOptions(),
               say: Callable[[str], None] = print) -> ClusterRun:
    """Run ``specs`` on the cluster and write what they measure into ``results_root``."""
    from harness.requirements import require

    require("ray", "bench", purpose="kompakt bench --executor ray")
    import ray

    leave = connect(options.address)
    try:
        return _run(specs, results_root, options, say)
    finally:
        if leave:
            ray.shutdown()


def _run(specs: list[JobSpec], root: Path | None, options: RayOptions, say: Callable[[str], None]) -> ClusterRun:
    import ray

    reports = _already_done(specs, root)
    todo = [s for s in specs if s.key not in reports]
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    resources = [n["Resources"] for n in nodes]
    known = ray_accelerator_types()
    placed = {s.key: placement(s.profile, s.config.threads, s.config.allow_other_hardware, resources, known) for s in todo}
    homeless = {s.key for s in todo if not any(fits(placed[s.key], r) for r in resources)}
    send = []
    for spec in todo:
        if spec.key in homeless and options.wait_for_hardware <= 0:
            reports[spec.key] = JobReport(spec, "not_run", reason=_no_hardware(placed[spec.key], nodes))
        else:
            send.append(spec)
    said: dict[tuple[str, str], list[str]] = {}
    for spec in specs:
        r = reports.get(spec.key)
        if r is not None:
            said.setdefault((r.state, r.reason if r.state == "not_run" else f"{spec.key}:{r.reason}"), []).append(spec.key)
    for (state, _), keys in said.items():
        say(f"  {', '.join(keys)}: {state.replace('_', ' ')}: {reports[keys[0]].reason}")
    run = ClusterRun(jobs=[])
    able = [n for n in nodes if any(fits(placed[s.key], n["Resources"]) for s in send)]
    if send and able:
        run.machines, run.warnings = _check_nodes(send, able)
        for w in run.warnings:
            say(f"warning: {w}")

    # shared prefixes first (a shared cache only), then the jobs
    builds, waits = plan_prefix_builds(send) if options.shared_cache else ([], {})
    remote_build = ray.remote(_ray_prefix_build)
    build_refs: dict[str, Any] = {}
    for b in builds:
        deps = [build_refs[b.after]] if b.after else []
        build_refs[b.key] = remote_build.options(num_cpus=float(b.job.config.threads or 1), max_retries=options.max_retries,
                                                 name=f"kompakt build {b.key}").remote(b, *deps)
    board = ray.remote(JobBoard).options(num_cpus=0).remote()
    remote_job = ray.remote(_ray_job)
    in_flight: dict[Any, JobSpec] = {}
    for spec in send:
        deps = [build_refs[waits[spec.key]]] if spec.key in waits else []
        ref = remote_job.options(**placed[spec.key].options(), max_retries=options.max_retries, retry_exceptions=False,
                                 name=f"kompakt {spec.key}").remote(board, spec, *deps)
        in_flight[ref] = spec
    try:
        _follow(in_flight, reports, board, placed, homeless, nodes, root, options, say)
    finally:
        ray.kill(board)
    if build_refs:
        run.prefix_builds = dict(zip(build_refs, ray.get(list(build_refs.values()))))
    run.jobs = [reports[s.key] for s in specs]
    return run


def _already_done(specs: list[JobSpec], root: Path | None) -> dict[str, JobReport]:
    """The jobs whose results are in the results folder (a rerun skips them), with those results."""
    reports = {}
    for spec in specs:
        done = finished_results(spec, root) if spec.config.use_cache else None
        if done:
            found = [ResultsFile.model_validate_json(p.read_text(encoding="utf-8")) for p in done]
            reports[spec.key] = JobReport(spec, "skipped", reason="results exist: " + ", ".join(str(p) for p in done),
                                          outcomes=[VariantOutcome(r.variant.id, r.status, p, r) for p, r in zip(done, found)])
    return reports


def _check_nodes(send: list[JobSpec], nodes: list[dict[str, Any]]) -> tuple[list[MachineReport], list[str]]:
    """Every node that may run a job holds the same data (:mod:`harness.run.machines`); a :class:`ClusterError`
    naming each node that lacks something, else (the reports, warnings)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = machine_check(send)
    remote = ray.remote(_ray_machine_report)
    refs = [remote.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(check)
            for n in nodes]
    try:
        machines = ray.get(refs)
    except ray.exceptions.RayTaskError as err:
        raise ClusterError(f"checking the nodes failed: {err.cause!r}. Is kompakt (with the [harness,ray] extras) installed "
                           "on every node, in the driver's version?") from None
    problems, warnings = compare_machines(machines)
    if problems:
        raise ClusterError("the nodes cannot run these jobs (nothing was sent):\n  " + "\n  ".join(problems) +
                           "\nEvery node needs the evaluation data and calibration text at the paths the run names "
                           "(--data-dir, or KOMPAKT_SHARED / KOMPAKT_DATA_DIR / KOMPAKT_CORPORA), with the same content.")
    return machines, warnings


def _no_hardware(p: Placement, nodes: list[dict[str, Any]], waited: float = 0) -> str:
    head = f"waited {waited:.0f} s, and still no node" if waited else "no node"
    return (f"{head} of the cluster offers {p.describe()} (nodes: {_node_summary(nodes)}), so it was not run. "
            "Add a node with that hardware and run the same command again (what is done is skipped), give "
            "--wait-for-hardware SECONDS for an autoscaler to start one, or measure on other hardware with "
            "--allow-other-hardware (the results say so).")


def _follow(in_flight: dict[Any, JobSpec], reports: dict[str, JobReport], board: Any, placed: dict[str, Placement],
            homeless: set[str], nodes: list[dict[str, Any]], root: Path | None, options: RayOptions,
            say: Callable[[str], None]) -> None:
    """Wait for the jobs, one progress bar over them, and record each as it ends."""
    import ray
    from tqdm import tqdm

    total = len(reports) + len(in_flight)
    bar = tqdm(total=total, initial=len(reports), unit="job", desc="kompakt bench on ray", file=sys.stderr, dynamic_ncols=True,
               disable=None)
    line = bar.write if not bar.disable else say
    seen: set[tuple[str, int]] = set()
    sent = time.monotonic()
    starts: dict[str, JobStart] = {}
    cancelled: set[str] = set()
    try:
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=options.poll_seconds)
            starts = ray.get(board.snapshot.remote())
            for key, st in starts.items():
                if (key, st.pid) not in seen:
                    again = any(k == key for k, _ in seen)
                    seen.add((key, st.pid))
                    line(f"  {key}: {'running again' if again else 'running'} on {st.node} (process {st.pid})")
            for ref in ready:
                spec = in_flight.pop(ref)
                report = _finish(ref, spec, starts.get(spec.key), placed[spec.key], nodes, root, options)
                reports[spec.key] = report
                bar.update(1)
                line(f"  {spec.key}: {_ending(report)}")
            if options.wait_for_hardware > 0 and time.monotonic() - sent > options.wait_for_hardware:
                for ref, spec in list(in_flight.items()):
                    if spec.key in homeless and spec.key not in starts and spec.key not in cancelled:
                        cancelled.add(spec.key)
                        ray.cancel(ref)
            running = sum(1 for s in in_flight.values() if s.key in starts)
            ended = Counter(r.state.replace("_", " ") for r in reports.values())
            bar.set_postfix_str(", ".join([f"running {running}", f"waiting {len(in_flight) - running}",
                                           *(f"{state} {n}" for state, n in sorted(ended.items()))]))
    finally:
        bar.close()
        for ref in in_flight:  # interrupted: the jobs still out are stopped, nothing partial is written
            ray.cancel(ref, force=True)


def _ending(report: JobReport) -> str:
    where = f" on {report.node}" if report.node else ""
    files = [str(o.path) for o in report.outcomes if o.path]
    tail = f" -> {', '.join(files)}" if files else ""
    reason = f" ({report.reason[:300]})" if report.reason else ""
    return f"{report.state}{where}{reason}{tail}"


def _finish(ref: Any, spec: JobSpec, start: JobStart | None, placed: Placement, nodes: list[dict[str, Any]],
            root: Path | None, options: RayOptions) -> JobReport:
    """Record how a job ended: write what it sent back, or record why it did not."""
    import ray
    from ray import exceptions as rx

    try:
        result: JobResult = ray.get(ref)
    except rx.TaskCancelledError:
        return JobReport(spec, "not_run", reason=_no_hardware(placed, nodes, options.wait_for_hardware))
    except rx.RayTaskError as err:  # the job raised: a bug or a broken machine, not the variant's measurement
        cause = err.cause if getattr(err, "cause", None) is not None else err
        status = Status(code="failed", reason=f"the job raised {type(cause).__name__}: {str(cause)[:1500]}")
        return _lost(spec, start, status, "failed", root)
    except (rx.OutOfMemoryError, rx.WorkerCrashedError, rx.NodeDiedError, rx.ObjectLostError, rx.LocalRayletDiedError) as err:
        return _lost(spec, start, _died(err, spec, start, options), "lost", root)
    except rx.RayError as err:
        return _lost(spec, start, Status(code="failed", reason=f"Ray could not run the job: {type(err).__name__}: {str(err)[:1500]}"), "lost", root)
    try:
        written = write_job_files(result.files, root)
    except JobFilesError as err:
        return JobReport(spec, "failed", reason=f"what the job sent back was refused, nothing was written: {err}", node=result.node,
                         pid=result.pid, seconds=result.seconds, builds=result.builds, log=result.log)
    base = Path(root) if root else paths.results_dir()
    by_rel = {p.relative_to(base).as_posix(): p for p in written}
    outcomes = []
    for o in result.outcomes:
        path = by_rel.get(o.results_file) if o.results_file else None
        results = ResultsFile.model_validate_json(result.files[o.results_file]) if o.results_file else None
        outcomes.append(VariantOutcome(o.variant_id, o.status, path, results, o.seconds, list(o.cached_tasks)))
    state = "ok" if outcomes and all(o.status.code == "ok" for o in outcomes) else ("measured" if written else "failed")
    reason = "; ".join(f"{o.variant_id}: {o.status.code}: {o.status.reason}" for o in outcomes if o.status.reason)
    return JobReport(spec, state, reason=reason, outcomes=outcomes, node=result.node, pid=result.pid, seconds=result.seconds,
                     builds=result.builds, log=result.log)


def _died(err: Exception, spec: JobSpec, start: JobStart | None, options: RayOptions) -> Status:
    """The status of a job whose worker died after Ray's retries."""
    from ray import exceptions as rx

    from harness.measure.fit import out_of_memory

    where = f" on {start.node}" if start else ""
    tries = f" ({options.max_retries + 1} attempt{'s' if options.max_retries else ''})"
    if isinstance(err, rx.OutOfMemoryError):
        ram = start.hardware.ram_bytes if start else None
        if spec.profile.device == "cpu" and ram and ram >= spec.profile.memory_budget_bytes:
            return out_of_memory(err, spec.profile, f"(Ray's memory monitor stopped the worker{where}{tries})").status()
        return Status(code="failed", reason=(
            f"Ray's memory monitor stopped the worker{where}{tries}: the node ran out of host memory"
            + (f" ({ram / 2**30:.1f} GiB)" if ram else "")
            + f", which does not tell whether the variant fits profile {spec.profile.name}'s budget. {str(err)[:800]}"))
    what = "its node was lost" if isinstance(err, (rx.NodeDiedError, rx.LocalRayletDiedError)) else "its worker process died"
    return Status(code="failed", reason=f"{what}{where}{tries}: {type(err).__name__}: {str(err)[:1200]}")


def _lost(spec: JobSpec, start: JobStart | None, status: Status, state: str, root: Path | None) -> JobReport:
    """A job that sent nothing back: recorded in results files when it said where it ran, else only reported."""
    outcomes = record_lost_job(spec, start, status, root) if start is not None else []
    return JobReport(spec, state, reason=status.reason or "", outcomes=outcomes, node=start.node if start else None,
                     pid=start.pid if start else None)
