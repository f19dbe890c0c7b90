import numpy as np
import pytest

import gemmacpp as gc
from util import assert_close, random, to_f64

FLOATS = ["float32", "float16", "bfloat16"]


def layer_norm_ref(x, w, b=None, eps=1e-6):
    x, w = to_f64(x), to_f64(w)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps) * w
    return y if b is None else y + to_f64(b)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("d", [1, 3, 17, 64, 1152, 2304])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_matches_reference(rng, dtype, d, rank):
    lead = tuple(int(n) for n in rng.integers(1, 6, size=rank - 1))
    x = random(rng, lead + (d,), dtype, scale=3.0)
    w = random(rng, (d,), dtype, scale=0.5)
    b = random(rng, (d,), dtype, scale=0.5)
    y = gc.ops.layer_norm(x, w, b, 1e-6)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert_close(y, layer_norm_ref(x, w, b, 1e-6), dtype)


def test_no_bias(rng):
    x = random(rng, (4, 50))
    w = random(rng, (50,))
    assert_close(gc.ops.layer_norm(x, w, None), layer_norm_ref(x, w))
    assert_close(gc.ops.layer_norm(x, w), layer_norm_ref(x, w))


@pytest.mark.parametrize("x_dtype", FLOATS)
@pytest.mark.parametrize("w_dtype", FLOATS)
def test_param_dtype_may_differ(rng, x_dtype, w_dtype):
    x = random(rng, (7, 129), x_dtype)
    w = random(rng, (129,), w_dtype, scale=0.3)
    b = random(rng, (129,), w_dtype, scale=0.3)
    y = gc.ops.layer_norm(x, w, b)
    assert y.dtype == x.dtype
    assert_close(y, layer_norm_ref(x, w, b), x_dtype)


@pytest.mark.parametrize("eps", [0.0, 1e-6, 1e-2, 1.0, 100.0])
def test_eps(rng, eps):
    x = random(rng, (5, 33), scale=0.1)
    w, b = random(rng, (33,)), random(rng, (33,))
    assert_close(gc.ops.layer_norm(x, w, b, eps), layer_norm_ref(x, w, b, eps))


def test_large_mean_small_spread(rng):
    # Two-pass statistics: a mean 1e4 times the spread must not swallow the variance.
    x = (1000.0 + random(rng, (6, 300), scale=0.1)).astype(np.float32)
    w, b = random(rng, (300,)), random(rng, (300,))
    y = gc.ops.layer_norm(x, w, b)
    ref = layer_norm_ref(x, w, b)
    assert np.max(np.abs(to_f64(y) - ref)) <= 2e-3 * np.max(np.abs(ref))


def test_constant_rows_give_bias(rng):
    x = np.full((3, 40), 2.5, dtype=np.float32)
    w, b = random(rng, (40,)), random(rng, (40,))
    assert_close(gc.ops.layer_norm(x, w, b, 1e-6), layer_norm_ref(x, w, b, 1e-6))


def test_strided_inputs_are_read_right(rng):
    big = random(rng, (6, 80))
    p = random(rng, (3, 40))
    x, w, b = big[::2, ::2], p[1], p[2]
    assert_close(gc.ops.layer_norm(x, w, b), layer_norm_ref(x, w, b))


def test_out(rng):
    x = random(rng, (4, 20))
    w, b = random(rng, (20,)), random(rng, (20,))
    out = np.empty_like(x)
    r = gc.ops.layer_norm(x, w, b, out=out)
    assert r is out
    assert_close(out, layer_norm_ref(x, w, b))


def test_threads_bitwise(rng):
    x = random(rng, (300, 1152))
    w, b = random(rng, (1152,)), random(rng, (1152,))
    n = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        a = gc.ops.layer_norm(x, w, b)
        gc.set_num_threads(2)
        c = gc.ops.layer_norm(x, w, b)
    finally:
        gc.set_num_threads(n)
    assert np.array_equal(a, c)


def test_bad_arguments(rng):
    x = random(rng, (2, 8))
    w = random(rng, (8,))
    with pytest.raises(ValueError, match="layer_norm: weight"):
        gc.ops.layer_norm(x, random(rng, (7,)))
    with pytest.raises(ValueError, match="layer_norm: bias"):
        gc.ops.layer_norm(x, w, random(rng, (9,)))
    with pytest.raises(TypeError, match="layer_norm: x"):
        gc.ops.layer_norm(x.astype(np.int32), w)
    with pytest.raises(TypeError, match="layer_norm: bias"):
        gc.ops.layer_norm(x, w, w.astype(np.float16))
    with pytest.raises(ValueError, match="eps"):
        gc.ops.layer_norm(x, w, None, -1.0)
