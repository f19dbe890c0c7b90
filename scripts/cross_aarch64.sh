#!/usr/bin/env bash
# Compile-only check of the CPU kernels for Linux aarch64 with Debian's cross compiler
# (g++-aarch64-linux-gnu) and Highway's headers (HWY_SRC, else the installed /usr/include/hwy,
# which are the same on every architecture, else the pinned tarball): every csrc/cpu/*.cc as
# CMakeLists.txt compiles it on aarch64 (SVE targets left out, NEON in). No link, no run.
#   HWY_SRC=/path/to/highway-1.0.3 scripts/cross_aarch64.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cxx=${CXX_AARCH64:-aarch64-linux-gnu-g++}
command -v "$cxx" >/dev/null || { echo "$cxx not found: apt-get install g++-aarch64-linux-gnu" >&2; exit 1; }
work=$(mktemp -d)
src=${HWY_SRC:-}
if [ -z "$src" ] && [ -f /usr/include/hwy/highway.h ]; then
  mkdir -p "$work/include" && cp -r /usr/include/hwy "$work/include/"  # not -I/usr/include: host libc
  src="$work/include"
fi
if [ -z "$src" ]; then
  url=$(sed -n 's/^set(GEMMACPP_HWY_URL "\(.*\)")$/\1/p' CMakeLists.txt)
  sha=$(sed -n 's/^set(GEMMACPP_HWY_SHA256 "\(.*\)")$/\1/p' CMakeLists.txt)
  curl -sSfL "$url" -o "$work/hwy.tar.gz"
  echo "$sha  $work/hwy.tar.gz" | sha256sum -c - >/dev/null
  tar xzf "$work/hwy.tar.gz" -C "$work"
  src=$(ls -d "$work"/highway-*)
fi
disabled="(HWY_SSSE3|HWY_SVE|HWY_SVE2|HWY_SVE_256|HWY_SVE2_128|HWY_RVV)"  # as CMakeLists.txt on aarch64
fail=0
for f in csrc/cpu/*.cc; do
  if ! "$cxx" -std=c++17 -O1 -fPIC -c "$f" -o "$work/$(basename "$f").o" -I. -I"$src" \
       "-DHWY_DISABLED_TARGETS=$disabled" -w; then
    echo "FAILED: $f" >&2; fail=1
  fi
done
rm -rf "$work"
[ "$fail" -eq 0 ] && echo "aarch64: every csrc/cpu/*.cc compiles"
exit "$fail"
