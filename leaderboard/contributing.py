"""The generated parts of the contributing page: what CI posts on a pull request, and what gets a
submission refused, with the message each refusal gives.

Both are produced when the site is built (``leaderboard.site`` puts them where the page says
``<!-- kompakt:pr-summary -->`` and ``<!-- kompakt:refusals -->``) by running the real checks,
``kompakt diff`` and ``kompakt validate``, on small hand-made trees built here from
``leaderboard.synthetic``. The page therefore shows what the code says today and cannot go stale.
The numbers in these trees are made up and say so (base model ``example-135m``, hardware
"Synthetic CPU"); none of it is ever written under ``data/``.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leaderboard.diff import diff, markdown
from leaderboard.problems import Problem
from leaderboard.synthetic import make_result, write_result
from leaderboard.validate import validate_paths

#: The base model of the example trees.
EXAMPLE_MODEL = "example-135m"


def _result(variant: str, mean: float, run_id: str | None = None, seed: int = 0) -> dict[str, Any]:
    """A synthetic results file whose four accuracies are all ``mean``."""
    r = make_result(EXAMPLE_MODEL, variant, "cpu", run_id=run_id, seed=seed)
    for a in r["metrics"]["accuracy"]:
        a["value"] = mean
    return r


def base_results() -> list[dict[str, Any]]:
    """The leaderboard before the example pull request: a reference and three variants."""
    return [_result("reference", 0.50), _result("rtn-int8", 0.49), _result("awq-4bit", 0.47), _result("prune-8", 0.40)]


def head_results() -> list[dict[str, Any]]:
    """The example pull request adds a new variant (``gptq-4bit``) and a new measurement of ``prune-8``."""
    remeasured = _result("prune-8", 0.475, run_id=f"{EXAMPLE_MODEL}-prune-8-cpu-1", seed=1)
    return [*base_results(), _result("gptq-4bit", 0.495), remeasured]


def example_trees(root: Path) -> tuple[Path, Path]:
    """Write the example's base and head results trees under ``root``; return (base, head)."""
    base, head = root / "base", root / "head"
    for tree, results in ((base, base_results()), (head, head_results())):
        for r in results:
            write_result(tree, r)
    return base, head


def pr_summary() -> str:
    """The Markdown ``kompakt diff`` writes to the pull request's job summary for the example."""
    with tempfile.TemporaryDirectory(prefix="kompakt-example-") as tmp:
        base, head = example_trees(Path(tmp))
        return markdown(diff(base, head))


def pr_summary_block() -> str:
    """The example summary for the page, in an admonition. The summary's headings become bold lines
    so that they stay out of the page's table of contents; everything else is as CI posts it."""
    lines = []
    for line in pr_summary().splitlines():
        if line.startswith("#"):
            line = f"**{line.lstrip('#').strip()}**"
        lines.append(f"    {line}" if line else "")
    return '!!! example "What CI posts on the example pull request (generated when this site was built)"\n\n' + "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- refusals


@dataclass(frozen=True)
class Refusal:
    """One thing that gets a submission refused (or warned about), shown with the message it gives."""

    what: str
    """What the contributor did, in words."""
    command: str
    """The command that catches it: ``validate`` or ``diff``."""
    make: Callable[[Path], list[Problem]]
    """Builds a tree showing it under the given folder and returns the problems the command reports."""
    severity: str = "error"
    """``error`` refuses the pull request; ``warning`` is printed only."""


def _validate(root: Path, results: list[dict[str, Any]], rel: dict[int, str] | None = None) -> list[Problem]:
    """Write ``results`` under ``root`` (result ``i`` at ``rel[i]`` where given) and validate the tree."""
    for i, r in enumerate(results):
        if rel and i in rel:
            path = root / rel[i]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(r), encoding="utf-8")
        else:
            write_result(root, r)
    return validate_paths([root], results_root=root).report.problems


