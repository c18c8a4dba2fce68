"""Recipes: YAML files in ``data/recipes/`` that name variants as ordered steps.

A recipe looks like this::

    description: What this set of variants is for.
    base_model:            # optional; empty = the embedded SmolLM2-135M-Instruct
      source: org/name     # hub id, local folder of safetensors, or a .gguf file
    variants:
      - id: reference
        reference: true    # the uncompressed base model, no steps
      - id: prune-8
        steps:
          - method: prune_depth
            params: {n_layers: 8}
      - id: prune-8-lora
        extends: prune-8   # the steps of prune-8, then these
        steps:
          - method: lora
            params: {steps: 100}

Everything is checked before any work starts: unknown keys, unknown methods
(with a did-you-mean), parameters against each method's config, and the order
of steps (only an export may follow a quantization; nothing follows an
export). Every problem is reported with the file and the place in it.
Parsing needs only pydantic and PyYAML, never torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.build.base_model import BaseModelSpec
from kompakt import paths
from kompakt.registry import suggest
from kompakt.results import Slug


class RecipeError(ValueError):
    """A recipe is invalid; the message lists every problem with file and place."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = Path(path)
        self.problems = problems
        super().__init__(f"{path}: " + ("\n  ".join([""] + problems) if len(problems) > 1 else problems[0]))


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="Method name, one of `kompakt methods`.")
    params: dict[str, Any] = Field(default_factory=dict, description="The method's parameters; see its config.")


class VariantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Slug = Field(description="Identifier of the variant (letters, digits, '.', '-', '_').")
    reference: bool = Field(default=False, description="The uncompressed reference: the base model itself, no steps.")
    extends: Slug | None = Field(default=None, description="Id of an earlier variant of this recipe whose steps come first.")
    steps: list[StepSpec] = Field(default_factory=list, description="Ordered compression steps.")
    notes: str | None = Field(default=None, max_length=2000, description="Remarks recorded with the variant.")


class RecipeFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, description="What this set of variants is for.")
    base_model: BaseModelSpec = Field(default_factory=BaseModelSpec, description="The model to compress; empty = embedded SmolLM2-135M-Instruct.")
    variants: list[VariantSpec] = Field(min_length=1, description="The variants to build.")


@dataclass(frozen=True)
class PlannedStep:
    """A validated step: method name and its parsed config."""

    method: str
    config: Any  # a harness.build.methods.MethodConfig

    def params(self) -> dict[str, Any]:
        return self.config.params()


@dataclass
class RecipeVariant:
    id: str
    is_reference: bool
    steps: list[PlannedStep]
    notes: str | None = None


@dataclass
class Recipe:
    name: str
    path: Path
    description: str | None
    base_model: BaseModelSpec
    variants: dict[str, RecipeVariant] = field(default_factory=dict)

    def variant(self, variant_id: str) -> RecipeVariant:
        try:
            return self.variants[variant_id]
        except KeyError:
            raise KeyError(
                f"recipe {self.name!r} has no variant {variant_id!r}{suggest(variant_id, self.variants)}; "
                f"its variants: {', '.join(self.variants)}"
            ) from None


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_problems(err: ValidationError, prefix: str) -> list[str]:
    problems = []
    for e in err.errors():
        where = _loc(e["loc"])
        where = f"{prefix}.{where}" if prefix and where else (prefix or where)
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append(f"{where}: {msg}" if where else msg)
    return problems


def _step_problems(method: str, params: dict[str, Any], where: str) -> tuple[Any | None, list[str]]:
    """Parse one step's params with its method's config; (config or None, problems)."""
    from kompakt.methods import METHODS
    from kompakt.registry import load_object

    info = METHODS.get(method)
    if info is None:
        return None, [f"{where}.method: unknown method {method!r}{suggest(method, METHODS)}; known: {', '.join(METHODS)}"]
    if info.implementation is None:
        return None, [f"{where}.method: {method!r} is listed for reported results only; kompakt cannot build it"]
    cls = load_object(info.implementation)
    try:
        config = cls.Config.model_validate(params)
    except ValidationError as err:
        problems = []
        known = list(cls.Config.model_fields)
        for e in err.errors():
            key = _loc(e["loc"])
            msg = e["msg"]
            if e["type"] == "extra_forbidden":
                msg = f"unknown parameter{suggest(str(e['loc'][-1]), known)}; {method} takes: {', '.join(known)}"
            problems.append(f"{where}.params{'.' + key if key else ''}: {msg}")
        return None, problems
    return config, []


def _order_problems(steps: list[PlannedStep], where: str) -> list[str]:
    from kompakt.methods import METHODS
    from kompakt.registry import load_object

    problems = []
    prev: tuple[str, Any, Any] | None = None
    for i, step in enumerate(steps):
        cls = load_object(METHODS[step.method].implementation or "")
        if prev is not None:
            prev_name, prev_cls, prev_config = prev
            if prev_cls.final:
                problems.append(f"{where}: step {i} ({step.method}) follows {prev_name}, after which nothing may follow")
            elif prev_cls.stage == "quantize" and cls.stage != "export":
                problems.append(
                    f"{where}: step {i} ({step.method}) follows the quantization {prev_name}; it would move the weights off the "
                    "quantization grid. Quantize last (only an export such as gguf may follow)."
                )
            else:
                why = cls.order_problem(prev_cls, prev_config, step.config)
                if why:
                    problems.append(f"{where}: step {i} ({step.method}) after {prev_name}: {why}")
        else:
            why = cls.order_problem(None, None, step.config)
            if why:
                problems.append(f"{where}: step {i} ({step.method}): {why}")
        prev = (step.method, cls, step.config)
    return problems


