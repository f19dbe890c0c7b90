import numpy as np
import pytest

import gemmacpp as gc
from util import FMA_TARGETS, assert_close, random, to_f64


def rg_lru_ref(x, gate_x, gate_a, a_param, h0=None, reset=None, c=8.0):
    """Float64 RG-LRU, step by step as Griffin defines it."""
    x, gx, ga, p = (to_f64(v) for v in (x, gate_x, gate_a, a_param))
    B, T, W = x.shape
    if reset is None:
        reset = np.zeros((B, T), bool)
        if h0 is None:
            reset[:, 0] = True
    h = np.zeros((B, W)) if h0 is None else to_f64(h0)
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))
    log_a = -c * sigmoid(ga) * np.logaddexp(0.0, p)
    a, mult = np.exp(log_a), np.sqrt(-np.expm1(2.0 * log_a))
    gated = x * sigmoid(gx)
    y = np.empty_like(x)
    for t in range(T):
        r = np.asarray(reset)[:, t, None]
        h = np.where(r, gated[:, t], a[:, t] * h + mult[:, t] * gated[:, t])
        y[:, t] = h
    return y, h


def inputs(rng, shape, dtype="float32", a_dtype="float32"):
    x = random(rng, shape, dtype)
    gx = random(rng, shape, dtype, scale=2.0)
    ga = random(rng, shape, dtype, scale=2.0)
    # As initialised in RecurrentGemma: a = sigmoid(-p)^8 spans roughly 0.9 .. 0.999 at r = 1.
    p = rng.uniform(-8.0, 2.0, shape[-1]).astype(random(rng, (1,), a_dtype).dtype)
    return x, gx, ga, p


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 7, 5), (2, 33, 8), (3, 17, 300), (2, 9, 517),
                                   (1, 6, 4099)])
def test_matches_reference(rng, dtype, shape):
    x, gx, ga, p = inputs(rng, shape, dtype)
    y, h = gc.ops.rg_lru(x, gx, ga, p)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert h.dtype == np.float32 and h.shape == (shape[0], shape[2])
    y_ref, h_ref = rg_lru_ref(x, gx, ga, p)
    assert_close(y, y_ref, dtype)
    assert_close(h, h_ref, "float32" if dtype == "float32" else dtype)


def test_long_memory_keeps_precision(rng):
    # a close to 1: 1 - a^2 ~ 1e-6, where computing 1 - a*a in float32 would lose most digits.
    x, gx, ga, _ = inputs(rng, (2, 200, 40))
    p = np.full(40, -12.0, np.float32)
    y, h = gc.ops.rg_lru(x, gx, ga, p)
    y_ref, h_ref = rg_lru_ref(x, gx, ga, p)
    assert_close(y, y_ref, rtol=1e-5)
    assert_close(h, h_ref, rtol=1e-5)


def test_one_step_elementwise_precision(rng, simd_target):
    """Every lane to float32 precision, not only relative to the largest value: one step from h0
    with gate logits swept over [-100, 100] (beyond the kernel's clamps at +-87), a_param from
    long memories (a -> 1, 1 - a^2 ~ 1e-8) to a ~ 0, and x and h0 of mixed magnitudes, all
    positive so that a h0 and sqrt(1 - a^2) i x add without cancelling. A wrong exponential, or
    1 - a*a or a = 1 + (a - 1) computed in float32, would show here."""
    W = 20000
    gx = rng.permutation(np.linspace(-100, 100, W)).astype(np.float32)
    ga = rng.permutation(np.linspace(-100, 100, W)).astype(np.float32)
    p = rng.uniform(-20, 50, W).astype(np.float32)
    x = (10.0 ** rng.uniform(-3, 3, W)).astype(np.float32)
    h0 = (10.0 ** rng.uniform(-3, 3, (1, W))).astype(np.float32)
    y, h = gc.ops.rg_lru(x[None, None], gx[None, None], ga[None, None], p, h0=h0)
    y_ref, _ = rg_lru_ref(x[None, None], gx[None, None], ga[None, None], p, h0=h0)
    y, y_ref = y[0, 0].astype(np.float64), y_ref[0, 0]
    # exp(log a) amplifies the float32 rounding of log a by |log a|; the clamps change values
    # below 1e-35 only.
    log_a = -8.0 / (1.0 + np.exp(-ga.astype(np.float64))) * np.logaddexp(0.0, p.astype(np.float64))
    tol = 5e-7 * (1.0 + np.abs(log_a)) * y_ref + 1e-30
    if simd_target not in FMA_TARGETS:
        # Each gate's 1 + e^-g then rounds g log2(e): up to 6e-8 |g| relative (OnePlusExpNeg, g
        # clamped to +-87), through the input gate directly and the recurrence gate's 1 - a^2.
        g = np.minimum(np.abs(gx), 87.0) + np.minimum(np.abs(ga), 87.0)
        tol += 6e-8 * g * y_ref
    bad = np.abs(y - y_ref) > tol
    assert not bad.any(), (np.abs(y - y_ref)[bad] / y_ref[bad], gx[bad], ga[bad], p[bad])
    np.testing.assert_array_equal(h[0], y.astype(np.float32))


