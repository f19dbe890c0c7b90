#!/usr/bin/env bash
# Regenerates python/gemmacpp/_core.pyi (the type stub of the compiled module) from a build of
# _core: run after changing a binding's signature (tests/test_typing.py checks the stub names
# every public member of _core). Needs pybind11-stubgen (pip install pybind11-stubgen).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
PYTHONPATH=python${PYTHONPATH:+:$PYTHONPATH} python -m pybind11_stubgen gemmacpp._core -o "$out" \
  --numpy-array-remove-parameters
cp "$out/gemmacpp/_core.pyi" python/gemmacpp/_core.pyi
rm -rf "$out"
echo "wrote python/gemmacpp/_core.pyi"
