"""Whether a variant fits a profile's memory: the one "does not fit" error and the one out-of-memory check.

The budget is ``profile.memory_budget_bytes``: device memory on ``cuda`` profiles, host memory
on ``cpu`` ones. A variant that does not fit is a result too: its results file says
``does_not_fit`` with the memory needed and the budget (:meth:`DoesNotFit.status`).
"""

from __future__ import annotations

from kompakt.profiles import Profile
from kompakt.results import Memory, Status


class DoesNotFit(Exception):
    """The variant needs more memory than the profile's budget."""

    def __init__(self, needed_bytes: int, budget_bytes: int, reason: str, memory: Memory | None = None):
        super().__init__(reason)
        self.needed_bytes = int(needed_bytes)
        self.budget_bytes = int(budget_bytes)
        self.reason = reason
        self.memory = memory
        """What was measured before the budget was exceeded, if anything."""

    def status(self) -> Status:
        return Status(code="does_not_fit", reason=self.reason, memory_needed_bytes=self.needed_bytes, memory_budget_bytes=self.budget_bytes)


def fits(needed_bytes: int | None, profile: Profile) -> bool:
    """Whether ``needed_bytes`` fit the profile's budget (unknown needs count as fitting)."""
    return needed_bytes is None or needed_bytes <= profile.memory_budget_bytes


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def check_fits(weights_bytes: int, profile: Profile) -> None:
    """Raise :class:`DoesNotFit` when the weights alone exceed the budget (nothing can run then)."""
    if not fits(weights_bytes, profile):
        raise DoesNotFit(
            weights_bytes,
            profile.memory_budget_bytes,
            f"the weights alone take {gib(weights_bytes)}, more than the {gib(profile.memory_budget_bytes)} "
            f"{'device' if profile.device == 'cuda' else 'host'} memory of profile {profile.name}",
        )


def peak_needed(memory: Memory, profile: Profile) -> int | None:
    """The peak the budget is compared with: device reserved (else allocated) on cuda, host RSS on cpu."""
    if profile.device == "cuda":
        return memory.peak_device_reserved_bytes or memory.peak_device_allocated_bytes
    return memory.peak_host_bytes


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an out-of-memory error (host ``MemoryError``, torch's CUDA OOM, or a library's message)."""
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or "out of memory" in str(err).lower()


def out_of_memory(err: BaseException, profile: Profile, where: str, weights_bytes: int | None = None) -> DoesNotFit:
    """The :class:`DoesNotFit` for an out-of-memory error raised ``where`` (e.g. "while loading"); the memory
    needed is unknown, so it is recorded as just over the budget (or the weights' size when larger)."""
    needed = max(weights_bytes or 0, profile.memory_budget_bytes) + 1
    return DoesNotFit(needed, profile.memory_budget_bytes, f"ran out of memory {where} on {profile.device}: {str(err)[:500]}")
