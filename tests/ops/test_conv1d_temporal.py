import numpy as np
import pytest

import gemmacpp as gc
from util import assert_close, random, to_f64


def conv_ref(x, weight, bias=None, state=None, reset=None):
    """Float64 causal depthwise conv: y[t] = bias + sum_k w[k] u[t + k], u = concat(state, x),
    where inputs before the latest segment start at or before t count as zero."""
    x, w = to_f64(x), to_f64(weight)
    B, T, W = x.shape
    K = w.shape[0]
    s = np.zeros((B, K - 1, W)) if state is None else to_f64(state)
    u = np.concatenate([s, x], axis=1)
    y = np.zeros((B, T, W)) + (0.0 if bias is None else to_f64(bias))
    for b in range(B):
        start = -np.inf  # x-time of the latest reset so far
        for t in range(T):
            if reset is not None and reset[b, t]:
                start = t
            for k in range(K):
                src = t - (K - 1) + k
                if src >= start:
                    y[b, t] += w[k] * u[b, t + k]
    return y, u[:, T:]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shape,K", [((1, 1, 1), 4), ((1, 7, 5), 4), ((2, 33, 8), 4),
                                     ((3, 70, 300), 4), ((2, 9, 517), 3), ((1, 2, 30), 6),
                                     ((2, 5, 13), 1)])
def test_matches_reference(rng, dtype, shape, K):
    x = random(rng, shape, dtype)
    w = random(rng, (K, shape[2]), scale=0.5)
    bias = random(rng, (shape[2],))
    state = random(rng, (shape[0], K - 1, shape[2]), dtype)
    y, new_state = gc.ops.conv1d_temporal(x, w, bias, state=state)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert new_state.dtype == x.dtype and new_state.shape == (shape[0], K - 1, shape[2])
    y_ref, s_ref = conv_ref(x, w, bias, state)
    assert_close(y, y_ref, dtype)
    np.testing.assert_array_equal(to_f64(new_state), s_ref)  # a copy of inputs: exact


def test_no_state_no_bias(rng):
    x = random(rng, (2, 6, 10))
    w = random(rng, (4, 10))
    y, s = gc.ops.conv1d_temporal(x, w)
    assert_close(y, conv_ref(x, w)[0])
    np.testing.assert_array_equal(s, x[:, -3:])


def test_matches_torch_causal_conv(rng):
    torch = pytest.importorskip("torch")
    x = random(rng, (2, 20, 12))
    w = random(rng, (4, 12))
    bias = random(rng, (12,))
    # nn.Conv1d(W, W, K, groups=W, padding=K-1), first T outputs: RecurrentGemma's prefill.
    want = torch.nn.functional.conv1d(torch.from_numpy(x).transpose(1, 2),
                                      torch.from_numpy(w.T.copy())[:, None, :],
                                      torch.from_numpy(bias), padding=3, groups=12)[..., :20]
    y, _ = gc.ops.conv1d_temporal(x, w, bias)
    assert_close(y, want.transpose(1, 2))


def test_resets_mid_sequence(rng):
    x = random(rng, (3, 30, 21))
    w = random(rng, (4, 21))
    bias = random(rng, (21,))
    state = random(rng, (3, 3, 21))
    reset = rng.random((3, 30)) < 0.2
    reset[0, 0] = True
    reset[1, 0] = False
    reset[2, 10:12] = True  # adjacent segment starts
    y, _ = gc.ops.conv1d_temporal(x, w, bias, state=state, reset=reset)
    assert_close(y, conv_ref(x, w, bias, state, reset)[0])
    # A reset at t = 0 forgets the state: the same as no state.
    first = np.zeros((1, 30), bool)
    first[0, 0] = True
    y0, _ = gc.ops.conv1d_temporal(x[:1], w, bias, state=state[:1], reset=first)
    np.testing.assert_array_equal(y0, gc.ops.conv1d_temporal(x[:1], w, bias)[0])


