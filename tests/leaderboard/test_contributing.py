"""The contributing page's generated parts: the example pull-request summary and the refusals, from the real checks."""

from __future__ import annotations

import html

from kompakt import paths
from leaderboard.contributing import REFUSALS, example_trees, pr_summary, pr_summary_block, refusal_messages, refusals_table
from leaderboard.diff import diff
from leaderboard.site import build_site


def test_the_example_shows_what_the_page_says_it_shows(tmp_path):
    # the page's prose: the new row enters at rank 2 and pushes one row down (one line, no rank move);
    # prune-8's new measurement passes awq-4bit (the two rank moves)
    d = diff(*example_trees(tmp_path))
    assert d.ok
    assert [k[1] for k in d.new_rows] == ["gptq-4bit"]
    assert d.ranking == ["`example-135m` on CPU: Synthetic CPU, 2 cores (cpu): the new row `gptq-4bit` on pytorch enters at rank 2; 1 row shifts down by one."]
    moves = {m.key[1]: m for m in d.rank_moves}
    assert set(moves) == {"prune-8", "awq-4bit"}
    assert [k[1] for k in moves["prune-8"].passed] == ["awq-4bit"]
    assert d.beyond_standard_error, "the example should show figures beyond their standard error"
    page = (paths.REPO_ROOT / "site" / "contributing.md").read_text(encoding="utf-8")
    assert "adds a variant `gptq-4bit` and a new measurement of `prune-8`" in page
    assert "new row enters at rank 2 and pushes one row down" in page


def test_the_block_is_the_summary_with_bold_headings():
    block = pr_summary_block()
    summary = pr_summary()
    assert block.startswith('!!! example "')
    assert "\n    **kompakt: what this change does to the leaderboard**\n" in block
    assert not any(line.lstrip().startswith("#") for line in block.splitlines())
    # everything but the headings is the summary as CI posts it
    body = [line.removeprefix("    ") for line in block.splitlines()[2:]]
    expected = [f"**{line.lstrip('#').strip()}**" if line.startswith("#") else line for line in summary.splitlines()]
    assert body == expected


def test_every_refusal_gives_its_message():
    found = refusal_messages()
    assert len(found) == len(REFUSALS)
    for refusal, problem in found:
        assert problem.severity == refusal.severity
        assert problem.file and problem.path.startswith("$") and problem.message
    messages = {r.what: p.message for r, p in found}
    assert "already exists" in messages[next(w for w in messages if w.startswith("A run id of the base branch"))]
    assert "reported (cited) result" in messages["Any change to a reported (cited) result"]
    assert "has another lineage" in messages["A variant id that another file uses for another lineage"]
    table = refusals_table()
    assert table.count("\n") == len(REFUSALS) + 2
    assert "<script" not in table


def test_the_built_page_carries_both(results_root, small_set, tmp_path):
    site = build_site(results_root, tmp_path / "build" / "site").site_dir
    page = (site / "contributing" / "index.html").read_text(encoding="utf-8")
    assert "What CI posts on the example pull request" in page
    assert "enters at rank 2; 1 row shifts down by one" in page
    for _refusal, problem in refusal_messages():
        assert html.escape(problem.message, quote=False) in page.replace("&#x27;", "'").replace("&#39;", "'").replace("&quot;", '"')
    assert "<!-- kompakt:" not in page
