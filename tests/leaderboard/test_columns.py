"""The column registry and the table markup the grid is built from."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from leaderboard.columns import COLUMNS, GROUPS, Context, Extra, GridColumn, check_registry, grid, text_of
from leaderboard.html import esc


class TableReader(HTMLParser):
    """The headings (group row, column row) and cells of the first table in some HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.table_attrs: dict[str, str] = {}
        self.head: list[list[dict[str, str]]] = []
        self.rows: list[list[dict[str, str]]] = []
        self.texts: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "table" and not self.table_attrs:
            self.table_attrs = a
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            (self.head if self._in_head else self.rows).append([])
            if not self._in_head:
                self.texts.append([])
        elif tag in ("th", "td"):
            (self.head if self._in_head else self.rows)[-1].append(a)
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "thead":
            self._in_head = False
        elif tag in ("th", "td") and self._cell is not None:
            text = "".join(self._cell)
            if tag == "th":
                self.head[-1][-1]["_text"] = text
            else:
                self.texts[-1].append(text)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def read(markup: str) -> TableReader:
    reader = TableReader()
    reader.feed(markup)
    return reader


def values(reader: TableReader) -> list[dict[str, str]]:
    """Each row as {key: raw value} the way kompakt.js reads it: data-v, else the cell's text."""
    keys = [th["data-key"] for th in reader.head[-1]]
    return [{k: td.get("data-v", text) for k, td, text in zip(keys, row, texts)} for row, texts in zip(reader.rows, reader.texts)]


ROW = {
    "base_model_id": "m", "base_model_name": "Model <M>", "variant_id": "prune-8-lora", "is_reference": False,
    "lineage": "prune_depth(n_layers=8) → lora(r=16, data=<x>)", "lineage_short": "prune 8 layers → LoRA r16", "methods": "prune_depth,lora",
    "profile": "cpu", "hardware_label": "CPU: X", "backend": "pytorch", "provenance": "measured", "status": "ok", "limit": None,
    "mean_accuracy": 0.41234567, "mean_accuracy_stderr": 0.0071, "acc_winogrande_acc": 0.5, "acc_winogrande_acc_stderr": 0.014,
    "weights_bytes": 538060032.0, "fits": ["16 GB CPU machine"], "decode_tokens_per_s": 22.3, "decode_tokens_per_s_min": 21.0,
    "decode_tokens_per_s_max": 23.5, "decode_tokens_per_s_batch": 1, "byte_perplexity": 1.9541, "word_perplexity": 35.96,
    "word_perplexity_context": 8192, "run_ids": ["r1", "r2"], "citations": [],
}


def test_the_registry_is_consistent():
    check_registry()
    assert GROUPS[0].key == "identity"
    groups = {c.group for c in COLUMNS}
    assert groups == {g.key for g in GROUPS}  # every group has a column
    assert [c.key for c in COLUMNS if c.group == "identity"] == ["model", "variant", "hardware"]
    assert {"word_ppl", "byte_ppl", "bits_per_byte"} <= {c.key for c in COLUMNS if c.group == "perplexity"}


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ((*COLUMNS, GridColumn("model", "quality", "M", "", lambda r: None)), "used twice"),
        ((GridColumn("x", "nowhere", "X", "", lambda r: None),), "unknown group 'nowhere'"),
        ((GridColumn("Bad-Key", "quality", "X", "", lambda r: None),), "lower-case"),
        ((GridColumn("sort", "quality", "X", "", lambda r: None),), "reserved"),
        ((GridColumn("a", "speed", "A", "", lambda r: None), GridColumn("b", "quality", "B", "", lambda r: None)), "group by group"),
        ((GridColumn("a", "quality", "A", "", lambda r: None, multi=True),), "multi needs kind"),
    ],
)
def test_a_broken_registry_says_what_is_wrong(columns, message):
    with pytest.raises(ValueError, match=message):
        check_registry(columns)


def test_markup_groups_headings_and_carries_raw_values():
    reader = read(grid([ROW], "board", Context(root="../")))
    assert reader.table_attrs["id"] == "kt-board" and reader.table_attrs["data-csv-name"] == "board"
    groups, heads = reader.head
    assert [g["data-group"] for g in groups] == [g.key for g in GROUPS]
    assert sum(int(g["colspan"]) for g in groups) == len(heads) == len(COLUMNS)
    by_key = {th["data-key"]: th for th in heads}
    assert "data-hidden" in by_key["runs"] and "data-hidden" not in by_key["mean_acc"]
    assert json.loads(by_key["mean_acc"]["data-extras"]) == [["se", "Mean accuracy standard error", "number", False]]
    [row] = values(reader)
    assert row["model"] == "Model <M>"  # no data-v: the link's text is the value
    assert row["variant"] == "prune-8-lora"
    assert float(row["mean_acc"]) == 0.41234567  # full precision for sorting and the CSV
    assert row["weights"] == "538060032"
    assert row["methods"] == "prune_depth|lora"
    assert row["runs"] == "r1 r2"
    cells = dict(zip([th["data-key"] for th in heads], reader.rows[0]))
    assert cells["mean_acc"]["data-x-se"] == "0.0071"


def test_cells_keep_standard_errors_badges_and_the_lineage_in_one_line():
    markup = grid([ROW], "board")
    assert "0.4123 <span class=\"kompakt-se\">± 0.0071</span>" in markup
    assert '<span class="kompakt-badge kompakt-backend">pytorch</span>' in markup
    assert f'title="{esc(ROW["lineage"])}">prune 8 layers → LoRA r16</small>' in markup
    assert "Model &lt;M&gt;" in markup and "Model <M>" not in markup
    assert "data=&lt;x&gt;" in markup and "<x>" not in markup
    assert "<span title=\"rolling window 8192 tokens\">35.96</span>" in markup
    assert "1.9541" in markup  # byte perplexity beside word perplexity and bits per byte


def test_omitted_columns_and_their_groups_go():
    reader = read(grid([ROW], "model-page", omit={"model", "hardware"}))
    keys = [th["data-key"] for th in reader.head[-1]]
    assert "model" not in keys and "hardware" not in keys and keys[0] == "variant"
    assert reader.head[0][0]["colspan"] == "1"


def test_a_new_column_slots_into_its_group_by_one_entry():
    """What the paired-statistics or German issues will do: add one GridColumn."""
    kl = GridColumn("example", "quality", "Example", "KL divergence from the reference", lambda r: r.get("example"),
                    extras=(Extra("lo", "KL lower bound", lambda r: r.get("kl_lo")),))
    columns = [*COLUMNS[:6], kl, *COLUMNS[6:]]
    check_registry(columns)
    reader = read(grid([{**ROW, "example": 0.0123, "kl_lo": 0.01}], "board", columns=columns))
    quality = next(g for g in reader.head[0] if g["data-group"] == "quality")
    assert int(quality["colspan"]) == sum(c.group == "quality" for c in COLUMNS) + 1
    assert values(reader)[0]["example"] == "0.0123"
    assert reader.rows[0][6]["data-x-lo"] == "0.01"


def test_text_of_matches_what_a_browser_shows():
    assert text_of('<a href="x">A &amp; B</a> <span>±</span>') == "A & B ±"
