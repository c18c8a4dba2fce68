"""The artifact cache: every intermediate result of every recipe, built once.

A variant is a base model plus ordered steps. The result after each step is
cached under ``<cache>/variants/<base id>/<key>/`` (``KOMPAKT_CACHE``), where
the key is a sha256 over the parent's key (for the first step: the base
model's weights hash), the method, all its parameters as used (defaults
included) and the sha256 of the text it reads. So ``prune_depth n_layers=8``
is built once for every recipe and variant that starts with it, and changing
a parameter, the data or the base weights changes every key after it.

An entry is built in a temporary folder beside its final place and renamed
when complete (:func:`kompakt.atomic.atomic_dir`): an interrupted build leaves
no half entry. Each step is built holding a lock file beside its entry
(``.<key>.lock``), so two processes that need the same entry at once (two
jobs of a cluster run on one machine, or on a shared cache) build it once.
Each entry holds

- ``model/``: a transformers checkpoint (safetensors, config, tokenizer; for a
  weight quantizer a packed AWQ GEMM or GPTQ checkpoint), or ``model.gguf`` for an
  export;
- ``lineage.json``: ``{"base_model": BaseModelInfo, "variant": Variant}``,
  exactly as the results file records them;
- ``artifact.json``: cache bookkeeping (key, parent, format, build time, peak
  memory of the step, sizes, which recipe variants use it).

The reference variant is the base model's reference checkpoint itself.
Everything runs in float32 on the CPU with fixed seeds, so the same recipe
gives the same weights.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.build.base_model import ResolvedBase
from harness.build.build_device import build_device, check_available, key_device
from harness.build.methods import GGUF_FILE, MODEL_DIR
# the measuring side's memory probes (disk size, peak resident memory of a step): stdlib only
from harness.measure.efficiency.memory import PeakMemory, disk_bytes
from harness.build.recipes import PlannedStep, Recipe, RecipeVariant
from kompakt import __version__, paths
from kompakt.atomic import atomic_dir, write_text
from kompakt.results import BaseModelInfo, Step, Variant

#: Bump when the meaning of a cached entry changes (a fix in a method's code
#: that changes its output); every key changes with it.
KEY_VERSION = 1
#: Part of the key of every step that stores packed integers (the weight quantizers), and so of
#: everything built on them: their entries held dequantized float32 before (no such marker), so an
#: old entry is never taken for a packed one, while the keys of other steps stay as they were.
PACKED_STORAGE = "packed-1"
LINEAGE_FILE = "lineage.json"
ARTIFACT_FILE = "artifact.json"


class BuildError(RuntimeError):
    """A step failed; the message names the recipe, variant and step."""


# --------------------------------------------------------------------------- keys


def variants_root() -> Path:
    return paths.cache_dir() / "variants"


def step_key(parent_key: str, step: PlannedStep) -> str:
    """Cache key of the result of ``step`` applied to the artifact ``parent_key``."""
    from harness.build.calibration import resolve_source

    from harness.build.methods import get_method

    data = [resolve_source(spec, split=split, text_field=fld).sha256 for spec, split, fld in step.config.data_specs()]
    payload = {"v": KEY_VERSION, "parent": parent_key, "method": step.method, "params": step.params(), "data": data}
    method = get_method(step.method)
    if getattr(method, "packs", False):
        payload["storage"] = PACKED_STORAGE
    if getattr(method, "trains_on_device", False) and (device := key_device(build_device())) is not None:
        payload["build_device"] = device  # a GPU-trained step is another artifact (harness.build.build_device)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def chain_keys(base: ResolvedBase, steps: list[PlannedStep]) -> list[str]:
    """Keys of the results after each step (first step's parent: the base weights hash)."""
    keys: list[str] = []
    parent = base.digest
    for step in steps:
        parent = step_key(parent, step)
        keys.append(parent)
    return keys


# --------------------------------------------------------------------------- artifacts


@dataclass
class Artifact:
    """A built variant (or intermediate) on disk."""

    path: Path
    """The entry's folder (for the reference: the base model's reference folder)."""
    base_model: BaseModelInfo
    variant: Variant
    format: str = "hf"
    key: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def model_path(self) -> Path:
        """The checkpoint folder (``hf``) or the ``.gguf`` file."""
        if self.variant.is_reference:
            return self.path
        return self.path / (GGUF_FILE if self.format == "gguf" else MODEL_DIR)

    def content_hash(self) -> str:
        """``sha256:<hex>`` of the weights as stored (the safetensors files of ``hf``, the ``.gguf`` file), remembered by
        path, size and modification time: what a results file records as ``variant.content_hash``."""
        from harness.build.base_model import cached_weights_hash

        return cached_weights_hash(self.model_path)

    def lineage(self) -> dict[str, Any]:
        """``{"base_model": ..., "variant": ...}`` as the results file records them."""
        return {"base_model": self.base_model.model_dump(mode="json"), "variant": self.variant.model_dump(mode="json")}

    def with_id(self, variant_id: str, notes: str | None = None) -> "Artifact":
        """The same artifact as named by another recipe variant."""
        variant = self.variant.model_copy(update={"id": variant_id, "notes": notes if notes is not None else self.variant.notes})
        return Artifact(self.path, self.base_model, variant, self.format, self.key, self.info)


def entry_dir(base: ResolvedBase, key: str) -> Path:
    return variants_root() / base.info.id / key


def read_entry(folder: Path) -> Artifact | None:
    """The artifact in ``folder``, or None if it is absent or incomplete."""
    try:
        lineage = json.loads((folder / LINEAGE_FILE).read_text())
        info = json.loads((folder / ARTIFACT_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return Artifact(
        path=folder,
        base_model=BaseModelInfo.model_validate(lineage["base_model"]),
        variant=Variant.model_validate(lineage["variant"]),
        format=info.get("format", "hf"),
        key=info.get("key", folder.name),
        info=info,
    )


def reference_artifact(base: ResolvedBase, variant_id: str = "reference", notes: str | None = None) -> Artifact:
    return Artifact(
        path=base.path,
        base_model=base.info,
        variant=Variant(id=variant_id, is_reference=True, steps=[], notes=notes),
        format="hf",
        key=base.digest[:24],
        info={"format": "hf", "disk_bytes": disk_bytes(base.path)},
    )


# --------------------------------------------------------------------------- lookup


def cached(base: ResolvedBase, variant: RecipeVariant) -> Artifact | None:
    """The built artifact of ``variant``, or None if it is not (completely) built."""
    if variant.is_reference:
        return reference_artifact(base, variant.id, variant.notes)
    keys = chain_keys(base, variant.steps)
    found = read_entry(entry_dir(base, keys[-1]))
    return found.with_id(variant.id, variant.notes) if found else None


def cached_steps(base: ResolvedBase, variant: RecipeVariant) -> int:
    """How many leading steps of ``variant`` are already in the cache."""
    keys = chain_keys(base, variant.steps)
    for i in range(len(keys), 0, -1):
        if read_entry(entry_dir(base, keys[i - 1])) is not None:
            return i
    return 0


# --------------------------------------------------------------------------- building


ProgressHook = Callable[[str, int, int, str], None]
"""Called as ``hook(variant_id, step_index, n_steps, event)`` with event ``start``, ``done`` or ``cached``."""


def build(
    recipe: Recipe,
    variant_id: str,
    *,
    base: ResolvedBase | None = None,
    force: bool = False,
    show_progress: bool = True,
    hook: ProgressHook | None = None,
    upto: int | None = None,
) -> Artifact:
    """Build ``variant_id`` of ``recipe`` (reusing every cached prefix) and return its artifact.

    ``upto``: build only the first ``upto`` steps and return that intermediate entry (a cluster run builds a
    prefix several variants share once, before the jobs that need it)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if not show_progress:
        hf_logging.disable_progress_bar()
    try:
        return _build(recipe, variant_id, base=base, force=force, show_progress=show_progress, hook=hook, upto=upto)
    finally:
        if was_enabled and not show_progress:
            hf_logging.enable_progress_bar()


def _build(
    recipe: Recipe,
    variant_id: str,
    *,
    base: ResolvedBase | None,
    force: bool,
    show_progress: bool,
    hook: ProgressHook | None,
    upto: int | None = None,
) -> Artifact:
    from harness.build.base_model import resolve

    base = base or resolve(recipe.base_model, show_progress=show_progress)
    variant = recipe.variant(variant_id)
    if variant.is_reference:
        return reference_artifact(base, variant.id, variant.notes)
    keys = chain_keys(base, variant.steps)
    if force:
        for k in keys:
            shutil.rmtree(entry_dir(base, k), ignore_errors=True)
    n = len(variant.steps)
    stop = n if upto is None else upto
    if not 1 <= stop <= n:
        raise BuildError(f"{recipe.name}/{variant.id}: cannot build its first {upto} steps; it has {n}")
    start = min(cached_steps(base, variant), stop)
    for i in range(start):
        if hook:
            hook(variant.id, i, n, "cached")
    if start == stop:
        artifact = read_entry(entry_dir(base, keys[stop - 1]))
        if artifact is None:  # pragma: no cover - cached_steps just found it
            raise BuildError(f"{recipe.name}/{variant.id}: cache entry {keys[stop - 1]} vanished")
    else:
        artifact = _build_steps(recipe, variant, start, stop, base, keys, show_progress, hook)
    if stop < n:
        return artifact  # an intermediate entry, under the id it was built with
    _note_user(artifact, recipe, variant)
    return artifact.with_id(variant.id, variant.notes)


def _build_steps(recipe: Recipe, variant: RecipeVariant, start: int, stop: int, base: ResolvedBase, keys: list[str],
                 show_progress: bool, hook: ProgressHook | None) -> Artifact:
    """Build steps ``start`` to ``stop - 1`` of ``variant`` (those before are cached); returns the last entry."""
    from harness.build.base_model import load_model, load_tokenizer

    n = len(variant.steps)
    tokenizer = load_tokenizer(base.path, trust_remote_code=base.trust_remote_code)
    if start == 0:
        parent_dir, lineage_steps = base.path, []
    else:
        parent = read_entry(entry_dir(base, keys[start - 1]))
        if parent is None or parent.format != "hf":  # pragma: no cover - order validation forbids steps after exports
            raise BuildError(f"{recipe.name}/{variant.id}: step {start} needs a transformers checkpoint to start from")
        parent_dir, lineage_steps = parent.model_path, list(parent.variant.steps)
    model = load_model(parent_dir, trust_remote_code=base.trust_remote_code)

    artifact: Artifact | None = None
    for i in range(start, stop):
        if model is None:  # pragma: no cover - order validation forbids it
            raise BuildError(f"{recipe.name}/{variant.id}: step {i} ({variant.steps[i].method}) has no model to work on")
        with _entry_lock(base, keys[i]):
            # another process (a job beside this one) may have built the entry while this one waited for the lock
            artifact = read_entry(entry_dir(base, keys[i]))
            if artifact is not None:
                if hook:
                    hook(variant.id, i, n, "cached")
                lineage_steps = list(artifact.variant.steps)
                last = artifact.format != "hf" or i + 1 == stop
                model = None if last else load_model(artifact.model_path, trust_remote_code=base.trust_remote_code)
                continue
            if hook:
                hook(variant.id, i, n, "start")
            model, lineage_steps = _build_step(recipe, variant, i, model, tokenizer, base, keys, lineage_steps, show_progress)
            if hook:
                hook(variant.id, i, n, "done")
            artifact = read_entry(entry_dir(base, keys[i]))
            if model is None and i + 1 < stop and artifact is not None and artifact.format == "hf":
                # the step wrote its own checkpoint (a packed quantizer): the next step starts from it as stored
                model = load_model(artifact.model_path, trust_remote_code=base.trust_remote_code)
    if artifact is None:  # pragma: no cover
        raise BuildError(f"{recipe.name}/{variant.id}: nothing was built")
    return artifact


@contextmanager
def _entry_lock(base: ResolvedBase, key: str) -> Iterator[None]:
    """Hold the lock file ``.<key>.lock`` beside the entry: two processes building the same entry at once (two
    jobs of a cluster run on one node, or on a shared cache) build it once, the second reusing it."""
    from filelock import FileLock

    folder = variants_root() / base.info.id
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / f".{key}.lock")):
        yield


def _build_step(recipe: Recipe, variant: RecipeVariant, i: int, model: Any, tokenizer: Any, base: ResolvedBase,
                keys: list[str], lineage_steps: list[Step], show_progress: bool) -> tuple[Any, list[Step]]:
    """Apply step ``i`` of ``variant`` to ``model`` and write its cache entry atomically; returns the
    model for the next step (None after an export) and the lineage so far."""
    from harness.build.methods import StepContext, get_method, set_seed

    step = variant.steps[i]
    n = len(variant.steps)
    method = get_method(step.method)
    parent_path = base.path if i == 0 else entry_dir(base, keys[i - 1]) / MODEL_DIR
    with atomic_dir(entry_dir(base, keys[i])) as tmp:
        device = build_device() if method.trains_on_device else "cpu"
        check_available(device)
        ctx = StepContext(tokenizer=tokenizer, base=base, out_dir=tmp, show_progress=show_progress, parent_path=parent_path,
                          device=device)
        set_seed(getattr(step.config, "seed", 0))
        t0 = time.perf_counter()
        try:
            with PeakMemory(device="cpu") as rss:
                outcome = method.apply(model, step.config, ctx)
        except Exception as err:
            raise BuildError(f"{recipe.name}/{variant.id}: step {i} ({step.method}) failed: {err}") from err
        seconds = time.perf_counter() - t0
        if outcome.model is not None:
            fmt = "hf"
            outcome.model.save_pretrained(tmp / MODEL_DIR, safe_serialization=True)
            tokenizer.save_pretrained(tmp / MODEL_DIR)
        elif (tmp / GGUF_FILE).is_file():
            fmt = "gguf"
        elif (tmp / MODEL_DIR / "config.json").is_file():
            fmt = "hf"  # a checkpoint the step wrote itself (a packed quantizer)
        else:  # pragma: no cover - a method bug
            raise BuildError(f"{recipe.name}/{variant.id}: step {i} ({step.method}) returned no model and wrote neither "
                             f"{GGUF_FILE} nor {MODEL_DIR}/")
        steps = [*lineage_steps, Step(method=step.method, params=step.params(), library=method.library(), record=outcome.record,
                                      notes=outcome.notes)]
        last = i == n - 1
        lineage_variant = Variant(id=variant.id if last else f"{variant.id}.step{i}", is_reference=False, steps=steps,
                                  notes=variant.notes if last else None)
        lineage = {"base_model": base.info.model_dump(mode="json"), "variant": lineage_variant.model_dump(mode="json")}
        (tmp / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, ensure_ascii=False) + "\n")
        info = {
            "key": keys[i],
            "parent": keys[i - 1] if i else base.digest[:24],
            "base_hash": base.info.content_hash,
            "method": step.method,
            "format": fmt,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(seconds, 3),
            "peak_rss_bytes": rss.peaks.host_bytes,
            "disk_bytes": disk_bytes(tmp / (MODEL_DIR if fmt == "hf" else GGUF_FILE)),
            "kompakt_version": __version__,
            "used_by": [f"{recipe.name}/{variant.id}"] if last else [],
        }
        (tmp / ARTIFACT_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return outcome.model, steps


def _note_user(artifact: Artifact, recipe: Recipe, variant: RecipeVariant) -> None:
    """Remember in ``artifact.json`` that ``recipe/variant`` resolves to this entry."""
    name = f"{recipe.name}/{variant.id}"
    users = list(artifact.info.get("used_by", []))
    if name in users:
        return
    users.append(name)
    artifact.info["used_by"] = users
    write_text(artifact.path / ARTIFACT_FILE, json.dumps(artifact.info, indent=2) + "\n")


# --------------------------------------------------------------------------- listing and cleaning


def all_entries() -> list[Artifact]:
    """Every complete cache entry."""
    root = variants_root()
    out = []
    if root.is_dir():
        for folder in sorted(root.glob("*/*")):
            if folder.name.startswith("."):
                continue
            a = read_entry(folder)
            if a is not None:
                out.append(a)
    return out


def stale_temporaries() -> list[Path]:
    """Folders left by interrupted builds (``.<key>.*.tmp`` / ``.old``)."""
    root = variants_root()
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*/.*") if p.is_dir() and (p.name.endswith(".tmp") or p.name.endswith(".old")))


def unneeded_entries(everything: list[Recipe], named: list[Recipe], variant_ids: list[str], *, orphans: bool) -> list[Path]:
    """Cache entries to remove: those of ``variant_ids`` in the ``named`` recipes (all recipes when none are
    named) that no other variant builds on, and with ``orphans`` every entry no variant of any recipe needs."""
    from harness.build.base_model import resolve_cached

    named_paths = {r.path.resolve() for r in named}
    loaded = everything + [r for r in named if r.path.resolve() not in {e.path.resolve() for e in everything}]
    needed: set[str] = set()
    doomed: set[str] = set()
    for recipe in loaded:
        base = resolve_cached(recipe.base_model)
        if base is None:
            continue
        in_scope = not named or recipe.path.resolve() in named_paths
        for v in recipe.variants.values():
            if v.is_reference:
                continue
            keys = chain_keys(base, v.steps)
            (doomed if v.id in variant_ids and in_scope else needed).update(keys)
    return [a.path for a in all_entries() if a.key not in needed and (orphans or a.key in doomed)]


def remove(paths_to_remove: list[Path]) -> int:
    """Delete cache folders; returns bytes freed."""
    freed = 0
    root = paths.cache_dir().resolve()
    for p in paths_to_remove:
        resolved = p.resolve()
        if root not in resolved.parents:  # never delete outside the cache
            raise BuildError(f"refusing to delete {p}: not inside the cache {root}")
        freed += disk_bytes(p) if p.exists() else 0
        shutil.rmtree(p, ignore_errors=True)
    return freed
