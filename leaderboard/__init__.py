"""kompakt's leaderboard: results files -> DuckDB -> pages -> static site. It never imports the harness.

Modules, in the order data flows through them:

- ``loading``: read one results file defensively (size, encoding, JSON, schema).
- ``rules``: meaning checks on one file, keyed by schema version; ``problems``, ``report``: how they are said.
- ``validate``: all files, plus checks across files.
- ``flatten``: a results file as rows (one per run, one per figure).
- ``summary``: the leaderboard's rows, deltas against the reference, the plots' points; ``budgets``: what fits
  which memory; ``frontier``: the Pareto frontier, pure functions; ``chance_rows``: at-chance marks and quality
  kept on the tasks above chance; ``languages``: the parallel perplexities, their German/English ratio and
  quality kept per language.
- ``store``: build the DuckDB database atomically (runs, long-form metrics, views).
- ``plots``, ``html``, ``pages``: plotly figure data, escaped HTML, generated Markdown; ``language_page``: a model
  page's German-and-English section; ``marks``: accuracy cells with their at-chance badge, the licence note.
- ``site``, ``mkdocs_hooks``: assemble the MkDocs docs folder and build it.
- ``diff``: what a submission changes against the base branch; ``schema_files``: the JSON Schema file;
  ``synthetic``: generated results for tests and benchmarks.
"""