def _mutated(variant: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    r = _result(variant, 0.45)
    change(r)
    return r


def _out_of_range(root: Path) -> list[Problem]:
    return _validate(root, [_result("reference", 0.5), _mutated("awq-4bit", lambda r: r["metrics"]["accuracy"][0].update(value=1.5))])


def _misspelt(root: Path) -> list[Problem]:
    return _validate(root, [_result("reference", 0.5), _mutated("awq-4bit", lambda r: r["metrics"].update(acuracy=r["metrics"].pop("accuracy")))])


def _misplaced(root: Path) -> list[Problem]:
    r = _result("awq-4bit", 0.45)
    return _validate(root, [_result("reference", 0.5), r], {1: f"{EXAMPLE_MODEL}/awq4/cpu/{r['run_id']}.json"})


def _other_hardware(root: Path) -> list[Problem]:
    def t4_on_h100(r: dict[str, Any]) -> None:
        r["profile"] = "t4"
        r["run_id"] = r["run_id"].replace("-cpu-", "-t4-")
        r["hardware"] = {"accelerator": {"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 80 * 2**30}}

    ref = _mutated("reference", t4_on_h100)
    return _validate(root, [ref, _mutated("awq-4bit", t4_on_h100)])


def _lineage(root: Path) -> list[Problem]:
    def three_bits(r: dict[str, Any]) -> None:
        r["variant"]["steps"] = [{"method": "awq", "params": {"bits": 3, "group_size": 128}}]
        r["run_id"] = f"{EXAMPLE_MODEL}-awq-4bit-cpu-1"

    return _validate(root, [_result("reference", 0.5), _result("awq-4bit", 0.47), _mutated("awq-4bit", three_bits)])


def _run_id_taken(root: Path) -> list[Problem]:
    return _validate(root, [_result("reference", 0.5), _result("awq-4bit", 0.47, run_id="my-run"), _result("gptq-4bit", 0.48, run_id="my-run")])


def _diff_problems(root: Path, base: list[dict[str, Any]], head: list[dict[str, Any]]) -> list[Problem]:
    for tree, results in ((root / "base", base), (root / "head", head)):
        for r in results:
            write_result(tree, r)
    return diff(root / "base", root / "head").refused


def _run_id_reused(root: Path) -> list[Problem]:
    edited = base_results()
    edited[2]["metrics"]["accuracy"][0]["value"] = 0.52
    return _diff_problems(root, base_results(), edited)


def _reported_edited(root: Path) -> list[Problem]:
    def reported() -> dict[str, Any]:
        r = _result("pruned", 0.41, run_id="paper-table-2-pruned")
        r["provenance"] = {"kind": "reported", "date": "2024-08-15",
                           "citation": {"title": "A paper", "authors": "A. Author", "year": 2024, "table": "2"}}
        return r

    edited = reported()
    edited["metrics"]["accuracy"][1]["value"] = 0.42
    return _diff_problems(root, [*base_results(), reported()], [*base_results(), edited])


def _no_reference(root: Path) -> list[Problem]:
    return _validate(root, [_result("awq-4bit", 0.47)])


def _renamed_model(root: Path) -> list[Problem]:
    return _validate(root, [_result("reference", 0.5), _mutated("awq-4bit", lambda r: r["base_model"].update(name="Example 135M v2"))])


REFUSALS: list[Refusal] = [
    Refusal("A figure out of range (an accuracy above 1, a perplexity below 1, a speed of 0, NaN)", "validate", _out_of_range),
    Refusal("A misspelt or unknown key", "validate", _misspelt),
    Refusal("A file that does not lie at `<base model>/<variant>/<profile>/<run id>.json`", "validate", _misplaced),
    Refusal("A GPU profile's run on other hardware without `--allow-other-hardware`", "validate", _other_hardware),
    Refusal("A variant id that another file uses for another lineage", "validate", _lineage),
    Refusal("A run id used by two files", "validate", _run_id_taken),
    Refusal("A run id of the base branch that comes back with other content (a new measurement needs a new run id)", "diff", _run_id_reused),
    Refusal("Any change to a reported (cited) result", "diff", _reported_edited),
    Refusal("No reference under the base model's profile (no deltas can be shown)", "validate", _no_reference, "warning"),
    Refusal("Two names for one base model id", "validate", _renamed_model, "warning"),
]


def refusal_messages() -> list[tuple[Refusal, Problem]]:
    """Each refusal with the first problem of its severity that the real check reports for it."""
    out = []
    with tempfile.TemporaryDirectory(prefix="kompakt-refusals-") as tmp:
        for i, refusal in enumerate(REFUSALS):
            root = Path(tmp) / str(i)
            problems = [p for p in refusal.make(root) if p.severity == refusal.severity]
            if not problems:
                raise RuntimeError(f"the example for {refusal.what!r} no longer gives a {refusal.severity}: update leaderboard/contributing.py")
            out.append((refusal, problems[0]))
    return out


def _cell(text: str) -> str:
    return html.escape(text).replace("|", "&#124;")


def refusals_table() -> str:
    """The Markdown table of refusals for the page."""
    lines = ["| What | Caught by | Effect | The message (file: JSON path: severity: what is wrong (expected ...)) |", "|---|---|---|---|"]
    for refusal, problem in refusal_messages():
        effect = "refused" if refusal.severity == "error" else "warning only"
        lines.append(f"| {refusal.what} | `kompakt {refusal.command}` | {effect} | <code>{_cell(str(problem))}</code> |")
    return "\n".join(lines) + "\n"

