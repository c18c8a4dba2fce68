"""The interface of an efficiency backend: what ``harness.measure.efficiency`` needs to time a model.

A backend is a class named in :data:`harness.measure.backends.BACKENDS` with a pydantic
``Config`` (its settings; unknown keys are errors, every field says what it does) and the
members of :class:`Backend` below. ``measure`` loads it through :func:`~harness.measure.backends.open_backend`,
reads what it records (settings, versions, bytes), then times ``prefill`` and ``generate``.
The same fixed prompt ids go to every backend, so two backends time the same work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from kompakt.profiles import Profile


class BackendConfig(BaseModel):
    """Base of every backend's settings: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@runtime_checkable
class Backend(Protocol):
    """A model loaded on one device by one inference engine, ready to be timed."""

    name: ClassVar[str]
    """The backend's name as results files record it (``Throughput.backend``)."""
    formats: ClassVar[tuple[str, ...]]
    """Artifact formats it runs as stored (``hf``: a transformers checkpoint; ``gguf``)."""
    Config: ClassVar[type[BackendConfig]]
    """Its settings."""

    device: str
    """``cpu`` or ``cuda[:n]``."""
    vocab_size: int
    max_context: int | None
    """The model's maximum positions (prompts are shortened to fit), None if unknown."""
    special_ids: list[int]
    """Token ids prompts must avoid (BOS, EOS, padding)."""
    load_notes: list[str]
    """What loading did that a reader should know (said in the results file)."""

    @classmethod
    def available(cls) -> tuple[bool, str | None]:
        """Whether the engine can be imported here, and if not why (with the install hint)."""
        ...

    @classmethod
    def load(cls, path: Path, profile: Profile, config: Any) -> "Backend":
        """Load the artifact at ``path`` as the profile says (device, dtype)."""
        ...

    def settings(self) -> dict[str, str]:
        """Every setting that changes the timings (engine version, threads, dtype, ...)."""
        ...

    def describe(self) -> str:
        """One sentence of what is timed and how, recorded with each throughput figure."""
        ...

    def versions(self) -> dict[str, str]:
        """Libraries to record under ``software.other``."""
        ...

    def weights_bytes(self) -> int:
        """Bytes of the weights as the engine holds them (packed where packed)."""
        ...

    def disk_bytes(self) -> int | None:
        ...

    def supported_batch_sizes(self, sizes: list[int]) -> tuple[list[int], list[str]]:
        """The batch sizes it can time among ``sizes``, and notes on those it cannot."""
        ...

    def prefill(self, prompt: list[list[int]]) -> float:
        """Seconds of one pass over the prompt (one row per sequence)."""
        ...

    def generate(self, prompt: list[list[int]], new_tokens: int) -> list[float]:
        """Greedy generation of exactly ``new_tokens`` per row: ``[call time, token 1, ..., token n]``."""
        ...

    def close(self) -> None:
        ...
