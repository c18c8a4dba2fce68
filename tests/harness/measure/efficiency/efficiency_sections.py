"""What the efficiency tests share: putting measured sections into a results file and validating it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kompakt.results import BaseModelInfo, Hardware, Measured, Metrics, ResultsFile, Status, Variant


def validate_in_a_results_file(result: Any, variant: Variant | None = None) -> ResultsFile:
    """``result``'s memory, throughput and energy in a measured results file, round-tripped through JSON (raises if invalid)."""
    rf = ResultsFile(
        schema_version=1, run_id="t-1", status=Status(code="ok"),
        base_model=BaseModelInfo(id="tiny", name="tiny", source="local"), variant=variant or Variant(id="reference", is_reference=True),
        profile="cpu", hardware=Hardware(cpu_cores=2),
        provenance=Measured(kind="measured", command="pytest", date=dt.datetime.now(dt.timezone.utc)),
        metrics=Metrics(memory=result.memory, throughput=result.throughput, energy=result.energy), notes=result.notes,
    )
    return ResultsFile.model_validate_json(rf.model_dump_json())
