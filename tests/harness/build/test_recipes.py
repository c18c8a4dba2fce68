"""Recipes are validated completely before any work, with errors naming file and place."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.build.recipes import RecipeError, load_all, load_recipe, parse_recipe
from kompakt import paths


def parse(data: object) -> object:
    return parse_recipe(Path("recipes/test.yaml"), data)


def problems(data: object) -> str:
    with pytest.raises(RecipeError) as info:
        parse(data)
    return str(info.value)


def test_shipped_recipes_are_valid() -> None:
    recipes, errors = load_all(paths.REPO_ROOT / "data" / "recipes")
    assert not errors, "\n".join(map(str, errors))
    names = {r.name for r in recipes}
    assert {"thesis", "all-methods"} <= names
    thesis = next(r for r in recipes if r.name == "thesis")
    # the thesis set: reference, AWQ, two prune depths, prune + LoRA (+ distillation / + AWQ)
    chains = {v.id: [s.method for s in v.steps] for v in thesis.variants.values()}
    assert chains["reference"] == []
    assert ["awq"] in chains.values()
    assert chains["prune-8-lora-distill"] == ["prune_depth", "lora", "distill"]
    assert chains["prune-8-lora-awq4"] == ["prune_depth", "lora", "awq"]
    everything = next(r for r in recipes if r.name == "all-methods")
    from kompakt.methods import METHODS

    buildable = {m.name for m in METHODS.values() if m.implementation}
    used = {s.method for v in everything.variants.values() for s in v.steps}
    assert buildable <= used, f"all-methods misses {buildable - used}"


def test_extends_prepends_steps_and_defaults_are_recorded() -> None:
    recipe = parse(
        {
            "variants": [
                {"id": "p", "steps": [{"method": "prune_depth", "params": {"n_layers": 2}}]},
                {"id": "p-rtn", "extends": "p", "steps": [{"method": "rtn", "params": {"bits": 4}}]},
            ]
        }
    )
    steps = recipe.variants["p-rtn"].steps  # type: ignore[attr-defined]
    assert [s.method for s in steps] == ["prune_depth", "rtn"]
    assert steps[1].params() == {"bits": 4, "group_size": 64, "symmetric": False}


@pytest.mark.parametrize("params", [{"bits": 3}, {"bits": 8}, {"bits": 4, "group_size": -1}, {"bits": 4, "group_size": 256},
                                    {"bits": 8, "group_size": -1}])
def test_grids_without_a_packed_format_are_refused(params: dict) -> None:
    """Quantized weights are stored packed only; a grid no packed format with a CPU kernel holds is refused when read."""
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "awq", "params": params}]}]})
    assert "has no packed format with a CPU kernel" in msg and "bits: 8, group_size: -1, symmetric: true" in msg


def test_unknown_method_gets_did_you_mean() -> None:
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "gtpq"}]}]})
    assert "recipes/test.yaml" in msg
    assert "variants[0] (a).steps[0] (gtpq).method" in msg
    assert "did you mean 'gptq'" in msg


def test_unknown_parameter_names_the_field_and_suggests() -> None:
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "prune_depth", "params": {"n_layer": 3}}]}]})
    assert "params.n_layer" in msg and "did you mean 'n_layers'" in msg


def test_bad_values_are_explained() -> None:
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "rtn", "params": {"bits": 1, "group_size": 0}}]}]})
    assert "params.bits" in msg and "greater than or equal to 2" in msg
    assert "params.group_size" in msg and "-1 (per output channel)" in msg
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "prune_depth", "params": {}}]}]})
    assert "exactly one of n_layers" in msg
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "lora", "params": {"steps": 5, "warmup_steps": 5}}]}]})
    assert "warmup_steps (5) must be smaller than steps (5)" in msg


def test_every_problem_is_reported_at_once() -> None:
    msg = problems(
        {
            "variants": [
                {"id": "a", "steps": [{"method": "nope"}]},
                {"id": "b", "steps": [{"method": "rtn", "params": {"bitz": 4}}]},
                {"id": "a", "steps": [{"method": "rtn"}]},
            ]
        }
    )
    assert "nope" in msg and "bitz" in msg and "used twice" in msg


def test_structure_errors() -> None:
    assert "unknown key" in problems({"variants": [{"id": "a", "step": []}]})
    assert "variants" in problems({"description": "no variants"})
    assert "no earlier variant 'later'" in problems(
        {"variants": [{"id": "a", "extends": "later", "steps": [{"method": "rtn"}]}, {"id": "later", "steps": [{"method": "rtn"}]}]}
    )
    assert "reference variant has no steps" in problems({"variants": [{"id": "r", "reference": True, "steps": [{"method": "rtn"}]}]})
    assert "needs at least one step" in problems({"variants": [{"id": "a"}]})
    assert "pattern" in problems({"variants": [{"id": "../evil", "steps": [{"method": "rtn"}]}]})
    assert "more than one" in problems({"variants": [{"id": "r", "reference": True}, {"id": "s", "reference": True}]})


def test_step_order_rules() -> None:
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "rtn"}, {"method": "lora"}]}]})
    assert "Quantize last" in msg
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "bnb_nf4"}, {"method": "rtn"}]}]})
    assert "nothing may follow" in msg
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "gguf"}, {"method": "gguf"}]}]})
    assert "nothing may follow" in msg
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "awq"}, {"method": "gguf", "params": {"quant_type": "q4_k_m"}}]}]})
    assert "export them unchanged with from_codes: true and quant_type Q4_1" in msg and "a second time" in msg
    parse({"variants": [{"id": "a", "steps": [{"method": "awq"}, {"method": "gguf", "params": {"quant_type": "Q4_1", "from_codes": True}}]}]})
    rtn8 = {"method": "rtn", "params": {"bits": 8, "group_size": -1, "symmetric": True}}
    parse({"variants": [{"id": "a", "steps": [rtn8, {"method": "gguf", "params": {"quant_type": "Q8_0", "from_codes": True}}]}]})
    msg = problems({"variants": [{"id": "a", "steps": [rtn8, {"method": "gguf", "params": {"quant_type": "Q4_1", "from_codes": True}}]}]})
    assert "cannot hold 8-bit symmetric codes unchanged; use Q8_0" in msg
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "gguf", "params": {"quant_type": "Q4_1", "from_codes": True}}]}]})
    assert "from_codes exports the integers of a weight quantizer" in msg and "it is the first step" in msg
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "prune_depth", "params": {"n_layers": 2}},
                                                        {"method": "gguf", "params": {"quant_type": "Q8_0", "from_codes": True}}]}]})
    assert "prune_depth leaves float weights" in msg
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "gguf", "params": {"quant_type": "Q4_K_M", "from_codes": True}}]}]})
    assert "from_codes writes the quantizer's integers as Q4_1, Q4_0, Q8_0" in msg
    msg = problems({"variants": [{"id": "a", "steps": [{"method": "gguf", "params": {"quant_type": "Q4_K_X"}}]}]})
    assert "unknown quant type 'Q4_K_X'" in msg and "did you mean" in msg


def test_yaml_errors_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("variants:\n  - id: a\n    steps: [\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(f)
    assert str(f) in str(info.value) and "line" in str(info.value)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(RecipeError, match="empty"):
        load_recipe(empty)


def test_parsing_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from harness.build.recipes import load_all; import kompakt_cli.variants, harness.build.artifacts;"
        "load_all(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=paths.REPO_ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_variant_order_lists_each_recipes_variants_in_order_and_every_id_once() -> None:
    from harness.build.recipes import load_recipe, find_recipe, variant_order

    order = variant_order(["all-methods", "thesis"])
    all_methods = list(load_recipe(find_recipe("all-methods")).variants)
    assert order[: len(all_methods)] == all_methods and order.count("reference") == 1
    assert order[len(all_methods):] == [v for v in load_recipe(find_recipe("thesis")).variants if v not in all_methods]
    assert "prune-8-lora-awq4" in order[len(all_methods):]
