"""Hardware profiles: measurement protocols stored as YAML in ``data/profiles/``.

A profile says on which device and in which dtype variants are measured, how
much memory they may use, which batch and sequence sizes are timed, and what
happens to a variant that does not fit. The detected hardware is always
recorded beside the profile's name in each results file.

Adding a profile: write ``data/profiles/<name>.yaml``; ``kompakt profiles``
lists and checks them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from kompakt import paths
from kompakt.results import Slug, Strict, Text

#: Profile name for reported results whose source does not say where it measured.
UNSPECIFIED = "unspecified"


class Profile(Strict):
    name: Slug = Field(description="Name of the profile; the file is `data/profiles/<name>.yaml`.")
    label: str = Field(description="Human-readable label, e.g. `NVIDIA A100 80GB`.")
    description: Text = Field(description="What the profile stands for.")
    device: Literal["cuda", "cpu"] = Field(description="Device the model runs on.")
    dtype: Literal["float32", "float16", "bfloat16"] = Field(description="dtype of unquantized weights and activations.")
    accelerator_pattern: str | None = Field(
        default=None,
        description="Regular expression the detected accelerator name must match (e.g. `A100`); null for CPU profiles. A run on other hardware needs `--allow-other-hardware`.",
    )
    memory_budget_bytes: int = Field(gt=0, description="Memory a variant may use (device memory for GPU profiles, host memory for CPU).")
    batch_sizes: list[int] = Field(min_length=1, description="Batch sizes timed; the first is the one ranked (1 = a single user).")
    prompt_tokens: int = Field(default=256, ge=1, description="Prompt length for prefill timing.")
    new_tokens: int = Field(default=64, ge=1, description="Tokens generated per timing run.")
    context_length: int = Field(default=2048, ge=1, description="Context length at which peak memory is measured.")
    on_does_not_fit: Literal["record", "load_4bit"] = Field(
        default="record",
        description="`record`: write a `does_not_fit` result; `load_4bit`: load the variant in 4 bit instead (as the thesis did on the T4), recorded in the lineage.",
    )

    def accepts(self, accelerator_name: str | None) -> bool:
        """Whether hardware with this accelerator (None: CPU only) is what the profile describes."""
        if self.device == "cpu":
            return True
        if accelerator_name is None or self.accelerator_pattern is None:
            return False
        return re.search(self.accelerator_pattern, accelerator_name, re.IGNORECASE) is not None


class ProfileError(ValueError):
    pass


def load_profile(path: Path) -> Profile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        profile = Profile.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as err:
        raise ProfileError(f"{path}: {err}") from None
    if profile.name != path.stem:
        raise ProfileError(f"{path}: name {profile.name!r} differs from the file name {path.stem!r}")
    return profile


@lru_cache(maxsize=8)
def _load_all(folder: str) -> dict[str, Profile]:
    return {p.stem: load_profile(p) for p in sorted(Path(folder).glob("*.yaml"))}


def all_profiles(folder: Path | None = None) -> dict[str, Profile]:
    """Every profile in ``data/profiles/`` (or ``folder``), by name."""
    return _load_all(str(folder or paths.profiles_dir()))


def get_profile(name: str, folder: Path | None = None) -> Profile:
    from kompakt.registry import suggest

    profiles = all_profiles(folder)
    if name not in profiles:
        raise ProfileError(f"unknown profile {name!r}{suggest(name, profiles)}; known profiles: {', '.join(profiles)}")
    return profiles[name]
