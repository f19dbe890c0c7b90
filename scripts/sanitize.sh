#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer build of the C++ core and the tests under it.
#
#   scripts/sanitize.sh                         # build build/asan, run tests/ops and tests/models
#   scripts/sanitize.sh tests/ops/test_rope.py  # or just the tests given (pytest arguments)
#
# The instrumented module goes into its own build folder and package copy (build/asan/pkg), never
# over the in-tree python/gemmacpp/_core*.so. CPython itself is not instrumented, so the ASan and
# UBSan runtimes are preloaded; leak checking is off (the interpreter keeps much until exit).
# UBSan stops at the first report. Slow: a full build and the suites take tens of minutes on 2 cores.
#
# By default Highway compiles only its baseline (static) target, at -O1: the build then takes a
# fraction of the time of all of them, and the kernels' logic (tails, strides, splits) is the same
# at every vector width. GEMMACPP_SANITIZE_ALL_TARGETS=1 builds every target, as the release does
# (the op tests then run each one the CPU supports); use its own GEMMACPP_SANITIZE_BUILD folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${GEMMACPP_SANITIZE_BUILD:-$root/build/asan}
pkg=$build/pkg
python=${PYTHON:-python}
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
if [ "${GEMMACPP_SANITIZE_ALL_TARGETS:-0}" = 0 ]; then flags="$flags -DHWY_COMPILE_ONLY_STATIC=1"; fi

rm -rf "$pkg" && mkdir -p "$pkg"
cp -r "$root/python/gemmacpp" "$pkg/"
rm -f "$pkg"/gemmacpp/_core*.so
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGEMMACPP_CUDA=OFF \
      -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
      -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
      -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
      -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
      -DGEMMACPP_PACKAGE_DIR="$pkg/gemmacpp"
cmake --build "$build" -j"${JOBS:-2}"
cp "$build"/_core*.so "$pkg/gemmacpp/"  # the build copies it only when it relinks

cxx=$(grep -m1 '^CMAKE_CXX_COMPILER:' "$build/CMakeCache.txt" | cut -d= -f2)
export LD_PRELOAD="$("$cxx" -print-file-name=libasan.so) $("$cxx" -print-file-name=libubsan.so)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export PYTHONPATH=$pkg GEMMACPP_CUDA=OFF
cd "$root"
if [ $# -eq 0 ]; then set -- tests/ops tests/models; fi
exec "$python" -m pytest -q -p no:cacheprovider "$@"
