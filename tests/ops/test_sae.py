"""gc.ops.sae_encode / sae_decode against float64 NumPy references.

The pre-activations are compared with float64 x @ W_enc + b_enc (within 1e-5 of the size of the
terms); the activation function is then checked bit for bit on the kernel's own float32
pre-activations (which side of a threshold a value within rounding of it falls on is not a property
of the maths), and exactly on integer data, where every sum is exact in float32: ties at the
JumpReLU threshold (p == threshold is off) and at the k-th TopK value (the lower index wins).
"""
import numpy as np
import pytest

import gemmacpp as gc
from util import DTYPES, random, to_f64

ACTIVATIONS = ["relu", "jumprelu", "topk", "identity"]
WDTYPES = ["float32", "bfloat16", "float16"]


def pre_ref(x, W, b=None, b_dec=None):
    x = to_f64(x)
    if b_dec is not None:
        x = x - to_f64(b_dec)
    p = x @ to_f64(W)
    return p if b is None else p + to_f64(b)


def activation_ref(pre, activation, threshold=None, k=None):
    """The activation on given pre-activations (compared in their own precision)."""
    p = np.asarray(pre)
    if activation == "identity":
        return p.copy()
    if activation == "relu":
        return np.where(p > 0, p, 0).astype(p.dtype)
    if activation == "jumprelu":
        return np.where((p > threshold) & (p > 0), p, 0).astype(p.dtype)
    rows = p.reshape(-1, p.shape[-1])
    out = np.zeros_like(rows)
    for r, row in enumerate(rows):
        top = np.argsort(-row, kind="stable")[:k]  # larger first, ties to the lower index
        out[r, top] = np.maximum(row[top], 0)
    return out.reshape(p.shape)


def decode_ref(acts, W, b=None):
    y = to_f64(acts) @ to_f64(W)
    return y if b is None else y + to_f64(b)


def assert_product_close(got, x, W, b=None, b_dec=None):
    """Max abs error <= 1e-5 * (max of |x| @ |W| + |b|) / sqrt(K) (widened past K = 1024), the
    criterion of tests/ops/test_linear.py: random-signed sums do not cancel the bound away."""
    k = max(x.shape[-1], 1)
    xa = np.abs(to_f64(x) - (0 if b_dec is None else to_f64(b_dec)))
    size = xa @ np.abs(to_f64(W)) + (0 if b is None else np.abs(to_f64(b)))
    err = np.max(np.abs(to_f64(got) - pre_ref(x, W, b, b_dec)), initial=0.0)
    assert err <= 1e-5 * max(1.0, np.sqrt(k / 1024)) * max(np.max(size, initial=0.0), 1e-30) / np.sqrt(k), err


