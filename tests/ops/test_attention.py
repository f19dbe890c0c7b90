import numpy as np
import pytest

import gemmacpp as gc
from util import DEVICES, DTYPES, assert_close, on_device, random, to_f64


def attention_ref(q, k, v, causal=True, window=None, softcap=None, scale=None, q_start=None,
                  prefix_len=0):
    """Straightforward masked softmax in float64, with the full score matrix."""
    q, k, v = to_f64(q), to_f64(k), to_f64(v)
    B, Tq, Hq, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    group = Hq // Hkv
    scale = D**-0.5 if scale is None else scale
    q_start = Tk - Tq if q_start is None else q_start
    k = np.repeat(k, group, axis=2)  # query head h reads KV head h // group
    v = np.repeat(v, group, axis=2)
    s = np.einsum("bihd,bjhd->bhij", q, k) * scale
    if softcap is not None:
        s = softcap * np.tanh(s / softcap)
    p = q_start + np.arange(Tq)[:, None]
    j = np.arange(Tk)[None, :]
    main = (j <= p) if causal else np.ones((Tq, Tk), bool)
    if window is not None:
        main = main & (p - j < window)
    visible = (j < prefix_len) | main
    out = np.zeros((B, Tq, Hq, D))
    for i in range(Tq):
        keys = np.nonzero(visible[i])[0]
        if len(keys) == 0:
            continue  # no visible key: zeros
        row = s[:, :, i, keys]
        e = np.exp(row - row.max(-1, keepdims=True))
        w = e / e.sum(-1, keepdims=True)
        out[:, i] = np.einsum("bhj,bjhd->bhd", w, v[:, keys])
    return out


def qkv(rng, B, Tq, Tk, Hq, Hkv, D, dtype="float32"):
    return (random(rng, (B, Tq, Hq, D), dtype), random(rng, (B, Tk, Hkv, D), dtype),
            random(rng, (B, Tk, Hkv, D), dtype))


def check(q, k, v, dtype="float32", device="cpu", **kw):
    """Runs the op on `device` with inputs made from the NumPy arrays q, k, v and compares the
    result with the float64 reference of those arrays."""
    y = gc.ops.attention(on_device(q, device), on_device(k, device), on_device(v, device), **kw)
    assert tuple(y.shape) == q.shape and str(y.dtype).removeprefix("torch.") == str(q.dtype)
    assert_close(y, attention_ref(q, k, v, **kw), dtype)
    return y


# ---- shapes and head layouts -------------------------------------------------------------------

@pytest.mark.parametrize("D", [1, 3, 17, 64, 80, 256])
@pytest.mark.parametrize("heads", [(2, 2), (4, 2), (8, 2), (3, 1)])  # MHA, GQA 2, GQA 4, MQA
@pytest.mark.parametrize("device", DEVICES)
def test_head_dims_and_layouts(rng, D, heads, device):
    Hq, Hkv = heads
    check(*qkv(rng, 2, 13, 13, Hq, Hkv, D), device=device)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [None, 1, 5, 40, 1000])
@pytest.mark.parametrize("device", DEVICES)
def test_causal_and_window(rng, causal, window, device):
    check(*qkv(rng, 1, 37, 37, 4, 2, 32), causal=causal, window=window, device=device)