@pytest.mark.parametrize("scale", [10.0, 60.0])
def test_extreme_gate_logits(rng, scale):
    x, _, _, p = inputs(rng, (2, 60, 300))
    gx, ga = random(rng, (2, 60, 300), scale=scale), random(rng, (2, 60, 300), scale=scale)
    p = rng.uniform(-20, 40, 300).astype(np.float32)
    y, h = gc.ops.rg_lru(x, gx, ga, p)
    y_ref, h_ref = rg_lru_ref(x, gx, ga, p)
    assert_close(y, y_ref)
    assert_close(h, h_ref)


def test_constant_long_memory_over_thousands_of_steps(rng):
    """a the same at every step (gate_a saturated) and close to 1 (1 - a from 1e-6 to 1e-3), over
    3000 steps: rounding a itself to float32 (half an ulp of 1, up to 6% of 1 - a) would bias the
    memory of a lane the same way at every step; that showed as a 3.7e-5 relative error here."""
    x = random(rng, (1, 3000, 64)) + 0.5
    gx = random(rng, (1, 3000, 64))
    ga = np.full((1, 3000, 64), 20.0, np.float32)
    p = np.linspace(-16.0, -9.0, 64).astype(np.float32)
    y, h = gc.ops.rg_lru(x, gx, ga, p)
    y_ref, h_ref = rg_lru_ref(x, gx, ga, p)
    assert_close(y, y_ref)
    assert_close(h, h_ref)


def test_large_float32_output_streamed(rng):
    # 17.6 MB of float32 y, past the kernel's threshold for non-temporal stores; h0 and a
    # reset mid-way so both step kinds write through that path. The width leaves a tail.
    x, gx, ga, p = inputs(rng, (1, 1100, 4001))
    reset = np.zeros((1, 1100), bool)
    reset[0, 500] = True
    h0 = random(rng, (1, 4001))
    y, h = gc.ops.rg_lru(x, gx, ga, p, h0=h0, reset=reset)
    y_ref, h_ref = rg_lru_ref(x, gx, ga, p, h0=h0, reset=reset)
    assert_close(y, y_ref)
    assert_close(h, h_ref)
    y_part, _ = gc.ops.rg_lru(x[:, :50], gx[:, :50], ga[:, :50], p, h0=h0)  # not streamed
    np.testing.assert_array_equal(y_part, y[:, :50])


def test_resets_mid_sequence(rng):
    x, gx, ga, p = inputs(rng, (3, 40, 19))
    reset = rng.random((3, 40)) < 0.15
    reset[1, 0] = False  # row 1 starts from h0
    h0 = random(rng, (3, 19))
    y, h = gc.ops.rg_lru(x, gx, ga, p, h0=h0, reset=reset)
    y_ref, h_ref = rg_lru_ref(x, gx, ga, p, h0=h0, reset=reset)
    assert_close(y, y_ref)
    assert_close(h, h_ref)
    # A reset forgets everything before it: the segment from a reset on equals a fresh run.
    t = int(np.flatnonzero(reset[0])[-1])
    y_seg, _ = gc.ops.rg_lru(x[:1, t:], gx[:1, t:], ga[:1, t:], p)
    np.testing.assert_array_equal(y[:1, t:], y_seg)


