"""The committed CPU quality set of the embedded model: every variant of ``all-methods`` and the thesis' pruned-and-quantized
pipeline, measured once with everything.

One run per variant, in the order below (the reference first: the KL divergence needs its cached distributions),
of ``kompakt bench --profile cpu`` on

- the English set: WinoGrande, ARC-Challenge, TruthfulQA-MC2 (full sets) and HellaSwag in llama.cpp's text (its
  first 1000 validation items), each with its per-sample file; lm-eval's WikiText-2 word perplexity, the token
  perplexity at 2048 tokens and the KL divergence from the reference on the fixed WikiText-2 slice. The two WikiText
  perplexities are taken from a committed results file instead where one has both on the full set, measured on the
  same steps (methods and parameters; for ``rtn``/``awq``/``gptq`` on the packed artifact), as issue 19 allows: they
  are a quarter to a third of a variant's time (lm-eval's 8,192-token windows);
- the German suite (``--tasks german``: Belebele in German and English, ARC and TruthfulQA in German, XNLI, PAWS-X,
  the parallel English-German perplexity), full sets.

A variant is **done** when one of its results files under ``data/results/<model>/<variant>/cpu/`` has all of that
(every task on its full set, per-sample results for the multiple-choice tasks; the WikiText perplexities possibly from
the committed file they are taken from), measured on the artifact the recipe
builds today: for ``rtn``/``awq``/``gptq`` steps that is the packed checkpoint (the step's lineage record names its
packed ``format``), so a file measured on the dequantized float32 artifacts of before never counts. A done variant is
skipped; so the script resumes where it stopped, and each variant's tasks already measured come from the measurement
cache (``KOMPAKT_CACHE``), so an interrupted variant loses at most the task it was in. With ``--commit`` each
variant's new results and per-sample files are committed as soon as the variant lands (nothing else is staged).

Hours of work a variant on two cores; run it alone, never beside a speed measurement (``SIGSTOP`` it for one):

    nohup .venv/bin/python scripts/measure-cpu-set.py --commit > build/measure-cpu-set.log 2>&1 &
    .venv/bin/python scripts/measure-cpu-set.py --status               # what is done and what is left
    .venv/bin/python scripts/measure-cpu-set.py --variants reference,awq4 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = "smollm2-135m-instruct"
PROFILE = "cpu"
sys.path.insert(0, str(ROOT))
from harness.build.recipes import COMMITTED_SET as RECIPES  # noqa: E402  (a variant id in both is the first's: built alike)

#: The reference first (its distributions feed every KL), then the thesis' set, then the packed checkpoints, then the
#: rest of the recipe. ``rtn8``'s quality runs on TorchLinear, not on its slow 8-bit kernel (harness.build.packing.formats),
#: so it takes what a float variant takes.
ORDER = (
    "reference awq4 prune-8 prune-8-lora prune-8-lora-awq4 rtn4 gptq4 rtn8 bnb-nf4 bnb-int8 prune-explicit-4 "
    "prune-8-qlora prune-8-distill gguf-q8_0 gguf-q4_k_m prune-8-lora-gguf-q4_k_m awq4-gguf rtn4-gguf gptq4-gguf rtn8-gguf"
).split()

#: Multiple-choice tasks, each needing per-sample results; HellaSwag on its first 1000 items (the full 10,042 would
#: take as long as all the others together; 1000 keeps its standard error near 1.6 points, like the other tasks').
ENGLISH_MC = ("winogrande", "arc_challenge", "truthfulqa_mc2", "hellaswag_llamacpp")
GERMAN_MC = ("belebele_deu_Latn", "belebele_eng_Latn", "arc_de", "truthfulqa_de_mc2", "xnli_de", "paws_de")
PERPLEXITIES = ("wikitext", "wikitext2_tokens")
LIMITS = {"hellaswag_llamacpp": 1000}
TASKS = ",".join((*ENGLISH_MC, *PERPLEXITIES, "wikitext2_kl", "german"))
PACKED_METHODS = {"rtn", "awq", "gptq"}


def recipe_variants() -> dict[str, tuple[str, list[str], list[tuple[str, dict]]]]:
    """Each variant of the recipes: the recipe it is built from, the methods of its steps and the steps as results
    files record them (method, parameters), in order."""
    from harness.build.recipes import find_recipe, load_recipe

    known: dict[str, tuple[str, list[str], list[tuple[str, dict]]]] = {}
    for name in RECIPES:
        for vid, v in load_recipe(find_recipe(name)).variants.items():
            known.setdefault(vid, (name, [s.method for s in v.steps], [(s.method, s.params()) for s in v.steps]))
    return known


def signature(recorded: list[dict]) -> list[tuple[str, dict]]:
    """A results file's steps as (method, parameters), comparable with the recipe's."""
    return [(s["method"], s.get("params")) for s in recorded]


def dequantized(recorded: list[dict]) -> list[str]:
    """The ``rtn``/``awq``/``gptq`` steps of a results file measured on the dequantized float32 artifact of before
    (their lineage record names no packed ``format``)."""
    return [s["method"] for s in recorded if s["method"] in PACKED_METHODS and "format" not in (s.get("record") or {})]


def full_perplexities(data: dict) -> set[str]:
    """The WikiText perplexities of a results file measured on the full set."""
    return {p["task"] for p in data.get("metrics", {}).get("perplexity", [])
            if p.get("limit") is None and p.get("parallel_language") is None and p["task"] in PERPLEXITIES}


def perplexity_source(folder: Path, steps: list[tuple[str, dict]]) -> Path | None:
    """The newest committed quality file of the variant with both WikiText perplexities on the full set, measured on
    the steps the recipe builds today (same methods and parameters, and for ``rtn``/``awq``/``gptq`` the packed
    artifact): the re-measurement takes them from there instead of measuring them again (issue 19)."""
    for f in sorted(folder.glob("*.json"), reverse=True):
        data = json.loads(f.read_text(encoding="utf-8"))
        if data.get("status", {}).get("code") != "ok" or full_perplexities(data) != set(PERPLEXITIES):
            continue
        recorded = data.get("variant", {}).get("steps", [])
        if signature(recorded) == steps and not dequantized(recorded):
            return f
    return None


def missing(data: dict, methods: list[str], perplexities_kept: bool = False, steps: list[tuple[str, dict]] | None = None
            ) -> list[str]:
    """What a results file lacks for the set (empty: it is complete); ``perplexities_kept``: the WikiText
    perplexities come from another committed file (:func:`perplexity_source`); ``steps``: the recipe's steps with
    their parameters, which the file's must equal (else only the methods are compared)."""
    if data.get("status", {}).get("code") != "ok":
        return ["status ok"]
    gaps = []
    metrics = data.get("metrics", {})
    accuracy = {a["task"]: a for a in metrics.get("accuracy", [])}
    for task in (*ENGLISH_MC, *GERMAN_MC):
        a = accuracy.get(task)
        if a is None or a.get("limit") != LIMITS.get(task):
            gaps.append(task)
    perplexity = metrics.get("perplexity", [])
    if not perplexities_kept:
        gaps += [t for t in PERPLEXITIES if t not in full_perplexities(data)]
    if not {p.get("parallel_language") for p in perplexity} >= {"eng_Latn", "deu_Latn"}:
        gaps.append("flores_ppl")
    if not [d for d in metrics.get("distribution_distance") or [] if d["task"] == "wikitext2_kl" and d.get("limit") is None]:
        gaps.append("wikitext2_kl")
    if not data.get("per_sample"):
        gaps.append("per-sample results")
    recorded = data.get("variant", {}).get("steps", [])
    gaps += [f"the packed {m} artifact (this file measured the dequantized one)" for m in dequantized(recorded)]
    same = signature(recorded) == steps if steps is not None else [s["method"] for s in recorded] == methods
    if not same:
        gaps.append("the recipe's steps")
    return gaps


