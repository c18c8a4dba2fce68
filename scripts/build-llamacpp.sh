#!/usr/bin/env bash
# Build llama-cpp-python once into a cached wheel and install it from there.
#
# llama-cpp-python ships as a source distribution that compiles llama.cpp (about five
# minutes on two cores). The wheel is kept under ~/.cache/kompakt/wheels (or
# $KOMPAKT_CACHE/wheels), so a second install, a CI job with that cache restored or a
# fresh virtual environment reinstalls in seconds. Nothing else in kompakt needs it: the
# PyTorch backend and every test but the llama.cpp ones work without it (those skip).
#
# Usage: scripts/build-llamacpp.sh [version]      (default: the version pinned below)
#        CMAKE_ARGS="-DGGML_CUDA=on" scripts/build-llamacpp.sh   for a CUDA build
set -euo pipefail

VERSION="${1:-0.3.36}"
CACHE="${KOMPAKT_CACHE:-$HOME/.cache/kompakt}/wheels"
mkdir -p "$CACHE"
# The wheel name carries the version but not the build flags: keep flag sets apart.
FLAVOUR="cpu"
if [[ -n "${CMAKE_ARGS:-}" ]]; then FLAVOUR="$(printf '%s' "$CMAKE_ARGS" | sha256sum | cut -c1-12)"; fi
DEST="$CACHE/llama-cpp-python-$FLAVOUR"
mkdir -p "$DEST"

PY="${PYTHON:-python}"
if ! ls "$DEST"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $VERSION into $DEST (takes minutes) ..."
    # All cores for the compiler; --no-deps: its dependencies (numpy, jinja2,
    # diskcache, typing-extensions) come from the normal install below.
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "$PY" -m pip wheel --no-deps "llama-cpp-python==$VERSION" -w "$DEST"
fi
# --find-links the cache so pip takes the built wheel; dependencies already present
# are left as they are (pip never upgrades what satisfies the requirement).
"$PY" -m pip install --find-links "$DEST" "llama-cpp-python==$VERSION"
"$PY" -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, 'installed')"
