"""The committed CPU quality set of the embedded model: every variant of ``all-methods`` and the thesis' pruned-and-quantized
pipeline, measured once with everything.

Per variant, in the order below (the reference first: the KL divergence needs its cached distributions), three runs
of ``kompakt bench --profile cpu`` (below) on

- the English set: WinoGrande, ARC-Challenge, TruthfulQA-MC2 (full sets) and HellaSwag in llama.cpp's text (its
  first 1000 validation items), each with its per-sample file; lm-eval's WikiText-2 word perplexity, the token
  perplexity at 2048 tokens and the KL divergence from the reference on the fixed WikiText-2 slice. The two WikiText
  perplexities are taken from a committed results file instead where one has both on the full set, measured on the
  same steps (methods and parameters; for ``rtn``/``awq``/``gptq`` on the packed artifact), as issue 19 allows: they
  are a quarter to a third of a variant's time (lm-eval's 8,192-token windows);
- the German suite (``--tasks german``: Belebele in German and English, ARC and TruthfulQA in German, XNLI, PAWS-X,
  the parallel English-German perplexity), full sets.

A variant is **done** when its results files under ``data/results/<model>/<variant>/cpu/`` together have all of
that, each part (the English tasks with their per-sample file; the two WikiText perplexities, possibly from an older
committed file; the KL divergence; the German suite with its per-sample file) in one file measured on the artifact the
recipe builds today: for ``rtn``/``awq``/``gptq`` steps that is the packed checkpoint (the step's lineage record names its
packed ``format``), so a file measured on the dequantized float32 artifacts of before never counts. All parts must come
from one build where the files record which (``variant.content_hash``, the sha256 of the weights measured): GPTQ and
training can round to other weights on another CPU, so a rebuild after a move of the VM starts the variant's parts
again; the newest build counts. A variant is
measured in three runs of ``kompakt bench``, each its own results file, committed (``--commit``) as soon as it lands:
the English tasks, then the perplexities and the KL divergence, then the German suite. A part already there is
skipped; so the script resumes where it stopped, and each run's tasks already measured come from the measurement
cache (``KOMPAKT_CACHE``). A machine that loses its caches between sessions loses at most the run under way (one to
two hours on two cores), not the whole variant (three to four hours): nothing but the committed files is kept.

Hours of work a variant on two cores; run it alone, never beside a speed measurement (``SIGSTOP`` it for one):

    nohup .venv/bin/python scripts/measure-cpu-set.py --commit > build/measure-cpu-set.log 2>&1 &
    .venv/bin/python scripts/measure-cpu-set.py --status               # what is done and what is left
    .venv/bin/python scripts/measure-cpu-set.py --variants reference,awq4 --threads 1
    .venv/bin/python scripts/measure-cpu-set.py --variants gptq4 --measured-after 20261204T1800  # all again
    .venv/bin/python scripts/measure-cpu-set.py --variants gptq4 --runs perplexity,english,german  # in this order

Measuring a variant again whose committed files record no build (written before 2026-12-04), leave out ``--commit``
and commit its files together once it is done: those files still count beside the new ones, so the README's tables
would show a row of two builds until the last run lands.
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


#: The parts of the set: each is complete in one results file (:func:`part_gaps`), the parts of a variant may come from
#: different files (a part already measured is not measured again).
PARTS = ("english", "wikitext", "kl", "german")
#: The runs a variant is measured in, each one ``kompakt bench`` run and one results file, committed as it lands:
#: a lost machine costs at most the run under way. Each run's tasks, per part.
RUNS = {
    "english": {"english": ENGLISH_MC},
    "perplexity": {"wikitext": PERPLEXITIES, "kl": ("wikitext2_kl",)},
    "german": {"german": ("german",)},
}
RUN_TEXT = {"english": "English set with per-sample results", "perplexity": "WikiText perplexities and KL divergence",
            "german": "German suite with per-sample results"}


def part_gaps(data: dict, part: str) -> list[str]:
    """What a results file lacks for one part of the set (its status and steps aside: :func:`artifact_gaps`)."""
    metrics = data.get("metrics", {})
    if part == "wikitext":
        return [t for t in PERPLEXITIES if t not in full_perplexities(data)]
    if part == "kl":
        kl = [d for d in metrics.get("distribution_distance") or [] if d["task"] == "wikitext2_kl" and d.get("limit") is None]
        return [] if kl else ["wikitext2_kl"]
    accuracy = {a["task"]: a for a in metrics.get("accuracy", [])}
    gaps = [t for t in (ENGLISH_MC if part == "english" else GERMAN_MC)
            if t not in accuracy or accuracy[t].get("limit") != LIMITS.get(t)]
    if part == "german" and not {p.get("parallel_language") for p in metrics.get("perplexity", [])} >= {"eng_Latn", "deu_Latn"}:
        gaps.append("flores_ppl")
    if not data.get("per_sample"):
        gaps.append("per-sample results")
    return gaps


def artifact_gaps(data: dict, methods: list[str], steps: list[tuple[str, dict]] | None = None) -> list[str]:
    """Why a results file does not count for the variant at all: a run that did not finish, the dequantized artifact of
    before, other steps than the recipe's (``steps``: with their parameters; else only the ``methods`` are compared)."""
    if data.get("status", {}).get("code") != "ok":
        return ["status ok"]
    recorded = data.get("variant", {}).get("steps", [])
    gaps = [f"the packed {m} artifact (this file measured the dequantized one)" for m in dequantized(recorded)]
    same = signature(recorded) == steps if steps is not None else [s["method"] for s in recorded] == methods
    if not same:
        gaps.append("the recipe's steps")
    return gaps