def status(variant: str, methods: list[str], results: Path, steps: list[tuple[str, dict]] | None = None) -> tuple[bool, str]:
    """Whether the variant is done, and a line saying so or what its newest file lacks. With ``steps`` (the recipe's),
    the WikiText perplexities may come from the file :func:`perplexity_source` finds."""
    folder = results / MODEL / variant / PROFILE
    source = perplexity_source(folder, steps) if steps is not None else None
    best: list[str] | None = None
    for f in sorted(folder.glob("*.json"), reverse=True):
        data = json.loads(f.read_text(encoding="utf-8"))
        if not data.get("metrics", {}).get("accuracy"):
            continue  # an efficiency-only file
        gaps = missing(data, methods, perplexities_kept=source is not None, steps=steps)
        if not gaps:
            return True, f"done ({f.name}" + (f"; WikiText perplexities from {source.name})" if source and source != f else ")")
        best = best if best is not None and len(best) <= len(gaps) else gaps
    return False, "to measure" + (f" (newest quality file lacks: {', '.join(best)})" if best else "")


def tasks_for(variant: str, steps: list[tuple[str, dict]], results: Path) -> str:
    """The ``--tasks`` of a variant's run: the whole set, less the WikiText perplexities where a committed file on the
    same steps has them (:func:`perplexity_source`)."""
    source = perplexity_source(results / MODEL / variant / PROFILE, steps)
    if source is None:
        return TASKS
    print(f"   {variant}: WikiText perplexities from {source.name}, not measured again", flush=True)
    return ",".join(t for t in TASKS.split(",") if t not in PERPLEXITIES)


