"""The built site as a reader sees it, in headless Chromium: grids, plots, the overview, hostile strings."""

from __future__ import annotations

import csv
import io
from urllib.parse import parse_qs, urlparse

import pytest

pytestmark = pytest.mark.browser

LEADERBOARD = "#kt-leaderboard"


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


def open_grid(watched, path: str, table: str = LEADERBOARD) -> None:
    watched.goto(path)
    watched.page.wait_for_selector(f'.kompakt-grid[data-grid-for="{table[1:]}"][data-ready]')


def active(page, field: str, table: str = LEADERBOARD) -> list:
    """A column's values over the rows the grid shows, in their order (Tabulator renders only the visible ones)."""
    return page.evaluate(f"f => document.querySelector('{table}').kompaktGrid.table.getData('active').map(r => r[f])", field)


def count_text(page, table: str = LEADERBOARD) -> str:
    return page.locator(f'.kompakt-grid[data-grid-for="{table[1:]}"]').locator("xpath=preceding-sibling::div[1]").locator(".kompakt-count").inner_text()


def header(page, field: str, table: str = LEADERBOARD):
    return page.locator(f'[data-grid-for="{table[1:]}"] .tabulator-col[tabulator-field="{field}"]')


def url_params(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def test_grid_sorts_on_several_columns_filters_and_searches(watched, served_site):
    _, results = served_site
    open_grid(watched, "/leaderboard/")
    page = watched.page
    total = min(expected_rows(results), 400)
    assert count_text(page) == f"{total} of {total} rows"
    assert page.locator(LEADERBOARD).is_hidden()  # the plain table gave way to the grid

    # Sort by mean accuracy: descending first, empty cells last either way.
    header(page, "mean_acc").locator(".tabulator-col-title").click()
    values = active(page, "mean_acc")
    numbers = [v for v in values if v is not None]
    assert numbers == sorted(numbers, reverse=True) and values[len(numbers):] == [None] * (len(values) - len(numbers))
    header(page, "mean_acc").locator(".tabulator-col-title").click()
    values = active(page, "mean_acc")
    numbers = [v for v in values if v is not None]
    assert numbers == sorted(numbers) and values[: len(numbers)] == numbers
    # Shift-click adds a second sort within ties of the first.
    header(page, "word_ppl").locator(".tabulator-col-title").click(modifiers=["Shift"])
    sorters = page.evaluate("() => document.querySelector('#kt-leaderboard').kompaktGrid.table.getSorters().map(s => [s.field, s.dir])")
    assert sorters == [["mean_acc", "asc"], ["word_ppl", "desc"]]
    pairs = list(zip(active(page, "mean_acc"), active(page, "word_ppl")))
    for (m1, w1), (m2, w2) in zip(pairs, pairs[1:]):
        if m1 is not None and m1 == m2 and w1 is not None and w2 is not None:
            assert w1 >= w2
    assert url_params(page)["sort"] == ["mean_acc:asc,word_ppl:desc"]

    # A pick from the model column's values.
    header(page, "model").locator("select").select_option("Llama 3 8B Instruct")
    page.wait_for_function("() => !document.querySelector('.kompakt-count').textContent.startsWith('%d of')" % total)
    models = active(page, "model")
    assert models and set(models) == {"Llama 3 8B Instruct"}
    assert count_text(page) == f"{len(models)} of {total} rows"
    assert url_params(page)["model"] == ["Llama 3 8B Instruct"]
    # A number range on the mean accuracy.
    header(page, "mean_acc").locator("input").fill(">0.6")
    header(page, "mean_acc").locator("input").press("Enter")
    page.wait_for_timeout(400)
    means = active(page, "mean_acc")
    assert means and all(m > 0.6 for m in means)
    # The text search across all columns.
    header(page, "model").locator("select").select_option("")
    header(page, "mean_acc").locator("input").fill("")
    header(page, "mean_acc").locator("input").press("Enter")
    page.locator(".kompakt-search").first.fill("gguf")
    page.wait_for_timeout(600)
    variants = active(page, "variant")
    assert variants and all("gguf" in v for v in variants)
    assert url_params(page)["q"] == ["gguf"]
    watched.screenshot("leaderboard")
    assert watched.console_errors == []
    assert watched.off_host == []


def test_a_filtered_view_comes_back_from_its_address(watched):
    open_grid(watched, "/leaderboard/?model=Mistral+7B+Instruct+v0.2&mean_acc=%3E0.6&sort=mean_acc:asc&cols=-methods,%2Bprefill&q=awq")
    page = watched.page
    assert set(active(page, "model")) == {"Mistral 7B Instruct v0.2"}
    means = active(page, "mean_acc")
    assert means and all(m > 0.6 for m in means) and means == sorted(means)
    assert all("awq" in v for v in active(page, "variant"))
    assert header(page, "model").locator("select").input_value() == "Mistral 7B Instruct v0.2"
    assert header(page, "mean_acc").locator("input").input_value() == ">0.6"
    assert page.locator(".kompakt-search").first.input_value() == "awq"
    assert header(page, "methods").is_hidden() and header(page, "prefill").is_visible()
    assert watched.console_errors == []


def test_the_column_chooser_hides_and_shows_columns(watched):
    open_grid(watched, "/leaderboard/")
    page = watched.page
    assert header(page, "word_ppl").is_visible() and header(page, "prefill").is_hidden()
    page.get_by_role("button", name="Columns ▾").first.click()
    box = page.locator('.kompakt-chooser-panel input[data-column="word_ppl"]').first
    assert box.is_checked()
    box.uncheck()
    assert header(page, "word_ppl").is_hidden()
    assert url_params(page)["cols"] == ["-word_ppl"]
    page.locator('.kompakt-chooser-panel input[data-column="prefill"]').first.check()
    assert header(page, "prefill").is_visible()
    watched.screenshot("column-chooser")
    box.check()
    assert header(page, "word_ppl").is_visible()
    assert url_params(page)["cols"] == ["+prefill"]
    page.get_by_role("button", name="Reset view").first.click()
    assert header(page, "prefill").is_hidden() and "cols" not in url_params(page)
    assert watched.console_errors == []


def test_csv_export_is_the_current_view(watched, hostile):
    open_grid(watched, "/leaderboard/")
    page = watched.page
    header(page, "methods").locator("select").select_option("awq")
    header(page, "mean_acc").locator(".tabulator-col-title").click()
    page.get_by_role("button", name="Columns ▾").first.click()
    page.locator('.kompakt-chooser-panel input[data-column="bits_per_byte"]').first.uncheck()
    page.locator("h1").first.click()  # closes the chooser
    page.wait_for_timeout(300)
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").first.click()
    assert download.value.suggested_filename == "leaderboard.csv"
    text = download.value.path().read_text(encoding="utf-8-sig")
    table = list(csv.DictReader(io.StringIO(text)))
    shown = active(page, "variant")
    assert [r["Variant"] for r in table] == shown and all("awq" in r["Methods"] for r in table)
    assert [float(r["Mean accuracy"]) if r["Mean accuracy"] else None for r in table] == active(page, "mean_acc")
    assert "Mean accuracy standard error" in table[0] and "Lineage" in table[0] and "Bits/byte" not in table[0]
    assert table[0]["Weights (bytes)"] == "" or float(table[0]["Weights (bytes)"]) > 1000  # raw bytes, not "1.00 GiB"
    # hostile strings are plain text in the CSV; one that looks like a formula is kept from running
    assert any(r["Model"] == hostile["name"] for r in table)
    assert any(r["Model"] == "'" + hostile["formula"] for r in table)
    assert watched.console_errors == []
    assert watched.off_host == []


def test_plots_have_labels_error_bars_a_log_perplexity_axis_and_a_clear_title(watched):
    watched.goto("/models/smollm2-135m-instruct/")
    page = watched.page
    page.wait_for_selector(".kompakt-plot .main-svg")
    plots = page.evaluate(
        """() => Array.from(document.querySelectorAll('.kompakt-plot')).map(div => {
            const spec = JSON.parse(document.getElementById(div.getAttribute('data-figure')).textContent);
            const rect = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
            const modebar = div.querySelector('.modebar');
            return {
              width: div.getBoundingClientRect().width,
              names: spec.data.filter(t => t.mode === 'markers' && t.x.some(x => x !== null)).map(t => t.name),
              expected: spec.data.filter(t => t.mode.startsWith('markers')).reduce((n, t) => n + t.x.filter(x => x !== null).length, 0),
              markers: div.querySelectorAll('.scatterlayer .point').length,
              frontier: spec.data.filter(t => t.name === 'Pareto frontier' && t.mode === 'lines').length,
              labels: Array.from(div.querySelectorAll('.annotation-text')).map(a => a.textContent),
              errorbars: div.querySelectorAll('.errorbar').length,
              ytype: div._fullLayout.yaxis.type,
              ykey: spec.layout.yaxis.title.text,
              title: rect(div.querySelector('.gtitle')),
              modebar: modebar ? rect(modebar) : null,
            };
        })"""
    )
    # per hardware section (the CPU's, and the GPU's since the first GPU run): the Pareto plots, two of accuracy, one of
    # perplexity, one of KL (variants beside the reference have a KL now); then the German-against-English plot
    # (variants beside the reference have the German suite)
    pareto = [p for p in plots if p["frontier"]]
    language = [p for p in plots if not p["frontier"]]
    sections = len(language)
    assert sections >= 1
    assert sorted(p["ykey"].split(",")[0] for p in pareto) == sorted(["KL (nats)", "Mean acc.", "Mean acc.", "Word PPL"] * sections), [p["ykey"] for p in plots]
    assert [p["ykey"] for p in language] == ["German kept, higher is better"] * sections
    for plot in language:
        assert plot["markers"] == plot["expected"] >= 1 and plot["width"] >= 500
    assert max(p["markers"] for p in language) >= 2  # the CPU section's: every variant with the German suite
    for plot in pareto:
        assert plot["width"] >= 500
        assert plot["markers"] == plot["expected"] > 0
        assert plot["frontier"] == 1 and "Pareto frontier" in plot["labels"]
        assert len(plot["labels"]) >= 1 + min(3, plot["markers"])  # the frontier and the variants named on the plot itself
        assert "reference" in plot["names"] and len(plot["names"]) >= 2  # the GPU section has no quantized variant yet
        if plot["ykey"].startswith("Mean acc."):
            assert plot["errorbars"] > 0
        if plot["ykey"].startswith("Word PPL"):
            assert plot["ytype"] == "log"
        if plot["modebar"]:
            t, m = plot["title"], plot["modebar"]
            assert t[2] <= m[0] or m[3] <= t[1] or t[3] <= m[1], "the toolbar covers the title"
    assert sum("quantization" in p["names"] for p in pareto) >= 4  # every Pareto plot of the CPU section
    watched.screenshot("model-page")
    assert watched.console_errors == []
    assert watched.off_host == []


def test_home_overview_has_one_marker_per_variant(watched, served_site):
    from leaderboard.plots import overview_points
    from leaderboard.site import load_tables
    from leaderboard.store import ingest

    _, results = served_site
    db = results.parent / "overview.duckdb"
    ingest(results, db)
    rows, _, _ = load_tables(db)
    expected = overview_points(rows)
    watched.goto("/")
    page = watched.page
    page.wait_for_selector('.kompakt-plot[data-figure="overview"] .main-svg')
    drawn = page.evaluate(
        """() => {
            const div = document.querySelector('.kompakt-plot[data-figure="overview"]');
            return {markers: div.querySelectorAll('.scatterlayer .point').length,
                    symbols: Array.from(new Set(div.data.flatMap(t => t.x.some(x => x !== null) ? [].concat(t.marker.symbol) : []))).sort(),
                    legend: Array.from(div.querySelectorAll('.legendtext')).map(t => t.textContent)};
        }"""
    )
    assert drawn["markers"] == len(expected) == len({(p.model, p.variant, p.provenance) for p in expected})
    assert drawn["symbols"] == ["circle", "diamond-open"]  # measured and reported told apart
    assert {"measured", "reported", "quantization", "pruning"} <= set(drawn["legend"])
    open_grid(watched, "/", "#kt-newest")
    assert 0 < len(active(page, "variant", "#kt-newest")) <= 10
    watched.screenshot("home")
    assert watched.console_errors == []
    assert watched.off_host == []


def test_hostile_strings_stay_text_in_cells_tooltips_and_labels(watched, hostile):
    open_grid(watched, "/leaderboard/?q=evil")
    page = watched.page
    grid = page.locator('[data-grid-for="kt-leaderboard"]')
    cells = grid.locator('.tabulator-cell[tabulator-field="model"]')
    assert cells.count() >= 4 and set(cells.all_inner_texts()) == {hostile["name"]}
    lineage = grid.locator(".kompakt-lineage", has_text="GGUF").first
    assert lineage.inner_text() == f"GGUF {hostile['param']}"
    assert lineage.get_attribute("title") == f"gguf(quant_type={hostile['param']})"
    lineage.dispatch_event("mouseover")
    assert grid.locator("img, script").count() == 0
    watched.goto("/models/evil-model/")
    assert page.locator("h1").first.inner_text().rstrip("¶") == hostile["name"]
    page.locator(".kompakt-lineages summary").first.click()
    assert page.locator(".kompakt-lineages dd code", has_text="gguf").first.inner_text() == f"gguf(quant_type={hostile['param']})"
    # the overview's hover names the model as text
    watched.goto("/")
    page.wait_for_selector('.kompakt-plot[data-figure="overview"] .main-svg')
    hover = page.evaluate(
        """() => {
            const div = document.querySelector('.kompakt-plot[data-figure="overview"]');
            const curve = div.data.findIndex(t => (t.customdata || []).some(d => d[2] && d[2].includes('script')));
            const point = div.data[curve].customdata.findIndex(d => d[2].includes('script'));
            Plotly.Fx.hover(div, [{curveNumber: curve, pointNumber: point}]);
            const label = div.querySelector('.hoverlayer .hovertext');
            return {text: label ? label.textContent : null, tags: label ? label.querySelectorAll('script, img').length : -1};
        }"""
    )
    assert hostile["name"] in hover["text"] and hover["tags"] == 0
    page.wait_for_timeout(300)
    assert watched.dialogs == []
    assert watched.console_errors == []


def test_without_javascript_the_plain_table_is_there(browser, served_site):
    base, _ = served_site
    context = browser.new_context(viewport={"width": 1400, "height": 900}, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(base + "/leaderboard/")
        table = page.locator(LEADERBOARD)
        assert table.is_visible()
        assert table.locator("tbody tr").count() > 0
        assert table.locator("thead tr.kompakt-groups th").first.inner_text() == "Identity"
    finally:
        context.close()


@pytest.mark.parametrize("path", ["/", "/methods/awq/", "/hardware/a100/", "/methodology/", "/contributing/", "/schema/", "/downloads/"])
def test_pages_load_cleanly_offline(watched, path):
    watched.goto(path)
    assert watched.page.locator("h1").count() >= 1
    assert watched.console_errors == []
    assert watched.off_host == []


def test_search_works_offline(watched):
    watched.goto("/")
    page = watched.page
    page.click("input.md-search__input")
    page.locator("input.md-search__input").press_sequentially("Mistral", delay=50)
    page.wait_for_selector(".md-search-result__item", timeout=10_000)
    assert page.locator(".md-search-result__item").count() >= 1
    assert watched.off_host == []


def test_downloads_are_served(watched):
    for name in ("leaderboard.csv", "kompakt.duckdb", "metrics.parquet", "../assets/vendor/tabulator/LICENSE.txt"):
        response = watched.page.request.get(f"{watched.base}/downloads/{name}")
        assert response.ok, name
    csv_text = watched.page.request.get(f"{watched.base}/downloads/leaderboard.csv").text()
    assert "llama-3-8b-instruct" in csv_text
