"""kompakt's harness: build compressed variants from recipes and measure them.

Needs the ``[harness]`` extra (torch, transformers, lm-eval, peft, ...). Command
modules import the ML stack only inside their commands and check it is there
before any work starts (``harness.requirements``).
"""
