"""Ray's overhead: the same ``kompakt bench`` run through the local executor and through a local Ray cluster.

Builds the variants first (not timed), starts a Ray cluster with two CPUs on this machine (held by a small
process that this script starts and stops), then runs the same command alternately with ``--executor local``
and ``--executor ray`` (local, ray, local, ray, ...), each measuring everything again (``--no-cache``) into a
results folder of its own, with the same thread count. Prints each run's wall time and the load average, the
overhead of Ray as the ratio of the median times, and whether every score is identical across all runs.

    python benchmarks/bench_ray.py --rounds 2 --limit 20
    python benchmarks/bench_ray.py --variants reference,rtn4 --rounds 1 --limit 5 --json /tmp/ray.json

The artifact cache is a private folder (``--cache``, default a temporary one), so nothing here touches
~/.cache/kompakt; the measurement cache is bypassed in every run.
"""

from __future__ import annotations

import argparse
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
    """Every accuracy and perplexity figure of every results file, keyed by variant."""
    out: dict[str, object] = {}
    for path in sorted(folder.rglob("*.json")):
        data = json.loads(path.read_text())
        out[data["variant"]["id"]] = {"status": data["status"]["code"], "accuracy": data["metrics"]["accuracy"],
                                      "perplexity": data["metrics"]["perplexity"]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="all-methods")
    ap.add_argument("--variants", default="reference,rtn8,rtn4,prune-explicit-4")
    ap.add_argument("--limit", type=int, default=20, help="documents per accuracy task (default 20)")
    ap.add_argument("--extra-limit", nargs="*", default=["wikitext=2", "wikitext2_tokens=8"],
                    help="per-task limits (default: the demo's wikitext=2 wikitext2_tokens=8)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of every run, and CPUs per Ray job (default 2)")
    ap.add_argument("--rounds", type=int, default=2, help="pairs of runs (local, ray) (default 2)")
    ap.add_argument("--cache", type=Path, default=None, help="artifact cache (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="kompakt-bench-ray-"))
    cache = (args.cache or work / "cache").resolve()
    env = {**os.environ, "KOMPAKT_CACHE": str(cache)}
    limits = ["--limit", str(args.limit)] + [x for v in args.extra_limit for x in ("--limit", v)]
    print(f"building {args.variants} into {cache} (not timed)", flush=True)
    for v in args.variants.split(","):
        subprocess.run([BIN / "kompakt", "variants", "build", args.recipe, "--variant", v, "--quiet"], env=env, check=True)

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
            for executor in ("local", "ray"):
                out = work / f"results-{r}-{executor}"
                cmd = [str(BIN / "kompakt"), "bench", "--recipe", args.recipe, "--variant", args.variants, *limits,
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
                    raise SystemExit(f"{executor} run {r} failed ({done.returncode})")
                runs.append({"round": r, "executor": executor, "seconds": round(seconds, 1), "load_before": before,
                             "load_after": _load(), "scores": _scores(out)})
                print(f"round {r} {executor:5}: {seconds:7.1f} s   load {before} -> {runs[-1]['load_after']}", flush=True)
    finally:
        if holder.stdin:
            holder.stdin.close()
        holder.wait(timeout=120)

    med = {e: statistics.median(x["seconds"] for x in runs if x["executor"] == e) for e in ("local", "ray")}
    first = runs[0]["scores"]
    identical = all(x["scores"] == first for x in runs)
    variants = args.variants.split(",")
    print()
    print("| round | executor | wall time (s) | load average before (1, 5, 15 min) |")
    print("| --- | --- | ---: | --- |")
    for x in runs:
        print(f"| {x['round']} | {x['executor']} | {x['seconds']:.1f} | {x['load_before']} |")
    print()
    print(f"median: local {med['local']:.1f} s, ray {med['ray']:.1f} s; Ray's overhead ratio {med['ray'] / med['local']:.3f} "
          f"({args.rounds} round(s), {len(variants)} variants, {args.threads} threads; cluster start {start_seconds:.1f} s, not included)")
    print(f"every score identical across all {len(runs)} runs: {identical} "
          f"({sum(len(v['accuracy']) + len(v['perplexity']) for v in first.values())} figures per run)")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "median": med, "identical": identical, "cluster_start_seconds": start_seconds,
                                         "variants": variants, "limits": limits, "threads": args.threads}, indent=1))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