@pytest.mark.parametrize("Tq,q_start", [(5, None), (5, 0), (5, 7), (9, 30), (70, 3)])
@pytest.mark.parametrize("device", DEVICES)
def test_queries_after_keys(rng, Tq, q_start, device):
    # Fewer queries than keys (a chunk of a prompt against a cache), incl. positions past Tk.
    check(*qkv(rng, 2, Tq, 40, 4, 1, 16), q_start=q_start, device=device)
    check(*qkv(rng, 1, Tq, 40, 2, 2, 16), q_start=q_start, window=6, device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_more_queries_than_keys_default_start(rng, device):
    # Default q_start = Tk - Tq < 0: the first queries see no key and get zeros.
    q, k, v = qkv(rng, 1, 12, 5, 2, 1, 8)
    y = check(q, k, v, device=device)
    assert np.all(to_f64(y)[:, :7] == 0)


@pytest.mark.parametrize("prefix_len,window,causal", [(4, None, True), (10, 3, True),
                                                      (100, None, True), (6, 2, False)])
@pytest.mark.parametrize("device", DEVICES)
def test_prefix(rng, prefix_len, window, causal, device):
    kw = dict(prefix_len=prefix_len, window=window, causal=causal, device=device)
    check(*qkv(rng, 1, 30, 30, 4, 2, 24), **kw)
    check(*qkv(rng, 1, 2, 30, 4, 2, 24), **kw)


@pytest.mark.parametrize("Tq", [1, 3, 90])
@pytest.mark.parametrize("device", DEVICES)
def test_softcap_and_scale(rng, Tq, device):
    q, k, v = qkv(rng, 1, Tq, 90, 4, 2, 48)
    q *= 6.0  # large scores, so the cap matters
    check(q, k, v, softcap=5.0, device=device)
    check(q, k, v, scale=0.3, device=device)
    check(q, k, v, softcap=2.0, scale=0.05, window=20, device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_rows_without_visible_key_are_zero(rng, device):
    q, k, v = qkv(rng, 1, 6, 10, 2, 1, 8)
    # Positions 20.. with window 3 see nothing of keys 0..9.
    y = check(q, k, v, q_start=20, window=3, device=device)
    assert np.all(to_f64(y) == 0)
    y = check(q[:, :1], k, v, q_start=20, window=3, device=device)  # decode path
    assert np.all(to_f64(y) == 0)
    y = check(q, k, v, q_start=8, window=4, device=device)  # some rows see keys, later not
    assert np.all(to_f64(y)[:, 6 - 1] == 0) and np.any(to_f64(y)[:, 0] != 0)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("device", DEVICES)
def test_random_sweep(seed, device):
    # Random combinations of every option, both kernels (Tq <= 4 takes the split-K path).
    rng = np.random.default_rng(1000 + seed)
    Hkv = int(rng.choice([1, 2, 3]))
    Hq = Hkv * int(rng.choice([1, 2, 4]))
    D = int(rng.choice([1, 5, 16, 33, 64]))
    Tk = int(rng.integers(1, 300))
    Tq = int(rng.choice([1, 2, 4, int(rng.integers(5, 150))]))
    kw = dict(causal=bool(rng.integers(2)))
    if rng.integers(2):
        kw["window"] = int(rng.integers(1, 2 * Tk + 2))
    if rng.integers(3) == 0:
        kw["softcap"] = float(rng.uniform(0.5, 20))
    if rng.integers(3) == 0:
        kw["scale"] = float(rng.uniform(-0.5, 1.0))
    if rng.integers(2):
        kw["q_start"] = int(rng.integers(0, Tk + 20))
    if rng.integers(3) == 0:
        kw["prefix_len"] = int(rng.integers(0, Tk + 5))
    dtype = str(rng.choice(["float32", "float32", "float16", "bfloat16"]))
    q, k, v = qkv(rng, int(rng.integers(1, 3)), Tq, Tk, Hq, Hkv, D, dtype)
    check(q, k, v, dtype, **kw, device=device)


# ---- decode and long sequences -----------------------------------------------------------------

@pytest.mark.parametrize("kw", [{}, dict(window=700), dict(softcap=30.0),
                                dict(prefix_len=600, window=100)])
@pytest.mark.parametrize("device", DEVICES)
def test_decode_long_cache(rng, kw, device):
    # Tk = 3000 crosses several split-K chunks.
    check(*qkv(rng, 1, 1, 3000, 8, 4, 64), **kw, device=device)


@pytest.mark.parametrize("Tq", [2, 4, 5])
@pytest.mark.parametrize("device", DEVICES)
def test_few_queries(rng, Tq, device):
    check(*qkv(rng, 2, Tq, 1100, 4, 2, 40), device=device)
    check(*qkv(rng, 1, Tq, 1100, 4, 2, 40), causal=False, window=300, device=device)


@pytest.mark.parametrize("kw", [{}, dict(window=100), dict(causal=False, softcap=20.0)])
@pytest.mark.parametrize("device", DEVICES)
def test_long_prefill(rng, kw, device):
    check(*qkv(rng, 1, 600, 600, 4, 2, 64), **kw, device=device)


# ---- long bidirectional sequences (the vision tower's shape) -----------------------------------

@pytest.mark.parametrize("D", [8, 24, 72, 136])  # 72 = four 16-wide V panels and one of 8
@pytest.mark.parametrize("T", [127, 128, 129, 391])  # around the 128-key tile, then 4 tiles
def test_bidirectional_head_dims_and_tile_edges(rng, D, T):
    check(*qkv(rng, 1, T, T, 3, 3, D), causal=False)


@pytest.mark.parametrize("heads", [(16, 16), (4, 2), (8, 2), (6, 1)])
def test_bidirectional_long(rng, heads):
    # 1000 queries: several query blocks per head, each a whole number of 6-row blocks except the
    # last; 1000 keys: 8 tiles, the last partial.
    check(*qkv(rng, 1, 1000, 1000, *heads, 72), causal=False)


@pytest.mark.parametrize("kw", [dict(causal=False), dict(softcap=200.0)])
def test_peaked_softmax(rng, kw):
    # Scores spread over about +-100 (scale 2 instead of 1/sqrt(72)): the smallest weights,
    # e^-100 and less relative to the row maximum, underflow to exact zeros in the kernel. The
    # float32 rounding of scores that large alone costs a few 1e-6 relative (as in any float32
    # kernel), hence the looser tolerance.
    q, k, v = qkv(rng, 2, 150, 300, 2, 2, 72)
    y = gc.ops.attention(q, k, v, scale=2.0, **kw)
    assert_close(y, attention_ref(q, k, v, scale=2.0, **kw), rtol=3e-5)


# ---- dtypes and array kinds --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("Tq", [1, 50])
@pytest.mark.parametrize("device", DEVICES)
def test_half_types(rng, dtype, Tq, device):
    check(*qkv(rng, 1, Tq, 50, 4, 2, 40, dtype), dtype=dtype, device=device)
    check(*qkv(rng, 1, Tq, 50, 4, 2, 40, dtype), dtype=dtype, window=9, softcap=3.0, device=device)


def test_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    q, k, v = (torch.from_numpy(a) for a in qkv(rng, 2, 20, 20, 4, 2, 32))
    y = gc.ops.attention(q, k, v, window=7)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    assert_close(y, attention_ref(q, k, v, window=7))
    qb, kb, vb = q.bfloat16(), k.bfloat16(), v.bfloat16()
    y = gc.ops.attention(qb, kb, vb)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.bfloat16
    assert_close(y, attention_ref(qb, kb, vb), "bfloat16")


def test_matches_torch_sdpa(rng):
    torch = pytest.importorskip("torch")
    q, k, v = (torch.from_numpy(a) for a in qkv(rng, 1, 33, 33, 4, 4, 16))
    want = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True).transpose(1, 2)
    assert_close(gc.ops.attention(q, k, v), want.numpy(), rtol=1e-5)


def test_out(rng):
    q, k, v = qkv(rng, 1, 9, 9, 4, 2, 16)
    out = np.full_like(q, np.nan)
    assert gc.ops.attention(q, k, v, out=out) is out
    assert_close(out, attention_ref(q, k, v))


@pytest.mark.parametrize("Tq", [1, 9])
def test_strided_out(rng, Tq):
    q, k, v = qkv(rng, 1, Tq, 9, 4, 2, 16)
    buf = np.zeros((1, Tq, 4, 32), np.float32)
    gc.ops.attention(q, k, v, out=buf[..., ::2])  # head_dim not contiguous: written via a copy
    assert_close(buf[..., ::2], attention_ref(q, k, v))
    assert np.all(buf[..., 1::2] == 0)
    buf = np.zeros((1, 4, Tq, 16), np.float32)
    gc.ops.attention(q, k, v, out=buf.transpose(0, 2, 1, 3))  # rows contiguous, written in place
    assert_close(buf.transpose(0, 2, 1, 3), attention_ref(q, k, v))


@pytest.mark.parametrize("Tq", [1, 21])
def test_strided_inputs(rng, Tq):
    # Slices of a fused qkv projection [B, T, Hq + 2 Hkv, D].
    fused = random(rng, (2, 21, 8, 24))
    q, k, v = fused[:, -Tq:, :4], fused[:, :, 4:6], fused[:, :, 6:8]
    check(q, k, v)
    # Head-major storage [B, H, T, D] seen as [B, T, H, D].
    qt = np.ascontiguousarray(random(rng, (2, 4, Tq, 24))).transpose(0, 2, 1, 3)
    kt = np.ascontiguousarray(random(rng, (2, 2, 21, 24))).transpose(0, 2, 1, 3)
    check(qt, kt, kt, window=5)
    # head_dim itself strided: copied, not misread.
    wide = random(rng, (2, 21, 2, 48))
    check(q, wide[..., ::2], wide[..., 1::2])


# ---- edge sizes ----------------------------------------------------------------------------------

def test_empty_dims(rng):
    q, k, v = qkv(rng, 2, 3, 0, 4, 2, 8)
    assert np.all(np.asarray(gc.ops.attention(q, k, v)) == 0)  # Tk == 0: zeros
    y = gc.ops.attention(*qkv(rng, 2, 0, 5, 4, 2, 8))
    assert y.shape == (2, 0, 4, 8)
    y = gc.ops.attention(*qkv(rng, 0, 3, 5, 4, 2, 8))
    assert y.shape == (0, 3, 4, 8)


@pytest.mark.parametrize("device", DEVICES)
def test_single_key(rng, device):
    q, k, v = qkv(rng, 1, 1, 1, 2, 1, 5)
    y = check(q, k, v, device=device)
    assert_close(y, np.repeat(to_f64(v), 2, axis=2))


# ---- determinism ---------------------------------------------------------------------------------

@pytest.mark.parametrize("Tq,Tk", [(1, 3000), (3, 1500), (300, 300)])
def test_bitwise_same_for_any_thread_count(rng, Tq, Tk):
    q, k, v = qkv(rng, 2, Tq, Tk, 4, 2, 64)
    before = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        y1 = np.asarray(gc.ops.attention(q, k, v, window=250, softcap=30.0))
        gc.set_num_threads(2)
        y2 = np.asarray(gc.ops.attention(q, k, v, window=250, softcap=30.0))
    finally:
        gc.set_num_threads(before)
    assert np.array_equal(y1, y2)
    assert_close(y1, attention_ref(q, k, v, window=250, softcap=30.0))


def test_bidirectional_bitwise_same_for_any_thread_count(rng):
    q, k, v = qkv(rng, 1, 700, 700, 4, 4, 72)
    before = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        y1 = np.asarray(gc.ops.attention(q, k, v, causal=False))
        gc.set_num_threads(2)
        y2 = np.asarray(gc.ops.attention(q, k, v, causal=False))
    finally:
        gc.set_num_threads(before)
    assert np.array_equal(y1, y2)


# ---- bad inputs ----------------------------------------------------------------------------------

def test_bad_shapes(rng):
    q, k, v = qkv(rng, 1, 4, 4, 4, 2, 8)
    with pytest.raises(ValueError, match="q must have 4 dimensions"):
        gc.ops.attention(q[0], k, v)
    with pytest.raises(ValueError, match="k must have 4 dimensions"):
        gc.ops.attention(q, k[0], v)
    with pytest.raises(ValueError, match="batch"):
        gc.ops.attention(q, np.concatenate([k, k]), np.concatenate([v, v]))
    with pytest.raises(ValueError, match="head_dim"):
        gc.ops.attention(q, k[..., :4], v[..., :4])
    with pytest.raises(ValueError, match="multiple of the number of key/value heads"):
        gc.ops.attention(q[:, :, :3], k, v)
    with pytest.raises(ValueError, match="k and v must have the same shape"):
        gc.ops.attention(q, k, v[:, :3])


@pytest.mark.parametrize("kw,match", [
    (dict(window=0), "window must be >= 1"),
    (dict(softcap=0.0), "softcap must be a positive"),
    (dict(softcap=-1.0), "softcap must be a positive"),
    (dict(softcap=float("inf")), "softcap must be a positive"),
    (dict(scale=float("nan")), "scale must be a finite"),
    (dict(q_start=-1), "q_start must be >= 0"),
    (dict(prefix_len=-2), "prefix_len must be >= 0"),
])
def test_bad_options(rng, kw, match):
    with pytest.raises(ValueError, match=match):
        gc.ops.attention(*qkv(rng, 1, 4, 4, 2, 1, 8), **kw)


def test_bad_dtypes(rng):
    q, k, v = qkv(rng, 1, 4, 4, 2, 1, 8)
    with pytest.raises(TypeError, match="k has dtype float16 but q has float32"):
        gc.ops.attention(q, k.astype(np.float16), v)
    with pytest.raises(TypeError, match="v has dtype"):
        gc.ops.attention(q, k, v.astype(DTYPES["bfloat16"]))
    with pytest.raises(TypeError, match="q must be float32, float16 or bfloat16"):
        gc.ops.attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))
    with pytest.raises(TypeError, match="window must be an int"):
        gc.ops.attention(q, k, v, window=2.5)


