"""Efficiency backends: one module per inference engine, each a config and an implementation.

``BACKENDS`` is a lazy registry (``"module:Class"``, did-you-mean on a typo): listing it
imports no engine. Each class follows :class:`harness.measure.backends.base.Backend` and says
which artifact formats it runs as stored (``formats``), so a variant is timed on every
backend that runs its format, and nothing chooses a backend by name in an if-chain.

Adding a backend: write ``harness/measure/backends/<name>.py`` with a ``Config``
(:class:`~harness.measure.backends.base.BackendConfig`) and the class, then add one entry here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kompakt.profiles import Profile
from kompakt.registry import Registry

BACKENDS = Registry(
    "backend",
    {
        "pytorch": "harness.measure.backends.pytorch:PytorchBackend",
        "llama.cpp": "harness.measure.backends.llamacpp:LlamaCppBackend",
    },
)


class BackendError(ValueError):
    """A backend cannot run this artifact with these settings; the message says how to fix it."""


def backend_class(name: str) -> Any:
    """The class of backend ``name`` (``KeyError`` with a did-you-mean for an unknown name)."""
    return BACKENDS.load(name)


def backends_for(fmt: str) -> list[str]:
    """Names of the backends that run artifacts of format ``fmt`` as stored, in registry order."""
    return [name for name in BACKENDS.names_in_order() if fmt in backend_class(name).formats]


def backend_config(name: str, options: Any = None) -> Any:
    """Backend ``name``'s validated ``Config`` from a dict (or a ``Config`` as it is)."""
    cls = backend_class(name)
    if options is None or isinstance(options, cls.Config):
        return options or cls.Config()
    from pydantic import ValidationError

    try:
        return cls.Config.model_validate(options)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        known = ", ".join(cls.Config.model_fields)
        raise BackendError(f"backend {name!r} options: {problems} (its settings: {known})") from None


def open_backend(name: str, source: Any, profile: Profile, options: Any = None) -> Any:
    """Backend ``name`` on ``source``: a path (loaded as the profile says) or, for PyTorch, a loaded model."""
    cls = backend_class(name)
    ok, why = cls.available()
    if not ok:
        raise BackendError(why)
    config = backend_config(name, options)
    if isinstance(source, (str, Path)):
        path = Path(source)
        fmt = "gguf" if path.suffix == ".gguf" else "hf"
        if fmt not in cls.formats and not getattr(cls, "dequantizes", ()):
            raise BackendError(f"the {name} backend runs {', '.join(cls.formats)} artifacts, not {path.name}")
        return cls.load(path, profile, config)
    if not hasattr(cls, "from_model"):
        raise BackendError(f"the {name} backend loads files only: pass a path")
    return cls.from_model(source, config)
