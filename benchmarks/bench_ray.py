"""Ray's overhead: the same ``kompakt bench`` run through the local executor and through a local Ray cluster.

Builds the variants first and computes the KL task's reference distributions once (neither timed; every run
below reads both from the same artifact cache), starts a Ray cluster with two CPUs on this machine (held by a
small process that this script starts and stops), then measures each variant with one ``kompakt bench --variant V``
per executor, the two executors back to back and their order alternating (round 1: local then ray for the first
variant, ray then local for the second, ...; the next round the other way round), so drift in the machine's load
falls on both alike. Every run measures everything again (``--no-cache``) into a results folder of its own, with
the same thread count (``--threads``, which is also the CPUs each Ray job asks for). A Ray run's time includes
everything Ray adds to a command: connecting to the cluster, the node check, sending the job, the worker's imports
and sending the files back.

Prints a Markdown table: per variant the median wall time of each executor, Ray's overhead as the ratio of the
medians and whether every score (accuracy, perplexity, KL figures and the per-sample file's sha256) is identical
in all its runs; then all variants together (the ratio of the summed medians). Absolute times drift with the
machine's load; the ratio, measured interleaved, is the figure.

    python benchmarks/bench_ray.py                       # the quick suite of `make demo`, two rounds
    python benchmarks/bench_ray.py --rounds 1 --limit 5 --extra-limit wikitext=1 wikitext2_tokens=1 wikitext2_kl=1
    python benchmarks/bench_ray.py --variants reference,rtn4 --rounds 1 --limit 5 --json /tmp/ray.json

The artifact cache is a private folder (``--cache``, default a temporary one), so nothing here touches
~/.cache/kompakt; the measurement cache is bypassed in every run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def _scores(folder: Path) -> dict[str, object]:
    """Every accuracy, perplexity and KL figure of every results file and its per-sample file's sha256, by variant."""
    out: dict[str, object] = {}
    for path in sorted(folder.rglob("*.json")):
        data = json.loads(path.read_text())
        metrics = data["metrics"]
        out[data["variant"]["id"]] = {"status": data["status"]["code"], "accuracy": metrics["accuracy"],
                                      "perplexity": metrics["perplexity"], "kl": metrics.get("distribution_distance"),
                                      "per_sample_sha256": (data.get("per_sample") or {}).get("sha256")}
    return out


