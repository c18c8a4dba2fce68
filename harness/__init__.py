"""kompakt's harness: build compressed variants from recipes and measure them.

Data flows one way, and the folders say where each part happens::

    recipe (data/recipes/*.yaml)
      -> variant        harness/build/    recipes, base models, calibration text, methods/, the artifact cache
      -> measurements   harness/measure/  tasks/ (lm-eval, token perplexity, KL divergence, efficiency), efficiency/,
                                          backends/ (PyTorch, llama.cpp), hardware detection, memory fit
      -> results file   harness/run/      planning, ``kompakt bench``'s orchestration, measurement cache,
                                          results writing, the end-of-run summary; the job a cluster runs
                                          (jobs, machines) and the Ray executor (ray_executor)
      -> DuckDB, pages  leaderboard/      (never imports the harness)

The commands live in ``kompakt_cli`` above everything; ``kompakt`` (the results schema, the
method and task catalogues, metrics, profiles) is the ground every package stands on. Imports
point down that list only: ``build`` and ``measure`` do not import ``run``; ``measure`` does not
import ``build`` except for its base-model loader.

Needs the ``[harness]`` extra (torch, transformers, lm-eval, peft, ...). Modules import the ML
stack inside functions, and each command checks it is installed before any work starts
(:mod:`harness.requirements`).

Every registry has one shape: a lazy ``"module:Class"`` entry per name with a did-you-mean on
typos (:class:`kompakt.registry.Registry`).

Adding a compression method:

1. write ``harness/build/methods/<name>.py`` with a pydantic ``Config`` (unknown keys are
   errors, every field has a ``description``; methods that read calibration text extend
   ``CalibrationConfig``) and a ``Method`` subclass whose ``apply(model, config, ctx)``
   returns the model and a ``record`` of what it found (a weight quantizer subclasses
   ``harness.build.methods.rtn.Quantizer`` instead: its ``quantize`` returns the integers of each
   linear, which :mod:`harness.build.packing` stores as a packed checkpoint);
2. add one ``MethodInfo(name, family, label, summary, "harness.build.methods.<name>:<Class>")``
   to ``kompakt/methods.py``; recipes, ``kompakt methods``, validation with did-you-mean and
   the site pick it up from there;
3. add a variant using it to ``data/recipes/all-methods.yaml`` (``tests/harness/build/test_recipes.py``
   checks that every buildable method has one) and a test in ``tests/harness/build/methods/``.

Adding a task:

1. write its object: for an lm-eval task one ``LmEvalTask(name, lm_eval_task, local files,
   null splits, metrics)`` in a module of ``harness/measure/tasks/`` (by language, like
   ``english.py``); anything else a ``Task`` subclass (:mod:`harness.measure.tasks.base`) that
   runs, fingerprints its data and returns results-file entries;
2. add one ``TaskInfo(name, label, short, kind, "harness.measure.tasks.<module>:<OBJECT>", headline,
   mean_slot, default, documents, scores, suites, language=..., chance_test=...)`` to ``kompakt/tasks.py``;
   ``--tasks`` (and its suites), its help text, the measurement cache, the summary table, the chance marks
   and the site's labels follow from it (a multiple-choice task's per-document results and their checks
   too: ``documents`` is the size of its split, ``scores`` its metrics that are scores rather than right or
   wrong);
3. add a test in ``tests/harness/measure/tasks/`` on hand-written data.

Adding an efficiency backend:

1. write ``harness/measure/backends/<name>.py`` with a ``Config``
   (:class:`~harness.measure.backends.base.BackendConfig`) and a class with the members of
   :class:`~harness.measure.backends.base.Backend` (``formats`` says which artifacts it runs);
2. add one entry to ``BACKENDS`` in ``harness/measure/backends/__init__.py``; ``kompakt bench
   --backend`` and the efficiency task find it there;
3. add a test in ``tests/harness/measure/backends/``.

Adding a hardware profile:

1. write ``data/profiles/<name>.yaml`` (validated by :class:`kompakt.profiles.Profile`);
2. run ``kompakt profiles``, which checks it. Nothing else lists profiles.

``tests/harness/test_adding_things.py`` walks these steps: it registers a throwaway method,
task and backend from one test module (``tests/harness/plugin_example.py``) and runs them
through ``kompakt bench`` on a tiny model.
"""
