"""Fixtures shared by the packing tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def python_packer(monkeypatch: pytest.MonkeyPatch) -> None:
    """gptqmodel's pure-torch packer instead of its C++ one.

    gptqmodel compiles a C++ packer on first use (about 20 s, cached in ~/.cache/gptqmodel); its pure-torch fallback
    packs the same bits (checked by check_packed inside the save).
    """
    monkeypatch.setenv("GPTQMODEL_DISABLE_PACK_EXT", "1")
