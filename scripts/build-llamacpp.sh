#!/usr/bin/env bash
# Build llama-cpp-python once into a cached wheel and install it from there.
#
# llama-cpp-python ships as a source distribution that compiles llama.cpp (about five
# minutes on two cores). The wheel is kept under ~/.cache/kompakt/wheels (or
# $KOMPAKT_CACHE/wheels), so a second install, a CI job with that cache restored or a
# fresh virtual environment reinstalls in seconds. `make test` runs this before the tests
# so that no llama.cpp test is skipped; `make llamacpp` runs it alone.
#
# Idempotent: when the pinned version is already installed it says so and stops.
# A failed build exits non-zero with the reason and what to do (make test stops there);
# KOMPAKT_LLAMACPP=skip skips it on purpose (the llama.cpp tests then skip, and say why).
#
# Usage: scripts/build-llamacpp.sh [version]      (default: the version pinned below)
#        CMAKE_ARGS="-DGGML_CUDA=on" scripts/build-llamacpp.sh   for a CUDA build
set -euo pipefail

VERSION="${1:-0.3.36}"
PY="${PYTHON:-python}"

if [[ "${KOMPAKT_LLAMACPP:-}" == "skip" ]]; then
    echo "llamacpp: KOMPAKT_LLAMACPP=skip, not building llama-cpp-python: the llama.cpp tests will be SKIPPED"
    exit 0
fi
installed="$("$PY" -c "import importlib.metadata as m; print(m.version('llama-cpp-python'))" 2>/dev/null || true)"
if [[ "$installed" == "$VERSION" ]] && "$PY" -c "import llama_cpp" 2>/dev/null; then
    echo "llamacpp: llama-cpp-python $VERSION is installed"
    exit 0
fi

CACHE="${KOMPAKT_CACHE:-$HOME/.cache/kompakt}/wheels"
# The wheel name carries the version but not the build flags: keep flag sets apart.
FLAVOUR="cpu"
if [[ -n "${CMAKE_ARGS:-}" ]]; then FLAVOUR="$(printf '%s' "$CMAKE_ARGS" | sha256sum | cut -c1-12)"; fi
DEST="$CACHE/llama-cpp-python-$FLAVOUR"
mkdir -p "$DEST"

fail() {
    echo "" >&2
    echo "==========================================================================" >&2
    echo "llamacpp: FAILED: $1" >&2
    echo "  llama-cpp-python $VERSION compiles llama.cpp: it needs a C/C++ compiler and network access to PyPI." >&2
    echo "  Fix the cause above and run the command again, or run the tests without llama.cpp:" >&2
    echo "      KOMPAKT_LLAMACPP=skip make test    (the llama.cpp tests are then skipped, and say so)" >&2
    echo "==========================================================================" >&2
    exit 1
}

start=$(date +%s)
if ! ls "$DEST"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
    echo "llamacpp: building llama-cpp-python $VERSION into $DEST (compiles llama.cpp: minutes) ..."
    # All cores for the compiler; --no-deps: its dependencies (numpy, jinja2,
    # diskcache, typing-extensions) come from the normal install below.
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "$PY" -m pip wheel -q --no-deps "llama-cpp-python==$VERSION" -w "$DEST" \
        || fail "building the llama-cpp-python $VERSION wheel"
fi
# --find-links the cache so pip takes the built wheel; dependencies already present
# are left as they are (pip never upgrades what satisfies the requirement).
"$PY" -m pip install -q --find-links "$DEST" "llama-cpp-python==$VERSION" || fail "installing the cached wheel from $DEST"
"$PY" -c "import llama_cpp; print('llamacpp: llama-cpp-python', llama_cpp.__version__, 'installed in', $(date +%s) - $start, 's')" \
    || fail "importing llama_cpp after the install"
