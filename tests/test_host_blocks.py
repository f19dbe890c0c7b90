"""Large results come from a cache of freed host blocks (csrc/core/host_blocks.cc): a result of
the same size reuses the block, and what the block held before never shows through."""
import subprocess
import sys

import numpy as np

import gemmacpp as gc
from util import child_env


def test_a_freed_large_result_is_reused_and_fully_overwritten(rng):
    x = rng.standard_normal((3, 1024, 1031)).astype(np.float32)  # 12.4 MB: a cached size
    first = gc.ops.softcap(x * 50, 30.0)
    address = first.ctypes.data
    del first
    second = gc.ops.softcap(x, 30.0)
    assert second.ctypes.data == address
    np.testing.assert_allclose(second, 30.0 * np.tanh(x.astype(np.float64) / 30.0), rtol=1e-6,
                               atol=1e-6)


def test_results_of_many_sizes_stay_right(rng):
    kept = []
    for n in (1 << 20, 3 << 20, 1 << 20, 5 << 20, 3 << 20, 1 << 20):
        x = rng.standard_normal(n).astype(np.float32)
        y = gc.ops.softcap(x, 2.0)
        np.testing.assert_allclose(y, 2.0 * np.tanh(x.astype(np.float64) / 2.0), rtol=1e-6,
                                   atol=1e-6)
        if n == 3 << 20:
            kept.append(y)  # alive while blocks of other sizes come and go
    for y in kept:
        assert np.isfinite(y).all() and np.abs(y).max() <= 2.0


def test_the_cache_can_be_turned_off():
    code = ("import numpy as np, gemmacpp as gc\n"
            "x = np.linspace(-3, 3, 3 << 20, dtype=np.float32)\n"
            "for _ in range(3):\n"
            "    y = gc.ops.softcap(x, 1.0)\n"
            "    assert np.allclose(y, np.tanh(x), atol=1e-6)\n"
            "print('ok')\n")
    env = child_env(GEMMACPP_HOST_CACHE_MB="0")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
