#!/usr/bin/env bash
# Sets up a development environment from nothing, idempotently: the system packages gemmacpp
# builds against, a virtual environment in .venv, and gemmacpp itself built and installed there
# (incrementally: the CMake build directory under build/ is kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."

# Highway (SIMD) from Debian/Ubuntu; any other install works too (set hwy_DIR or HWY_ROOT).
if [ ! -f /usr/include/hwy/highway.h ] && [ -z "${HWY_ROOT:-}" ] && [ -z "${hwy_DIR:-}" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libhwy-dev g++ make >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=".venv/bin/python -m pip --quiet --disable-pip-version-check"
# The CPU build of torch, pinned: an unpinned `torch` would pull a multi-GB CUDA build.
$pip install "torch==2.13.0"
# CUDA kernels are compiled when nvcc is on PATH (GEMMACPP_CUDA=OFF skips them). The model
# extra brings the default model file, which the tests also read; eval (lm-evaluation-harness)
# and notebooks (nbclient, matplotlib) let the harness backend and notebook tests run; ray the
# gemmacpp.distributed tests (a local cluster inside the test); chat the checkpoints' templates.
$pip install ".[test,model,eval,notebooks,vision,ray,chat]"