def test_default_reset_depends_on_h0(rng):
    x, gx, ga, p = inputs(rng, (2, 6, 11))
    zeros = np.zeros((2, 11), np.float32)
    fresh, _ = gc.ops.rg_lru(x, gx, ga, p)
    carried, _ = gc.ops.rg_lru(x, gx, ga, p, h0=zeros)
    # With h0 the first step keeps its sqrt(1 - a^2) factor; without, it is a segment start.
    assert_close(carried, rg_lru_ref(x, gx, ga, p, h0=zeros)[0])
    assert not np.allclose(fresh[:, 0], carried[:, 0])
    reset = np.zeros((2, 6), bool)
    reset[:, 0] = True
    np.testing.assert_array_equal(gc.ops.rg_lru(x, gx, ga, p, h0=zeros, reset=reset)[0], fresh)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_two_chunks_equal_one_pass(rng, dtype):
    x, gx, ga, p = inputs(rng, (2, 50, 270), dtype)
    y_full, h_full = gc.ops.rg_lru(x, gx, ga, p)
    y1, h1 = gc.ops.rg_lru(x[:, :17], gx[:, :17], ga[:, :17], p)
    y2, h2 = gc.ops.rg_lru(x[:, 17:], gx[:, 17:], ga[:, 17:], p, h0=h1)
    np.testing.assert_array_equal(np.concatenate([y1, y2], axis=1), y_full)
    np.testing.assert_array_equal(h2, h_full)


def test_token_by_token_equals_one_pass(rng):
    x, gx, ga, p = inputs(rng, (1, 12, 33))
    y_full, h_full = gc.ops.rg_lru(x, gx, ga, p)
    h = None
    for t in range(12):
        y, h = gc.ops.rg_lru(x[:, t:t + 1], gx[:, t:t + 1], ga[:, t:t + 1], p, h0=h,
                             reset=np.array([[t == 0]]))
        np.testing.assert_array_equal(y[:, 0], y_full[:, t])
    np.testing.assert_array_equal(h, h_full)


def test_same_bits_for_any_thread_count(rng):
    x, gx, ga, p = inputs(rng, (3, 64, 2100))  # two width chunks per batch row
    n = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        y1, h1 = gc.ops.rg_lru(x, gx, ga, p)
        gc.set_num_threads(max(2, n))
        y2, h2 = gc.ops.rg_lru(x, gx, ga, p)
    finally:
        gc.set_num_threads(n)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(h1, h2)


def test_mixed_dtypes_of_parameter_and_state(rng):
    x, gx, ga, p = inputs(rng, (2, 5, 9), "float16")
    p16 = p.astype(random(rng, (1,), "bfloat16").dtype)
    h0 = random(rng, (2, 9), "bfloat16")
    y, h = gc.ops.rg_lru(x, gx, ga, p16, h0=h0)
    assert_close(y, rg_lru_ref(x, gx, ga, p16, h0=h0)[0], "float16")


def test_strided_inputs(rng):
    x, gx, ga, p = inputs(rng, (2, 10, 24))
    xs, gxs, gas = x[:, ::2, ::3], gx[:, ::2, ::3], ga[:, ::2, ::3]
    y, _ = gc.ops.rg_lru(xs, gxs, gas, p[::3])
    assert_close(y, rg_lru_ref(xs, gxs, gas, p[::3])[0])


def test_empty_time_returns_h0(rng):
    x, gx, ga, p = inputs(rng, (2, 0, 5))
    h0 = random(rng, (2, 5))
    y, h = gc.ops.rg_lru(x, gx, ga, p, h0=h0)
    assert y.shape == (2, 0, 5)
    np.testing.assert_array_equal(h, h0)


