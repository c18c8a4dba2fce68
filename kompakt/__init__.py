"""kompakt: an honest leaderboard for compressed large language models.

Data flows one way, one command per stage, files between stages::

    recipe (data/recipes/*.yaml)
      -> variant (harness: `kompakt variants build`)
      -> measurements (harness: `kompakt bench`)
      -> results file (data/results/<model>/<variant>/<profile>/<run>.json)
      -> DuckDB (leaderboard: `kompakt ingest`)
      -> pages (leaderboard: `kompakt build`)

Packages:

- ``kompakt``: what both sides share and the ground they stand on (it imports
  neither): the results-file contract (``kompakt.results``), the method and task
  catalogues (tasks with their suites and languages), metrics and the comparability
  rule, the chance-level rule (``kompakt.chance``), hardware profiles, paths and
  atomic writes.
- ``harness``: builds variants and measures them (needs the ``[harness]`` extra).
- ``leaderboard``: validates results files, builds the database and the site.
- ``kompakt_cli``: the ``kompakt`` command, on top of all three.

Adding things:

1. A compression method: ``harness/build/methods/<name>.py`` + one entry in
   ``kompakt/methods.py`` (the steps: :mod:`harness`).
2. A task: its object in ``harness/measure/tasks/`` + one entry in ``kompakt/tasks.py``.
3. An efficiency backend: ``harness/measure/backends/<name>.py`` + one entry in its ``BACKENDS``.
4. A hardware profile: one YAML file in ``data/profiles/``.
5. A metric shown on the site: one entry in ``kompakt/metrics.py``.
6. A results-file field: a field with a description in ``kompakt/results.py``,
   then ``kompakt schema --write`` (a test fails until the committed schema
   matches). Changing a field's meaning needs a new schema version.
"""

__version__ = "0.1.0"
