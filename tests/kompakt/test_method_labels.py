"""The method catalogue's one-line step labels (the lineage in a few words)."""

from __future__ import annotations

import pytest

from kompakt.methods import METHODS, short_label


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("awq", {"bits": 4, "group_size": 64, "seed": 0, "data": "calib/c4.jsonl"}, "AWQ 4-bit g64"),
        ("awq", {"bits": 4}, "AWQ 4-bit"),  # a reported step states no group size: none is shown
        ("rtn", {"bits": 8, "group_size": -1, "symmetric": True}, "RTN 8-bit"),  # -1: per channel, no group
        ("gptq", {"bits": 4, "group_size": 128, "act_order": True}, "GPTQ 4-bit g128 act-order"),
        ("gptq", {"bits": 4, "group_size": 128, "act_order": False}, "GPTQ 4-bit g128"),
        ("prune_depth", {"n_layers": 8, "n_samples": 64}, "prune 8 layers"),
        ("prune_depth", {"layers": [20, 21, 22, 23]}, "prune layers 20–23"),
        ("prune_depth", {"layers": [3, 7, 8, 9]}, "prune layers 3, 7–9"),
        ("prune_depth", {}, "prune"),
        ("lora", {"r": 16, "steps": 150}, "LoRA r16"),
        ("qlora", {}, "QLoRA"),
        ("distill", {"temperature": 2.0}, "distill T=2"),
        ("gguf", {"quant_type": "Q4_K_M"}, "GGUF Q4_K_M"),
        ("gguf", {"quant_type": "Q4_1", "from_codes": True}, "GGUF Q4_1 (same integers)"),
        ("bnb_nf4", {"quant_type": "nf4"}, "NF4"),
        ("bnb_int8", {"threshold": 6.0}, "LLM.int8()"),
        ("load_4bit", {"bits": 4}, "4-bit load"),
    ],
)
def test_short_labels(method, params, expected):
    assert METHODS[method].short_label(params) == expected


def test_every_method_has_a_short_label_without_parameters():
    for name, m in METHODS.items():
        label = m.short_label({})
        assert label and "{" not in label and "[" not in label, name


def test_template_rules():
    assert short_label("X[ a{a}][ b{b}]", {"a": 1}) == "X a1"
    assert short_label("X[ a{a} b{b}]", {"a": 1}) == "X"  # a part needs all its parameters
    assert short_label("X[ flag{f}]", {"f": True}) == "X flag"
    assert short_label("X {a}", {}) == "X"
    assert short_label("X[ {names}]", {"names": ["q", "k"]}) == "X q, k"
