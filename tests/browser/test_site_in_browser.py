"""The built site as a reader sees it, in headless Chromium."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.browser


def expected_rows(results_root) -> int:
    from leaderboard.store import ingest

    import duckdb

    db = results_root.parent / "count.duckdb"
    ingest(results_root, db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM leaderboard").fetchone()[0]
    finally:
        con.close()


def visible_rows(page) -> int:
    return page.evaluate("() => Array.from(document.querySelectorAll('#kt-leaderboard tbody tr')).filter(r => r.style.display !== 'none').length")


def test_leaderboard_rows_sort_and_filter(watched, served_site):
    _, results = served_site
    watched.goto("/leaderboard/")
    page = watched.page
    total = expected_rows(results)
    assert visible_rows(page) == min(total, 400)
    assert page.locator(".kompakt-count").first.inner_text() == f"{min(total, 400)} of {min(total, 400)} rows"

    # Sort by mean accuracy: descending first, empty cells last.
    page.locator("#kt-leaderboard th", has_text="Mean acc.").click()
    values = page.evaluate(
        "() => Array.from(document.querySelectorAll('#kt-leaderboard tbody tr')).map(r => r.cells[4].getAttribute('data-sort'))"
    )
    numbers = [float(v) for v in values if v]
    assert numbers == sorted(numbers, reverse=True)
    assert all(v for v in values[: len(numbers)]) and not any(values[len(numbers):])
    page.locator("#kt-leaderboard th", has_text="Mean acc.").click()
    values = page.evaluate("() => Array.from(document.querySelectorAll('#kt-leaderboard tbody tr')).map(r => r.cells[4].getAttribute('data-sort')).filter(v => v)")
    assert [float(v) for v in values] == sorted(float(v) for v in values)

    # Filter by model, then by source.
    page.select_option("select[data-filter='model']", "Llama 3 8B Instruct")
    shown = visible_rows(page)
    models = page.evaluate("() => Array.from(document.querySelectorAll('#kt-leaderboard tbody tr')).filter(r => r.style.display !== 'none').map(r => r.getAttribute('data-filter-model'))")
    assert shown > 0 and set(models) == {"Llama 3 8B Instruct"}
    page.select_option("select[data-filter='provenance']", "measured")
    assert visible_rows(page) == 0
    page.select_option("select[data-filter='model']", "")
    page.select_option("select[data-filter='provenance']", "")
    page.select_option("select[data-filter='method']", "awq")
    methods = page.evaluate("() => Array.from(document.querySelectorAll('#kt-leaderboard tbody tr')).filter(r => r.style.display !== 'none').map(r => r.getAttribute('data-filter-method'))")
    assert methods and all("awq" in m.split("|") for m in methods)
    watched.screenshot("leaderboard")
    assert watched.console_errors == []
    assert watched.off_host == []


def test_plots_render_with_points_and_frontier(watched):
    watched.goto("/models/llama-3-8b-instruct/")
    page = watched.page
    page.wait_for_selector(".kompakt-plot .main-svg")
    plots = page.evaluate(
        """() => Array.from(document.querySelectorAll('.kompakt-plot')).map(div => {
            const spec = JSON.parse(document.getElementById(div.getAttribute('data-figure')).textContent);
            return {
              drawn: div.classList.contains('js-plotly-plot'),
              traces: (div.data || []).map(t => [t.name, t.x.length]),
              expected: spec.data.map(t => [t.name, t.x.length]),
              markers: div.querySelectorAll('.scatterlayer .point').length,
            };
        })"""
    )
    assert plots, "no plot on the model page"
    for plot in plots:
        assert plot["drawn"]
        assert plot["traces"] == plot["expected"]
        names = [name for name, _ in plot["traces"]]
        assert names == ["Pareto frontier", "dominated"]
        assert plot["markers"] == sum(n for _, n in plot["traces"])
        assert plot["traces"][0][1] >= 1
    watched.screenshot("model-page")
    assert watched.console_errors == []
    assert watched.off_host == []


def test_script_in_model_name_is_shown_as_text(watched):
    watched.goto("/models/evil-model/")
    page = watched.page
    assert page.locator("h1").first.inner_text().rstrip("¶") == "<script>alert(1)</script>"
    page.wait_for_timeout(300)
    assert watched.dialogs == []
    watched.goto("/leaderboard/")
    page.select_option("select[data-filter='model']", "<script>alert(1)</script>")
    assert visible_rows(page) == 3
    page.hover("#kt-leaderboard tbody tr:visible >> nth=0")
    assert watched.dialogs == []
    assert watched.console_errors == []


@pytest.mark.parametrize("path", ["/", "/methods/awq/", "/hardware/a100/", "/methodology/", "/contributing/", "/schema/", "/downloads/"])
def test_pages_load_cleanly_offline(watched, path):
    watched.goto(path)
    assert watched.page.locator("h1").count() >= 1
    assert watched.console_errors == []
    assert watched.off_host == []
    if path == "/":
        watched.screenshot("home")


def test_search_works_offline(watched):
    watched.goto("/")
    page = watched.page
    page.click("input.md-search__input")
    page.locator("input.md-search__input").press_sequentially("Mistral", delay=50)
    page.wait_for_selector(".md-search-result__item", timeout=10_000)
    assert page.locator(".md-search-result__item").count() >= 1
    assert watched.off_host == []


def test_downloads_are_served(watched):
    for name in ("leaderboard.csv", "kompakt.duckdb", "metrics.parquet"):
        response = watched.page.request.get(f"{watched.base}/downloads/{name}")
        assert response.ok, name
    csv = watched.page.request.get(f"{watched.base}/downloads/leaderboard.csv").text()
    assert "llama-3-8b-instruct" in csv
    json.dumps(csv[:10])
