"""Valid synthetic results files, for tests and the scaling benchmark.

The numbers are random but plausible and clearly fake (base models are called
``synthetic-...`` and provenance names the generator); nothing here ever lands
in ``data/results``.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

VARIANT_STEPS: dict[str, list[dict[str, Any]]] = {
    "reference": [],
    "rtn-int8": [{"method": "rtn", "params": {"bits": 8, "group_size": 128}}],
    "awq-4bit": [{"method": "awq", "params": {"bits": 4, "group_size": 128}}],
    "gptq-4bit": [{"method": "gptq", "params": {"bits": 4, "group_size": 128}}],
    "prune-8": [{"method": "prune_depth", "params": {"n_layers": 8}}],
    "prune-8-lora": [{"method": "prune_depth", "params": {"n_layers": 8}}, {"method": "lora", "params": {"rank": 16}}],
}

HARDWARE = {
    "cpu": {"cpu_model": "Synthetic CPU", "cpu_cores": 2, "ram_bytes": 24 * 2**30},
    "a100": {"accelerator": {"name": "NVIDIA A100-SXM4-80GB", "memory_bytes": 80 * 2**30}, "cpu_model": "Synthetic CPU", "cpu_cores": 16},
    "t4": {"accelerator": {"name": "Tesla T4", "memory_bytes": 15 * 2**30}, "cpu_model": "Synthetic CPU", "cpu_cores": 4},
}


def make_result(
    model: str = "synthetic-model",
    variant: str = "reference",
    profile: str = "cpu",
    run_id: str | None = None,
    seed: int = 0,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid measured results file as a dict; ``overrides`` replace top-level keys."""
    rng = random.Random(f"{model}/{variant}/{profile}/{seed}")
    steps = copy.deepcopy(VARIANT_STEPS.get(variant, [{"method": "rtn", "params": {"bits": 4}}]))
    quality = 1.0 - 0.05 * len(steps) - 0.02 * rng.random()
    size = 0.25 if any(s["method"] in ("awq", "gptq") for s in steps) else 0.5 if steps and steps[0]["method"] == "rtn" else 1.0
    result: dict[str, Any] = {
        "schema_version": 1,
        "run_id": run_id or f"{model}-{variant}-{profile}-{seed}",
        "status": {"code": "ok"},
        "base_model": {"id": model, "name": model.replace("-", " ").title(), "source": "local", "parameters": 135_000_000},
        "variant": {"id": variant, "is_reference": not steps, "steps": steps},
        "profile": profile,
        "hardware": copy.deepcopy(HARDWARE[profile]),
        "software": {"python": "3.11.7", "lm_eval": "0.4.13", "kompakt": "0.1.0"},
        "provenance": {"kind": "measured", "command": "synthetic", "date": f"2026-11-{1 + seed % 28:02d}T12:00:00+00:00"},
        "metrics": {
            "accuracy": [
                {"task": "winogrande", "metric": "acc", "value": round(0.55 * quality, 4), "stderr": 0.014, "n": 1267, "num_fewshot": 0, "task_version": "1.0"},
                {"task": "arc_challenge", "metric": "acc_norm", "value": round(0.30 * quality, 4), "stderr": 0.013, "n": 1172, "num_fewshot": 0, "task_version": "1.0"},
                {"task": "truthfulqa_mc2", "metric": "acc", "value": round(0.40 * quality, 4), "stderr": 0.015, "n": 817, "num_fewshot": 0, "task_version": "3.0"},
                {"task": "hellaswag", "metric": "acc_norm", "value": round(0.42 * quality, 4), "stderr": 0.005, "n": 10042, "num_fewshot": 0, "task_version": "1.0"},
            ],
            "perplexity": [{"task": "wikitext", "word_perplexity": round(20 / quality, 3), "byte_perplexity": 1.8, "bits_per_byte": 0.85, "context_length": 8192}],
            "memory": {"weights_bytes": int(540e6 * size), "disk_bytes": int(545e6 * size), "peak_host_bytes": int(900e6 * size)},
            "throughput": [
                {"backend": "pytorch", "batch_size": 1, "prompt_tokens": 256, "generated_tokens": 64,
                 "decode_tokens_per_s": {"value": round(40 / size, 2), "min": round(38 / size, 2), "max": round(42 / size, 2), "repeats": 10}},
            ],
        },
    }
    result.update(overrides)
    return result