def _file_problems(err: ValidationError, data: dict[str, Any]) -> list[str]:
    """The schema's problems with a recipe file, each variant named by id as well as position."""
    raw_variants = data.get("variants")
    problems = []
    for p in _pydantic_problems(err, ""):
        if p.startswith("variants[") and isinstance(raw_variants, list):
            idx = int(p[len("variants[") : p.index("]")])
            if idx < len(raw_variants) and isinstance(raw_variants[idx], dict) and "id" in raw_variants[idx]:
                p = p.replace(f"variants[{idx}]", f"variants[{idx}] ({raw_variants[idx]['id']})", 1)
        problems.append(p)
    return problems


def parse_recipe(path: Path, data: Any) -> Recipe:
    """Validate recipe ``data`` (as read from YAML) named after ``path``; raise :class:`RecipeError` listing every problem."""
    path = Path(path)
    if data is None:
        raise RecipeError(path, ["the file is empty; a recipe needs at least `variants:`"])
    if not isinstance(data, dict):
        raise RecipeError(path, [f"the top level must be a mapping with `variants:`, not {type(data).__name__}"])
    try:
        spec = RecipeFile.model_validate(data)
    except ValidationError as err:
        raise RecipeError(path, _file_problems(err, data)) from None

    recipe = Recipe(name=path.stem, path=path, description=spec.description, base_model=spec.base_model)
    problems: list[str] = []
    for vi, v in enumerate(spec.variants):
        where = f"variants[{vi}] ({v.id})"
        if v.id in recipe.variants:
            problems.append(f"{where}.id: {v.id!r} is used twice")
            continue
        if v.reference:
            if v.steps or v.extends:
                problems.append(f"{where}: a reference variant has no steps and extends nothing")
            recipe.variants[v.id] = RecipeVariant(v.id, True, [], v.notes)
            continue
        steps: list[PlannedStep] = []
        if v.extends is not None:
            parent = recipe.variants.get(v.extends)
            if parent is None:
                earlier = [x for x in recipe.variants]
                problems.append(
                    f"{where}.extends: no earlier variant {v.extends!r}{suggest(v.extends, earlier)}; a variant can only extend one listed above it"
                )
                continue
            steps.extend(parent.steps)
        if not v.steps and v.extends is None:
            problems.append(f"{where}.steps: a variant that is not the reference needs at least one step")
            continue
        ok = True
        for si, s in enumerate(v.steps):
            config, probs = _step_problems(s.method, s.params, f"{where}.steps[{si}] ({s.method})")
            problems.extend(probs)
            if config is None:
                ok = False
            else:
                steps.append(PlannedStep(s.method, config))
        if ok:
            problems.extend(_order_problems(steps, where))
        recipe.variants[v.id] = RecipeVariant(v.id, False, steps, v.notes)
    if sum(v.is_reference for v in recipe.variants.values()) > 1:
        problems.append("variants: more than one variant has `reference: true`")
    if problems:
        raise RecipeError(path, problems)
    return recipe


def load_recipe(path: Path | str) -> Recipe:
    """Read and validate one recipe file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(path, ["no such file"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise RecipeError(path, [f"{where}not valid YAML ({getattr(err, 'problem', None) or err})"]) from None
    return parse_recipe(path, data)


def recipe_paths(folder: Path | None = None) -> list[Path]:
    folder = folder or paths.recipes_dir()
    return sorted(list(folder.glob("*.yaml")) + list(folder.glob("*.yml")))


def find_recipe(name_or_path: str, folder: Path | None = None) -> Path:
    """A recipe by file path or by name in the recipes folder (did-you-mean on a miss)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise RecipeError(p, ["no such file"])
        return p
    known = {q.stem: q for q in recipe_paths(folder)}
    if name_or_path in known:
        return known[name_or_path]
    raise KeyError(
        f"no recipe {name_or_path!r}{suggest(name_or_path, known)} in {folder or paths.recipes_dir()}; known: {', '.join(known) or 'none'}"
    )


def load_all(folder: Path | None = None) -> tuple[list[Recipe], list[RecipeError]]:
    """Every recipe of the folder, and the errors of those that are invalid."""
    recipes, errors = [], []
    for p in recipe_paths(folder):
        try:
            recipes.append(load_recipe(p))
        except RecipeError as err:
            errors.append(err)
    return recipes, errors


#: The recipes whose variants make up the embedded model's committed CPU set: scripts/measure-cpu-set.py measures
#: them, scripts/quality-table.py and scripts/paired-table.py list them in the README.
COMMITTED_SET = ("all-methods", "thesis")


def variant_order(names: tuple[str, ...] | list[str], folder: Path | None = None) -> list[str]:
    """The variant ids of the named recipes, recipe by recipe in each one's order, every id once (at its first recipe's
    place: recipes that share a variant id build it alike, as the thesis and all-methods recipes do their reference)."""
    order: list[str] = []
    for name in names:
        order += [v for v in load_recipe(find_recipe(name, folder)).variants if v not in order]
    return order