@pytest.mark.parametrize("split", [1, 2, 3, 40])
def test_two_chunks_equal_one_pass(rng, split):
    x = random(rng, (2, 80, 270), "bfloat16")
    w = random(rng, (4, 270))
    bias = random(rng, (270,))
    y_full, s_full = gc.ops.conv1d_temporal(x, w, bias)
    y1, s1 = gc.ops.conv1d_temporal(x[:, :split], w, bias)
    y2, s2 = gc.ops.conv1d_temporal(x[:, split:], w, bias, state=s1)
    np.testing.assert_array_equal(np.concatenate([y1, y2], axis=1), y_full)
    np.testing.assert_array_equal(s2, s_full)


def test_token_by_token_equals_one_pass(rng):
    x = random(rng, (1, 9, 17))
    w = random(rng, (4, 17))
    y_full, s_full = gc.ops.conv1d_temporal(x, w, None)
    state = None
    for t in range(9):
        y, state = gc.ops.conv1d_temporal(x[:, t:t + 1], w, state=state)
        np.testing.assert_array_equal(y[:, 0], y_full[:, t])
    np.testing.assert_array_equal(state, s_full)


def test_same_bits_for_any_thread_count(rng):
    x = random(rng, (2, 300, 1100))
    w = random(rng, (4, 1100))
    n = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        y1, _ = gc.ops.conv1d_temporal(x, w)
        gc.set_num_threads(max(2, n))
        y2, _ = gc.ops.conv1d_temporal(x, w)
    finally:
        gc.set_num_threads(n)
    np.testing.assert_array_equal(y1, y2)


def test_weight_and_bias_in_other_dtypes(rng):
    x = random(rng, (2, 8, 16), "float16")
    w = random(rng, (4, 16), "bfloat16")
    bias = random(rng, (16,), "float16")
    y, _ = gc.ops.conv1d_temporal(x, w, bias)
    assert_close(y, conv_ref(x, w, bias)[0], "float16")


def test_strided_inputs(rng):
    x = random(rng, (2, 12, 30))[:, ::2, ::3]
    w = random(rng, (8, 10))[::2]
    y, _ = gc.ops.conv1d_temporal(x, w)
    assert_close(y, conv_ref(x, w)[0])


def test_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(random(rng, (2, 7, 20))).to(torch.bfloat16)
    w = torch.from_numpy(random(rng, (4, 20)))
    y, s = gc.ops.conv1d_temporal(x, w)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.bfloat16
    assert isinstance(s, torch.Tensor) and tuple(s.shape) == (2, 3, 20)
    assert_close(y, conv_ref(x, w)[0], "bfloat16")


def test_bad_arguments():
    x = np.zeros((2, 3, 4), np.float32)
    w = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match=r"conv1d_temporal: x must have 3 dimensions"):
        gc.ops.conv1d_temporal(x[0], w)
    with pytest.raises(ValueError, match=r"conv1d_temporal: weight must have shape \[4, 4\]"):
        gc.ops.conv1d_temporal(x, np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"conv1d_temporal: weight must have 2 dimensions"):
        gc.ops.conv1d_temporal(x, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"at least one tap"):
        gc.ops.conv1d_temporal(x, np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match=r"conv1d_temporal: bias must have shape \[4\]"):
        gc.ops.conv1d_temporal(x, w, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"conv1d_temporal: state must have shape \[2, 3, 4\]"):
        gc.ops.conv1d_temporal(x, w, state=np.zeros((2, 4, 4), np.float32))
    with pytest.raises(TypeError, match=r"conv1d_temporal: state has dtype float16"):
        gc.ops.conv1d_temporal(x, w, state=np.zeros((2, 3, 4), np.float16))
    with pytest.raises(TypeError, match=r"conv1d_temporal: reset must be bool"):
        gc.ops.conv1d_temporal(x, w, reset=np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"conv1d_temporal: reset must have shape \[2, 3\]"):
        gc.ops.conv1d_temporal(x, w, reset=np.zeros((3, 2), bool))
    with pytest.raises(TypeError, match=r"conv1d_temporal: weight must be float32"):
        gc.ops.conv1d_temporal(x, w.astype(np.int64))
