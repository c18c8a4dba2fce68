"""The database's ``deltas`` view states the one comparability rule (:func:`kompakt.metrics.comparable`) in
SQL; on the same figures both must agree on which pairs are compared."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from kompakt.metrics import Basis, comparable
from leaderboard.store import ingest
from leaderboard.synthetic import make_result

#: Variants whose winogrande figure differs from the reference's in one field of the basis each.
CHANGES = {
    "rtn4": {},  # the same basis: compared
    "rtn8": {"limit": 40},
    "awq4": {"num_fewshot": 5},
    "gptq4": {"task_version": "2.0"},
    "prune-8": {"lm_eval": "0.4.99"},
    "bnb-nf4": {"num_fewshot": None},
}


def _write(root: Path, variant: str, change: dict) -> dict:
    r = make_result("m", variant, "cpu", run_id=f"run-{variant}")
    if "lm_eval" in change:
        r["software"]["lm_eval"] = change["lm_eval"]
    wino = r["metrics"]["accuracy"][0]
    for k in ("limit", "num_fewshot", "task_version"):
        if k in change:
            wino[k] = change[k]
    if change.get("limit"):
        wino["n"] = change["limit"]
    path = root / "m" / variant / "cpu" / f"run-{variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(r), encoding="utf-8")
    return r


def _basis(r: dict) -> Basis:
    a = r["metrics"]["accuracy"][0]
    return Basis(a.get("limit"), a.get("num_fewshot"), a.get("task_version"), r["software"].get("lm_eval"))


def test_sql_deltas_and_python_rule_agree(tmp_path: Path) -> None:
    root = tmp_path / "results"
    ref = _write(root, "reference", {})
    written = {v: _write(root, v, c) for v, c in CHANGES.items()}
    db = tmp_path / "k.duckdb"
    ingest(root, db)
    with duckdb.connect(str(db), read_only=True) as con:
        in_sql = {row[0] for row in con.execute("SELECT variant_id FROM deltas WHERE key = 'acc:winogrande:acc'").fetchall()}
    in_python = {v for v, r in written.items() if comparable(_basis(r), _basis(ref))}
    assert in_python == {"rtn4"}
    assert in_sql == in_python
