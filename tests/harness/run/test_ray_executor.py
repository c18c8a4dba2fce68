"""``kompakt bench --executor ray`` on a real local Ray cluster (two CPUs, started once for this module) and the tiny model.

Jobs run in Ray's worker processes; what they send back is written by the driver. Checked here: three jobs
give the same results files as a local run (run ids and times aside), a shared prefix is built once, a rerun
skips finished jobs; a job that raises is recorded as failed while the others finish; a worker killed
mid-job leaves no partial results file, and the rerun (or Ray's own retry) finishes it from the measurement
cache; a GPU-profile job on a cluster without that GPU is reported and not run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lm_eval")
ray = pytest.importorskip("ray", reason="Ray is not installed: scripts/setup-env.sh installs it where it has a wheel for this platform")

from fake_benchmarks import write_fake_benchmarks  # noqa: E402

import ray_plugin  # noqa: E402
from harness.run.bench import BenchConfig, run_bench  # noqa: E402
from harness.run.jobs import plan_cluster_jobs  # noqa: E402
from harness.run.plan import plan_jobs  # noqa: E402
from harness.run.ray_executor import RayOptions, run_on_ray  # noqa: E402
from kompakt.profiles import get_profile  # noqa: E402
from kompakt.results import ResultsFile  # noqa: E402

HERE = Path(__file__).resolve().parent
TASKS = ["arc_challenge", "wikitext2_tokens"]


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A local Ray cluster with two CPUs; every worker loads the test's gate task, as nodes load a user's plugin."""
    # Ray nices its workers to 15 by default (RayConfig ``worker_niceness``): beside any busy process at normal
    # priority they get almost no CPU, and this module took half an hour instead of a minute. Priority 0 keeps the
    # tests' time independent of what else runs on the machine.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _system_config={"worker_niceness": 0},
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)])},
                          "worker_process_setup_hook": "ray_plugin.register"})
    ray_plugin.register()
    yield
    ray.shutdown()
    from kompakt import tasks

    tasks.unregister("gate")


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    """A recipe on the tiny model (its variants read no calibration text), the fake data and a cache all workers share."""
    root = tmp_path_factory.mktemp("ray")
    recipe = root / "tiny.yaml"
    recipe.write_text(json.dumps({
        "base_model": {"source": str(tiny_model_dir), "id": "tiny-llama"},
        "variants": [
            {"id": "reference", "reference": True},
            {"id": "p1", "steps": [{"method": "prune_depth", "params": {"layers": [2]}}]},
            {"id": "p1-rtn", "extends": "p1", "steps": [{"method": "rtn", "params": {"bits": 4, "group_size": 32}}]},
            {"id": "broken", "steps": [{"method": "prune_depth", "params": {"layers": [9]}}]},
        ],
    }), encoding="utf-8")
    return {"recipe": recipe, "data": write_fake_benchmarks(root / "benchmarks"), "corpora": root / "corpora",
            "cache": root / "cache", "root": root}


def _config(place: dict[str, Any], **overrides: Any) -> BenchConfig:
    settings: dict[str, Any] = {"profile": get_profile("cpu"), "tasks": list(TASKS), "data_dir": place["data"], "batch_size": 4,
                                "ppl_context": 64, "command": "pytest", "threads": 1}
    return BenchConfig(**{**settings, **overrides})


def _specs(place: dict[str, Any], variants: list[str], profiles: tuple[str, ...] = ("cpu",), **overrides: Any) -> list[Any]:
    env = {"KOMPAKT_DATA_DIR": str(place["data"]), "KOMPAKT_CORPORA": str(place["corpora"]), "KOMPAKT_CACHE": str(place["cache"])}
    return plan_cluster_jobs([None], str(place["recipe"]), variants, [get_profile(p) for p in profiles], _config(place, **overrides),
                             environment=env, say=lambda _: None)


def _comparable(path: Path) -> dict[str, Any]:
    """A results file without what differs between two runs of the same measurement: the run id (and the per-sample
    file's name, made of it) and the date. The per-sample file's sha256 and row count stay: the same documents
    scored the same give the same bytes."""
    data = json.loads(path.read_text())
    run_id = data.pop("run_id")
    data["provenance"].pop("date")
    if data.get("per_sample"):
        assert data["per_sample"].pop("path") == f"{run_id}.samples.parquet"
    return data


