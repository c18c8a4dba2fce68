"""What per-sample results and the KL task cost on the embedded model, and how much the compact reference misses.

Three steps, each printing one line per measurement (CPU seconds of the process, ``time.process_time``, with one
torch thread by default: on a shared machine CPU time moves far less than wall time, which is printed beside it):

- ``samples``: ARC-Challenge and TruthfulQA-MC2 on their first ``--limit`` questions, through lm-eval with and
  without ``log_samples`` (twice each, alternating), and the time to turn the logged samples into per-sample rows;
- ``kl``: the reference's distributions on the whole slice (computed and cached once), then the KL task on the
  first ``--windows`` windows for the reference and ``rtn4``;
- ``gap``: per variant (``--variant``, default rtn4, rtn8, bnb-nf4), the KL the task records (the reference's
  top 1,024 log-probabilities plus its remaining mass) against the KL over the whole vocabulary, on the whole slice.

Variants are built into the cache (``KOMPAKT_CACHE``) when missing.

Run:  python benchmarks/bench_paired_cost.py samples kl gap
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: tuple[float, float]) -> str:
    wall, cpu = _clock()
    return f"cpu {cpu - t[1]:.1f} s (wall {wall - t[0]:.1f} s)"


def samples(base, limits: dict[str, int]) -> None:
    from lm_eval.evaluator import simple_evaluate

    from harness.build.artifacts import reference_artifact
    from harness.measure.tasks import get_task
    from harness.measure.tasks.lm_eval_runner import offline_datasets, sample_rows, shared_task_manager
    from harness.run.bench import BenchConfig
    from harness.run.loading import load_for_eval, make_lm
    from kompakt.profiles import get_profile

    offline_datasets()
    config = BenchConfig(profile=get_profile("cpu"), tasks=[], batch_size=8)
    model, tokenizer = load_for_eval(reference_artifact(base), config)
    lm = make_lm(model, tokenizer, config)
    tm = shared_task_manager()
    for task, limit in limits.items():
        built = get_task(task).build(task_manager=tm)
        for _ in range(2):
            for log in (False, True):
                t = _clock()
                out = simple_evaluate(model=lm, tasks=[built], limit=limit, log_samples=log, task_manager=tm, verbosity="ERROR", bootstrap_iters=0)
                extra = ""
                if log:
                    t2 = _clock()
                    rows = sample_rows(built, task, out["samples"][task])
                    extra = f"; rows from the samples: {_since(t2)} for {len(rows)}"
                print(f"{task}, first {limit}, log_samples={log}: {_since(t)}{extra}", flush=True)


def kl(base, recipe, windows: int) -> None:
    from harness.build.artifacts import build, reference_artifact
    from harness.measure.tasks import TaskContext
    from harness.measure.tasks import kl_divergence as kd
    from harness.measure.tasks.token_perplexity import wikitext2_text
    from harness.run.bench import BenchConfig
    from harness.run.loading import load_for_eval
    from kompakt.profiles import get_profile

    config = BenchConfig(profile=get_profile("cpu"), tasks=[], task_limits={kd.TASK_NAME: windows}, reference_path=base.path,
                         tokenizer_path=base.path)
    data = kd.WIKITEXT2_KL.fingerprint(None)
    for name in ("reference", "rtn4"):
        artifact = reference_artifact(base) if name == "reference" else build(recipe, name, base=base, show_progress=False)
        model, tokenizer = load_for_eval(artifact, config)
        ctx = TaskContext(config=config, artifact=artifact, model=model, tokenizer=tokenizer, progress_prefix=f"{name} · ")
        if name == "reference":
            key = kd.reference_key(ctx, kd.KLSlice(), data)
            path = kd.reference_path(key, base.info.id)
            path.unlink(missing_ok=True)
            t = _clock()
            kd.reference_distributions(ctx, kd.KLSlice(), wikitext2_text(), data)
            print(f"reference distributions, whole slice: {_since(t)}; {path.stat().st_size / 2**20:.1f} MiB", flush=True)
        t = _clock()
        d = kd.WIKITEXT2_KL.run(ctx).distance[0]
        print(f"{name}: KL task on {d.windows} windows: {_since(t)}; KL {d.kl_mean:.5f}, median {d.kl_median:.5f}, p99 {d.kl_p99:.4f}, "
              f"same top token {d.top1_agreement:.4f}, remaining mass {d.tail_mass_mean:.4f}, bound {d.kl_gap_bound:.4f}", flush=True)
        del model


def gap(base, recipe, variants: list[str]) -> None:
    import torch

    from harness.build.artifacts import build, reference_artifact
    from harness.measure.tasks import TaskContext
    from harness.measure.tasks import kl_divergence as kd
    from harness.measure.tasks.token_perplexity import wikitext2_text
    from harness.run.bench import BenchConfig
    from harness.run.loading import load_for_eval
    from kompakt.profiles import get_profile

    config = BenchConfig(profile=get_profile("cpu"), tasks=[], reference_path=base.path, tokenizer_path=base.path)
    reference, tokenizer = load_for_eval(reference_artifact(base), config)
    ctx = TaskContext(config=config, artifact=reference_artifact(base), model=reference, tokenizer=tokenizer)
    ref = kd.reference_distributions(ctx, kd.KLSlice(), wikitext2_text(), kd.WIKITEXT2_KL.fingerprint(None))
    models = {v: load_for_eval(build(recipe, v, base=base, show_progress=False), config)[0] for v in variants}
    full: dict[str, list[float]] = {v: [] for v in variants}
    compact: dict[str, list[float]] = {v: [] for v in variants}
    t = _clock()
    with torch.inference_mode():
        for w in range(ref.input_ids.shape[0]):
            x = ref.input_ids[w : w + 1]
            lp = torch.log_softmax(reference(input_ids=x).logits[0].float(), -1).double()
            for v, m in models.items():
                lq = torch.log_softmax(m(input_ids=x).logits[0].float(), -1)
                full[v].append(float((lp.exp() * (lp - lq.double())).sum(-1).mean()))
                compact[v].append(float(kd.token_kl(ref.top[w], ref.ids[w], ref.log_rest[w], lq)[0].mean()))
    for v in variants:
        f, c = sum(full[v]) / len(full[v]), sum(compact[v]) / len(compact[v])
        print(f"{v}: KL over the whole vocabulary {f:.5f}, recorded {c:.5f} ({100 * (c / f - 1):+.1f} %), {len(full[v])} windows", flush=True)
    print(f"gap: {_since(t)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("steps", nargs="+", choices=["samples", "kl", "gap"], help="What to measure.")
    parser.add_argument("--limit", type=int, default=30, help="ARC-Challenge questions for `samples` (TruthfulQA: two thirds of it).")
    parser.add_argument("--windows", type=int, default=4, help="Windows the KL task scores in `kl` (the slice has 32).")
    parser.add_argument("--variant", action="append", help="Variants of all-methods for `gap` (repeatable; default rtn4, rtn8, bnb-nf4).")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1).")
    args = parser.parse_args(argv)

    import os

    import torch

    from harness.build.base_model import resolve
    from harness.build.recipes import find_recipe, load_recipe

    torch.set_num_threads(args.threads)
    print(os.popen("uptime").read().strip(), flush=True)
    base = resolve(show_progress=False)
    recipe = load_recipe(find_recipe("all-methods"))
    for step in args.steps:
        if step == "samples":
            samples(base, {"arc_challenge": args.limit, "truthfulqa_mc2": max(1, args.limit * 2 // 3)})
        elif step == "kl":
            kl(base, recipe, args.windows)
        else:
            gap(base, recipe, args.variant or ["rtn4", "rtn8", "bnb-nf4"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
