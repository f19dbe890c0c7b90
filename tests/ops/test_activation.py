import numpy as np
import pytest

import gemmacpp as gc
from util import DEVICES, DTYPES, FMA_TARGETS, assert_close, on_device, random, to_f64

FLOATS = ["float32", "float16", "bfloat16"]
SHAPES = [(1,), (3,), (17,), (4, 640), (2, 3, 2304), (40000,), (3, 5, 7, 9)]


def gelu_tanh_literal(x):
    x = to_f64(x)
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def gelu_tanh_ref(x):
    """The same function as gelu_tanh_literal, as x * sigmoid(2u) (0.5 (1 + tanh u) = sigmoid(2u)):
    the literal form loses all digits to 1 + tanh(u) ~ 0 for x below about -6, even in float64."""
    x = to_f64(x)
    u = np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)
    with np.errstate(over="ignore"):
        return x / (1.0 + np.exp(-2.0 * u))


def in_dtype(ref, dtype):
    """The reference rounded once to the output dtype: when every |result| is tiny (a few strongly
    negative inputs), float16 cannot hold it, and a tolerance relative to max|ref| would ask for
    digits that the format does not have."""
    return ref.astype(DTYPES[dtype]).astype(np.float64)


def test_reference_is_the_literal_formula():
    x = np.linspace(-5.0, 20.0, 1001)
    np.testing.assert_allclose(gelu_tanh_ref(x), gelu_tanh_literal(x), rtol=1e-9, atol=1e-15)


def geglu_ref(gate, up):
    return gelu_tanh_ref(gate) * to_f64(up)


# --- gelu_tanh ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("device", DEVICES)
def test_gelu_tanh_matches_reference(rng, dtype, shape, device):
    x = on_device(random(rng, shape, dtype, scale=3.0), device)
    y = gc.ops.gelu_tanh(x)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert_close(y, in_dtype(gelu_tanh_ref(x), dtype), dtype)


def test_gelu_tanh_tails_and_zero(simd_target):
    x = np.array([-1e30, -1e4, -30.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 30.0, 1e4, 1e30], np.float32)
    y = gc.ops.gelu_tanh(x)
    ref = gelu_tanh_ref(x)
    assert_close(y, ref)
    # Elementwise, not only relative to the largest value: each entry near its own reference.
    # Without fused multiply-adds, the argument t = 17 of e^t at x = -5 is rounded about twice
    # more, each time up to 2^-24 * 17 = 1e-6 relative in the result (measured 1.4e-6).
    rel = 1e-6 if simd_target in FMA_TARGETS else 3e-6
    assert np.all(np.abs(to_f64(y) - ref) <= rel * np.abs(ref) + 1e-30)
    assert y[5] == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_gelu_tanh_elementwise_relative_error(rng, device):
    # Moderate negative inputs, where 1 + tanh(u) cancels: every element to ~1e-5 of itself.
    x = np.linspace(-9.0, 9.0, 5001).astype(np.float32)
    y, ref = to_f64(gc.ops.gelu_tanh(on_device(x, device))), gelu_tanh_ref(x)
    mask = np.abs(ref) > 1e-30
    assert np.max(np.abs(y - ref)[mask] / np.abs(ref)[mask]) < 1e-5


def test_gelu_tanh_strided_out_and_in_place(rng):
    big = random(rng, (6, 40))
    x = big[::2, ::3]
    assert_close(gc.ops.gelu_tanh(x), gelu_tanh_ref(x))
    xt = random(rng, (33, 4)).T
    assert_close(gc.ops.gelu_tanh(xt), gelu_tanh_ref(xt))
    x = random(rng, (4, 33))
    ref = gelu_tanh_ref(x)
    buf = np.zeros((4, 66), np.float32)
    assert gc.ops.gelu_tanh(x, out=buf[:, ::2]) is not None
    assert_close(buf[:, ::2], ref)
    assert np.all(buf[:, 1::2] == 0)
    assert gc.ops.gelu_tanh(x, out=x) is x
    assert_close(x, ref)


def test_gelu_tanh_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(random(rng, (3, 50), scale=3.0)).to(torch.float16)
    y = gc.ops.gelu_tanh(x)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float16
    assert_close(y, gelu_tanh_ref(x), "float16")
    assert_close(y, torch.nn.functional.gelu(x.double(), approximate="tanh"), "float16")
    assert_close(y, gelu_tanh_literal(x), "float16")


# --- geglu -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("device", DEVICES)
def test_geglu_matches_reference(rng, dtype, shape, device):
    gate = on_device(random(rng, shape, dtype, scale=3.0), device)
    up = on_device(random(rng, shape, dtype), device)
    y = gc.ops.geglu(gate, up)
    assert y.dtype == gate.dtype and y.shape == gate.shape
    assert_close(y, in_dtype(geglu_ref(gate, up), dtype), dtype)