def test_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    x, gx, ga, p = inputs(rng, (2, 7, 20))
    tx, tgx, tga, tp = (torch.from_numpy(v).to(torch.bfloat16) for v in (x, gx, ga, p))
    reset = torch.zeros(2, 7, dtype=torch.bool)
    reset[:, 0] = True
    reset[1, 4] = True
    y, h = gc.ops.rg_lru(tx, tgx, tga, tp, reset=reset)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.bfloat16
    assert isinstance(h, torch.Tensor) and h.dtype == torch.float32
    assert_close(y, rg_lru_ref(tx, tgx, tga, tp, reset=reset.numpy())[0], "bfloat16")


def test_matches_transformers_layer(rng):
    """The kernel against transformers' RecurrentGemmaRglru (its gates fed from our logits)."""
    torch = pytest.importorskip("torch")
    rg = pytest.importorskip("transformers.models.recurrent_gemma.modeling_recurrent_gemma")
    cfg = pytest.importorskip("transformers").RecurrentGemmaConfig(
        hidden_size=64, lru_width=64, num_attention_heads=4)
    layer = rg.RecurrentGemmaRglru(cfg)
    with torch.no_grad():
        for prm in layer.parameters():
            prm.copy_(torch.from_numpy(random(rng, tuple(prm.shape), scale=0.3)))
    x = random(rng, (2, 15, 64))
    with torch.no_grad():
        want = layer(torch.from_numpy(x), torch.arange(15)[None].expand(2, 15)).numpy()
    # The gate logits as the layer computes them: one block-diagonal matrix per head.
    xb = x.reshape(2, 15, 4, 16)
    wi, bi = layer.input_gate_weight.detach().numpy(), layer.input_gate_bias.detach().numpy()
    wa, ba = layer.recurrent_gate_weight.detach().numpy(), layer.recurrent_gate_bias.detach().numpy()
    gx = (np.einsum("bthi,hio->btho", xb, wi) + bi).reshape(2, 15, 64).astype(np.float32)
    ga = (np.einsum("bthi,hio->btho", xb, wa) + ba).reshape(2, 15, 64).astype(np.float32)
    y, _ = gc.ops.rg_lru(x, gx, ga, layer.recurrent_param.detach().numpy())
    assert_close(y, want, rtol=1e-5)


def test_bad_arguments():
    x = np.zeros((2, 3, 4), np.float32)
    p = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"rg_lru: x must have 3 dimensions"):
        gc.ops.rg_lru(x[0], x[0], x[0], p)
    with pytest.raises(ValueError, match=r"rg_lru: gate_x must have shape \[2, 3, 4\]"):
        gc.ops.rg_lru(x, x[:, :2], x, p)
    with pytest.raises(ValueError, match=r"rg_lru: gate_a must have shape"):
        gc.ops.rg_lru(x, x, x[..., :3], p)
    with pytest.raises(ValueError, match=r"rg_lru: a_param must have shape \[4\]"):
        gc.ops.rg_lru(x, x, x, p[:3])
    with pytest.raises(ValueError, match=r"rg_lru: h0 must have shape \[2, 4\]"):
        gc.ops.rg_lru(x, x, x, p, h0=np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"rg_lru: reset must have shape \[2, 3\]"):
        gc.ops.rg_lru(x, x, x, p, reset=np.zeros((2, 4), bool))
    with pytest.raises(TypeError, match=r"rg_lru: reset must be bool"):
        gc.ops.rg_lru(x, x, x, p, reset=np.zeros((2, 3), np.int32))
    with pytest.raises(TypeError, match=r"rg_lru: gate_x has dtype float16"):
        gc.ops.rg_lru(x, x.astype(np.float16), x, p)
    with pytest.raises(TypeError, match=r"rg_lru: x must be float32, float16 or bfloat16"):
        gc.ops.rg_lru(x.astype(np.int32), x, x, p)
    with pytest.raises(ValueError, match=r"rg_lru: c must be a positive"):
        gc.ops.rg_lru(x, x, x, p, c=0.0)
