"""Quality measurements: lm-evaluation-harness tasks on local data, a fast backend, token perplexity.

- ``tasks``: kompakt's task catalogue (lm-eval's own task definitions, pointed
  at local copies of the data sets when there are any) and ``hellaswag_llamacpp``.
- ``backend``: ``KompaktLM``, an lm-eval model (``register_model("kompakt")``)
  that computes each shared context once and scores the continuations from its cache.
- ``token_ppl``: token-level perplexity at a fixed context length, as quantization papers quote it.
- ``runner``: runs one task on a loaded model and turns lm-eval's output into
  results-file entries.

Importing this package imports nothing heavy; the submodules import torch and lm-eval.
"""
