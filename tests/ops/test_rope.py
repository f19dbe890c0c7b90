import numpy as np
import pytest

import gemmacpp as gc
from util import DEVICES, assert_close, on_device, random, to_f64

FLOATS = ["float32", "float16", "bfloat16"]


def rope_ref(x, positions, base=10000.0, scale=1.0, rotary_dim=None, rotated_pairs=None):
    """Rotate-half RoPE in float64: pair (x_i, x_{i+R/2}) turns by pos / scale * base^(-2i/R) for
    i < rotated_pairs (default all R/2)."""
    x = to_f64(x)
    B, T, H, D = x.shape
    R = D if rotary_dim is None else rotary_dim
    half = R // 2
    pos = to_f64(positions) if hasattr(positions, "detach") else np.asarray(positions, np.float64)
    pos = np.broadcast_to(pos, (B, T))
    freq = base ** (-2.0 * np.arange(half) / R)
    freq[half if rotated_pairs is None else rotated_pairs:] = 0
    angle = pos[..., None] / scale * freq  # [B, T, half]
    c, s = np.cos(angle)[:, :, None, :], np.sin(angle)[:, :, None, :]
    x1, x2 = x[..., :half], x[..., half:R]
    y = x.copy()
    y[..., :half] = x1 * c - x2 * s
    y[..., half:R] = x2 * c + x1 * s
    return y