def _per_sample_files_came_back(results: list[Path]) -> None:
    """Each results file's per-sample file lies beside it with the sha256 it records."""
    import hashlib

    for path in results:
        recorded = json.loads(path.read_text())["per_sample"]
        data = (path.parent / recorded["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == recorded["sha256"], path


def _results(root: Path) -> list[Path]:
    return sorted(root.rglob("*.json")) if root.exists() else []


def test_three_jobs_run_in_workers_and_write_what_a_local_run_writes(cluster: Any, place: dict[str, Any],
                                                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    variants = ["reference", "p1", "p1-rtn"]
    out = place["root"] / "ray-results"
    run = run_on_ray(_specs(place, variants), out, RayOptions(shared_cache=True), say=print)
    assert [r.state for r in run.jobs] == ["ok", "ok", "ok"], [r.reason for r in run.jobs]
    pids = {r.pid for r in run.jobs}
    assert os.getpid() not in pids and None not in pids
    for pid in pids:  # Ray's worker processes name themselves ray::<task>
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists():
            assert cmdline.read_bytes().startswith(b"ray::"), cmdline.read_bytes()[:80]
    # the step p1 and p1-rtn share is built once, before both jobs, which find it in the shared cache
    assert run.prefix_builds == {"tiny-llama/p1": (None, ("p1 step 1/1 built",))}
    p1, p1_rtn = run.jobs[1], run.jobs[2]
    assert p1.builds == ("p1 step 1/1 cached",) and p1_rtn.builds == ("p1-rtn step 1/2 cached", "p1-rtn step 2/2 built")
    files = _results(out)
    assert len(files) == 3 and not list(out.rglob("*.tmp*"))
    for f in files:
        ResultsFile.model_validate_json(f.read_text())
    _per_sample_files_came_back(files)  # arc_challenge is multiple choice: every job wrote one beside its results

    # the same three variants measured here, by the local executor, in a cache of their own
    monkeypatch.setenv("KOMPAKT_CACHE", str(place["root"] / "local-cache"))
    monkeypatch.setenv("KOMPAKT_CORPORA", str(place["corpora"]))
    local = place["root"] / "local-results"
    base, jobs = plan_jobs(None, str(place["recipe"]), variants, say=lambda _: None)
    outcomes = run_bench(jobs, dataclasses.replace(_config(place), results_root=local, tokenizer_path=base.path), say=lambda _: None)
    assert [o.status.code for o in outcomes] == ["ok", "ok", "ok"]
    by_variant = {p.parts[-3]: p for p in _results(out)}
    for o in outcomes:
        assert _comparable(o.path) == _comparable(by_variant[o.variant_id]), o.variant_id

    # the same command again, through the CLI: every job is skipped, nothing is written
    from typer.testing import CliRunner

    from kompakt_cli import app

    monkeypatch.setenv("KOMPAKT_DATA_DIR", str(place["data"]))
    res = CliRunner().invoke(app, ["bench", "--executor", "ray", "--recipe", str(place["recipe"]), "--variant", ",".join(variants),
                                   "--tasks", ",".join(TASKS), "--data-dir", str(place["data"]), "--batch-size", "4",
                                   "--ppl-context", "64", "--results-dir", str(out), "--cache-dir", str(place["cache"])])
    assert res.exit_code == 0, res.output
    assert res.output.count(": skipped: results exist") == 3 and "3 skipped" in res.output
    assert _results(out) == files


def test_a_job_that_raises_is_recorded_as_failed_and_the_others_finish(cluster: Any, place: dict[str, Any]) -> None:
    out = place["root"] / "raise-results"
    good, broken = _specs(place, ["reference", "broken"], tasks=["wikitext2_tokens"])
    lost = dataclasses.replace(good, key="tiny-llama/no-such-variant/cpu", variant_ids=("no-such-variant",))
    run = run_on_ray([broken, lost, good], out, RayOptions(), say=lambda _: None)
    by_key = {r.spec.key: r for r in run.jobs}
    assert by_key[good.key].state == "ok"
    # the variant's build raised: measured and recorded as failed with the reason, as a local run records it
    failed = by_key[broken.key]
    assert failed.state == "measured" and failed.outcomes[0].status.code == "failed"
    assert "building the variant failed" in failed.outcomes[0].status.reason
    record = ResultsFile.model_validate_json(failed.outcomes[0].path.read_text())
    assert record.status.code == "failed" and record.variant.steps[0].method == "prune_depth"
    # the job itself raised on its worker: recorded as failed with the exception, on the node it reported
    raised = by_key[lost.key]
    assert raised.state == "failed" and "KeyError" in raised.reason and "no-such-variant" in raised.reason
    assert raised.outcomes and raised.outcomes[0].status.code == "failed" and raised.node is not None
    assert len(_results(out)) == 3


def _kill_when_waiting(folder: Path, killed: list[int], times: int, open_after: bool) -> threading.Thread:
    """Kill the worker waiting at the gate ``times`` times, then (``open_after``) open the gate."""
    def watch() -> None:
        deadline = time.monotonic() + 240
        while len(killed) < times and time.monotonic() < deadline:
            for marker in folder.glob("gate-waiting-*"):
                pid = int(marker.read_text())
                marker.unlink()
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)
        if open_after:
            while not list(folder.glob("gate-waiting-*")) and time.monotonic() < deadline:
                time.sleep(0.05)
            (folder / ray_plugin.OPEN).touch()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_killed_worker_leaves_no_partial_file_and_the_rerun_or_rays_retry_finishes_it(cluster: Any, place: dict[str, Any],
                                                                                         tmp_path: Path) -> None:
    data = write_fake_benchmarks(tmp_path / "benchmarks")
    out = tmp_path / "results"
    [spec] = _specs(place, ["reference"], tasks=["wikitext2_tokens", "gate"], data_dir=data)
    killed: list[int] = []
    watcher = _kill_when_waiting(data, killed, times=1, open_after=False)
    [report] = run_on_ray([spec], out, RayOptions(max_retries=0), say=lambda _: None).jobs
    watcher.join()
    assert len(killed) == 1 and report.state == "lost" and report.pid == killed[0]
    assert "worker process died" in report.reason
    # no partial results file: the only file is the failed record, with the hardware the job reported
    [record] = [ResultsFile.model_validate_json(p.read_text()) for p in _results(out)]
    assert record.status.code == "failed" and record.metrics.perplexity == [] and record.hardware is not None
    assert not list(out.rglob("*.tmp*"))

    # the same job again, killed once more: Ray's retry runs it again and it finishes, the token
    # perplexity (finished before the first kill) coming from the measurement cache
    watcher = _kill_when_waiting(data, killed, times=2, open_after=True)
    [report] = run_on_ray([spec], out, RayOptions(max_retries=1), say=lambda _: None).jobs
    watcher.join()
    assert len(killed) == 2 and report.state == "ok", report.reason
    assert report.pid != killed[1]
    [outcome] = report.outcomes
    assert outcome.cached_tasks == ["wikitext2_tokens"]
    assert {p.task for p in outcome.results.metrics.perplexity} == {"wikitext2_tokens", "gate"}
    assert sorted(r.status.code for r in (ResultsFile.model_validate_json(p.read_text()) for p in _results(out))) == ["failed", "ok"]


def test_a_gpu_job_without_that_gpu_is_reported_not_run(cluster: Any, place: dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    out = place["root"] / "gpu-results"
    specs = _specs(place, ["reference"], profiles=("cpu", "a100"), tasks=["wikitext2_tokens"])
    lines: list[str] = []
    run = run_on_ray(specs, out, RayOptions(), say=lines.append)
    cpu, a100 = run.jobs
    assert cpu.state == "ok" and a100.state == "not_run"
    assert "1 GPU of type A100 (Ray resource accelerator_type:A100)" in a100.reason and "--allow-other-hardware" in a100.reason
    assert any("tiny-llama/reference/a100: not run" in line for line in lines)
    assert [p.parts[-2] for p in _results(out)] == ["cpu"]
    # given time for an autoscaler, it waits that long, then says so
    [waited] = run_on_ray([specs[1]], out, RayOptions(wait_for_hardware=1.0), say=lambda _: None).jobs
    assert waited.state == "not_run" and waited.reason.startswith("waited 1 s")
    assert [p.parts[-2] for p in _results(out)] == ["cpu"]


def test_a_node_without_the_data_is_named_before_anything_runs(cluster: Any, place: dict[str, Any], tmp_path: Path) -> None:
    from harness.run.ray_executor import ClusterError

    [spec] = _specs(place, ["reference"], tasks=["wikitext2_tokens"], data_dir=tmp_path / "nowhere")
    with pytest.raises(ClusterError) as err:
        run_on_ray([spec], tmp_path / "results", RayOptions(), say=lambda _: None)
    text = str(err.value)
    assert "lacks the data of task wikitext2_tokens" in text and str(tmp_path / "nowhere") in text and "nothing was sent" in text
    assert _results(tmp_path / "results") == []
