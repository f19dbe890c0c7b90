"""linear(x, QuantizedTensor, activations="int8"): x rounded to int8 per block as specified in
csrc/cpu/quant_int8.h (float32 scale max|x| / 127, round to nearest even of x * (127 / max|x|) in
float32), then exact dot products with the weights. The reference does that rounding in float32
NumPy, takes the weights from the gguf package's dequantization, and sums in float64; the kernel
must agree to float32 rounding, on every SIMD target (tests/ops/conftest.py), bitwise whatever the
number of rows or threads."""
import numpy as np
import pytest

import gemmacpp as gc
from util import random

pytest.importorskip("gguf")
from test_quant import LAYOUT, QTYPES, oracle, random_blocks  # noqa: E402


def x_block(qtype):
    return 256 if LAYOUT[qtype][0] == 256 else 32


def round_x(x, bs):
    """x [M, K] float32 -> (q [M, K/bs, bs] integers, d [M, K/bs]) as the kernel rounds it."""
    x = np.asarray(x, np.float32)
    xb = x.reshape(x.shape[0], -1, bs)
    amax = np.abs(xb).max(-1)
    with np.errstate(divide="ignore"):
        inv = np.where(amax > 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
    q = np.clip(np.rint((xb * inv[..., None]).astype(np.float32)), -127, 127)
    return q, (amax / np.float32(127)).astype(np.float32)


def reference(x, qt, bias=None):
    """float64 sum over blocks of d_x * sum(q_x * w) (w: gguf's dequantized weights); also the
    scale the error is measured against: the largest sum of |d_x q_x w| over an output's values
    (the kernels convert partial integer sums of a block, lanes of up to 8 products with the
    block's offset or min, to float32: their rounding follows those magnitudes, not the block's
    total after cancellation)."""
    n, k = qt.shape
    x2 = np.asarray(x, np.float32).reshape(-1, k)
    bs = x_block(qt.qtype)
    q, d = round_x(x2, bs)
    w = oracle(qt).astype(np.float64).reshape(n, k // bs, bs)
    terms = np.einsum("mbi,nbi->mnb", q.astype(np.float64), w) * d.astype(np.float64)[:, None, :]
    ref = terms.sum(-1)
    if bias is not None:
        ref = ref + np.asarray(bias, np.float64)
    absum = np.einsum("mbi,nbi->mn", np.abs(q) * d[..., None].astype(np.float64), np.abs(w))
    return ref.reshape(*np.shape(x)[:-1], n), absum.max()


def assert_int8_close(y, x, qt, bias=None):
    ref, scale = reference(x, qt, bias)
    assert np.shape(y) == ref.shape, (np.shape(y), ref.shape)
    assert np.all(np.isfinite(y))
    # Each block adds one or two float32 products to a float32 sum: about K / block roundings.
    blocks = qt.shape[1] // LAYOUT[qt.qtype][0]
    tol = 4e-7 * (blocks + 2) * max(scale, 1e-30)
    err = np.abs(np.asarray(y, np.float64) - ref).max()
    assert err <= tol, f"max abs error {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("m,n,blocks", [(1, 1, 1), (1, 37, 3), (3, 5, 2), (4, 70, 1),
                                        (5, 9, 4), (33, 13, 2)])
def test_int8_matches_reference(rng, qtype, m, n, blocks):
    k = LAYOUT[qtype][0] * blocks
    qt = random_blocks(rng, qtype, n, k)
    x = random(rng, (m, k))
    x[0, :7] *= 30.0  # blocks with one large value beside small ones
    assert_int8_close(gc.ops.linear(x, qt, activations="int8"), x, qt)


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_K", "Q6_K", "Q5_1"])
def test_int8_bias_batched_strided_and_1d_x(rng, qtype):
    k = LAYOUT[qtype][0] * 2
    qt = random_blocks(rng, qtype, 6, k)
    bias = random(rng, (6,))
    x = random(rng, (2, 3, k))
    assert_int8_close(gc.ops.linear(x, qt, bias=bias, activations="int8"), x, qt, bias)
    xs = random(rng, (4, 2 * k))[:, ::2]  # a strided view
    assert_int8_close(gc.ops.linear(xs, qt, activations="int8"), xs, qt)
    x1 = random(rng, (k,))
    assert_int8_close(gc.ops.linear(x1, qt, activations="int8")[None], x1[None], qt)


