#!/usr/bin/env python3
"""Print the README's table of paired figures and KL divergence of the committed CPU set, from the results files.

Per variant of the embedded model under the ``cpu`` profile: for each task of the mean accuracy, the change against
the reference in points with its 95 % paired interval and the share of answers that flipped, marked when it is
significant by the rule (Holm-adjusted p < 0.05); the mean of the flips; and the KL divergence from the reference's
next-token distribution with the share of tokens whose top token agrees. The figures are the leaderboard's own
(``leaderboard.store.tables_from`` and ``leaderboard.summary.build_rows``), so the table says what the site says:

    .venv/bin/python scripts/paired-table.py            # print it
    .venv/bin/python scripts/paired-table.py --readme   # write it between the README's markers
    .venv/bin/python scripts/paired-table.py --has-paired awq4   # exit 0 when awq4's newest results file has
                                                                 # per-sample results of the four tasks and the KL
                                                                 # (scripts/measure-cpu-set.py checks more)

``tests/test_committed_results.py`` fails when the README's table differs from what this prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.build.recipes import COMMITTED_SET, variant_order  # noqa: E402

MODEL, PROFILE = "smollm2-135m-instruct", "cpu"
#: The mean accuracy's tasks at their headline metrics, as the committed set measures them.
TASKS = [("winogrande", "acc", "WinoGrande acc"), ("arc_challenge", "acc_norm", "ARC-C acc_norm"),
         ("truthfulqa_mc2", "acc", "TruthfulQA mc2"), ("hellaswag_llamacpp", "acc_norm", "HellaSwag (l.cpp) acc_norm")]
START, END = "<!-- paired-table:start -->", "<!-- paired-table:end -->"


def rows(results: Path) -> dict[str, dict]:
    """The leaderboard rows of the embedded model under the cpu profile, one per variant (its first backend's)."""
    from leaderboard.store import tables_from
    from leaderboard.summary import build_rows
    from leaderboard.validate import validate_paths

    folder = results / MODEL
    validation = validate_paths([folder], results_root=results) if folder.is_dir() else None
    if validation is None:
        return {}
    t = tables_from(validation)
    out: dict[str, dict] = {}
    for r in build_rows(t.runs, t.metrics, t.paired or []):
        if r["base_model_id"] == MODEL and r["profile"] == PROFILE:
            out.setdefault(r["variant_id"], r)
    return out


def _cell(r: dict, task: str, metric: str) -> str:
    col = f"acc_{task}_{metric}"
    if r.get(f"{col}_diff") is None:
        return "–"
    text = f"{100 * r[f'{col}_diff']:+.1f} [{100 * r[f'{col}_ci_low']:+.1f}, {100 * r[f'{col}_ci_high']:+.1f}]"
    if r.get(f"{col}_flips") is not None:
        text += f", {100 * r[f'{col}_flips']:.1f} % flipped"
    return f"**{text}**" if r.get(f"{col}_significant") else text


def table(results: Path | None = None) -> str:
    found = rows(results or ROOT / "data" / "results")
    paired = [v for v in variant_order(COMMITTED_SET) if v in found and (found[v]["paired_tests"] or found[v].get("kl_divergence") is not None)]
    if not paired:
        return (f"No variant of `{MODEL}` has per-sample results or a KL divergence under the `{PROFILE}` profile yet; "
                "the re-measurement (`scripts/measure-cpu-set.py`) adds them.\n")
    head = ["variant", *[label for _, _, label in TASKS], "flips (mean)", "significant changes", "KL (nats)", "same top token"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in paired:
        r = found[v]
        kl = "–" if r.get("kl_divergence") is None else f"{r['kl_divergence']:.4f}" + (
            f" ± {r['kl_divergence_stderr']:.4f}" if r.get("kl_divergence_stderr") is not None else "")
        top1 = "–" if r.get("top1_agreement") is None else f"{100 * r['top1_agreement']:.1f} %"
        flips = "–" if r.get("flips") is None else f"{100 * r['flips']:.1f} %"
        sig = "–" if r["is_reference"] else ("; ".join(r["significant_changes"]) or "none")
        lines.append("| " + " | ".join([v, *[_cell(r, t, m) for t, m, _ in TASKS], flips, sig, kl, top1]) + " |")
    note = ("Changes in points against the reference with their 95 % paired bootstrap interval (unadjusted) and the share of "
            "answers that flipped between right and wrong; **bold**: significant by McNemar's exact test (Wilcoxon for mc2), "
            "Holm-adjusted over the variant's tests, p < 0.05. KL: mean over 16,384 tokens of WikiText-2 ± standard error over windows.")
    return "\n".join(lines) + "\n\n" + note + "\n"


def has_paired(variant: str, results: Path | None = None) -> bool:
    """Whether the newest results file of ``variant`` has per-sample results of the four tasks and the full KL slice."""
    folder = (results or ROOT / "data" / "results") / MODEL / variant / PROFILE
    files = sorted(folder.glob("*.json"))
    for f in reversed(files):
        data = json.loads(f.read_text(encoding="utf-8"))
        if data.get("status", {}).get("code") != "ok" or not data.get("per_sample"):
            continue
        tasks = {a["task"] for a in data["metrics"].get("accuracy", [])}
        kl = [d for d in data["metrics"].get("distribution_distance") or [] if d["task"] == "wikitext2_kl" and d.get("limit") is None]
        return {t for t, _, _ in TASKS} <= tasks and bool(kl)
    return False


def write_readme(text: str) -> None:
    readme = ROOT / "README.md"
    content = readme.read_text(encoding="utf-8")
    start, end = content.index(START) + len(START), content.index(END)
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(content[:start] + "\n" + text + content[end:], encoding="utf-8")
    tmp.replace(readme)  # atomic: the README is never half written


def main(argv: list[str]) -> int:
    if argv[:1] == ["--has-paired"] and len(argv) == 2:
        return 0 if has_paired(argv[1]) else 1
    text = table()
    if argv == ["--readme"]:
        write_readme(text)
    elif argv:
        print(__doc__, file=sys.stderr)
        return 2
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