def commit(variant: str, results: Path) -> None:
    """Commit the variant's new, untracked results and per-sample files (nothing else)."""
    folder = results / MODEL / variant / PROFILE
    new = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", str(folder)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    if not new:
        return
    subprocess.run(["git", "add", "--", *new], cwd=ROOT, check=True)
    message = f"Re-measure {variant} on the CPU profile: English set with per-sample results and KL, German suite"
    subprocess.run(["git", "commit", "-q", "-m", message, "--", *new], cwd=ROOT, check=True)
    print(f"== {variant}: committed {len(new)} file(s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", help="comma-separated variants (default: all of the recipe, in the set's order)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", 2)))
    parser.add_argument("--results-dir", type=Path, default=ROOT / "data" / "results")
    parser.add_argument("--status", action="store_true", help="print what is done and what is left, measure nothing")
    parser.add_argument("--commit", action="store_true", help="commit each variant's new files as it lands")
    args = parser.parse_args(argv)

    known = recipe_variants()
    wanted = args.variants.split(",") if args.variants else list(ORDER)
    unknown = [v for v in wanted if v not in known]
    if unknown:
        parser.error(f"not a variant of {' or '.join(RECIPES)}: {', '.join(unknown)} (known: {', '.join(known)})")
    todo = []
    for v in wanted:
        done, line = status(v, known[v][1], args.results_dir, known[v][2])
        print(f"{v:26s} {line}", flush=True)
        if not done:
            todo.append(v)
    if args.status or not todo:
        print(f"{len(wanted) - len(todo)} of {len(wanted)} done", flush=True)
        return 0
    kompakt = Path(sys.executable).parent / "kompakt"
    failed = []
    for i, v in enumerate(todo, 1):
        started = time.monotonic()
        print(f"== {v} ({i}/{len(todo)}): {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}", flush=True)
        cmd = [str(kompakt), "bench", "--recipe", known[v][0], "--variant", v, "--profile", PROFILE,
               "--tasks", tasks_for(v, known[v][2], args.results_dir),
               "--threads", str(args.threads), "--results-dir", str(args.results_dir),
               *[a for t, n in LIMITS.items() for a in ("--limit", f"{t}={n}")]]
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        done, line = status(v, known[v][1], args.results_dir, known[v][2])
        print(f"== {v}: exit {rc}, {line}, {(time.monotonic() - started) / 60:.0f} min", flush=True)
        if done and args.commit:
            commit(v, args.results_dir)
        if not done:
            failed.append(v)
    print(f"== finished {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; not done: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
