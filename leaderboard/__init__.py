"""kompakt's leaderboard: results files -> DuckDB -> pages -> static site.

Modules, in the order data flows through them:

- ``loading``: read one results file defensively (size, encoding, JSON, schema).
- ``rules``: meaning checks on one file, keyed by schema version.
- ``validate``: all files, plus checks across files.
- ``store``: build the DuckDB database atomically (runs, long-form metrics, views).
- ``frontier``: Pareto frontier and deltas, pure functions.
- ``tables``, ``plots``, ``pages``: queries, plotly figures, generated Markdown.
- ``site``: assemble the MkDocs docs folder and build it.
"""
