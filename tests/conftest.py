"""Shared test options: slow tests run only with --runslow, and say so when skipped; whether the llama.cpp backend is
tested is said at the top and, when its tests were skipped, again at the bottom of every run. And the memory-bandwidth
probe's state: fresh for every test, steady where a test asks for it (``steady_bus``)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow (long checks on the embedded model)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (see README, Tests)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def llama_cpp_missing() -> str | None:
    """Why the llama.cpp backend cannot be tested here, or None when llama-cpp-python is installed."""
    if importlib.util.find_spec("llama_cpp") is not None:
        return None
    why = "KOMPAKT_LLAMACPP=skip was set" if os.environ.get("KOMPAKT_LLAMACPP") == "skip" else "it was not built"
    return f"llama-cpp-python is not installed ({why}); `make test` builds it (scripts/build-llamacpp.sh)"


def pytest_report_header(config: pytest.Config) -> str:
    missing = llama_cpp_missing()
    if missing:
        return f"llama.cpp backend: NOT TESTED: {missing}"
    return f"llama.cpp backend: llama-cpp-python {importlib.metadata.version('llama-cpp-python')}"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    missing = llama_cpp_missing()
    if not missing:
        return
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "llama" in str(r.longrepr).lower()]
    terminalreporter.write_sep("=", f"{len(skipped)} llama.cpp test(s) SKIPPED: {missing}", red=True, bold=True)


@pytest.fixture(autouse=True)
def _fresh_bandwidth_peak() -> None:
    """Each test starts without a memory-bandwidth peak, as each measurement process of the efficiency benchmark does
    (the peak a bandwidth probe keeps is process-wide: one test's probes on a free bus would set the floor for the next
    test's, timed minutes later on a contended one, and leave it without a speed-up)."""
    bandwidth = sys.modules.get("harness.measure.efficiency.bandwidth")
    if bandwidth is not None:
        bandwidth._HIGHEST.clear()


@pytest.fixture
def steady_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bandwidth probes read a steady 80 GB/s instead of timing a copy: for tests of the paired bookkeeping on a real
    model, whose speed-up would otherwise depend on the host's memory bus (too few pairs at the free-bus floor is no
    speed-up at all, :func:`kompakt.paired.free_bus`). The real probe has tests of its own (``test_pairing.py``)."""
    from harness.measure.efficiency import bandwidth

    def steady(self: bandwidth.BandwidthProbe) -> float:
        bandwidth._HIGHEST[self.device] = max(bandwidth._HIGHEST.get(self.device, 0.0), 80e9)
        return 80e9

    monkeypatch.setattr(bandwidth.BandwidthProbe, "__call__", steady)


@pytest.fixture
def python_packer(monkeypatch: pytest.MonkeyPatch) -> None:
    """gptqmodel's pure-torch packer instead of its C++ one.

    gptqmodel compiles a C++ packer on first use (about 20 s, cached in ~/.cache/gptqmodel); its pure-torch fallback
    packs the same bits (checked by check_packed inside the save).
    """
    monkeypatch.setenv("GPTQMODEL_DISABLE_PACK_EXT", "1")
