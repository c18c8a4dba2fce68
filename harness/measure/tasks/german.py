"""The German tasks (and Belebele's English side), as lm-eval defines them, on the local copies in ``shared/benchmarks``.

Each is one :class:`~harness.measure.tasks.lm_eval_tasks.LmEvalTask` named in
:data:`kompakt.tasks.TASKS` (suite ``german``): lm-eval's task, the local file per split, and the
splits set to null, as the data folder's ``SOURCES.md`` gives them (a split lm-eval names that has
no file here must be null: lm-eval reads the training split for few-shot examples even at 0-shot).
``mgsm_direct_de`` is generative (exact match on a generated number), not multiple choice, and is
not here yet.

Data licences (kompakt.tasks has them per task, and every figure's note repeats them where they
restrict use): Okapi's ``arc_de`` and ``truthfulqa_de`` are machine translations under CC BY-NC 4.0,
non-commercial; XNLI is CC BY-NC 4.0, non-commercial; Belebele is CC BY-SA 4.0; PAWS-X may be used
for any purpose.
"""

from __future__ import annotations

from kompakt.tasks import TASKS

from harness.measure.tasks.lm_eval_tasks import LmEvalTask


def _licence_note(name: str) -> str | None:
    info = TASKS[name]
    return f"Data licence: {info.licence}." if info.non_commercial else None


BELEBELE_ENG = LmEvalTask("belebele_eng_Latn", "belebele_eng_Latn", {"test": "belebele_eng_Latn/test.jsonl"}, (), ("acc", "acc_norm"))
BELEBELE_DEU = LmEvalTask("belebele_deu_Latn", "belebele_deu_Latn", {"test": "german/belebele_deu_Latn/test.jsonl"}, (), ("acc", "acc_norm"))
ARC_DE = LmEvalTask(
    "arc_de",
    "arc_de",
    {"train": "german/arc_de/train.jsonl", "validation": "german/arc_de/validation.jsonl", "test": "german/arc_de/test.jsonl"},
    (),
    ("acc", "acc_norm"),
    _licence_note("arc_de"),
)
TRUTHFULQA_DE_MC2 = LmEvalTask(
    "truthfulqa_de_mc2", "truthfulqa_de_mc2", {"val": "german/truthfulqa_de/val.jsonl"}, (), ("acc",), _licence_note("truthfulqa_de_mc2"),
    chance_from="mc2_labels",
)
XNLI_DE = LmEvalTask(
    "xnli_de", "xnli_de", {"validation": "german/xnli_de/validation.jsonl"}, ("training_split",), ("acc",), _licence_note("xnli_de")
)
PAWS_DE = LmEvalTask("paws_de", "paws_de", {"test": "german/paws_de/test.jsonl"}, ("training_split", "validation_split"), ("acc",))
