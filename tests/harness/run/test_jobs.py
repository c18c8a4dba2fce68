"""The pieces of a cluster run that need no cluster: what a job sends back and how the driver writes it, which
results already exist, which step prefixes are shared, where a job is placed, whether the machines agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.build.base_model import BaseModelSpec, planned_id
from harness.run.bench import BenchConfig
from harness.run.jobs import JobSpec, finished_results, plan_prefix_builds
from harness.run.machines import MachineReport, compare_machines
from harness.run.results_writer import JobFilesError, check_job_files, write_job_files
from kompakt.profiles import get_profile
from leaderboard.synthetic import make_result

RUN = "20261130T120000Z-abc123"


def _results(**overrides: Any) -> dict[str, Any]:
    return make_result("tiny", "rtn4", "cpu", run_id=RUN, **overrides)


def _bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


SAMPLES = b"PAR1 not really"
SAMPLES_NAME = f"{RUN}.samples.parquet"


def _with_samples(data: bytes = SAMPLES) -> dict[str, Any]:
    """A results file naming its per-sample file ``SAMPLES_NAME`` with the sha256 of ``data``."""
    import hashlib

    return _results(per_sample={"path": SAMPLES_NAME, "sha256": hashlib.sha256(data).hexdigest(), "rows": 3})


# --------------------------------------------------------------------------- what a job sends back


def test_a_jobs_files_are_written_as_a_local_run_writes_them(tmp_path: Path) -> None:
    from harness.run.results_writer import render, write_results
    from kompakt.results import ResultsFile

    rel = f"tiny/rtn4/cpu/{RUN}.json"
    files = {rel: _bytes(_with_samples()), f"tiny/rtn4/cpu/{SAMPLES_NAME}": SAMPLES}
    [written] = write_job_files(files, tmp_path)
    assert written == tmp_path / rel
    local = tmp_path / "local"
    write_results(ResultsFile.model_validate(_with_samples()), local)
    assert written.read_text() == (local / rel).read_text() == render(ResultsFile.model_validate(_with_samples()))
    assert (tmp_path / f"tiny/rtn4/cpu/{SAMPLES_NAME}").read_bytes() == SAMPLES
    # the same files again: refused, since a measurement is never written twice
    with pytest.raises(JobFilesError, match="already in .*never written twice"):
        write_job_files(files, tmp_path)


@pytest.mark.parametrize(("files", "message"), [
    ({"/etc/passwd.json": b"{}"}, "not a path inside the results folder"),
    ({"tiny/../../x.json": b"{}"}, "not a path inside the results folder"),
    ({"tiny\\rtn4\\x.json": b"{}"}, "not a path inside the results folder"),
    ({f"tiny/rtn4/cpu/{RUN}.json": b"{"}, "not a valid results file"),
    ({f"tiny/rtn4/cpu/{RUN}.json": _bytes(_results(status={"code": "maybe"}))}, "not a valid results file: status.code"),
    ({f"tiny/reference/cpu/{RUN}.json": _bytes(_results())}, f"must lie where its ids say, at tiny/rtn4/cpu/{RUN}.json"),
    ({f"tiny/rtn4/cpu/{RUN}.json": _bytes(_results()), "tiny/other/samples.parquet": b"x"},
     "tiny/other/samples.parquet: not the per-sample file of a results file"),
    ({f"tiny/rtn4/cpu/{RUN}.json": _bytes(_results()), f"tiny/rtn4/cpu/{SAMPLES_NAME}": SAMPLES},
     f"{SAMPLES_NAME}: not the per-sample file of a results file"),
    ({f"tiny/rtn4/cpu/{RUN}.json": _bytes(_with_samples())}, f"names the per-sample file {SAMPLES_NAME}, which the job did not send back"),
    ({f"tiny/rtn4/cpu/{RUN}.json": _bytes(_with_samples()), f"tiny/rtn4/cpu/{SAMPLES_NAME}": SAMPLES + b"!"},
     r"its sha256 is not the one .* records \(per_sample.sha256\)"),
])
def test_what_a_job_sends_back_is_checked_before_anything_is_written(tmp_path: Path, files: dict[str, bytes], message: str) -> None:
    with pytest.raises(JobFilesError, match=message):
        write_job_files(files, tmp_path)
    assert list(tmp_path.rglob("*")) == []


def test_check_job_files_sorts_results_from_the_files_beside_them(tmp_path: Path) -> None:
    results, others = check_job_files({f"tiny/rtn4/cpu/{RUN}.json": _bytes(_with_samples()), f"tiny/rtn4/cpu/{SAMPLES_NAME}": SAMPLES}, tmp_path)
    assert [str(p) for p in results] == [f"tiny/rtn4/cpu/{RUN}.json"] and [str(p) for p in others] == [f"tiny/rtn4/cpu/{SAMPLES_NAME}"]


# --------------------------------------------------------------------------- which jobs are done


def _spec(variant: str = "rtn4", steps: tuple[str, ...] = (), base_id: str = "tiny", profile: str = "cpu", **config: Any) -> JobSpec:
    settings = BenchConfig(profile=get_profile(profile), tasks=config.pop("tasks", ["winogrande", "wikitext"]), **config)
    return JobSpec(key=f"{base_id}/{variant}/{profile}", base=BaseModelSpec(id=base_id), base_id=base_id, recipe=None,
                   variant_ids=(variant,), config=settings, steps=steps, build_variant=variant if steps else None)


def _write(root: Path, run_id: str, **overrides: Any) -> Path:
    from harness.run.results_writer import write_results
    from kompakt.results import ResultsFile

    return write_results(ResultsFile.model_validate(make_result("tiny", "rtn4", "cpu", run_id=run_id, **overrides)), root)


def test_a_job_is_done_when_its_results_hold_every_task_on_the_same_documents(tmp_path: Path) -> None:
    assert finished_results(_spec(), tmp_path) is None
    path = _write(tmp_path, "20261101T000000Z-aaaaaa")
    assert finished_results(_spec(), tmp_path) == [path]
    assert finished_results(_spec(tasks=["winogrande", "arc_challenge"]), tmp_path) == [path]
    assert finished_results(_spec(tasks=["truthfulqa_mc2", "efficiency"]), tmp_path) == [path]
    assert finished_results(_spec(tasks=["wikitext2_tokens"]), tmp_path) is None  # not measured
    assert finished_results(_spec(limit=100), tmp_path) is None  # measured on all documents, asked for the first 100
    assert finished_results(_spec(num_fewshot={"winogrande": 5}), tmp_path) is None
    assert finished_results(_spec(profile="t4"), tmp_path) is None


def test_a_failed_run_is_not_done_and_a_variant_that_does_not_fit_is(tmp_path: Path) -> None:
    _write(tmp_path, "20261101T000000Z-aaaaaa", status={"code": "failed", "reason": "the worker died"}, metrics={})
    assert finished_results(_spec(), tmp_path) is None
    path = _write(tmp_path, "20261102T000000Z-bbbbbb", metrics={},
                  status={"code": "does_not_fit", "reason": "too big", "memory_needed_bytes": 2, "memory_budget_bytes": 1})
    assert finished_results(_spec(), tmp_path) == [path]


def test_a_limited_run_is_done_for_the_same_limit_only(tmp_path: Path) -> None:
    metrics = {"accuracy": [{"task": "winogrande", "metric": "acc", "value": 0.5, "n": 40, "limit": 40, "num_fewshot": 0}]}
    path = _write(tmp_path, "20261101T000000Z-aaaaaa", metrics=metrics)
    assert finished_results(_spec(tasks=["winogrande"], limit=40), tmp_path) == [path]
    assert finished_results(_spec(tasks=["winogrande"], limit=20), tmp_path) is None
    assert finished_results(_spec(tasks=["winogrande"]), tmp_path) is None
    # a limit above the data set's size is recorded as no limit (lm-eval scored everything)
    full = {"accuracy": [{"task": "winogrande", "metric": "acc", "value": 0.5, "n": 30, "num_fewshot": 0}]}
    path = _write(tmp_path, "20261102T000000Z-bbbbbb", metrics=full)
    assert finished_results(_spec(tasks=["winogrande"], limit=40), tmp_path) == [path]


# --------------------------------------------------------------------------- shared prefixes


def test_prefixes_shared_by_several_jobs_are_built_once_before_them() -> None:
    p, l, a, r = "prune", "lora", "awq", "rtn"
    specs = [_spec("p", (p,)), _spec("p-l", (p, l)), _spec("p-l-a", (p, l, a)), _spec("r", (r,)), _spec("reference"),
             _spec("p-l", (p, l), profile="t4"), _spec("r", (r,), base_id="other")]
    builds, waits = plan_prefix_builds(specs)
    assert [(b.key, b.n_steps, b.after) for b in builds] == [("tiny/p", 1, None), ("tiny/p-l", 2, "tiny/p")]
    assert waits == {"tiny/p/cpu": "tiny/p", "tiny/p-l/cpu": "tiny/p-l", "tiny/p-l-a/cpu": "tiny/p-l", "tiny/p-l/t4": "tiny/p-l"}
    # a prefix shorter than its owner's steps says how many it builds
    builds, waits = plan_prefix_builds([_spec("x-l", (p, l)), _spec("x-a", (p, a))])
    assert [(b.key, b.n_steps) for b in builds] == [("tiny/x-l[:1]", 1)] and set(waits.values()) == {"tiny/x-l[:1]"}
    assert plan_prefix_builds([_spec("p", (p,)), _spec("r", (r,))]) == ([], {})


# --------------------------------------------------------------------------- the base model's id, without loading it


def test_the_planned_id_is_the_one_resolve_gives(tiny_model_dir: Path, kompakt_env: Path) -> None:
    from harness.build.base_model import resolve

    assert planned_id(BaseModelSpec(source=str(tiny_model_dir))) == resolve(BaseModelSpec(source=str(tiny_model_dir))).info.id
    assert planned_id(BaseModelSpec(source=str(tiny_model_dir), id="tiny")) == "tiny"
    assert planned_id(BaseModelSpec(source="meta-llama/Meta-Llama-3-8B-Instruct")) == "meta-llama-3-8b-instruct"
    assert planned_id(BaseModelSpec(source="/models/Qwen2.5-7B.Q4_K_M.gguf")) == "qwen2.5-7b.q4_k_m"
    assert planned_id(BaseModelSpec()) == "smollm2-135m-instruct"


# --------------------------------------------------------------------------- the machines agree


def _report(node: str, **fields: Any) -> MachineReport:
    base: dict[str, Any] = {"data_root": f"/data/{node}", "tasks": {"arc_challenge": "aaaa", "wikitext": "hub"},
                            "texts": {"c4.jsonl||": "sha256:11"}, "versions": {"kompakt": "0.1.0", "lm_eval": "0.4.13"}}
    return MachineReport(node=node, host=node, **{**base, **fields})


def test_machines_that_agree_pass_and_a_task_on_the_hub_everywhere_is_a_warning() -> None:
    problems, warnings = compare_machines([_report("10.0.0.1"), _report("10.0.0.2")])
    assert problems == [] and warnings == ["task wikitext has no local copy on any node; each loads its hub data set (needs network access)"]


def test_a_machine_that_lacks_data_or_holds_other_data_is_named() -> None:
    reports = [
        _report("10.0.0.1"),
        _report("10.0.0.2", tasks={"arc_challenge": None, "wikitext": "bbbb"}),
        _report("10.0.0.3", tasks={"arc_challenge": "cccc", "wikitext": "hub"}, texts={"c4.jsonl||": "error: data: 'c4.jsonl' does not exist"},
                problems=["the base model /models/x does not exist there"], versions={"kompakt": "0.2.0", "lm_eval": "0.4.13"}),
    ]
    problems, warnings = compare_machines(reports)
    assert "node 10.0.0.3: the base model /models/x does not exist there" in problems
    assert "node 10.0.0.2 lacks the data of task arc_challenge (looked in /data/10.0.0.2)" in problems
    assert "the nodes hold different data for task arc_challenge: aaaa: 10.0.0.1; cccc: 10.0.0.3" in problems
    assert any(p.startswith("node 10.0.0.1 has no local copy of task wikitext in /data/10.0.0.1, which 10.0.0.2 have") for p in problems)
    assert "node 10.0.0.3: calibration text 'c4.jsonl': data: 'c4.jsonl' does not exist" in problems
    assert warnings == ["the nodes run different kompakt versions: 0.1.0: 10.0.0.1, 10.0.0.2; 0.2.0: 10.0.0.3 (each results file records its own)"]


# --------------------------------------------------------------------------- placement (Ray's names, no cluster)


KNOWN = {"a100": "A100", "t4": "T4", "h100": "H100"}


def test_a_gpu_profile_asks_for_its_gpu_type_and_a_cpu_profile_for_its_threads() -> None:
    from harness.run.ray_executor import Placement, fits, placement

    a100 = placement(get_profile("a100"), 4, False, [], KNOWN)
    assert a100 == Placement(4.0, 1, "A100")
    assert a100.resources() == {"CPU": 4.0, "GPU": 1.0, "accelerator_type:A100": 0.001}
    assert a100.options() == {"num_cpus": 4.0, "num_gpus": 1, "accelerator_type": "A100"}
    assert placement(get_profile("t4"), None, False, [], KNOWN).accelerator_type == "T4"
    assert placement(get_profile("cpu"), 2, False, [], KNOWN) == Placement(2.0)
    t4_node = {"CPU": 8.0, "GPU": 1.0, "accelerator_type:T4": 1.0}
    assert not fits(a100, t4_node) and fits(placement(get_profile("t4"), 8, False, [], KNOWN), t4_node)
    # other hardware allowed: the profile's GPU where there is one, else any GPU; never no GPU at all
    assert placement(get_profile("a100"), 4, True, [t4_node], KNOWN) == Placement(4.0, 1)
    assert placement(get_profile("a100"), 4, True, [t4_node, {"CPU": 16.0, "GPU": 1.0, "accelerator_type:A100": 1.0}], KNOWN) == a100


def test_a_gpu_profile_ray_cannot_name_is_refused_with_the_names_it_knows() -> None:
    from harness.run.ray_executor import ClusterError, ray_accelerator_type

    odd = get_profile("a100").model_copy(update={"name": "mi300", "accelerator_pattern": "MI300X|MI325"})
    with pytest.raises(ClusterError, match="profile mi300: accelerator_pattern 'MI300X|MI325' is not one of Ray's accelerator types.*A100, H100, T4"):
        ray_accelerator_type(odd, KNOWN)


# --------------------------------------------------------------------------- the command


def test_ray_options_need_the_ray_executor_and_ray_is_checked_for_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from typer.testing import CliRunner

    from harness import requirements as req
    from kompakt_cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["bench", "--ray-address", "10.0.0.1:6379"])
    assert res.exit_code == 2 and "only apply with --executor ray" in re.sub(r"[\s│╭╮╰╯─]+", " ", res.output)
    real = req.missing
    monkeypatch.setattr(req, "missing", lambda *mods: [m for m in mods if m == "ray"] + real(*mods))
    res = runner.invoke(app, ["bench", "--executor", "ray"])
    assert res.exit_code == 2
    assert "kompakt bench --executor ray needs ray" in res.output and "pip install -e '.[ray]'" in res.output
