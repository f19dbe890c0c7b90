#!/usr/bin/env bash
# Installs a built wheel into a fresh virtual environment and imports it where no libhwy.so can be
# loaded: a private mount namespace binds /dev/null over every libhwy shared library, so a wheel
# that still needed the system Highway would fail to import. Used by `make wheel-check`.
#   scripts/check_wheel.sh dist/gemmacpp-*.whl
set -euo pipefail
wheel=${1:?usage: scripts/check_wheel.sh WHEEL}
python=${PYTHON:-python3}
venv=$(mktemp -d)/venv
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel"

check='
import ctypes, ctypes.util, glob
for lib in ("libhwy.so.1", "libhwy.so"):
    try:
        ctypes.CDLL(lib)
    except OSError:
        pass
    else:
        raise SystemExit(f"{lib} is still loadable: the check would prove nothing")
import numpy as np, gemmacpp as gc
x = np.random.default_rng(0).standard_normal((4, 64), dtype=np.float32)
y = gc.ops.rms_norm(x, np.zeros(64, np.float32))
ref = x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-6)
assert np.abs(y - ref).max() < 1e-5, "rms_norm disagrees with NumPy"
print("gemmacpp", gc.__version__, "imported without libhwy.so; SIMD target", gc.simd_target())
'
hide='for f in $(ls /usr/lib/*/libhwy*.so* /usr/lib/libhwy*.so* /usr/local/lib/libhwy*.so* 2>/dev/null); do
        mount --bind /dev/null "$f"; done; exec "$0" -c "$1"'
# Root gets a plain mount namespace; others an unprivileged user namespace that maps them to root.
if [ "$(id -u)" -eq 0 ]; then ns=(unshare --mount); else ns=(unshare --map-root-user --mount); fi
cd /  # not the checkout: python/gemmacpp there must not shadow the installed package
"${ns[@]}" sh -c "$hide" "$venv/bin/python" "$check"
