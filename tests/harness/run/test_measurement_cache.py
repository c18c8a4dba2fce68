"""The measurement cache behind ``kompakt bench``'s resume: what is read back and what is measured again."""

from __future__ import annotations

from pathlib import Path

from harness.measure.tasks import TaskPayload
from harness.run.measurement_cache import read_measurement, store_measurement
from kompakt.results import Perplexity


def test_an_unreadable_entry_is_measured_again(tmp_path: Path) -> None:
    path = tmp_path / "arc.json"
    assert read_measurement(path) is None  # absent
    path.write_text("{not json", encoding="utf-8")
    assert read_measurement(path) is None
    path.write_text('{"accuracy": [{"task": "arc_challenge"}]}', encoding="utf-8")
    assert read_measurement(path) is None  # an entry the results model rejects


def test_a_cached_perplexity_without_its_window_is_measured_again(tmp_path: Path) -> None:
    """Entries cached before perplexity windows were recorded are not trusted to have had any given window."""
    path = tmp_path / "wikitext.json"
    entry = Perplexity(task="wikitext", word_perplexity=30.0, context_length=8192)
    store_measurement(path, {"task": "wikitext"}, TaskPayload(perplexity=[entry]))
    assert read_measurement(path).perplexity == [entry]
    store_measurement(path, {"task": "wikitext"}, TaskPayload(perplexity=[entry.model_copy(update={"context_length": None})]))
    assert read_measurement(path) is None
