"""The metric catalogue and the one comparability rule."""

from __future__ import annotations

from kompakt.metrics import MEAN_TASKS, TASK_LABELS, Basis, comparable, info, lower_is_better


def test_mean_slots_come_from_the_task_catalogue() -> None:
    assert MEAN_TASKS == {
        "winogrande": (("winogrande", "acc"),),
        "arc_challenge": (("arc_challenge", "acc_norm"),),
        "truthfulqa_mc2": (("truthfulqa_mc2", "acc"),),
        "hellaswag": (("hellaswag", "acc_norm"), ("hellaswag_llamacpp", "acc_norm")),
    }
    assert TASK_LABELS["hellaswag_llamacpp"] == "HellaSwag (llama.cpp text)"
    assert info("acc:arc_challenge:acc_norm").label == "ARC-Challenge acc_norm"


def test_directions() -> None:
    assert lower_is_better("word_perplexity") and lower_is_better("weights_bytes")
    assert not lower_is_better("decode_tokens_per_s") and not lower_is_better("acc:winogrande:acc")


def test_only_figures_on_the_same_basis_are_comparable() -> None:
    full = Basis(limit=None, num_fewshot=0, task_version="1.0", lm_eval_version="0.4.9", context_length=None)
    assert comparable(full, Basis(None, 0, "1.0", "0.4.9"))
    for other in (
        Basis(40, 0, "1.0", "0.4.9"),  # fewer documents
        Basis(None, 5, "1.0", "0.4.9"),  # other shots
        Basis(None, 0, "2.0", "0.4.9"),  # another task version
        Basis(None, 0, "1.0", "0.4.10"),  # another lm-eval
        Basis(None, 0, "1.0", "0.4.9", 4096),  # another window
        Basis(None, 0, "1.0", "0.4.9", None, 4),  # another batch size
        Basis(None, 0, "1.0", "0.4.9", None, None, "llama.cpp"),  # another backend
        Basis(None, None, "1.0", "0.4.9"),  # shots not recorded: not assumed to be zero
    ):
        assert not comparable(full, other), other