def write_result(root: Path, result: dict[str, Any]) -> Path:
    """Write ``result`` where it belongs under ``root`` and return the path."""
    path = root / result["base_model"]["id"] / result["variant"]["id"] / result["profile"] / f"{result['run_id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def generate(root: Path, count: int, seed: int = 0) -> int:
    """Write ``count`` valid results files spread over models, variants and profiles."""
    variants = list(VARIANT_STEPS)
    profiles = list(HARDWARE)
    per_model = len(variants) * len(profiles)
    written = 0
    model = 0
    while written < count:
        for profile in profiles:
            for variant in variants:
                if written >= count:
                    return written
                write_result(root, make_result(f"synthetic-{seed}-{model:05d}", variant, profile, seed=seed))
                written += 1
        model += 1
    assert written <= per_model * model
    return written


def leaderboard_rows(*results: dict[str, Any]) -> list[dict[str, Any]]:
    """The leaderboard rows that ingesting ``results`` (results dicts) gives, without a database."""
    from kompakt.results import ResultsFile
    from leaderboard.flatten import metric_rows, run_row
    from leaderboard.summary import build_rows

    runs, metrics = [], []
    for r in results:
        parsed = ResultsFile.model_validate(r)
        runs.append(run_row(parsed, "f"))
        metrics.extend(metric_rows(parsed))
    return build_rows(runs, metrics)


def sample_rows(tasks: dict[str, int], seed: int = 0, flip: float = 0.0, base_seed: int = 0) -> list[dict[str, Any]]:
    """Per-sample rows (:mod:`kompakt.samples`) for ``tasks`` (name -> documents): a reference's answers drawn from
    ``base_seed``, of which a share ``flip`` is changed by ``seed`` (0: the reference's own answers). Tasks whose
    metric is a score (TruthfulQA's mc2) get scores instead, moved by up to ``flip``."""
    import hashlib

    from kompakt.tasks import TASKS

    base = random.Random(f"samples/{base_seed}")
    own = random.Random(f"samples/{base_seed}/{seed}")
    rows = []
    for task, n in tasks.items():
        scores = "acc" in TASKS[task].scores if task in TASKS else False
        for doc in range(n):
            gold = doc % 4
            right = base.random() < 0.4
            score = base.random()
            if flip and own.random() < flip:
                right = not right
                score = min(1.0, max(0.0, score + own.uniform(-flip, flip)))
            choice = gold if right else (gold + 1) % 4
            lls = [-5.0 - 0.1 * i for i in range(4)]
            lls[choice] = -1.0
            rows.append({
                "task": task, "doc_id": doc, "doc_hash": hashlib.sha256(f"{task}/{doc}".encode()).hexdigest()[:16],
                "loglikelihoods": lls, "choice": choice, "choice_norm": None if scores else choice,
                "acc": score if scores else float(right), "acc_norm": None if scores else float(right),
            })
    return rows


def attach_samples(root: Path, result: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Write ``rows`` as ``result``'s per-sample file where ``result`` will lie under ``root``; set its ``per_sample`` and
    make each accuracy entry of a task in ``rows`` agree with them (value = mean, n = rows). Returns ``result``."""
    from kompakt import samples as fmt

    folder = root / result["base_model"]["id"] / result["variant"]["id"] / result["profile"]
    name = fmt.file_name(result["run_id"])
    digest = fmt.write(rows, folder / name)
    result["per_sample"] = {"path": name, "sha256": digest, "rows": len(rows)}
    for entry in result["metrics"]["accuracy"]:
        values = [r[entry["metric"]] for r in rows if r["task"] == entry["task"] and r.get(entry["metric"]) is not None]
        if values:
            entry["value"] = sum(values) / len(values)
            entry["n"] = len(values)
    return result