def random_positions(rng, shape, dtype, high=4096):
    return rng.integers(0, high, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("d", [2, 6, 18, 64, 128, 256])
@pytest.mark.parametrize("per_batch", [False, True])
@pytest.mark.parametrize("pos_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("device", DEVICES)
def test_matches_reference(rng, dtype, d, per_batch, pos_dtype, device):
    B, T, H = (int(n) for n in rng.integers(1, 5, size=3))
    x = on_device(random(rng, (B, T, H, d), dtype), device)
    pos = on_device(random_positions(rng, (B, T) if per_batch else (T,), pos_dtype), device)
    y = gc.ops.rope(x, pos)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert_close(y, rope_ref(x, pos), dtype)


@pytest.mark.parametrize("base", [10000.0, 1e6])
@pytest.mark.parametrize("scale", [1.0, 8.0])
@pytest.mark.parametrize("device", DEVICES)
def test_large_positions_are_exact_in_float32(rng, base, scale, device):
    # float32 angles would be off by ~1e-3 rad at these positions; the kernel must not be.
    x = random(rng, (2, 8, 3, 256))
    pos = np.sort(rng.integers(0, 32768, size=(2, 8))).astype(np.int64)
    pos[0, -1] = 32767
    y = gc.ops.rope(on_device(x, device), on_device(pos, device), base=base, scale=scale)
    assert_close(y, rope_ref(x, pos, base, scale), "float32")


@pytest.mark.parametrize("d, rotary_dim", [(256, 128), (128, 64), (6, 2), (18, 8), (5, 4), (64, 64)])
@pytest.mark.parametrize("device", DEVICES)
def test_partial_rotary_dim_passes_the_rest_through(rng, d, rotary_dim, device):
    x = random(rng, (2, 5, 3, d))
    pos = random_positions(rng, (5,), np.int32)
    y = gc.ops.rope(on_device(x, device), on_device(pos, device), rotary_dim=rotary_dim)
    assert_close(y, rope_ref(x, pos, rotary_dim=rotary_dim))
    assert np.array_equal(y[..., rotary_dim:], x[..., rotary_dim:])


@pytest.mark.parametrize("d, pairs", [(512, 64), (32, 4), (16, 0), (18, 9), (10, 1)])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("device", DEVICES)
def test_rotated_pairs_turn_only_the_fast_frequencies(rng, d, pairs, dtype, device):
    # Gemma 4's proportional RoPE: the angles keep the full head's spacing, the slow pairs stay put.
    x = random(rng, (2, 5, 3, d), dtype)
    pos = random_positions(rng, (2, 5), np.int64, high=30000)
    y = gc.ops.rope(on_device(x, device), on_device(pos, device), base=1e6, rotated_pairs=pairs)
    assert_close(y, rope_ref(x, pos, 1e6, rotated_pairs=pairs), dtype)
    still = np.r_[pairs:d // 2, d // 2 + pairs:d]
    assert np.array_equal(to_f64(y)[..., still], to_f64(x)[..., still])  # bit for bit


def test_rotated_pairs_agree_with_the_transformers_proportional_formula(rng):
    # modeling_rope_utils' proportional inv_freq: base^(-2i/D) for i < int(p D / 2), then zeros.
    D, p = 64, 0.25
    n = int(p * D // 2)
    x = random(rng, (1, 6, 2, D))
    pos = np.arange(6) * 997
    inv_freq = np.concatenate([1e6 ** (-np.arange(0, 2 * n, 2) / D), np.zeros(D // 2 - n)])
    emb = np.concatenate([np.outer(pos, inv_freq)] * 2, axis=-1)[None, :, None, :]
    xd = x.astype(np.float64)
    rotate_half = np.concatenate([-xd[..., D // 2:], xd[..., :D // 2]], axis=-1)
    assert_close(gc.ops.rope(x, pos, base=1e6, rotated_pairs=n), xd * np.cos(emb) + rotate_half * np.sin(emb))


def test_position_zero_is_identity(rng):
    x = random(rng, (1, 3, 2, 32), "bfloat16")
    y = gc.ops.rope(x, np.zeros(3, np.int64))
    assert np.array_equal(y.view(np.uint16), x.view(np.uint16))


def test_negative_positions_and_python_list(rng):
    x = random(rng, (1, 4, 2, 16))
    pos = [-5, 0, 7, 100000]
    assert_close(gc.ops.rope(x, pos), rope_ref(x, pos))


def test_strided_inputs_are_read_right(rng):
    big = random(rng, (2, 6, 4, 80))
    x = big[:, ::2, 1:3, 10:74]  # [2, 3, 2, 64], every dimension strided
    pos = random_positions(rng, (12,), np.int64)[::4]  # [3], strided positions
    assert_close(gc.ops.rope(x, pos), rope_ref(x, pos))
    xt = random(rng, (2, 4, 5, 32)).transpose(0, 2, 1, 3)  # [B, H, T, D] -> [B, T, H, D] view
    pos2 = random_positions(rng, (5, 2), np.int32).T  # [B, T] transposed view
    assert_close(gc.ops.rope(xt, pos2, base=1e6), rope_ref(xt, pos2, 1e6))


def test_out_and_in_place(rng):
    x = random(rng, (2, 3, 4, 64), "float16")
    pos = random_positions(rng, (2, 3), np.int64)
    ref = rope_ref(x, pos, rotary_dim=32)
    out = np.full_like(x, np.nan)
    assert gc.ops.rope(x, pos, rotary_dim=32, out=out) is out
    assert_close(out, ref, "float16")
    assert gc.ops.rope(x, pos, rotary_dim=32, out=x) is x  # in place
    assert_close(x, ref, "float16")


def test_strided_out(rng):
    x = random(rng, (1, 3, 2, 8))
    pos = random_positions(rng, (3,), np.int32)
    buf = np.zeros((1, 3, 2, 16), np.float32)
    gc.ops.rope(x, pos, out=buf[..., ::2])
    assert_close(buf[..., ::2], rope_ref(x, pos))
    assert np.all(buf[..., 1::2] == 0)


def test_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(random(rng, (2, 7, 4, 128))).to(torch.bfloat16)
    pos = torch.arange(7, dtype=torch.int32) + 20000
    y = gc.ops.rope(x, pos, base=1e6, scale=8.0)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.bfloat16 and y.shape == x.shape
    assert_close(y, rope_ref(x, pos, 1e6, 8.0), "bfloat16")


def test_agrees_with_the_transformers_formula(rng):
    # The Hugging Face formulation: cat(freqs, freqs) with rotate_half, here in float64.
    x = random(rng, (1, 6, 2, 32))
    pos = np.arange(6) * 1000
    inv_freq = 1.0 / (10000.0 ** (np.arange(0, 32, 2) / 32))
    emb = np.concatenate([np.outer(pos, inv_freq)] * 2, axis=-1)[None, :, None, :]
    xd = x.astype(np.float64)
    rotate_half = np.concatenate([-xd[..., 16:], xd[..., :16]], axis=-1)
    assert_close(gc.ops.rope(x, pos), xd * np.cos(emb) + rotate_half * np.sin(emb))


def test_same_result_for_any_thread_count(rng):
    x = random(rng, (2, 200, 4, 128), "bfloat16")
    pos = random_positions(rng, (2, 200), np.int64, high=30000)
    saved = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        one = gc.ops.rope(x, pos, base=1e6)
        gc.set_num_threads(2)
        two = gc.ops.rope(x, pos, base=1e6)
    finally:
        gc.set_num_threads(saved)
    assert np.array_equal(one.view(np.uint16), two.view(np.uint16))
    assert_close(one, rope_ref(x, pos, 1e6), "bfloat16")


def test_empty():
    assert gc.ops.rope(np.zeros((0, 3, 2, 8), np.float32), np.arange(3)).shape == (0, 3, 2, 8)
    assert gc.ops.rope(np.zeros((1, 0, 2, 8), np.float32), np.zeros(0, np.int64)).shape == (1, 0, 2, 8)


def test_bad_inputs():
    x = np.ones((2, 3, 4, 8), np.float32)
    pos = np.arange(3, dtype=np.int64)
    with pytest.raises(TypeError, match="rope: positions must be int32 or int64, got float32"):
        gc.ops.rope(x, pos.astype(np.float32))
    with pytest.raises(TypeError, match="rope: positions must be int32 or int64, got float64"):
        gc.ops.rope(x, [0.0, 1.5, 2.0])
    with pytest.raises(ValueError, match=r"rope: positions must have shape \[T\] = \[3\]"):
        gc.ops.rope(x, np.arange(4))
    with pytest.raises(ValueError, match=r"rope: positions must have shape .* got \[3, 3\]"):
        gc.ops.rope(x, np.zeros((3, 3), np.int64))
    with pytest.raises(ValueError, match="rope: positions must have shape"):
        gc.ops.rope(x, np.zeros((2, 3, 1), np.int64))
    with pytest.raises(TypeError, match="rope: x must be float32"):
        gc.ops.rope(x.astype(np.float64), pos)
    with pytest.raises(ValueError, match=r"rope: x must have 4 dimensions \[B, T, H, D\]"):
        gc.ops.rope(x[0], pos)
    for r in [0, 3, 10, -2]:
        with pytest.raises(ValueError, match="rope: rotary_dim must be even"):
            gc.ops.rope(x, pos, rotary_dim=r)
    for r in [-1, 5]:
        with pytest.raises(ValueError, match=r"rope: rotated_pairs must be in \[0, rotary_dim / 2 = 4\]"):
            gc.ops.rope(x, pos, rotated_pairs=r)
    with pytest.raises(ValueError, match=r"rope: rotary_dim must be even .*defaults to D"):
        gc.ops.rope(np.ones((1, 3, 1, 5), np.float32), pos)
    for bad in [0.0, -1.0, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match="rope: base must be a positive number"):
            gc.ops.rope(x, pos, base=bad)
        with pytest.raises(ValueError, match="rope: scale must be a positive number"):
            gc.ops.rope(x, pos, scale=bad)
    with pytest.raises(TypeError, match="rope: out has dtype float16"):
        gc.ops.rope(x, pos, out=np.empty(x.shape, np.float16))


@pytest.mark.gpu
def test_cuda_in_place_and_bad_inputs(rng):
    torch = pytest.importorskip("torch")
    x = random(rng, (2, 9, 4, 128), "bfloat16")
    pos = random_positions(rng, (9,), np.int64)
    xc, pc = on_device(x, "cuda"), on_device(pos, "cuda")
    assert gc.ops.rope(xc, pc, out=xc) is xc
    assert_close(xc, rope_ref(x, pos), "bfloat16")
    big = torch.ones(1, 4, 2, 8, device="cuda")
    with pytest.raises(ValueError, match="rope: positions is on cpu but x is on cuda:0"):
        gc.ops.rope(big, torch.arange(4))
    with pytest.raises(ValueError, match="rope: x on cuda:0 must be contiguous"):
        gc.ops.rope(big.transpose(1, 2), torch.arange(2, device="cuda"))
