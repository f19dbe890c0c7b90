"""gaussian_topk (Gemma 3n's activation sparsity) against a float64 reference of transformers'
Gemma3nTextMLP._gaussian_topk: relu(x - (mean + z * std)) per row, std the population one."""
import numpy as np
import pytest

import gemmacpp as gc
from util import (DEVICES, DTYPES, assert_close, on_device, on_every_target_and_thread_count,
                  random, to_f64)

Z95 = 1.6448536  # Normal(0, 1).icdf(0.95), as Gemma 3n's sparse layers use


def topk_ref(x, z):
    x = to_f64(x)
    cutoff = x.mean(-1, keepdims=True) + z * x.std(-1, keepdims=True)
    return np.maximum(x - cutoff, 0.0)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 17), (2, 5, 129), (4, 16384), (3, 40000), (20000, 3)])
@pytest.mark.parametrize("z", [Z95, 0.0, -0.7])
def test_matches_reference(rng, dtype, shape, z):
    x = (random(rng, shape, scale=3.0) + rng.standard_normal(shape[:-1] + (1,))).astype(DTYPES[dtype])
    y = gc.ops.gaussian_topk(x, z)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert_close(y, topk_ref(x, z), dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", [(3, 17), (4, 16384), (2, 1)])
def test_on_each_device(rng, device, dtype, shape):
    x = random(rng, shape, dtype, scale=2.0)
    x[0] = x[0, :1]  # a row of equal values
    assert_close(gc.ops.gaussian_topk(on_device(x, device), Z95), topk_ref(x, Z95), dtype)


def test_keeps_about_the_top_fraction(rng):
    x = random(rng, (8, 16384))
    kept = (gc.ops.gaussian_topk(x, Z95) > 0).mean()
    assert 0.04 < kept < 0.06


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("F", [1, 5, 64, 1000])
def test_rows_of_equal_values_give_zeros(dtype, F):
    # std 0: the cutoff is the value itself, and nothing lies above it, whatever z.
    x = np.array([[3.7] * F, [-2.25] * F, [0.0] * F, [1e30] * F], np.float32)
    if dtype == "float16":
        x[3] = 6e4
    x = x.astype(DTYPES[dtype])
    for z in (Z95, 0.0, -3.0):
        y = gc.ops.gaussian_topk(x, z)
        assert np.all(to_f64(y) == 0.0), (z, y)


def test_in_place_strided_and_out(rng):
    x = random(rng, (6, 300))
    want = topk_ref(x, Z95)
    assert_close(gc.ops.gaussian_topk(x[:, ::2], Z95), topk_ref(x[:, ::2], Z95))
    buf = np.zeros((6, 600), np.float32)
    gc.ops.gaussian_topk(x, Z95, out=buf[:, ::2])
    assert_close(buf[:, ::2], want)
    assert gc.ops.gaussian_topk(x, Z95, out=x) is x
    assert_close(x, want)


def test_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(random(rng, (3, 500))).to(torch.bfloat16)
    y = gc.ops.gaussian_topk(x, Z95)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.bfloat16
    assert_close(y, topk_ref(x, Z95), "bfloat16")


def test_same_bits_for_any_thread_count_and_target(rng):
    x = random(rng, (300, 2048))
    results = on_every_target_and_thread_count(lambda: gc.ops.gaussian_topk(x, Z95))
    for y in results[1:]:
        assert np.array_equal(y, results[0])


@pytest.mark.parametrize("z", [float("nan"), float("inf"), -float("inf")])
def test_bad_z(z):
    with pytest.raises(ValueError, match="gaussian_topk: z"):
        gc.ops.gaussian_topk(np.ones((2, 3), np.float32), z)


def test_bad_dtype():
    with pytest.raises(TypeError, match="gaussian_topk"):
        gc.ops.gaussian_topk(np.ones((2, 3), np.int32), 1.0)