def encode_args(rng, activation, d_sae):
    if activation == "jumprelu":
        return {"threshold": np.abs(random(rng, (d_sae,))) * 2}
    if activation == "topk":
        return {"k": min(d_sae, 1 + d_sae // 7)}
    return {}


SHAPES = [(1, 1, 1), (1, 7, 5), (2, 64, 100), (13, 640, 1030), (7, 300, 64 * 9 + 3),
          (130, 33, 700), (6, 1100, 70)]


@pytest.mark.parametrize("wdtype", WDTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("m,d_in,d_sae", SHAPES)
def test_encode_matches_reference(rng, wdtype, activation, m, d_in, d_sae):
    x = random(rng, (m, d_in))
    W = random(rng, (d_in, d_sae), wdtype, scale=0.3)
    b = random(rng, (d_sae,))
    kw = encode_args(rng, activation, d_sae)
    dense, pre = gc.ops.sae_encode(x, W, b, activation=activation, dense=True, return_pre=True, **kw)
    assert dense.dtype == pre.dtype == np.float32 and dense.shape == pre.shape == (m, d_sae)
    assert_product_close(pre, x, W, b)
    np.testing.assert_array_equal(dense, activation_ref(pre, activation, kw.get("threshold"),
                                                        kw.get("k")))
    sparse = gc.ops.sae_encode(x, W, b, activation=activation, **kw)  # without the pre buffer
    assert sparse.shape == (m, d_sae) and sparse.indices.dtype == np.int32
    assert sparse.offsets.dtype == np.int64 and sparse.offsets[0] == 0
    for r in range(m):
        row = sparse.indices[sparse.offsets[r]:sparse.offsets[r + 1]]
        assert np.all(np.diff(row) > 0)  # features in increasing order
    assert np.all(sparse.values != 0)
    np.testing.assert_array_equal(sparse.to_dense(), dense)
    np.testing.assert_array_equal(sparse.l0(), (dense != 0).sum(-1))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_b_dec_is_subtracted_from_the_input(rng, activation):
    x, W = random(rng, (9, 80)), random(rng, (80, 150), scale=0.3)
    b, b_dec = random(rng, (150,)), random(rng, (80,), "bfloat16")
    kw = encode_args(rng, activation, 150)
    dense, pre = gc.ops.sae_encode(x, W, b, b_dec=b_dec, activation=activation, dense=True,
                                   return_pre=True, **kw)
    assert_product_close(pre, x, W, b, b_dec)
    np.testing.assert_array_equal(dense, activation_ref(pre, activation, kw.get("threshold"),
                                                        kw.get("k")))


def integer_case(rng, m=11, d_in=24, d_sae=300):
    """Small integers: every pre-activation is an exact float32 integer in any summation order."""
    x = rng.integers(-2, 3, size=(m, d_in)).astype(np.float32)
    W = rng.integers(-2, 3, size=(d_in, d_sae)).astype(np.float32)
    b = rng.integers(-2, 3, size=d_sae).astype(np.float32)
    return x, W, b, x.astype(np.float64) @ W + b


def test_jumprelu_ties_at_the_threshold_are_off(rng):
    x, W, b, p = integer_case(rng)
    # thresholds equal to row 0's pre-activations: row 0 is all off; other rows are on exactly
    # where p > threshold (and p > 0); negative thresholds still need p > 0
    thr = p[0].astype(np.float32)
    got = gc.ops.sae_encode(x, W, b, threshold=thr, dense=True)
    np.testing.assert_array_equal(got[0], 0)
    np.testing.assert_array_equal(got, np.where((p > thr) & (p > 0), p, 0))
    assert np.any(p[1:] == thr) and np.any((p[1:] > thr) & (p[1:] > 0))
    assert np.any((thr < 0) & (p[1:] > thr) & (p[1:] <= 0))  # above a negative threshold, but <= 0
    sparse = gc.ops.sae_encode(x, W, b, threshold=thr)
    np.testing.assert_array_equal(sparse.to_dense(), got)
    assert sparse.offsets[1] == 0  # row 0 has no active feature


@pytest.mark.parametrize("k", [1, 3, 17, 64, 299, 300])
def test_topk_ties_go_to_the_lower_index(rng, k):
    x, W, b, p = integer_case(rng)  # values in a small range: many ties at the k-th value
    got = gc.ops.sae_encode(x, W, b, k=k, dense=True)
    np.testing.assert_array_equal(got, activation_ref(p, "topk", k=k))
    kth = -np.sort(-p, axis=1)[:, k - 1:k]
    assert k == 300 or np.any((p == kth).sum(1) > 1)  # there are ties at the boundary
    np.testing.assert_array_equal(gc.ops.sae_encode(x, W, b, k=k).to_dense(), got)


def test_topk_of_equal_rows_and_many_column_blocks(rng):
    # d_sae spans more than the 8 column blocks TopK merges, every value ties: the first k win
    x = np.zeros((3, 5), np.float32)
    W = np.zeros((5, 9000), np.float32)
    b = np.full(9000, 0.5, np.float32)
    got = gc.ops.sae_encode(x, W, b, k=700)
    assert np.all(got.l0() == 700)
    np.testing.assert_array_equal(got.indices.reshape(3, 700), np.tile(np.arange(700), (3, 1)))
    # all negative: the k selected are zero after the ReLU, so nothing is active
    assert gc.ops.sae_encode(x, W, -b, k=5).nnz == 0


def test_topk_across_column_blocks_matches_reference(rng):
    x, W = random(rng, (20, 64)), random(rng, (64, 20000), "bfloat16", scale=0.3)
    got, pre = gc.ops.sae_encode(x, W, k=50, dense=True, return_pre=True)
    np.testing.assert_array_equal(got, activation_ref(pre, "topk", k=50))


def test_batched_and_strided_inputs(rng):
    x = random(rng, (2, 3, 4, 40))[:, :, ::2]  # strided leading dimension
    W = random(rng, (40, 90))[:, ::1]
    W_t = np.ascontiguousarray(random(rng, (90, 40)).T)  # a [40, 90] view of a transposed buffer
    for w in (W, W_t, random(rng, (40, 180))[:, ::2]):  # the last: columns strided (copied)
        got, pre = gc.ops.sae_encode(x, w, dense=True, return_pre=True)
        assert got.shape == (2, 3, 2, 90)
        assert_product_close(pre, x, w)
        sp = gc.ops.sae_encode(x, w)
        assert sp.shape == (2, 3, 2, 90) and sp.l0().shape == (2, 3, 2)
        np.testing.assert_array_equal(sp.to_dense(), got)


@pytest.mark.parametrize("wdtype", WDTYPES)
@pytest.mark.parametrize("m,d_sae,d_out", [(1, 1, 1), (3, 50, 7), (40, 300, 640), (17, 2000, 129),
                                           (5, 64, 2304)])
def test_decode_matches_reference(rng, wdtype, m, d_sae, d_out):
    acts = random(rng, (m, d_sae)) * (rng.random((m, d_sae)) < 0.2)
    acts = acts.astype(np.float32)
    W = random(rng, (d_sae, d_out), wdtype)
    b = random(rng, (d_out,))
    y = gc.ops.sae_decode(acts, W, b)
    assert y.dtype == np.float32 and y.shape == (m, d_out)
    ref = decode_ref(acts, W, b)
    size = np.abs(to_f64(acts)) @ np.abs(to_f64(W)) + np.abs(to_f64(b))
    assert np.max(np.abs(y - ref)) <= 1e-6 * max(np.max(size), 1e-30)
    # the sparse form of the same activations gives the same bits
    values, rows = acts[acts != 0], np.nonzero(acts)[0]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=m))]).astype(np.int64)
    sp = gc.ops.SparseActs(values, np.nonzero(acts)[1].astype(np.int32), offsets, (m, d_sae))
    np.testing.assert_array_equal(gc.ops.sae_decode(sp, W, b), y)
    np.testing.assert_array_equal(gc.ops.sae_decode(acts, W), gc.ops.sae_decode(acts, W, np.zeros(d_out, np.float32)))


