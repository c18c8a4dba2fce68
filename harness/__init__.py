"""kompakt's harness: build compressed variants from recipes and measure them.

Data flows one way: recipe (``data/recipes/``) -> variant (``harness.build.artifacts``,
cached) -> measurements (``harness.evaluation``, ``harness.measure.efficiency``) -> results
file (``harness.run.results_writer``) -> DuckDB and pages (``leaderboard``).

Needs the ``[harness]`` extra (torch, transformers, lm-eval, peft, ...). Command
modules import the ML stack only inside their commands and check it is there
before any work starts (``harness.requirements``).

Adding a compression method:

1. write ``harness/build/methods/<name>.py`` with a pydantic ``Config`` (unknown keys are
   errors, every field has a ``description``) and a ``Method`` subclass whose
   ``apply(model, config, ctx)`` returns the model and a ``record`` of what it found;
2. add one entry to ``kompakt/methods.py`` (``MethodInfo(name, family, label, help,
   "harness.build.methods.<name>:<Class>")``); recipes, ``kompakt methods``, validation
   with did-you-mean and the site pick it up from there;
3. add a test in ``tests/harness/build/methods/test_methods.py`` on the tiny random Llama.

Adding an lm-eval task: one ``TaskSpec`` in ``harness/measure/tasks/lm_eval_tasks.py`` naming
lm-eval's task and the local files that replace its hub data set.

Adding a hardware profile: one YAML file in ``data/profiles/`` (validated by
``kompakt.profiles.Profile``; ``kompakt profiles`` checks it).

Adding an efficiency backend: a module in ``harness/measure/efficiency/`` with a class shaped
like ``PytorchBackend`` (``load``, ``settings``, ``versions``, ``weights_bytes``,
``prefill``, ``generate``, ``close``), its name in ``BACKENDS`` and its branch in
``harness.measure.efficiency.measure``.
"""