def missing(data: dict, methods: list[str], perplexities_kept: bool = False, steps: list[tuple[str, dict]] | None = None
            ) -> list[str]:
    """What one results file lacks to hold the whole set alone (empty: it does); ``perplexities_kept``: the WikiText
    perplexities come from another committed file (:func:`perplexity_source`)."""
    head = artifact_gaps(data, methods, steps)
    if head == ["status ok"]:
        return head
    gaps: list[str] = []
    for part in PARTS:
        if part == "wikitext" and perplexities_kept:
            continue
        gaps += [g for g in part_gaps(data, part) if g not in gaps]
    return gaps + head


def found_parts(folder: Path, methods: list[str], steps: list[tuple[str, dict]] | None = None,
                after: str | None = None) -> dict[str, Path | None]:
    """Per part, the newest results file of the variant that has it, measured on the recipe's artifact (None: none);
    with ``after`` (a run id's stamp such as ``20261204T1700``), only files of runs after it count."""
    found: dict[str, Path | None] = dict.fromkeys(PARTS)
    build = None  # the newest recorded build (``variant.content_hash``): parts measured on another build do not count
    for f in sorted(folder.glob("*.json"), reverse=True):
        if after is not None and f.name[: len(after)] <= after:
            continue
        data = json.loads(f.read_text(encoding="utf-8"))
        if artifact_gaps(data, methods, steps):
            continue
        parts = [p for p in PARTS if found[p] is None and not part_gaps(data, p)]
        content = data.get("variant", {}).get("content_hash")  # null in files written before 2026-12-04: not checkable
        if not parts or (content is not None and build is not None and content != build):
            continue
        build = build or content
        for part in parts:
            found[part] = f
    return found


def perplexity_source(folder: Path, steps: list[tuple[str, dict]]) -> Path | None:
    """The newest committed quality file of the variant with both WikiText perplexities on the full set, measured on
    the steps the recipe builds today (same methods and parameters, and for ``rtn``/``awq``/``gptq`` the packed
    artifact): the re-measurement takes them from there instead of measuring them again (issue 19)."""
    return found_parts(folder, [m for m, _ in steps], steps)["wikitext"]


def status(variant: str, methods: list[str], results: Path, steps: list[tuple[str, dict]] | None = None,
           after: str | None = None) -> tuple[bool, str]:
    """Whether the variant is done (every part found), and a line naming the files it is done from, or what is left
    and what its most nearly complete quality file lacks."""
    folder = results / MODEL / variant / PROFILE
    found = found_parts(folder, methods, steps, after)
    if all(found.values()):
        files = {f: [p for p in PARTS if found[p] == f] for f in dict.fromkeys(found.values())}
        if len(files) == 1:
            return True, f"done ({next(iter(files)).name})"
        return True, "done (" + "; ".join(f"{', '.join(parts)}: {f.name}" for f, parts in files.items()) + ")"
    best: list[str] | None = None
    for f in sorted(folder.glob("*.json"), reverse=True):
        if after is not None and f.name[: len(after)] <= after:
            continue
        data = json.loads(f.read_text(encoding="utf-8"))
        if not any(data.get("metrics", {}).get(k) for k in ("accuracy", "perplexity", "distribution_distance")):
            continue  # an efficiency-only file
        gaps = missing(data, methods, perplexities_kept=found["wikitext"] is not None, steps=steps)
        best = best if best is not None and len(best) <= len(gaps) else gaps
    left = ", ".join(p for p in PARTS if not found[p])
    return False, f"to measure: {left}" + (f" (newest quality file lacks: {', '.join(best)})" if best else "")


def plan(variant: str, methods: list[str], steps: list[tuple[str, dict]] | None, results: Path,
         after: str | None = None, runs: list[str] | None = None) -> list[tuple[str, list[str]]]:
    """The runs still to do for the variant, in order (``runs``: only these, in this order; default all of
    :data:`RUNS`), each with its ``--tasks`` (the tasks of its parts not yet found)."""
    found = found_parts(results / MODEL / variant / PROFILE, methods, steps, after)
    out = []
    for run in runs or RUNS:
        tasks = [t for part, ts in RUNS[run].items() if found[part] is None for t in ts]
        if tasks:
            out.append((run, tasks))
    return out