def _figures(scores: dict[str, object]) -> int:
    return sum(len(v["accuracy"]) + len(v["perplexity"]) + len(v["kl"] or []) for v in scores.values())  # type: ignore[index]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="all-methods")
    # not rtn8: its packed 8-bit GPTQ checkpoint runs on gptqmodel's CPU kernel, which took 65 s for 512 tokens where
    # the reference took 5 s (2026-11-30, two threads, load average 8), and would make the run about that kernel
    ap.add_argument("--variants", default="reference,rtn4,prune-8,prune-explicit-4")
    ap.add_argument("--limit", type=int, default=40, help="documents per accuracy task (default 40, the demo's quick suite)")
    ap.add_argument("--extra-limit", nargs="*", default=["wikitext=2", "wikitext2_tokens=8"],
                    help="per-task limits, TASK=N (default: the demo's wikitext=2 wikitext2_tokens=8)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of every run, and CPUs per Ray job (default 2)")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each variant with each executor (default 2)")
    ap.add_argument("--cache", type=Path, default=None, help="artifact cache (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)

    variants = args.variants.split(",")
    work = Path(tempfile.mkdtemp(prefix="kompakt-bench-ray-"))
    cache = (args.cache or work / "cache").resolve()
    env = {**os.environ, "KOMPAKT_CACHE": str(cache)}
    limits = ["--limit", str(args.limit)] + [x for v in args.extra_limit for x in ("--limit", v)]
    t_setup = time.perf_counter()
    print(f"building {args.variants} into {cache} (not timed)", flush=True)
    for v in variants:
        subprocess.run([BIN / "kompakt", "variants", "build", args.recipe, "--variant", v, "--quiet"], env=env, check=True)
    # the KL task's reference distributions are computed once per cache; computed here, every timed run reads them
    print("the KL task's reference distributions (not timed)", flush=True)
    subprocess.run([BIN / "kompakt", "bench", "--recipe", args.recipe, "--variant", "reference", "--tasks", "wikitext2_kl",
                    "--limit", "wikitext2_kl=1", "--threads", str(args.threads), "--no-cache", "--results-dir", str(work / "warm-up")],
                   env=env, check=True, capture_output=True)
    print(f"set-up took {time.perf_counter() - t_setup:.0f} s", flush=True)

    # a two-CPU Ray cluster held by a process of this script's own, stopped at the end
    holder = subprocess.Popen(
        [sys.executable, "-c", "import ray, sys\n"
         "ctx = ray.init(num_cpus=2, include_dashboard=False)\n"
         "print(ctx.address_info['gcs_address'], flush=True)\n"
         "sys.stdin.read()\nray.shutdown()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    t0 = time.perf_counter()
    address = holder.stdout.readline().strip() if holder.stdout else ""
    start_seconds = time.perf_counter() - t0
    print(f"Ray cluster at {address} (2 CPUs), started in {start_seconds:.1f} s", flush=True)
    runs = []
    try:
        for r in range(1, args.rounds + 1):
            for i, variant in enumerate(variants):
                order = ("local", "ray") if (r + i) % 2 else ("ray", "local")
                for executor in order:
                    out = work / f"results-{r}-{variant}-{executor}"
                    cmd = [str(BIN / "kompakt"), "bench", "--recipe", args.recipe, "--variant", variant, *limits,
                           "--threads", str(args.threads), "--no-cache", "--results-dir", str(out), "--executor", executor]
                    run_env = env
                    if executor == "ray":
                        cmd += ["--ray-address", address, "--cache-dir", str(cache)]
                        run_env = {**env, "RAY_AUTH_MODE": "token"}  # the cluster ray.init started uses token authentication
                    before = _load()
                    t = time.perf_counter()
                    done = subprocess.run(cmd, env=run_env, capture_output=True, text=True)
                    seconds = time.perf_counter() - t
                    if done.returncode != 0:
                        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
                        raise SystemExit(f"{executor} run of {variant} in round {r} failed ({done.returncode})")
                    runs.append({"round": r, "variant": variant, "executor": executor, "seconds": round(seconds, 1),
                                 "load_before": before, "load_after": _load(), "scores": _scores(out)})
                    print(f"round {r} {variant:18} {executor:5}: {seconds:7.1f} s   load {before} -> {runs[-1]['load_after']}", flush=True)
    finally:
        if holder.stdin:
            holder.stdin.close()
        holder.wait(timeout=120)

    rows = []
    for variant in variants:
        mine = [x for x in runs if x["variant"] == variant]
        med = {e: statistics.median(x["seconds"] for x in mine if x["executor"] == e) for e in ("local", "ray")}
        identical = all(x["scores"] == mine[0]["scores"] for x in mine)
        rows.append({"variant": variant, "local": med["local"], "ray": med["ray"], "ratio": med["ray"] / med["local"],
                     "identical": identical, "figures": _figures(mine[0]["scores"])})
    total = {e: sum(row[e] for row in rows) for e in ("local", "ray")}
    all_identical = all(row["identical"] for row in rows)
    loads = [float(x["load_before"].split()[0]) for x in runs if x["load_before"] != "?"] or [float("nan")]
    print()
    print("| variant | local (s) | Ray (s) | Ray / local | scores identical |")
    print("| --- | ---: | ---: | ---: | --- |")
    for row in rows:
        print(f"| {row['variant']} | {row['local']:.1f} | {row['ray']:.1f} | {row['ratio']:.2f} | "
              f"{'yes' if row['identical'] else 'NO'} ({row['figures']} figures) |")
    print(f"| all {len(variants)} | {total['local']:.1f} | {total['ray']:.1f} | {total['ray'] / total['local']:.2f} | "
          f"{'yes' if all_identical else 'NO'} |")
    print()
    print(f"{dt.date.today().isoformat()}: medians of {args.rounds} run(s) per variant and executor, interleaved; "
          f"{args.threads} threads (CPUs per Ray job); limits {' '.join(limits[1::2])}; a local two-CPU Ray cluster "
          f"(started in {start_seconds:.1f} s, not included); 1-minute load average before the runs "
          f"{min(loads)} to {max(loads)} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "rows": rows, "identical": all_identical, "cluster_start_seconds": start_seconds,
                                         "variants": variants, "limits": limits, "threads": args.threads}, indent=1))
    return 0 if all_identical else 1


if __name__ == "__main__":
    sys.exit(main())