def test_round_trip_and_empty_rows(rng):
    x, W_enc = random(rng, (4, 3, 32)), random(rng, (32, 200))
    b_enc = np.full(200, -100.0, np.float32)  # nothing active
    W_dec, b_dec = random(rng, (200, 32)), random(rng, (32,))
    acts = gc.ops.sae_encode(x, W_enc, b_enc)
    assert acts.nnz == 0 and acts.values.shape == (0,)
    y = gc.ops.sae_decode(acts, W_dec, b_dec)
    assert y.shape == (4, 3, 32)
    np.testing.assert_array_equal(y, np.broadcast_to(b_dec, y.shape))
    out = np.empty((12, 32), np.float32)
    assert gc.ops.sae_decode(acts, W_dec, b_dec, out=out) is out
    np.testing.assert_array_equal(out, y.reshape(12, 32))


def test_results_do_not_depend_on_threads(rng):
    x, W = random(rng, (70, 200)), random(rng, (200, 3000), "bfloat16", scale=0.2)
    b, thr = random(rng, (3000,)), np.abs(random(rng, (3000,)))
    W_dec = random(rng, (3000, 200))
    before = gc.get_num_threads()
    runs = []
    try:
        for n in (1, 2):
            gc.set_num_threads(n)
            j = gc.ops.sae_encode(x, W, b, threshold=thr)
            t = gc.ops.sae_encode(x, W, b, k=33, dense=True)
            runs.append((j.values, j.indices, t, gc.ops.sae_decode(j, W_dec)))
    finally:
        gc.set_num_threads(before)
    for a, b_ in zip(*runs):
        np.testing.assert_array_equal(a, b_)