#: The scripts that write the README's tables from the committed results files; ``tests/test_committed_results.py``
#: fails when a table is stale, so a results file is committed together with the tables it changes.
TABLE_SCRIPTS = ("scripts/quality-table.py", "scripts/paired-table.py")


def commit(variant: str, run: str, results: Path) -> None:
    """Commit the variant's new, untracked results and per-sample files of a run, with the README's tables regenerated
    from them (nothing else). A README with uncommitted edits of someone's is left alone and the tables are not
    regenerated: a warning says so, and the tables' test will fail until they are."""
    folder = results / MODEL / variant / PROFILE
    new = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", str(folder)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    if not new:
        return
    paths = list(new)
    if results.resolve() == (ROOT / "data" / "results").resolve():
        edited = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "README.md"], cwd=ROOT).returncode != 0
        if edited:
            print("== README.md has uncommitted edits: its tables were not regenerated; run "
                  + " and ".join(f"{s} --readme" for s in TABLE_SCRIPTS), flush=True)
        else:
            for script in TABLE_SCRIPTS:
                subprocess.run([sys.executable, script, "--readme"], cwd=ROOT, check=True)
            paths.append("README.md")
    subprocess.run(["git", "add", "--", *paths], cwd=ROOT, check=True)
    message = f"Re-measure {variant} on the CPU profile: {RUN_TEXT[run]}"
    subprocess.run(["git", "commit", "-q", "-m", message, "--", *paths], cwd=ROOT, check=True)
    print(f"== {variant}: committed {len(new)} file(s)" + (" and the README's tables" if "README.md" in paths else ""),
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", help="comma-separated variants (default: all of the recipe, in the set's order)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", 2)))
    parser.add_argument("--results-dir", type=Path, default=ROOT / "data" / "results")
    parser.add_argument("--status", action="store_true", help="print what is done and what is left, measure nothing")
    parser.add_argument("--commit", action="store_true", help="commit each variant's new files as it lands")
    parser.add_argument("--measured-after", metavar="STAMP",
                        help="count only results files of runs after STAMP (a run id's start, e.g. 20261204T1700): "
                             "measure every part again, from the build in the artifact cache today; pass the same "
                             "STAMP to resume")
    parser.add_argument("--runs", metavar="RUN,...",
                        help=f"only these runs, in this order (of {', '.join(RUNS)}; default all, in that order): "
                             "e.g. `perplexity` first where its figures are wanted before the rest")
    args = parser.parse_args(argv)
    after = args.measured_after
    runs = args.runs.split(",") if args.runs else None
    if runs is not None and (bad := [r for r in runs if r not in RUNS]):
        parser.error(f"--runs: not a run of the set: {', '.join(bad)} (the runs: {', '.join(RUNS)})")
    if after is not None and not (len(after) >= 8 and after[:8].isdigit()):
        parser.error(f"--measured-after {after!r}: not a run id's stamp (YYYYMMDD, optionally THHMM..., e.g. 20261204T1700)")

    known = recipe_variants()
    wanted = args.variants.split(",") if args.variants else list(ORDER)
    unknown = [v for v in wanted if v not in known]
    if unknown:
        parser.error(f"not a variant of {' or '.join(RECIPES)}: {', '.join(unknown)} (known: {', '.join(known)})")
    todo = []
    for v in wanted:
        done, line = status(v, known[v][1], args.results_dir, known[v][2], after)
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
        for run, tasks in plan(v, known[v][1], known[v][2], args.results_dir, after, runs):
            print(f"== {v} ({i}/{len(todo)}), {run} ({','.join(tasks)}): {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
                  flush=True)
            cmd = [str(kompakt), "bench", "--recipe", known[v][0], "--variant", v, "--profile", PROFILE,
                   "--tasks", ",".join(tasks), "--threads", str(args.threads), "--results-dir", str(args.results_dir),
                   *[a for t, n in LIMITS.items() if t in tasks for a in ("--limit", f"{t}={n}")]]
            rc = subprocess.run(cmd, cwd=ROOT).returncode
            landed = all(r != run for r, _ in plan(v, known[v][1], known[v][2], args.results_dir, after, runs))
            print(f"== {v}, {run}: exit {rc}, {'landed' if landed else 'NOT complete'}", flush=True)
            if landed and args.commit:
                commit(v, run, args.results_dir)
            if not landed:
                break  # the next run would not make the variant done either; go on with the next variant
        done, line = status(v, known[v][1], args.results_dir, known[v][2], after)
        print(f"== {v}: {line}, {(time.monotonic() - started) / 60:.0f} min", flush=True)
        if not done:
            failed.append(v)
    print(f"== finished {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; not done: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
