"""Switching the SIMD target the CPU kernels dispatch to (gc._core.set_simd_target), which the op
tests use to run on every target this CPU supports (tests/ops/conftest.py)."""
import numpy as np
import pytest

import gemmacpp as gc

SUPPORTED = gc._core.simd_targets_supported()
BEST = SUPPORTED[0]
# Float32 lanes per vector: targets of different widths sum a dot product in different orders.
WIDTH = {"AVX3_DL": 16, "AVX3": 16, "AVX2": 8, "SSE4": 4, "SSSE3": 4, "EMU128": 4, "SCALAR": 1}


@pytest.fixture(autouse=True)
def restore_dispatch():
    yield
    gc._core.set_simd_target(None)


def test_supported_targets_are_compiled_and_best_first():
    compiled = gc._core.simd_targets_compiled()
    assert SUPPORTED and set(SUPPORTED) <= set(compiled)
    assert SUPPORTED == [t for t in compiled if t in SUPPORTED]  # same (best-first) order
    assert gc.simd_target() == BEST


@pytest.mark.parametrize("target", SUPPORTED)
def test_set_target_changes_dispatch_and_none_restores_it(target):
    gc._core.set_simd_target(target)
    # simd_target() reads what a dispatch table (the kernels' mechanism) calls, not the CPU's bits.
    assert gc.simd_target() == target
    assert gc._core.simd_targets_supported() == SUPPORTED  # the CPU's list, not the forced one
    gc._core.set_simd_target(None)
    assert gc.simd_target() == BEST


def test_kernels_follow_the_target(rng):
    # Timing-free evidence that the kernels' own dispatch tables switch: a float32 dot product of
    # K terms comes out with different rounding for each vector width (its lanes are partial
    # sums), while every target stays within the float64 reference's tolerance.
    x = rng.standard_normal((1, 1000)).astype(np.float32)
    w = rng.standard_normal((64, 1000)).astype(np.float32)
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    out = {}
    for target in SUPPORTED:
        gc._core.set_simd_target(target)
        out[target] = gc.ops.linear(x, w)
        np.testing.assert_allclose(out[target], ref, rtol=0, atol=1e-4 * np.abs(ref).max())
    for a in SUPPORTED:
        for b in SUPPORTED:
            if WIDTH.get(a) != WIDTH.get(b):
                assert not np.array_equal(out[a], out[b]), (a, b)
            elif WIDTH.get(a) is not None:
                np.testing.assert_array_equal(out[a], out[b])  # same width: same order


def test_unknown_target_is_refused():
    with pytest.raises(ValueError, match=r"set_simd_target: target 'NEON' is not one .*"
                                         + BEST):
        gc._core.set_simd_target("NEON")
    with pytest.raises(ValueError, match=r"set_simd_target: target ''"):
        gc._core.set_simd_target("")
    assert gc.simd_target() == BEST
