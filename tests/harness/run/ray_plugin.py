"""A task for the Ray tests that waits at a gate: the test kills the worker while it waits, then opens the gate.

The test cluster loads it into every worker (``worker_process_setup_hook``), the way a user's plugin would be
installed on every node; the driver registers it too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from plugin_example import SentencePerplexity

from harness.measure.tasks.base import TaskContext, TaskPayload
from kompakt.tasks import TaskInfo

OPEN = "gate-open"


class Gate(SentencePerplexity):
    """One sentence's perplexity, measured once ``<data dir>/gate-open`` exists; while waiting it leaves
    ``<data dir>/gate-waiting-<pid>`` so the test knows which process to kill."""

    name = "gate"

    def run(self, ctx: TaskContext) -> TaskPayload:
        folder = Path(ctx.config.data_dir)
        (folder / f"gate-waiting-{os.getpid()}").write_text(str(os.getpid()))
        deadline = time.monotonic() + 300
        while not (folder / OPEN).exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the test never opened the gate")
            time.sleep(0.05)
        return super().run(ctx)  # records its perplexity under this task's name


GATE = Gate()
ENTRY = TaskInfo("gate", "Gate", "gate", "perplexity", "ray_plugin:GATE", "token_perplexity")


def register() -> None:
    """Register the gate task (in a worker process, or in the test's own)."""
    from kompakt import tasks

    if "gate" not in tasks.TASKS:
        tasks.register(ENTRY)