def test_geglu_strided_inputs(rng):
    # The Gemma MLP's fused gate/up projection: both halves are column slices of one array.
    fused = random(rng, (5, 2 * 96), scale=2.0)
    gate, up = fused[:, :96], fused[:, 96:]
    assert_close(gc.ops.geglu(gate, up), geglu_ref(gate, up))
    gate_t = random(rng, (17, 6)).T
    up_s = random(rng, (6, 34))[:, ::2]
    assert_close(gc.ops.geglu(gate_t, up_s), geglu_ref(gate_t, up_s))


def test_geglu_out_and_in_place(rng):
    gate, up = random(rng, (3, 70), "bfloat16"), random(rng, (3, 70), "bfloat16")
    ref = geglu_ref(gate, up)
    out = np.zeros_like(gate)
    assert gc.ops.geglu(gate, up, out=out) is out
    assert_close(out, ref, "bfloat16")
    g2, u2 = gate.copy(), up.copy()
    assert gc.ops.geglu(g2, u2, out=g2) is g2  # in place over gate
    assert_close(g2, ref, "bfloat16")
    assert gc.ops.geglu(gate, u2, out=u2) is u2  # in place over up
    assert_close(u2, ref, "bfloat16")


def test_geglu_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    gate = torch.from_numpy(random(rng, (2, 3, 64), scale=2.0)).to(torch.bfloat16)
    up = torch.from_numpy(random(rng, (2, 3, 64))).to(torch.bfloat16)
    y = gc.ops.geglu(gate, up)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.bfloat16 and y.shape == gate.shape
    assert_close(y, geglu_ref(gate, up), "bfloat16")


# --- both --------------------------------------------------------------------------------------

def test_same_result_for_any_thread_count(rng):
    gate, up = random(rng, (300, 640), "float16", 3.0), random(rng, (300, 640), "float16")
    saved = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        one = gc.ops.geglu(gate, up), gc.ops.gelu_tanh(gate)
        gc.set_num_threads(2)
        two = gc.ops.geglu(gate, up), gc.ops.gelu_tanh(gate)
    finally:
        gc.set_num_threads(saved)
    for a, b in zip(one, two):
        assert np.array_equal(a.view(np.uint16), b.view(np.uint16))
    assert_close(one[0], geglu_ref(gate, up), "float16")
    assert_close(one[1], gelu_tanh_ref(gate), "float16")


def test_empty():
    assert gc.ops.gelu_tanh(np.zeros((0, 5), np.float32)).shape == (0, 5)
    e = np.zeros((3, 0), np.float16)
    assert gc.ops.geglu(e, e).shape == (3, 0)


def test_bad_inputs():
    x = np.ones((2, 4), np.float32)
    with pytest.raises(TypeError, match="gelu_tanh: x must be float32"):
        gc.ops.gelu_tanh(x.astype(np.float64))
    with pytest.raises(TypeError, match="gelu_tanh: out has dtype float16"):
        gc.ops.gelu_tanh(x, out=np.empty((2, 4), np.float16))
    with pytest.raises(ValueError, match="gelu_tanh: out must have shape"):
        gc.ops.gelu_tanh(x, out=np.empty((4, 2), np.float32))
    with pytest.raises(TypeError, match="geglu: gate must be float32"):
        gc.ops.geglu(x.astype(np.int32), x)
    with pytest.raises(TypeError, match="geglu: up must be float32"):
        gc.ops.geglu(x, x.astype(np.int64))
    with pytest.raises(TypeError, match="geglu: up has dtype bfloat16 but gate has float32"):
        gc.ops.geglu(x, random(np.random.default_rng(0), (2, 4), "bfloat16"))
    with pytest.raises(ValueError, match=r"geglu: up has shape \[2, 1\] but gate has shape \[2, 4\]"):
        gc.ops.geglu(x, np.ones((2, 1), np.float32))
    with pytest.raises(ValueError, match="geglu: out must have shape"):
        gc.ops.geglu(x, x, out=np.empty(8, np.float32))


@pytest.mark.gpu
def test_cuda_in_place_and_bad_inputs(rng):
    torch = pytest.importorskip("torch")
    gate, up = random(rng, (3, 640), "float16", 3.0), random(rng, (3, 640), "float16")
    gc_, uc = on_device(gate, "cuda"), on_device(up, "cuda")
    assert gc.ops.geglu(gc_, uc, out=gc_) is gc_
    assert_close(gc_, in_dtype(geglu_ref(gate, up), "float16"), "float16")
    x = torch.ones(4, 6, device="cuda")
    with pytest.raises(ValueError, match="gelu_tanh: x on cuda:0 must be contiguous"):
        gc.ops.gelu_tanh(x.T)
    with pytest.raises(ValueError, match="geglu: up is on cpu but gate is on cuda:0"):
        gc.ops.geglu(x, torch.ones(4, 6))