# ---- CUDA only: skipped without a device (conftest.py) -------------------------------------------
# Half types with Tq > 8 take the tensor-core kernel (64 queries a block, key tiles of 64, or 32 at
# head_dim > 128); everything else takes the split-K kernel.

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("D", [1, 17, 64, 80, 128, 200, 256])
@pytest.mark.parametrize("Tq", [9, 64, 65, 130])
def test_cuda_tensor_core_kernel_shapes(rng, dtype, D, Tq):
    check(*qkv(rng, 2, Tq, Tq + 7, 4, 2, D, dtype), dtype, "cuda")
    check(*qkv(rng, 1, Tq, 150, 3, 1, D, dtype), dtype, "cuda", causal=False, softcap=4.0)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("kw", [dict(window=128), dict(window=128, prefix_len=70),
                                dict(window=40, q_start=300), dict(causal=False, window=64),
                                dict(prefix_len=500, softcap=50.0), dict(window=1, softcap=5.0)])
def test_cuda_long_sequences_skip_tiles_exactly(rng, dtype, kw):
    # Long enough that whole key tiles fall outside the band and are skipped.
    check(*qkv(rng, 1, 700, 900, 4, 2, 128, dtype), dtype, "cuda", **kw)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("Tq", [1, 2, 5, 8])
