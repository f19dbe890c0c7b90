import ml_dtypes
import numpy as np
import pytest

import gemmacpp as gc
from util import DEVICES, DTYPES, assert_close, on_device, random, to_f64


def linear_ref(x, weight, bias=None):
    """float64 x @ weight.T (+ bias), from the values as stored (half weights already rounded)."""
    y = to_f64(x) @ to_f64(weight).T
    return y if bias is None else y + to_f64(bias)


def assert_linear_close(y, x, weight, bias=None):
    """Max abs error <= 1e-5 * scale, the bound widened for K > 1024.

    scale = max(|x| @ |w|^T + |b|) / sqrt(K), about max|ref| for random-signed terms, but it does
    not collapse when a short sum cancels (K = 1: x*w close to -b) while float32 rounding of the
    terms stays. A float32 dot product of K random-signed terms in a fixed order errs like sqrt(K) * eps times
    the typical term; the relative error still creeps up with K (rounding of the growing partial
    sums), so beyond K = 1024 the bound grows as sqrt(K).
    """
    k = x.shape[-1]
    size = np.abs(to_f64(x)) @ np.abs(to_f64(weight)).T
    if bias is not None:
        size = size + np.abs(to_f64(bias))
    err = np.max(np.abs(to_f64(y) - linear_ref(x, weight, bias)))
    assert err <= 1e-5 * max(1.0, np.sqrt(k / 1024)) * np.max(size) / np.sqrt(k), err


WDTYPES = ["float32", "bfloat16", "float16"]


def rounded_on(device, x, wdtype):
    """x as the op multiplies it: on CUDA, cuBLASLt takes x in a 16-bit weight's dtype."""
    return x if device == "cpu" or wdtype == "float32" else x.astype(DTYPES[wdtype])


@pytest.mark.parametrize("wdtype", WDTYPES)
@pytest.mark.parametrize("m", [1, 2, 3, 5, 64, 130])
@pytest.mark.parametrize("n,k", [(1, 1), (3, 7), (257, 640), (40, 1000), (70, 300), (33, 2100)])
@pytest.mark.parametrize("device", DEVICES)
def test_matches_reference(rng, wdtype, m, n, k, device):
    x = random(rng, (m, k))
    w = random(rng, (n, k), wdtype)
    bias = random(rng, (n,))
    xd, wd = on_device(x, device), on_device(w, device)
    y = gc.ops.linear(xd, wd, bias=on_device(bias, device))
    assert str(y.dtype).removeprefix("torch.") == "float32" and tuple(y.shape) == (m, n)
    xr = rounded_on(device, x, wdtype)
    assert_linear_close(y, xr, w, bias)
    assert_linear_close(gc.ops.linear(xd, wd), xr, w)


def test_k_beyond_one_panel(rng):
    # K spans several packed K-slices, with a short last one, on both paths.
    for m in (1, 9):
        x, w = random(rng, (m, 600)), random(rng, (70, 600), "bfloat16")
        assert_linear_close(gc.ops.linear(x, w), x, w)


def test_one_dimensional_x(rng):
    x, w, b = random(rng, (33,)), random(rng, (19, 33)), random(rng, (19,))
    y = gc.ops.linear(x, w, bias=b)
    assert y.shape == (19,)
    assert_linear_close(y, x, w, b)


@pytest.mark.parametrize("shape", [(2, 3, 40), (2, 1, 40), (3, 4, 5, 40)])
def test_batched_x(rng, shape):
    x, w = random(rng, shape), random(rng, (21, 40), "bfloat16")
    y = gc.ops.linear(x, w)
    assert y.shape == shape[:-1] + (21,)
    assert_linear_close(y, x, w)


@pytest.mark.parametrize("bdtype", WDTYPES)
def test_bias_dtypes(rng, bdtype):
    x, w, b = random(rng, (7, 50)), random(rng, (9, 50)), random(rng, (9,), bdtype)
    assert_linear_close(gc.ops.linear(x, w, bias=b), x, w, b)
    assert_linear_close(gc.ops.linear(x, w, bias=b[::-1]), x, w, b[::-1])  # strided bias


@pytest.mark.parametrize("m", [1, 12])
def test_strided_x(rng, m):
    base = random(rng, (2 * m, 90))
    w = random(rng, (17, 45))
    for x in (base[::2, :45], base[::2, 45:], base[:, ::2][:m]):  # row- and column-strided
        assert_linear_close(gc.ops.linear(x, w), x, w)
    x3 = random(rng, (3, 2 * m, 45))[:, ::2]  # leading dims that do not collapse into one stride
    assert_linear_close(gc.ops.linear(x3, w), x3, w)


def test_broadcast_and_reversed_x(rng):
    w = random(rng, (13, 24), "float16")
    row = random(rng, (24,))
    xb = np.broadcast_to(row, (7, 24))  # zero row stride: read in place
    assert_linear_close(gc.ops.linear(xb, w), xb, w)
    xr = random(rng, (9, 24))[::-1]  # negative row stride: copied
    assert_linear_close(gc.ops.linear(xr, w), xr, w)


def test_no_rows(rng):
    y = gc.ops.linear(np.zeros((0, 5), np.float32), random(rng, (3, 5)))
    assert y.shape == (0, 3)


@pytest.mark.parametrize("m", [1, 12])
def test_strided_and_transposed_weight(rng, m):
    x = random(rng, (m, 30))
    big = random(rng, (40, 60), "bfloat16")
    for w in (big[::2, :30], big[:20, 30:], big[:30, :20].T, big[:20, ::2], big[::-1, :30]):
        assert_linear_close(gc.ops.linear(x, w), x, w)


