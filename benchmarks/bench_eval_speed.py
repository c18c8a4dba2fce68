"""Speed of kompakt's lm-eval backend against lm-eval's own HF backend (HFLM), same model and data.

Runs the same lm-eval tasks (default WinoGrande, ARC-Challenge, TruthfulQA-MC2 and
HellaSwag, the first ``--limit`` documents each, local data; HellaSwag in llama.cpp's
text, ``hellaswag_llamacpp``, where only that is here) on the embedded
SmolLM2-135M-Instruct (or ``--model <folder>``) with both backends, at the same batch
size, and prints time and scores side by side as a markdown table, plus whether every
score agrees to four decimals, how many of kompakt's request groups were shared, and the
machine's load average before and after.

    python benchmarks/bench_eval_speed.py --limit 100
    python benchmarks/bench_eval_speed.py --limit 20 --threads 1 --json /tmp/speed.json

On a CPU shared with other busy processes, ``--threads 1`` is often much
faster than the default (OpenMP threads wait on each other); both backends
always run with the same setting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=None,
                    help="lm-eval tasks (default: winogrande arc_challenge truthfulqa_mc2 and hellaswag, or hellaswag_llamacpp "
                    "where only llama.cpp's text is here)")
    ap.add_argument("--limit", type=int, default=100, help="documents per task (default 100)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--model", default=None, help="local checkpoint folder (default: the embedded model)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--backends", nargs="+", default=["hflm", "kompakt"], choices=["hflm", "kompakt"])
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)

    import torch
    from lm_eval.models.huggingface import HFLM

    from harness.build.base_model import BaseModelSpec, load_model, load_tokenizer, resolve
    from harness.measure.lm_eval_model import KompaktLM
    from harness.measure.tasks.lm_eval_runner import run_task, shared_task_manager

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tasks is None:
        from harness.measure.tasks import get_task

        hellaswag = "hellaswag" if get_task("hellaswag").local_paths(args.data_dir) else "hellaswag_llamacpp"
        args.tasks = ["winogrande", "arc_challenge", "truthfulqa_mc2", hellaswag]
    load_before = os.getloadavg()
    base = resolve(BaseModelSpec(source=args.model) if args.model else None)
    model = load_model(base.path)
    tokenizer = load_tokenizer(base.path)
    tm = shared_task_manager()
    make = {
        "hflm": lambda: HFLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size),
        "kompakt": lambda: KompaktLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size),
    }
    rows: dict[str, dict[str, dict]] = {}
    groups: dict[str, tuple[int, int]] = {}
    for backend in args.backends:
        lm = make[backend]()
        if isinstance(lm, KompaktLM):
            lm.progress_prefix = "kompakt "
        for task in args.tasks:
            print(f"[{backend}] {task} ...", file=sys.stderr, flush=True)
            before = dict(lm.stats) if isinstance(lm, KompaktLM) else {}
            run = run_task(lm, task, data_dir=args.data_dir, limit=args.limit, task_manager=tm)
            scores = {a.metric: a.value for a in run.accuracy}
            if isinstance(lm, KompaktLM):
                shared, plain = (lm.stats[k] - before.get(k, 0) for k in ("groups_shared", "groups_plain"))
                print(f"[kompakt] {task}: {shared} request groups shared, {plain} in plain batches", file=sys.stderr)
                groups[task] = (shared, plain)
            for p in run.perplexity:
                scores.update({k: v for k, v in p.model_dump().items() if k.endswith("perplexity") or k == "bits_per_byte" if v is not None})
            rows.setdefault(task, {})[backend] = {"seconds": run.seconds, "n": run.n, "scores": scores}

    metrics = sorted({m for t in rows.values() for b in t.values() for m in b["scores"]})
    load_after = os.getloadavg()
    lines = [
        f"Model: {base.info.name} ({base.info.id}), {args.limit} documents per task, batch size {args.batch_size}, "
        f"torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}; load average (1, 5, 15 min) "
        f"{' '.join(f'{x:.1f}' for x in load_before)} before, {' '.join(f'{x:.1f}' for x in load_after)} after, on {os.cpu_count()} cores",
        "",
        "| task | backend | time (s) | " + " | ".join(metrics) + " |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in metrics) + " |",
    ]
    totals = {b: 0.0 for b in args.backends}
    agree = True
    for task, by_backend in rows.items():
        for backend, r in by_backend.items():
            totals[backend] += r["seconds"]
            cells = [f"{r['scores'][m]:.4f}" if m in r["scores"] else "" for m in metrics]
            lines.append(f"| {task} | {backend} | {r['seconds']:.1f} | " + " | ".join(cells) + " |")
        if len(by_backend) == 2:
            a, b = by_backend.values()
            agree &= all(round(a["scores"][m], 4) == round(b["scores"].get(m, float("nan")), 4) for m in a["scores"])
    for backend, total in totals.items():
        lines.append(f"| **all** | {backend} | {total:.1f} | " + " | ".join("" for _ in metrics) + " |")
    if len(totals) == 2 and totals["kompakt"] > 0:
        per_task = ", ".join(f"{t} {b['hflm']['seconds'] / b['kompakt']['seconds']:.2f}x" for t, b in rows.items() if len(b) == 2)
        lines += ["", f"Speed-up (HFLM time / kompakt time): {totals['hflm'] / totals['kompakt']:.2f}x in all ({per_task}); "
                  f"all scores equal to four decimals: {'yes' if agree else 'NO'}"]
    if groups:
        lines.append("kompakt's request groups shared / in plain batches: " + ", ".join(f"{t} {s} / {p}" for t, (s, p) in groups.items()))
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "totals": totals, "agree": agree, "limit": args.limit, "groups": groups,
                                         "load_before": load_before, "load_after": load_after,
                                         "batch_size": args.batch_size, "threads": torch.get_num_threads(),
                                         "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