@pytest.mark.parametrize("kw", [{}, dict(window=1000), dict(softcap=50.0, prefix_len=3000)])
def test_cuda_decode_over_a_long_cache(rng, dtype, Tq, kw):
    check(*qkv(rng, 2, Tq, 9000, 8, 1, 256, dtype), dtype, "cuda", **kw)


@pytest.mark.gpu
def test_cuda_strided_inputs_and_out(rng):
    torch = pytest.importorskip("torch")
    fused = random(rng, (2, 80, 8, 64), "bfloat16")
    fc = on_device(fused, "cuda")
    for Tq in (1, 80):
        q, k, v = fused[:, -Tq:, :4], fused[:, :, 4:6], fused[:, :, 6:8]
        want = attention_ref(q, k, v, window=30)
        out = torch.zeros(2, 4, Tq, 64, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
        y = gc.ops.attention(fc[:, -Tq:, :4], fc[:, :, 4:6], fc[:, :, 6:8], window=30, out=out)
        assert y is out
        assert_close(out, want, "bfloat16")
    with pytest.raises(ValueError, match="attention: q on cuda:0 must have a contiguous last"):
        gc.ops.attention(fc[:, :, :4, ::2], fc[:, :, 4:6, ::2], fc[:, :, 6:8, ::2])


@pytest.mark.gpu
def test_cuda_float32_agrees_with_cpu_and_bad_inputs(rng):
    torch = pytest.importorskip("torch")
    q, k, v = qkv(rng, 1, 40, 300, 4, 2, 96)
    y = gc.ops.attention(*(on_device(a, "cuda") for a in (q, k, v)), window=50, softcap=30.0)
    assert_close(y, gc.ops.attention(q, k, v, window=50, softcap=30.0), rtol=1e-6)
    qc, kc, vc = (on_device(a, "cuda") for a in qkv(rng, 1, 4, 4, 2, 1, 8))
    with pytest.raises(ValueError, match="same device"):
        gc.ops.attention(qc, kc.cpu(), vc)
    big = torch.ones(1, 4, 2, 320, device="cuda", dtype=torch.float16)
    with pytest.raises(ValueError, match="head_dim 320 is larger than the CUDA kernels take"):
        gc.ops.attention(big, big, big)


# ---- explicit per-query key ranges ---------------------------------------------------------------

def attention_ranges_ref(q, k, v, key_range, prefix_len=0, softcap=None, scale=None):
    """The reference with per-query visible keys [lo, hi) (plus the prefix), in float64."""
    q, k, v = to_f64(q), to_f64(k), to_f64(v)
    B, Tq, Hq, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    scale = D**-0.5 if scale is None else scale
    k = np.repeat(k, Hq // Hkv, axis=2)
    v = np.repeat(v, Hq // Hkv, axis=2)
    s = np.einsum("bihd,bjhd->bhij", q, k) * scale
    if softcap is not None:
        s = softcap * np.tanh(s / softcap)
    out = np.zeros((B, Tq, Hq, D))
    j = np.arange(Tk)
    for i in range(Tq):
        lo, hi = key_range[i]
        keys = np.nonzero((j < prefix_len) | ((j >= lo) & (j < hi)))[0]
        if len(keys) == 0:
            continue
        row = s[:, :, i, keys]
        e = np.exp(row - row.max(-1, keepdims=True))
        out[:, i] = np.einsum("bhj,bjhd->bhd", e / e.sum(-1, keepdims=True), v[:, keys])
    return out


def spans_ranges(T, spans, window=None, q_start=0):
    """Causal (optionally windowed) ranges with bidirectional spans [s, e): a query inside a span
    also sees the span's later keys (Gemma 3's image blocks; PaliGemma's prefix)."""
    r = np.zeros((T, 2), np.int64)
    for i in range(T):
        p = q_start + i
        hi = p + 1
        for s, e in spans:
            if s <= p < e:
                hi = max(hi, e)
        r[i] = (0 if window is None else max(0, p - window + 1), hi)
    return r


@pytest.mark.parametrize("T,spans,window", [
    (40, [(3, 12)], None), (40, [(3, 12), (20, 37)], None), (40, [(0, 25)], None),
    (90, [(5, 70)], 16), (90, [(2, 9), (30, 80)], 7), (200, [(10, 150)], None)])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_key_range_spans(rng, T, spans, window, dtype):
    q, k, v = qkv(rng, 2, T, T, 4, 2, 32, dtype)
    r = spans_ranges(T, spans, window)
    y = gc.ops.attention(q, k, v, key_range=r)
    assert_close(y, attention_ranges_ref(q, k, v, r), dtype)


@pytest.mark.parametrize("Tq", [1, 3, 37])
def test_key_range_with_cache_offset_prefix_and_softcap(rng, Tq):
    # Queries after cached keys (q_start > 0), both kernels (Tq <= 4 is split-K).
    Tk = 300
    q, k, v = qkv(rng, 1, Tq, Tk, 4, 1, 16)
    r = spans_ranges(Tq, [(Tk - Tq, Tk - 1)] if Tq > 1 else [], window=50, q_start=Tk - Tq)
    y = gc.ops.attention(q, k, v, key_range=r, prefix_len=5, softcap=20.0)
    assert_close(y, attention_ranges_ref(q, k, v, r, prefix_len=5, softcap=20.0))


def test_key_range_overrides_causal_and_empty_rows(rng):
    q, k, v = qkv(rng, 1, 12, 20, 2, 2, 8)
    r = np.array([[0, 0]] * 3 + [[2, 5]] * 4 + [[4, 30]] * 5)  # empty rows, then clipped to Tk
    y = gc.ops.attention(q, k, v, key_range=r, causal=True, window=2)
    assert_close(y, attention_ranges_ref(q, k, v, np.minimum(r, 20)))
    assert np.all(np.asarray(y)[:, :3] == 0)


def test_key_range_checked(rng):
    q, k, v = qkv(rng, 1, 6, 6, 2, 2, 8)
    with pytest.raises(ValueError, match="key_range"):
        gc.ops.attention(q, k, v, key_range=np.zeros((5, 2), np.int64))
    with pytest.raises(ValueError, match="non-decreasing"):
        gc.ops.attention(q, k, v, key_range=np.array([[0, 3], [0, 2]] + [[0, 6]] * 4))
    with pytest.raises(TypeError, match="key_range"):
        gc.ops.attention(q, k, v, key_range=np.zeros((6, 2), np.float32))


# ---- packed sequences (cu_seqlens, flash-attention's varlen layout) ------------------------------

def packed(rng, lens_q, lens_k, Hq, Hkv, D, dtype="float32", index_dtype=np.int64):
    """q [total_q, Hq, D], k, v [total_k, Hkv, D] and their cu_seqlens for the given lengths."""
    cu_q = np.cumsum([0] + list(lens_q)).astype(index_dtype)
    cu_k = np.cumsum([0] + list(lens_k)).astype(index_dtype)
    return (random(rng, (int(cu_q[-1]), Hq, D), dtype), random(rng, (int(cu_k[-1]), Hkv, D), dtype),
            random(rng, (int(cu_k[-1]), Hkv, D), dtype), cu_q, cu_k)


def sequences(cu_q, cu_k):
    """(query rows, key rows) of each packed sequence, as slices."""
    return [(slice(int(cu_q[s]), int(cu_q[s + 1])), slice(int(cu_k[s]), int(cu_k[s + 1])))
            for s in range(len(cu_q) - 1)]


def varlen_ref(q, k, v, cu_q, cu_k, key_range=None, **kw):
    """The float64 reference of each sequence alone, [Tq_s, Hq, D] each."""
    out = []
    for rq, rk in sequences(cu_q, cu_k):
        qs, ks, vs = q[None, rq], k[None, rk], v[None, rk]
        if key_range is None:
            out.append(attention_ref(qs, ks, vs, **kw)[0])
        else:
            opts = {n: kw[n] for n in ("prefix_len", "softcap", "scale") if n in kw}
            out.append(attention_ranges_ref(qs, ks, vs, key_range[rq], **opts)[0])
    return out


def bits(a):
    """The raw bits of a NumPy array (any float dtype), for bitwise comparisons."""
    a = np.asarray(a)
    return a.view(f"u{a.dtype.itemsize}")


def check_varlen(q, k, v, cu_q, cu_k, dtype="float32", **kw):
    """Runs the packed op and compares every sequence with its float64 reference and, bit for
    bit, with the batched op on that sequence alone."""
    y = gc.ops.attention(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, **kw)
    assert tuple(y.shape) == q.shape and str(y.dtype).removeprefix("torch.") == str(q.dtype)
    for (rq, rk), ref in zip(sequences(cu_q, cu_k), varlen_ref(q, k, v, cu_q, cu_k, **kw)):
        assert_close(y[rq], ref, dtype)
        if isinstance(q, np.ndarray):
            kr = kw.get("key_range")
            alone = gc.ops.attention(q[None, rq], k[None, rk], v[None, rk],
                                     **dict(kw, key_range=None if kr is None else kr[rq]))
            assert np.array_equal(bits(y[rq]), bits(alone[0]))
    return y


# Sequence lengths (Tq, Tk) that mix decode (Tq <= 4, split-K) and prefill, keys before the
# queries (a cache), empty sequences and sequences crossing the 128-key tile.
MIXED = [(3, 40), (0, 7), (70, 70), (1, 300), (0, 0), (129, 129), (5, 0), (4, 4), (40, 200)]


@pytest.mark.parametrize("D", [1, 3, 64, 72, 128, 256])
@pytest.mark.parametrize("heads", [(2, 2), (4, 2), (8, 2), (3, 1)])  # MHA, GQA 2, GQA 4, MQA
def test_varlen_head_dims_and_layouts(rng, D, heads):
    lens_q, lens_k = zip(*MIXED)
    check_varlen(*packed(rng, lens_q, lens_k, *heads, D))


@pytest.mark.parametrize("kw", [{}, dict(causal=False), dict(window=1), dict(window=30),
                                dict(softcap=5.0), dict(scale=0.3), dict(prefix_len=6),
                                dict(prefix_len=10, window=4, causal=False),
                                dict(window=50, softcap=20.0, scale=0.1, prefix_len=3)])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_varlen_options(rng, kw, index_dtype):
    lens_q, lens_k = zip(*MIXED)
    q, k, v, cu_q, cu_k = packed(rng, lens_q, lens_k, 4, 2, 32, index_dtype=index_dtype)
    q *= 3.0  # large enough scores that the softcap matters
    check_varlen(q, k, v, cu_q, cu_k, **kw)


@pytest.mark.parametrize("T", [127, 128, 129, 257, 300])
@pytest.mark.parametrize("causal", [True, False])
def test_varlen_tile_edges(rng, T, causal):
    check_varlen(*packed(rng, [T, 2, T - 1, 64], [T, T + 5, 2 * T, 64], 3, 1, 24), causal=causal)


@pytest.mark.parametrize("Tq", [1, 2, 4])
def test_varlen_decode_over_caches(rng, Tq):
    # Many decode steps of different cache lengths, some over several split-K chunks.
    lens_k = [64, 65, 128, 255, 256, 257, 700, 1100, Tq]
    check_varlen(*packed(rng, [Tq] * len(lens_k), lens_k, 8, 2, 64))
    check_varlen(*packed(rng, [Tq] * len(lens_k), lens_k, 8, 2, 64), window=300, softcap=30.0)


def test_varlen_more_queries_than_keys(rng):
    # Default q_start = Tk - Tq < 0 per sequence: the first queries of that sequence see nothing.
    q, k, v, cu_q, cu_k = packed(rng, [12, 6, 9], [5, 6, 2], 2, 1, 8)
    y = check_varlen(q, k, v, cu_q, cu_k)
    assert np.all(np.asarray(y)[:7] == 0) and np.all(np.asarray(y)[18:25] == 0)


def test_varlen_empty(rng):
    # No sequence at all, sequences without queries, and sequences without keys (zeros).
    q, k, v, cu_q, cu_k = packed(rng, [], [], 4, 2, 8)
    assert gc.ops.attention(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k).shape == (0, 4, 8)
    q, k, v, cu_q, cu_k = packed(rng, [0, 0], [3, 0], 4, 2, 8)
    assert gc.ops.attention(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k).shape == (0, 4, 8)
    q, k, v, cu_q, cu_k = packed(rng, [3, 70, 2], [0, 0, 0], 4, 2, 8)
    y = gc.ops.attention(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k)
    assert y.shape == (75, 4, 8) and np.all(np.asarray(y) == 0)
    y = check_varlen(*packed(rng, [3, 70, 2, 9], [0, 80, 0, 9], 4, 2, 8))
    assert np.all(np.asarray(y)[:3] == 0) and np.all(np.asarray(y)[73:75] == 0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_varlen_half_types(rng, dtype):
    lens_q, lens_k = zip(*MIXED)
    check_varlen(*packed(rng, lens_q, lens_k, 4, 2, 40, dtype), dtype=dtype)
    check_varlen(*packed(rng, lens_q, lens_k, 4, 1, 64, dtype, np.int32), dtype=dtype, window=9,
                 softcap=3.0)


def test_varlen_key_range(rng):
    # Gemma 3 image spans inside causal sequences, each range in its own sequence's key indices,
    # some sequences after cached keys (ranges from Tk - Tq on).
    lens_q, lens_k = [40, 1, 90, 3, 0, 150], [40, 300, 120, 3, 5, 150]
    q, k, v, cu_q, cu_k = packed(rng, lens_q, lens_k, 4, 2, 32)
    spans = [[(3, 12), (20, 37)], [], [(40, 100)], [(0, 3)], [], [(10, 140)]]
    key_range = np.concatenate([spans_ranges(tq, sp, q_start=tk - tq, window=w)
                                for tq, tk, sp, w in zip(lens_q, lens_k, spans,
                                                         [None, 50, 16, None, None, 7])])
    check_varlen(q, k, v, cu_q, cu_k, key_range=key_range)
    check_varlen(q, k, v, cu_q, cu_k, key_range=key_range, prefix_len=5, softcap=20.0)
    qb, kb, vb = (a.astype(DTYPES["bfloat16"]) for a in (q, k, v))
    check_varlen(qb, kb, vb, cu_q, cu_k, "bfloat16", key_range=key_range)


@pytest.mark.parametrize("seed", range(40))
def test_varlen_random_sweep(seed):
    # Random batches of 1 to 9 sequences and random options; every sequence is also compared bit
    # for bit with the batched op on it alone (check_varlen).
    rng = np.random.default_rng(2000 + seed)
    Hkv = int(rng.choice([1, 2, 3]))
    Hq = Hkv * int(rng.choice([1, 2, 4]))
    D = int(rng.choice([1, 5, 16, 33, 64, 128, 256]))
    lens_q, lens_k = [], []
    for _ in range(int(rng.integers(1, 10))):
        kind = rng.integers(6)
        Tq = 0 if kind == 0 else int(rng.integers(1, 5)) if kind < 3 else int(rng.integers(5, 300))
        Tk = 0 if rng.integers(8) == 0 else Tq + int(rng.choice([0, 0, rng.integers(0, 400)]))
        if Tk and rng.integers(6) == 0:
            Tk = int(rng.integers(1, Tk + 1))  # fewer keys than queries
        lens_q.append(Tq)
        lens_k.append(Tk)
    kw = dict(causal=bool(rng.integers(2)))
    if rng.integers(2):
        kw["window"] = int(rng.integers(1, 400))
    if rng.integers(3) == 0:
        kw["softcap"] = float(rng.uniform(0.5, 20))
    if rng.integers(3) == 0:
        kw["scale"] = float(rng.uniform(-0.5, 1.0))
    if rng.integers(3) == 0:
        kw["prefix_len"] = int(rng.integers(0, 50))
    if rng.integers(4) == 0:
        kw = {n: kw[n] for n in ("softcap", "scale", "prefix_len") if n in kw}
        kw["key_range"] = np.concatenate(
            [spans_ranges(tq, [(max(0, tk - tq), tk - 1)] if tq > 4 else [], q_start=tk - tq,
                          window=int(rng.integers(1, 100)))
             for tq, tk in zip(lens_q, lens_k)] + [np.zeros((0, 2), np.int64)])
    dtype = str(rng.choice(["float32", "float32", "float16", "bfloat16"]))
    index_dtype = [np.int32, np.int64][int(rng.integers(2))]
    check_varlen(*packed(rng, lens_q, lens_k, Hq, Hkv, D, dtype, index_dtype), dtype, **kw)


def test_varlen_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    lens_q, lens_k = zip(*MIXED)
    q, k, v, cu_q, cu_k = packed(rng, lens_q, lens_k, 4, 2, 32)
    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
    cq, ck = torch.from_numpy(cu_q).int(), torch.from_numpy(cu_k)  # int32 and int64
    y = gc.ops.attention(tq, tk, tv, cu_seqlens_q=cq, cu_seqlens_k=ck, window=7)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and y.shape == tq.shape
    want = gc.ops.attention(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, window=7)
    assert np.array_equal(bits(y.numpy()), bits(want))
    for (rq, _), ref in zip(sequences(cu_q, cu_k), varlen_ref(q, k, v, cu_q, cu_k, window=7)):
        assert_close(y[rq], ref)
    yb = gc.ops.attention(tq.bfloat16(), tk.bfloat16(), tv.bfloat16(), cu_seqlens_q=cq,
                          cu_seqlens_k=ck)
    assert isinstance(yb, torch.Tensor) and yb.dtype == torch.bfloat16
    qb, kb, vb = (a.astype(DTYPES["bfloat16"]) for a in (q, k, v))
    for (rq, _), ref in zip(sequences(cu_q, cu_k), varlen_ref(qb, kb, vb, cu_q, cu_k)):
        assert_close(yb[rq], ref, "bfloat16")
    # Lists work as cu_seqlens too.
    y = gc.ops.attention(q, k, v, cu_seqlens_q=cu_q.tolist(), cu_seqlens_k=list(cu_k))
    assert np.array_equal(bits(y), bits(gc.ops.attention(q, k, v, cu_seqlens_q=cu_q,
                                                         cu_seqlens_k=cu_k)))


def test_varlen_out_and_strided_inputs(rng):
    lens_q, lens_k = [5, 0, 2, 30], [5, 4, 40, 30]
    _, _, _, cu_q, cu_k = packed(rng, lens_q, lens_k, 4, 2, 16)
    # Slices of a fused qkv projection [total, Hq + 2 Hkv, D], and a head_dim that is strided.
    fused = random(rng, (int(cu_k[-1]), 8, 16))
    q_all = random(rng, (int(cu_q[-1]), 4, 32))
    q, k, v = q_all[..., ::2], fused[:, 4:6], fused[:, 6:8]
    y = check_varlen(q, k, v, cu_q, cu_k, window=9)
    out = np.full((int(cu_q[-1]), 4, 16), np.nan, np.float32)
    assert gc.ops.attention(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, window=9,
                            out=out) is out
    assert np.array_equal(bits(out), bits(y))
    buf = np.zeros((4, int(cu_q[-1]), 16), np.float32)
    gc.ops.attention(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, window=9,
                     out=buf.transpose(1, 0, 2))  # rows contiguous: written in place
    assert np.array_equal(bits(buf.transpose(1, 0, 2)), bits(y))


@pytest.mark.parametrize("kw", [dict(window=250, softcap=30.0), dict(causal=False),
                                dict(prefix_len=20, window=40)])
def test_varlen_bitwise_same_for_any_thread_count(rng, kw):
    lens_q = [1, 300, 3, 0, 64, 2, 130, 4, 1]
    lens_k = [3000, 300, 1500, 8, 64, 0, 500, 260, 1]
    q, k, v, cu_q, cu_k = packed(rng, lens_q, lens_k, 4, 2, 64)
    before = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        y1 = gc.ops.attention(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, **kw)
        gc.set_num_threads(2)
        y2 = gc.ops.attention(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, **kw)
    finally:
        gc.set_num_threads(before)
    assert np.array_equal(bits(y1), bits(y2))
    for (rq, _), ref in zip(sequences(cu_q, cu_k), varlen_ref(q, k, v, cu_q, cu_k, **kw)):
        assert_close(y1[rq], ref)


def test_varlen_bad_shapes_and_options(rng):
    q, k, v, cu_q, cu_k = packed(rng, [3, 4], [3, 6], 4, 2, 8)
    op = gc.ops.attention
    cases = [
        (dict(q=q[None]), ValueError, "attention: q must have 3 dimensions"),
        (dict(k=k[None]), ValueError, "attention: k must have 3 dimensions"),
        (dict(v=v[None]), ValueError, "attention: v must have 3 dimensions"),
        (dict(k=k[..., :4], v=v[..., :4]), ValueError, "attention: k has head_dim 4"),
        (dict(q=q[:, :3]), ValueError, "multiple of the number of key/value heads"),
        (dict(v=v[:5]), ValueError, "attention: k and v must have the same shape"),
        (dict(k=k.astype(np.float16)), TypeError, "attention: k has dtype float16"),
        (dict(q_start=0), ValueError, "attention: q_start cannot be given with cu_seqlens"),
        (dict(window=0), ValueError, "attention: window must be >= 1"),
        (dict(softcap=-1.0), ValueError, "attention: softcap must be a positive"),
        (dict(prefix_len=-1), ValueError, "attention: prefix_len must be >= 0"),
    ]
    for change, err, match in cases:
        args = dict(q=q, k=k, v=v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k) | change
        with pytest.raises(err, match=match):
            op(args.pop("q"), args.pop("k"), args.pop("v"), **args)


@pytest.mark.parametrize("change,err,match", [
    (dict(cu_seqlens_k=None), ValueError,
     "attention: cu_seqlens_q and cu_seqlens_k must be given together, got only cu_seqlens_q"),
    (dict(cu_seqlens_q=None), ValueError, "must be given together, got only cu_seqlens_k"),
    (dict(cu_seqlens_q=[0, 3]), ValueError,
     r"attention: cu_seqlens_q and cu_seqlens_k must have the same length .* \[2\] and \[3\]"),
    (dict(cu_seqlens_q=[1, 3, 7]), ValueError, "attention: cu_seqlens_q must start at 0, got 1"),
    (dict(cu_seqlens_k=[0, 5, 4]), ValueError,
     r"attention: cu_seqlens_k must be non-decreasing; entry 2 \(4\) is less than entry 1 \(5\)"),
    (dict(cu_seqlens_q=[0, 3, 6]), ValueError,
     r"attention: cu_seqlens_q must end at the number of rows of q \(7\), got 6"),
    (dict(cu_seqlens_k=[0, 3, 10]), ValueError,
     r"attention: cu_seqlens_k must end at the number of rows of k \(9\), got 10"),
    (dict(cu_seqlens_q=np.array([0.0, 3.0, 7.0])), TypeError,
     "attention: cu_seqlens_q must be int32 or int64, got float64"),
    (dict(cu_seqlens_k=[0.0, 3.0, 9.0]), TypeError,
     "attention: cu_seqlens_k must be int32 or int64, got float64"),
    (dict(cu_seqlens_q=np.array([[0, 3, 7]]), cu_seqlens_k=np.array([[0, 3, 9]])), ValueError,
     "attention: cu_seqlens_q must have 1 dimensions"),
    (dict(cu_seqlens_q=[], cu_seqlens_k=[]), ValueError,
     r"attention: cu_seqlens_q must have at least one entry"),
    (dict(key_range=np.zeros((6, 2), np.int64)), ValueError,
     r"attention: key_range must have shape \[7, 2\]"),
    (dict(key_range=np.zeros((7, 2), np.float32)), TypeError, "key_range must hold integers"),
    (dict(key_range=np.array([[0, 1], [0, 2], [0, 1], [0, 1], [0, 2], [0, 3], [0, 4]])),
     ValueError, r"key_range columns must be non-decreasing within each sequence; row 2 is"),
])
def test_varlen_bad_cu_seqlens(rng, change, err, match):
    q, k, v, cu_q, cu_k = packed(rng, [3, 4], [3, 6], 4, 2, 8)
    kw = dict(cu_seqlens_q=cu_q, cu_seqlens_k=cu_k) | change
    with pytest.raises(err, match=match):
        gc.ops.attention(q, k, v, **kw)


def test_varlen_key_range_may_restart_between_sequences(rng):
    # Rows 3.. belong to the second sequence: its ranges start again from its own first key.
    q, k, v, cu_q, cu_k = packed(rng, [3, 4], [3, 6], 4, 2, 8)
    r = np.array([[0, 1], [0, 2], [0, 3], [0, 3], [0, 4], [1, 5], [2, 6]])
    check_varlen(q, k, v, cu_q, cu_k, key_range=r)


@pytest.mark.gpu
def test_varlen_cu_seqlens_on_gpu_refused(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    q, k, v, cu_q, cu_k = packed(rng, [3, 4], [3, 6], 4, 2, 8)
    with pytest.raises(ValueError, match="attention: cu_seqlens_q must be on the CPU"):
        gc.ops.attention(q, k, v, cu_seqlens_q=torch.from_numpy(cu_q).cuda(), cu_seqlens_k=cu_k)


@pytest.mark.gpu
def test_varlen_has_no_cuda_kernel_yet(rng):
    q, k, v, cu_q, cu_k = packed(rng, [3, 4], [3, 6], 4, 2, 8)
    with pytest.raises(NotImplementedError, match="attention: cu_seqlens_q/cu_seqlens_k"):
        gc.ops.attention(*(on_device(a, "cuda") for a in (q, k, v)), cu_seqlens_q=cu_q,
                         cu_seqlens_k=cu_k)


def test_varlen_packed_tiles_beyond_the_kept_buffer(rng):
    # Three prefill sequences whose float32 K/V tiles (32 MiB each) outgrow the 64 MiB buffer
    # that the kernel keeps between calls, so they run in more than one group; the decode
    # sequences run with the first.
    lens_q, lens_k = [6, 1, 6, 0, 6, 3], [8192, 600, 8192, 4, 8192, 300]
    check_varlen(*packed(rng, lens_q, lens_k, 4, 2, 256), softcap=30.0)


@pytest.mark.parametrize("Tq, Tk, causal", [(1, 300, False), (3, 40, False), (64, 64, True),
                                             (200, 200, True), (5, 700, False)])
@pytest.mark.parametrize("poison", [np.nan, np.inf])
@pytest.mark.parametrize("device", DEVICES)
def test_nan_and_inf_scores_propagate_as_in_torch(rng, Tq, Tk, causal, poison, device):
    """A key whose score is NaN (or +inf: inf - inf in the softmax) makes the rows that see it
    NaN, as torch's softmax does, instead of being dropped like a masked key. Rows that cannot
    see it stay finite. Covers the prefill tiles, the decode split-K path and its merge."""
    q, k, v = qkv(rng, 1, Tq, Tk, 4, 2, 32)
    j = Tk - Tq + Tq // 2 if causal else Tk // 3  # the poisoned key
    k[0, j, 1, 0] = poison
    q[..., 0] = np.abs(q[..., 0]) + 0.5  # q . k = +inf for an inf key (not -inf, a masked score)
    out = to_f64(gc.ops.attention(*(on_device(a, device) for a in (q, k, v)), causal=causal))
    rows = np.arange(Tq) + (Tk - Tq)  # each query's position among the keys
    sees = rows >= j if causal else np.ones(Tq, bool)
    heads = [2, 3]  # query heads of KV head 1
    assert np.isnan(out[0][sees][:, heads]).all()
    assert np.isfinite(out[0][:, [0, 1]]).all()
    assert np.isfinite(out[0][~sees]).all()


@pytest.mark.parametrize("Tq, Tk", [(1, 1), (1, 300), (3, 40), (5, 34), (130, 420)])
@pytest.mark.parametrize("device", DEVICES)
def test_a_row_whose_visible_scores_are_all_minus_inf_is_nan(rng, Tq, Tk, device):
    """Window 1: each query sees only its own key. Where that key's score is -inf, torch's softmax
    of the row (all -inf) is NaN; the kernels give NaN too, not the zeros of a row that sees no
    key. The other rows are untouched."""
    q, k, v = qkv(rng, 1, Tq, Tk, 4, 2, 16)
    q[..., 0] = np.abs(q[..., 0]) + 0.5
    i = Tq // 2  # the query whose key scores -inf
    k[0, Tk - Tq + i, 1, 0] = -np.inf
    out = to_f64(gc.ops.attention(*(on_device(a, device) for a in (q, k, v)), window=1))
    assert np.isnan(out[0, i, 2:]).all()  # query heads 2, 3 read KV head 1
    assert np.isfinite(np.delete(out[0], i, axis=0)).all() and np.isfinite(out[0, i, :2]).all()
