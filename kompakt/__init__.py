"""kompakt: an honest leaderboard for compressed large language models.

Data flows one way, one command per stage, files between stages::

    recipe (data/recipes/*.yaml)
      -> variant (harness: `kompakt variants build`)
      -> measurements (harness: `kompakt bench`)
      -> results file (data/results/<model>/<variant>/<profile>/<run>.json)
      -> DuckDB (leaderboard: `kompakt ingest`)
      -> pages (leaderboard: `kompakt build`)

Packages:

- ``kompakt``: what both sides share: the results-file contract
  (``kompakt.results``), the method catalogue, hardware profiles, paths,
  atomic writes and the CLI.
- ``harness``: builds variants and measures them (needs the ``[harness]`` extra).
- ``leaderboard``: validates results files, builds the database and the site.

Adding things:

1. A compression method: ``harness/build/methods/<name>.py`` + one entry in
   ``kompakt/methods.py``.
2. A hardware profile: one YAML file in ``data/profiles/``.
3. A metric shown on the site: one entry in ``kompakt/metrics.py``.
4. A results-file field: a field with a description in ``kompakt/results.py``,
   then ``kompakt schema --write`` (a test fails until the committed schema
   matches). Changing a field's meaning needs a new schema version.
"""

__version__ = "0.1.0"