def test_int8_rounds_half_to_even(rng):
    # One block with max|x| = 127 has scale 1 and x * 127 / 127 = x exactly: k + 0.5 rounds to
    # the even neighbour (2.5 -> 2, 3.5 -> 4, -2.5 -> -2), which the reference's rint does too.
    # Rounding half away from zero would move each such output by a whole weight.
    qt = random_blocks(rng, "Q8_0", 8, 32)
    x = np.array([[127.0] + [v + 0.5 for v in range(-15, 16)]], np.float32)
    assert_int8_close(gc.ops.linear(x, qt, activations="int8"), x, qt)
    assert np.abs(np.asarray(gc.ops.linear(x, qt, activations="int8")) -
                  np.asarray(gc.ops.linear(x, qt))).max() > 0  # really rounded


def test_int8_differs_from_exact_path_by_the_rounding(rng):
    # The exact path and the int8 one agree to about the int8 rounding of x (relative 1/254 per
    # value), not bitwise: activations="int8" really takes the other arithmetic.
    qt = random_blocks(rng, "Q4_K", 16, 512)
    x = random(rng, (3, 512))
    exact = np.asarray(gc.ops.linear(x, qt), np.float64)
    int8 = np.asarray(gc.ops.linear(x, qt, activations="int8"), np.float64)
    rel = np.abs(int8 - exact).max() / np.abs(exact).max()
    assert 0 < rel < 0.02, rel


@pytest.mark.parametrize("qtype", QTYPES)
def test_int8_rows_do_not_depend_on_batch_or_threads(rng, qtype):
    k = LAYOUT[qtype][0] * 2
    qt = random_blocks(rng, qtype, 67, k)
    x = random(rng, (41, k))
    before = gc.get_num_threads()
    try:
        gc.set_num_threads(2)
        alone = np.stack([np.asarray(gc.ops.linear(x[i], qt, activations="int8"))
                          for i in range(len(x))])
        for m in (2, 3, 4, 5, 9, 41):
            np.testing.assert_array_equal(gc.ops.linear(x[:m], qt, activations="int8"), alone[:m])
        np.testing.assert_array_equal(gc.ops.linear(x[17:23], qt, activations="int8"), alone[17:23])
        gc.set_num_threads(1)
        np.testing.assert_array_equal(gc.ops.linear(x, qt, activations="int8"), alone)
    finally:
        gc.set_num_threads(before)


def test_int8_zero_and_non_finite_rows(rng):
    qt = random_blocks(rng, "Q4_K", 5, 512)
    x = random(rng, (4, 512))
    x[1] = 0.0
    x[2, 300] = np.nan
    x[3, 3] = np.inf
    y = np.asarray(gc.ops.linear(x, qt, activations="int8"))
    assert np.all(y[1] == 0)
    assert np.all(np.isnan(y[2])) and np.all(np.isnan(y[3]))  # as the exact path, never finite
    assert_int8_close(y[:1], x[:1], qt)


def test_int8_float_weights_take_the_float_path(rng):
    w = random(rng, (7, 64))
    x = random(rng, (3, 64))
    np.testing.assert_array_equal(gc.ops.linear(x, w, activations="int8"), gc.ops.linear(x, w))


def test_bad_activations(rng):
    qt = random_blocks(rng, "Q8_0", 4, 64)
    x = random(rng, (2, 64))
    with pytest.raises(ValueError, match=r"linear: activations must be 'float32' .* or 'int8'.*"
                                         r"got 'int4'"):
        gc.ops.linear(x, qt, activations="int4")
    with pytest.raises(ValueError, match=r"got 'bfloat16'"):
        gc.ops.linear(x, random(rng, (4, 64)), activations="bfloat16")
    with pytest.raises(TypeError, match=r"linear: activations must be 'float32' or 'int8', got 8"):
        gc.ops.linear(x, qt, activations=8)