def test_out_written_in_place(rng):
    x, w = random(rng, (10, 32)), random(rng, (11, 32))
    out = np.full((10, 11), np.nan, np.float32)
    assert gc.ops.linear(x, w, out=out) is out
    assert_linear_close(out, x, w)
    buf = np.zeros((10, 30), np.float32)  # row-strided out
    gc.ops.linear(x, w, out=buf[:, 5:16])
    assert_linear_close(buf[:, 5:16], x, w)
    assert np.all(buf[:, :5] == 0) and np.all(buf[:, 16:] == 0)
    col = np.zeros((10, 22), np.float32)  # column-strided out: written through a temporary
    gc.ops.linear(x, w, out=col[:, ::2])
    assert_linear_close(col[:, ::2], x, w)
    assert np.all(col[:, 1::2] == 0)


def test_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(random(rng, (2, 5, 64)))
    w = torch.from_numpy(random(rng, (48, 64))).to(torch.bfloat16)
    b = torch.from_numpy(random(rng, (48,)))
    y = gc.ops.linear(x, w, bias=b)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and y.shape == (2, 5, 48)
    assert_linear_close(y, x, w, b)
    expected = torch.nn.functional.linear(x, w.float(), b)
    assert torch.allclose(y, expected, rtol=0, atol=1e-4 * float(expected.abs().max()))
    out = torch.empty(2, 5, 48)
    gc.ops.linear(x, w, bias=b, out=out)
    assert torch.equal(out, y)


def test_empty_inner_dimension_gives_bias():
    x, w = np.ones((3, 0), np.float32), np.ones((4, 0), np.float32)
    b = np.arange(4, dtype=np.float32)
    assert np.array_equal(gc.ops.linear(x, w, bias=b), np.tile(b, (3, 1)))
    assert np.array_equal(gc.ops.linear(x, w), np.zeros((3, 4), np.float32))


@pytest.mark.parametrize("m", [1, 3, 200])
def test_thread_count_does_not_change_bits(rng, m):
    x, w, b = random(rng, (m, 333)), random(rng, (1000, 333), "bfloat16"), random(rng, (1000,))
    old = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        y1 = np.asarray(gc.ops.linear(x, w, bias=b))
        gc.set_num_threads(2)
        y2 = np.asarray(gc.ops.linear(x, w, bias=b))
    finally:
        gc.set_num_threads(old)
    assert np.array_equal(y1, y2)
    assert_linear_close(y1, x, w, b)


def test_bad_inputs():
    x, w = np.ones((2, 4), np.float32), np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="linear: x must be float32"):
        gc.ops.linear(x.astype(ml_dtypes.bfloat16), w)
    with pytest.raises(TypeError, match="linear: x must be float32"):
        gc.ops.linear(x.astype(np.float64), w)
    with pytest.raises(TypeError, match="linear: weight must be"):
        gc.ops.linear(x, w.astype(np.int32))
    with pytest.raises(ValueError, match=r"linear: x has K = 4 .* weight has K = 5"):
        gc.ops.linear(x, np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match="linear: weight must have 2 dimensions"):
        gc.ops.linear(x, np.ones((3, 4, 1), np.float32))
    with pytest.raises(ValueError, match="linear: bias must have shape"):
        gc.ops.linear(x, w, bias=np.ones(4, np.float32))
    with pytest.raises(TypeError, match="linear: bias"):
        gc.ops.linear(x, w, bias=np.ones(3, np.int64))
    with pytest.raises(ValueError, match="linear: out must have shape"):
        gc.ops.linear(x, w, out=np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="linear: out has dtype"):
        gc.ops.linear(x, w, out=np.ones((2, 3), np.float16))


@pytest.mark.gpu
@pytest.mark.parametrize("wdtype", WDTYPES)
def test_cuda_bias_batched_and_out(rng, wdtype):
    torch = pytest.importorskip("torch")
    x, w = random(rng, (2, 3, 256)), random(rng, (96, 256), wdtype)
    xr = rounded_on("cuda", x, wdtype)
    xc, wc = on_device(x, "cuda"), on_device(w, "cuda")
    for bdtype in WDTYPES:
        b = random(rng, (96,), bdtype)
        y = gc.ops.linear(xc, wc, bias=on_device(b, "cuda"))
        assert isinstance(y, torch.Tensor) and y.is_cuda and tuple(y.shape) == (2, 3, 96)
        assert_linear_close(y, xr, w, b)
    out = torch.full((6, 96), float("nan"), device="cuda")
    assert gc.ops.linear(xc.reshape(6, 256), wc, out=out) is out
    assert_linear_close(out, xr.reshape(6, 256), w)
    # Row-strided x and weight (slices of wider arrays) are read in place.
    wide = random(rng, (6, 512))
    y = gc.ops.linear(on_device(wide, "cuda")[:, :256], wc)
    assert_linear_close(y, rounded_on("cuda", wide[:, :256], wdtype), w)
    assert_linear_close(gc.ops.linear(xc[:, :, :0], wc[:, :0]), x[..., :0], w[:, :0])  # K = 0


@pytest.mark.gpu
def test_cuda_bad_inputs():
    torch = pytest.importorskip("torch")
    x = torch.ones(2, 4, device="cuda")
    with pytest.raises(ValueError, match="same device"):
        gc.ops.linear(x, torch.ones(3, 4))
    with pytest.raises(ValueError, match="linear: weight on cuda:0 must have a contiguous last"):
        gc.ops.linear(x, torch.ones(4, 3, device="cuda").T)
