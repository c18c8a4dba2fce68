"""The English tasks of the thesis, as lm-eval defines them, on the local copies in ``shared/benchmarks``.

Each is one :class:`~harness.measure.tasks.lm_eval_tasks.LmEvalTask` named in
:data:`kompakt.tasks.TASKS`: lm-eval's task, the local file per split (laid out as the
data folder's ``SOURCES.md`` describes), the splits set to null when those files are
used, and the metrics recorded.
"""

from __future__ import annotations

from harness.measure.tasks.lm_eval_tasks import HELLASWAG_LLAMACPP_NOTE, LLAMACPP_HELLASWAG, LlamaCppHellaSwag, LmEvalTask

WINOGRANDE = LmEvalTask("winogrande", "winogrande", {"validation": "winogrande/validation.jsonl"}, ("training_split",), ("acc",))
ARC_CHALLENGE = LmEvalTask(
    "arc_challenge", "arc_challenge", {"test": "arc_challenge/test.jsonl"}, ("training_split", "validation_split"), ("acc", "acc_norm")
)
TRUTHFULQA_MC2 = LmEvalTask(
    "truthfulqa_mc2", "truthfulqa_mc2", {"validation": "truthfulqa_mc/validation.jsonl"}, ("training_split", "test_split"), ("acc",),
    chance_from="mc2_labels",
)
HELLASWAG = LmEvalTask(
    "hellaswag", "hellaswag", {"validation": "hellaswag/validation.jsonl"}, ("training_split", "test_split"), ("acc", "acc_norm")
)
#: HellaSwag validation from llama.cpp's preprocessed text: the data folder here holds only that.
HELLASWAG_LLAMACPP = LlamaCppHellaSwag(
    "hellaswag_llamacpp", None, {"validation": LLAMACPP_HELLASWAG}, (), ("acc", "acc_norm"), HELLASWAG_LLAMACPP_NOTE
)
WIKITEXT = LmEvalTask("wikitext", "wikitext", {"test": "wikitext2/test.jsonl"}, ("training_split", "validation_split"))
