"""The table ``kompakt bench`` prints at the end: each variant's figures and their change against the reference.

Changes are shown only between comparable figures (same limit, few-shot count, task version
and window); an incomparable pair is marked ``n/c`` rather than left out silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kompakt.chance import verdict
from kompakt.metrics import Basis, comparable
from kompakt.results import ResultsFile
from kompakt.tasks import LANGUAGES, TASKS, parallel_entries

from harness.run.results_writer import latest_results

if TYPE_CHECKING:  # pragma: no cover
    from harness.run.bench import VariantOutcome


def _figures(r: ResultsFile) -> dict[str, tuple[float, Basis]]:
    """Figure key -> (value, the basis it may be compared on: :class:`kompakt.metrics.Basis`)."""
    out: dict[str, tuple[float, Basis]] = {}
    lm_eval = r.software.lm_eval if r.software else None
    for a in r.metrics.accuracy:
        out[f"{a.task}:{a.metric}"] = (a.value, Basis(a.limit, a.num_fewshot, a.task_version, lm_eval))
    for p in r.metrics.perplexity:
        for f in ("word_perplexity", "bits_per_byte", "token_perplexity"):
            v = getattr(p, f)
            if v is not None:
                out[f"{p.task}:{f}"] = (v, Basis(p.limit, None, p.task_version, lm_eval, p.context_length))
    for d in r.metrics.distribution_distance or []:
        out[f"{d.task}:kl_divergence"] = (d.kl_mean, Basis(d.limit, None, d.task_version, None, d.context_length))
    return out


def at_chance(r: ResultsFile) -> set[str]:
    """Figure keys of ``r``'s accuracies that are not significantly above or below their chance level (:mod:`kompakt.chance`)."""
    out = set()
    for a in r.metrics.accuracy:
        info = TASKS.get(a.task)
        test = info.chance_test if info is not None else "binomial"
        if verdict(a.value, a.chance_level, a.n, a.stderr, test) == "at":
            out.add(f"{a.task}:{a.metric}")
    return out


#: Columns of the summary table, in catalogue order: (figure key, heading, task kind), one per task
#: that names a headline figure (:data:`kompakt.tasks.TASKS`); a parallel-text task has one per language.
SUMMARY_COLUMNS = [
    (f"{t.name}:{t.headline}", t.short, t.kind) for t in TASKS.values() if t.headline and t.kind != "efficiency" and not t.languages
] + [
    (f"{entry}:token_perplexity", f"{t.short} {LANGUAGES.get(lang, lang)}", "perplexity")
    for t in TASKS.values() for lang, entry in parallel_entries(t).items()
]


def summary_table(outcomes: list[VariantOutcome], reference: ResultsFile | None = None) -> str:
    """Markdown table: each variant's figures and their change against the reference."""
    if reference is None:
        reference = next((o.results for o in outcomes if o.results is not None and o.results.variant.is_reference), None)
    ref = _figures(reference) if reference else {}
    present = [c for c in SUMMARY_COLUMNS if any(o.results and c[0] in _figures(o.results) for o in outcomes)]
    head = "| variant | status | " + " | ".join(h for _, h, _ in present) + " |"
    lines = [head, "|" + " --- |" * (2 + len(present))]
    marked = False
    for o in outcomes:
        figs = _figures(o.results) if o.results else {}
        chance = at_chance(o.results) if o.results else set()
        cells = []
        for key, _, kind in present:
            if key not in figs:
                cells.append("–")
                continue
            v, on = figs[key]
            is_ppl = kind == "perplexity"
            if kind == "distance":  # already a comparison with the reference
                cells.append(f"{v:.4f}")
                continue
            text = f"{v:.2f}" if is_ppl else f"{100 * v:.1f}"
            if key in chance:
                text += "°"
                marked = True
            if key in ref and o.results is not reference and not (o.results and o.results.variant.is_reference):
                r, ref_on = ref[key]
                if not comparable(on, ref_on):
                    text += " (n/c)"
                elif is_ppl:
                    text += f" ({100 * (v / r - 1):+.1f} %)"
                else:
                    text += f" ({100 * (v - r):+.1f} pp)"
            cells.append(text)
        lines.append(f"| {o.variant_id} | {o.status.code} | " + " | ".join(cells) + " |")
    note = ("Accuracies in %, changes against the reference in percentage points; perplexities with their relative change; "
            "KL: mean KL divergence from the reference's next-token distribution in nats; "
            "n/c: not comparable, the reference's figure was measured on other documents (--limit), shots, task or lm-eval "
            "version, or context length.")
    if marked:
        note += (" °: at chance, the score is not significantly different from answering at random (exact binomial test, "
                 "TruthfulQA mc2: t-test; 5 %).")
    if reference is None:
        note += " No reference measured under this profile: no changes shown."
    elif all(o.results is not reference for o in outcomes):
        note += f" Reference: results file {reference.run_id}."
    return "\n".join(lines) + "\n\n" + note


def find_reference(outcomes: list[VariantOutcome], base_id: str, profile: str, reference_id: str = "reference",
                   root: Path | None = None) -> ResultsFile | None:
    """The reference of this run, else the newest reference results file under the profile that holds
    accuracy or perplexity (one that measured only memory and speed has nothing to compare with)."""
    for o in outcomes:
        if o.results is not None and o.results.variant.is_reference:
            return o.results
    return latest_results(base_id, reference_id, profile, root,
                          where=lambda r: bool(r.metrics.accuracy or r.metrics.perplexity))