def test_torch_inputs_give_torch_outputs(rng):
    torch = pytest.importorskip("torch")
    x, W, Wd = random(rng, (5, 30)), random(rng, (30, 60)), random(rng, (60, 30))
    acts = gc.ops.sae_encode(torch.from_numpy(x), torch.from_numpy(W), k=4)
    assert isinstance(acts.values, torch.Tensor) and acts.indices.dtype == torch.int32
    y = gc.ops.sae_decode(acts, torch.from_numpy(Wd))
    assert isinstance(y, torch.Tensor) and tuple(y.shape) == (5, 30)
    np.testing.assert_array_equal(y.numpy(), gc.ops.sae_decode(gc.ops.sae_encode(x, W, k=4), Wd))


def test_bad_input_is_named(rng):
    x, W, b = random(rng, (3, 16)), random(rng, (16, 40)), random(rng, (40,))
    with pytest.raises(ValueError, match=r"x has d_in = 16 .* W_enc is \[17, 40\]"):
        gc.ops.sae_encode(x, random(rng, (17, 40)))
    with pytest.raises(ValueError, match="'jumprelu' needs a threshold"):
        gc.ops.sae_encode(x, W, b, activation="jumprelu")
    with pytest.raises(ValueError, match="threshold is only used by activation 'jumprelu'"):
        gc.ops.sae_encode(x, W, b, threshold=b, activation="relu")
    with pytest.raises(ValueError, match="threshold must have shape \\[40\\]"):
        gc.ops.sae_encode(x, W, b, threshold=b[:39])
    with pytest.raises(ValueError, match="1 <= k <= d_sae = 40, got k = 41"):
        gc.ops.sae_encode(x, W, k=41)
    with pytest.raises(ValueError, match="1 <= k <= d_sae = 40, got k = 0"):
        gc.ops.sae_encode(x, W, k=0)
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        gc.ops.sae_encode(x, W, activation="gelu")
    with pytest.raises(TypeError, match="x must be float32"):
        gc.ops.sae_encode(x.astype(np.float64), W)
    with pytest.raises(ValueError, match=r"W_enc must have 2 dimensions"):
        gc.ops.sae_encode(x, b)
    with pytest.raises(ValueError, match="b_dec must have shape \\[16\\]"):
        gc.ops.sae_encode(x, W, b_dec=b)
    acts = gc.ops.sae_encode(x, W, b)
    W_dec = random(rng, (40, 16))
    with pytest.raises(ValueError, match=r"acts has d_sae = 40 .* W_dec is \[39, 16\]"):
        gc.ops.sae_decode(acts.to_dense(), random(rng, (39, 16)))
    bad = gc.ops.SparseActs(acts.values, acts.indices + 40, acts.offsets, acts.shape)
    if acts.nnz:
        with pytest.raises(ValueError, match=r"indices\[0\] = \d+ is not a feature of W_dec"):
            gc.ops.sae_decode(bad, W_dec)
    bad = gc.ops.SparseActs(acts.values, acts.indices, acts.offsets[::-1].copy(), acts.shape)
    with pytest.raises(ValueError, match="offsets must run from 0 to nnz"):
        gc.ops.sae_decode(bad, W_dec)
    offs = np.array([0, 5, 2, acts.nnz], np.int64)
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        gc.ops.sae_decode(gc.ops.SparseActs(acts.values, acts.indices, offs, acts.shape), W_dec)
    with pytest.raises(ValueError, match="b_dec must have shape \\[16\\]"):
        gc.ops.sae_decode(acts, W_dec, b)
