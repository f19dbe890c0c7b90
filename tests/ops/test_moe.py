"""Mixture of experts (Gemma 4): moe_route and moe against float64 NumPy references, and against
transformers' own Gemma4TextRouter and Gemma4TextExperts."""
import numpy as np
import pytest

import gemmacpp as gc
from gemmacpp.quant import QuantizedTensor
from test_activation import gelu_tanh_ref
from test_quant import oracle, random_blocks
from util import DTYPES, random, to_f64


# ---- references ---------------------------------------------------------------------------------

def route_ref(logits, k, scale=None):
    """float64 softmax, top-k by probability with ties to the lower index, renormalised, scaled."""
    lg = to_f64(logits).reshape(-1, np.shape(logits)[-1])
    p = np.exp(lg - lg.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    # A stable sort of -p keeps equal probabilities in index order.
    ids = np.argsort(-p, axis=-1, kind="stable")[:, :k]
    w = np.take_along_axis(p, ids, -1)
    w /= w.sum(-1, keepdims=True)
    if scale is not None:
        w *= to_f64(scale)[ids]
    lead = np.shape(logits)[:-1]
    return ids.reshape(*lead, k), w.reshape(*lead, k)


def moe_ref(x, ids, weights, gate_up, down):
    """float64 sum_j w_j down_e @ (gelu_tanh(gate_e @ u) * (up_e @ u)), from float [E, N, K]
    stacks, one token and slot at a time."""
    d = np.shape(x)[-1]
    x64 = to_f64(x).reshape(-1, d)
    k = np.shape(ids)[-1]
    ids, w = np.asarray(ids).reshape(-1, k), to_f64(weights).reshape(-1, k)
    gu, dn = to_f64(gate_up), to_f64(down)
    f = dn.shape[-1]
    y = np.zeros_like(x64)
    for m in range(x64.shape[0]):
        for j in range(k):
            h = gu[ids[m, j]] @ x64[m]
            y[m] += w[m, j] * (dn[ids[m, j]] @ (gelu_tanh_ref(h[:f]) * h[f:]))
    return y.reshape(np.shape(x))


def assert_moe_close(y, ref):
    """float32 rounding: max abs error <= 1e-5 * max|ref|."""
    y, ref = to_f64(y), np.asarray(ref, np.float64)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    assert np.all(np.isfinite(y)), "non-finite values in the result"
    scale = np.abs(ref).max(initial=0.0)
    err = np.abs(y - ref).max(initial=0.0)
    assert err <= 1e-5 * scale, f"max abs error {err:.3g} > 1e-5 * {scale:.3g}"


def experts(rng, e, d, f, dtype="float32"):
    """Random gate_up [E, 2F, D] and down [E, D, F], entries about 1/sqrt(fan-in)."""
    gu = random(rng, (e, 2 * f, d), dtype, scale=1 / np.sqrt(d))
    dn = random(rng, (e, d, f), dtype, scale=1 / np.sqrt(f))
    return gu, dn


def quantized_experts(rng, qtype, e, n, k):
    """E random [n, k] matrices of qtype blocks as one (E, n, k) QuantizedTensor, and their float32
    values (gguf's dequantization)."""
    flat = random_blocks(rng, qtype, e * n, k, scale=0.3 / k)
    return (QuantizedTensor(flat.data, qtype, (e, n, k)), oracle(flat).reshape(e, n, k))


def routed(rng, m, e, k):
    return gc.ops.moe_route(random(rng, (m, e)), k, per_expert_scale=random(rng, (e,)) + 1.0)


# ---- moe_route ----------------------------------------------------------------------------------

@pytest.mark.parametrize("m,e,k", [(1, 8, 2), (5, 128, 8), (64, 7, 7), (3, 1, 1), (33, 16, 1),
                                   (17, 300, 13), (0, 4, 2)])
@pytest.mark.parametrize("scaled", [False, True])
def test_route_matches_reference(rng, m, e, k, scaled):
    logits = random(rng, (m, e), scale=3.0)
    scale = random(rng, (e,)) if scaled else None
    ids, w = gc.ops.moe_route(logits, k, per_expert_scale=scale)
    assert ids.dtype == np.int32 and w.dtype == np.float32
    assert ids.shape == w.shape == (m, k)
    ids_ref, w_ref = route_ref(logits, k, scale)
    np.testing.assert_array_equal(ids, ids_ref)
    np.testing.assert_allclose(w, w_ref, rtol=2e-6, atol=1e-7)


def test_route_ties_go_to_the_lower_index():
    logits = np.array([[0, 0, 0, 0, 0, 0, 0, 0],     # all equal: the first k
                       [1, 3, 3, 2, 3, 0, 3, 3],     # four-way tie for the top
                       [5, 1, 5, 1, 5, 1, 5, 1],     # tie across the k-th place
                       [0, 0, 0, 0, 0, 0, 0, 9]],    # one clear winner, then ties
                      np.float32)
    ids, w = gc.ops.moe_route(logits, 3)
    np.testing.assert_array_equal(ids, [[0, 1, 2], [1, 2, 4], [0, 2, 4], [7, 0, 1]])
    np.testing.assert_allclose(w[:3], np.full((3, 3), 1 / 3), rtol=1e-6)
    np.testing.assert_array_equal(ids, route_ref(logits, 3)[0])
    # The same with 128 experts, many equal, and k = E: every expert, best first, ties in order.
    big = np.repeat(np.float32([2, 1, 3, 1]), 32)[None]
    ids, w = gc.ops.moe_route(big, 128)
    np.testing.assert_array_equal(ids[0], np.r_[64:96, 0:32, 32:64, 96:128])
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-6)


def test_route_nan_logits_still_give_valid_distinct_ids():
    logits = np.array([[0.0, np.nan, 1.0, 2.0], [np.nan] * 4], np.float32)
    ids, _ = gc.ops.moe_route(logits, 3)
    for row in ids:
        assert len(set(row.tolist())) == 3 and all(0 <= i < 4 for i in row)


def test_route_batched_logits_and_half_scale(rng):
    logits = random(rng, (2, 3, 10))
    scale = random(rng, (10,), "bfloat16")
    ids, w = gc.ops.moe_route(logits, 4, per_expert_scale=scale)
    assert ids.shape == w.shape == (2, 3, 4)
    ids_ref, w_ref = route_ref(logits, 4, scale)
    np.testing.assert_array_equal(ids, ids_ref)
    np.testing.assert_allclose(w, w_ref, rtol=2e-6, atol=1e-7)


def test_route_matches_transformers_router(rng):
    torch = pytest.importorskip("torch")
    modeling = pytest.importorskip("transformers.models.gemma4.modeling_gemma4")
    from transformers.models.gemma4.configuration_gemma4 import Gemma4TextConfig
    cfg = Gemma4TextConfig(hidden_size=32, num_experts=16, top_k_experts=4, enable_moe_block=True,
                           moe_intermediate_size=8)
    router = modeling.Gemma4TextRouter(cfg)
    with torch.no_grad():
        for p in router.parameters():
            p.copy_(torch.from_numpy(random(rng, tuple(p.shape))))
    scores = []
    router.proj.register_forward_hook(lambda mod, inp, out: scores.append(out))
    with torch.no_grad():
        _, w_ref, ids_ref = router(torch.from_numpy(random(rng, (50, 32))))
    ids, w = gc.ops.moe_route(scores[0], 4, per_expert_scale=router.per_expert_scale.detach())
    assert isinstance(ids, torch.Tensor)
    np.testing.assert_array_equal(ids.numpy(), ids_ref.numpy())
    np.testing.assert_allclose(w.numpy(), w_ref.numpy(), rtol=2e-6, atol=1e-7)


# ---- moe: float experts -------------------------------------------------------------------------

SHAPES = [  # (M, E, k, D, F)
    (1, 8, 2, 37, 19),
    (3, 5, 5, 64, 33),       # k == E: every token goes to every expert
    (7, 3, 1, 129, 17),      # k = 1
    (64, 16, 4, 71, 48),     # about 16 rows an expert: both paths (<= 16 matrix-vector)
    (200, 6, 2, 50, 30),     # GEMM for every expert
    (130, 128, 8, 40, 24),   # many experts, a few rows each, some with none
    (9, 64, 8, 300, 70),     # most experts get no token
]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("m,e,k,d,f", SHAPES)
def test_moe_matches_reference(rng, dtype, m, e, k, d, f):
    x = random(rng, (m, d))
    gu, dn = experts(rng, e, d, f, dtype)
    ids, w = routed(rng, m, e, k)
    y = gc.ops.moe(x, ids, w, gu, dn)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (m, d)
    assert_moe_close(y, moe_ref(x, ids, w, gu, dn))


def test_moe_expert_populations(rng):
    # Expert 0 takes every token (slot 0), expert 1 exactly one token, expert 2 a token twice
    # (a repeated id adds both terms), experts 3-5 nothing; expert 6 takes rows 1-9.
    m, e, d, f = 10, 7, 45, 23
    x = random(rng, (m, d))
    gu, dn = experts(rng, e, d, f)
    ids = np.zeros((m, 3), np.int32)
    ids[:, 1] = 6
    ids[0, 1:] = [1, 2]
    ids[5, 1:] = [2, 2]
    w = random(rng, (m, 3))
    assert_moe_close(gc.ops.moe(x, ids, w, gu, dn), moe_ref(x, ids, w, gu, dn))
    # An expert's output does not depend on the weights of the experts nobody chose.
    gu2, dn2 = gu.copy(), dn.copy()
    gu2[3:6], dn2[3:6] = np.nan, np.nan
    np.testing.assert_array_equal(gc.ops.moe(x, ids, w, gu2, dn2), gc.ops.moe(x, ids, w, gu, dn))


def test_moe_one_expert_with_many_rows(rng):
    # 600 rows on one expert: its GEMM takes the rows in more than one block.
    x = random(rng, (600, 33))
    gu, dn = experts(rng, 2, 33, 20)
    ids = np.zeros((600, 1), np.int64)
    w = random(rng, (600, 1))
    assert_moe_close(gc.ops.moe(x, ids, w, gu, dn), moe_ref(x, ids, w, gu, dn))


def test_moe_matches_transformers_experts(rng):
    torch = pytest.importorskip("torch")
    modeling = pytest.importorskip("transformers.models.gemma4.modeling_gemma4")
    from transformers.models.gemma4.configuration_gemma4 import Gemma4TextConfig
    cfg = Gemma4TextConfig(hidden_size=48, num_experts=8, top_k_experts=3, enable_moe_block=True,
                           moe_intermediate_size=20)
    cfg._experts_implementation = "eager"
    mod = modeling.Gemma4TextExperts(cfg)
    gu, dn = experts(rng, 8, 48, 20)
    with torch.no_grad():
        mod.gate_up_proj.copy_(torch.from_numpy(gu))
        mod.down_proj.copy_(torch.from_numpy(dn))
    x = torch.from_numpy(random(rng, (40, 48)))
    ids, w = routed(rng, 40, 8, 3)
    with torch.no_grad():
        ref = mod(x, torch.from_numpy(ids).long(), torch.from_numpy(w))
    y = gc.ops.moe(x, torch.from_numpy(ids), torch.from_numpy(w), mod.gate_up_proj.detach(),
                   mod.down_proj.detach())
    assert isinstance(y, torch.Tensor)
    assert_moe_close(y, ref.numpy())
    assert_moe_close(y, moe_ref(x.numpy(), ids, w, gu, dn))


def test_moe_no_tokens(rng):
    gu, dn = experts(rng, 4, 16, 8)
    y = gc.ops.moe(np.zeros((0, 16), np.float32), np.zeros((0, 2), np.int32),
                   np.zeros((0, 2), np.float32), gu, dn)
    assert y.shape == (0, 16)


def test_moe_batched_strided_x_and_out(rng):
    e, d, f = 6, 40, 16
    gu, dn = experts(rng, e, d, f)
    x = random(rng, (2, 3, d))
    ids, w = routed(rng, 6, e, 2)
    ids3, w3 = ids.reshape(2, 3, 2), w.reshape(2, 3, 2)
    y = gc.ops.moe(x, ids3, w3, gu, dn)
    assert y.shape == (2, 3, d)
    assert_moe_close(y, moe_ref(x, ids3, w3, gu, dn))
    xs = random(rng, (12, 2 * d))[::2, 5:5 + d]  # row-strided and offset
    assert_moe_close(gc.ops.moe(xs, ids, w, gu, dn), moe_ref(xs, ids, w, gu, dn))
    x1 = random(rng, (d,))
    y1 = gc.ops.moe(x1, ids[0], w[0], gu, dn)
    assert y1.shape == (d,)
    assert_moe_close(y1, moe_ref(x1, ids[0], w[0], gu, dn))
    out = np.full((6, d), np.nan, np.float32)
    assert gc.ops.moe(x.reshape(6, d), ids, w, gu, dn, out=out) is out
    assert_moe_close(out, moe_ref(x.reshape(6, d), ids, w, gu, dn))
    # A strided stack is copied for the call, not misread.
    gus = np.ascontiguousarray(gu.transpose(0, 2, 1)).transpose(0, 2, 1)
    assert_moe_close(gc.ops.moe(x.reshape(6, d), ids, w, gus, dn), out)


@pytest.mark.parametrize("m", [1, 3, 40])
def test_moe_thread_count_does_not_change_bits(rng, m):
    e, d, f = 16, 256, 256
    x = random(rng, (m, d))
    gu, dn = experts(rng, e, d, f)
    qgu, _ = quantized_experts(rng, "Q4_K", e, 2 * f, d)
    ids, w = routed(rng, m, e, 4)
    before = gc.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            gc.set_num_threads(n)
            results.append((gc.ops.moe(x, ids, w, gu, dn), gc.ops.moe(x, ids, w, qgu, dn)))
        for a, b in results[1:]:
            np.testing.assert_array_equal(a, results[0][0])
            np.testing.assert_array_equal(b, results[0][1])
    finally:
        gc.set_num_threads(before)


# ---- moe: quantized experts ---------------------------------------------------------------------

@pytest.mark.parametrize("qtype,d,f", [("Q8_0", 96, 64), ("Q4_K", 512, 256), ("Q4_0", 64, 96),
                                       ("Q5_0", 160, 32), ("Q6_K", 256, 256),
                                       ("Q5_K", 256, 512)])
@pytest.mark.parametrize("m", [1, 3, 9, 40, 100])  # up to 16 rows an expert: matrix-vector
def test_moe_quantized_matches_reference(rng, qtype, d, f, m):
    e, k = 8, 3
    qgu, gu = quantized_experts(rng, qtype, e, 2 * f, d)
    qdn, dn = quantized_experts(rng, qtype, e, d, f)
    x = random(rng, (m, d))
    ids, w = routed(rng, m, e, k)
    assert_moe_close(gc.ops.moe(x, ids, w, qgu, qdn), moe_ref(x, ids, w, gu, dn))


@pytest.mark.parametrize("m", [1, 8, 33])
def test_moe_gguf_layout_q4_k_gate_up_q5_0_down(rng, m):
    # A Q4_K file's experts: ffn_gate_up_exps Q4_K (D a multiple of 256); ffn_down_exps rows are F
    # long (704 in 26B-A4B, not a multiple of 256), so llama.cpp stores them as Q5_0. Mixed with a
    # float stack too.
    e, k, d, f = 16, 4, 512, 96
    qgu, gu = quantized_experts(rng, "Q4_K", e, 2 * f, d)
    qdn, dn = quantized_experts(rng, "Q5_0", e, d, f)
    x = random(rng, (m, d))
    ids, w = routed(rng, m, e, k)
    ref = moe_ref(x, ids, w, gu, dn)
    assert_moe_close(gc.ops.moe(x, ids, w, qgu, qdn), ref)
    assert_moe_close(gc.ops.moe(x, ids, w, qgu, dn), ref)
    assert_moe_close(gc.ops.moe(x, ids, w, gu.astype(DTYPES["bfloat16"]), qdn),
                     moe_ref(x, ids, w, gu.astype(DTYPES["bfloat16"]), dn))


def test_moe_reads_gguf_expert_tensors(rng, tmp_path):
    # The gguf package's own name map and writer: HF experts.gate_up_proj [E, 2F, D] and
    # experts.down_proj [E, D, F] become blk.N.ffn_gate_up_exps / ffn_down_exps, which
    # gc.weights.open returns as an [E, 2F, D] array and an (E, D, F) QuantizedTensor that the op
    # reads as they are.
    gguf = pytest.importorskip("gguf")
    e, d, f = 6, 64, 32
    gu, dn = experts(rng, e, d, f)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA4, 1)
    gu_name = names.get_name("model.layers.0.experts.gate_up_proj")
    dn_name = names.get_name("model.layers.0.experts.down_proj")
    assert (gu_name, dn_name) == ("blk.0.ffn_gate_up_exps", "blk.0.ffn_down_exps")
    path = tmp_path / "experts.gguf"
    w = gguf.GGUFWriter(str(path), "gemma4")
    w.add_tensor(gu_name + ".weight", gu)
    q8 = gguf.GGMLQuantizationType.Q8_0
    qdn = gguf.quants.quantize(dn, q8)
    w.add_tensor(dn_name + ".weight", qdn, raw_shape=qdn.shape, raw_dtype=q8)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    file = gc.weights.open(str(path))
    sgu, sdn = file[gu_name + ".weight"], file[dn_name + ".weight"]
    assert sgu.shape == (e, 2 * f, d) and isinstance(sdn, QuantizedTensor)
    assert sdn.qtype == "Q8_0" and tuple(sdn.shape) == (e, d, f)
    x = random(rng, (7, d))
    ids, wt = routed(rng, 7, e, 2)
    ref = moe_ref(x, ids, wt, gu, gguf.quants.dequantize(qdn, q8).reshape(e, d, f))
    assert_moe_close(gc.ops.moe(x, ids, wt, sgu, sdn), ref)


def test_moe_quantized_torch_blocks(rng):
    torch = pytest.importorskip("torch")
    qgu, gu = quantized_experts(rng, "Q8_0", 4, 64, 64)
    qdn, dn = quantized_experts(rng, "Q8_0", 4, 64, 32)
    tgu = QuantizedTensor(torch.from_numpy(np.asarray(qgu.data)), "Q8_0", qgu.shape)
    x = random(rng, (5, 64))
    ids, w = routed(rng, 5, 4, 2)
    assert_moe_close(gc.ops.moe(x, ids, w, tgu, qdn), moe_ref(x, ids, w, gu, dn))


# ---- bad inputs ---------------------------------------------------------------------------------

def test_bad_inputs(rng):
    e, d, f = 4, 64, 32
    gu, dn = experts(rng, e, d, f)
    x = random(rng, (3, d))
    ids, w = routed(rng, 3, e, 2)
    moe = gc.ops.moe
    with pytest.raises(ValueError, match=r"moe_route: k must be in \[1, E\] = \[1, 4\], got 5"):
        gc.ops.moe_route(random(rng, (3, e)), 5)
    with pytest.raises(ValueError, match=r"moe_route: k must be in .* got 0"):
        gc.ops.moe_route(random(rng, (3, e)), 0)
    with pytest.raises(TypeError, match=r"moe_route: logits must be float32, got float16"):
        gc.ops.moe_route(random(rng, (3, e), "float16"), 2)
    with pytest.raises(ValueError, match=r"moe_route: per_expert_scale must have shape \[4\]"):
        gc.ops.moe_route(random(rng, (3, e)), 2, per_expert_scale=random(rng, (5,)))
    with pytest.raises(TypeError, match=r"k must be an int"):
        gc.ops.moe_route(random(rng, (3, e)), 2.0)
    with pytest.raises(TypeError, match=r"moe: x must be float32"):
        moe(x.astype(np.float16), ids, w, gu, dn)
    with pytest.raises(TypeError, match=r"moe: ids must be int32 or int64, got float32"):
        moe(x, ids.astype(np.float32), w, gu, dn)
    with pytest.raises(ValueError, match=r"moe: ids must have shape \[\.\.\., k\] with x's"):
        moe(x, ids[:2], w[:2], gu, dn)
    with pytest.raises(ValueError, match=r"moe: weights must have shape \[3, 2\], got \[3, 1\]"):
        moe(x, ids, w[:, :1], gu, dn)
    with pytest.raises(TypeError, match=r"moe: weights must be float32"):
        moe(x, ids, w.astype(np.float64), gu, dn)
    for bad in (-1, 4):
        b = ids.copy()
        b[2, 1] = bad
        with pytest.raises(ValueError, match=rf"moe: ids must be in \[0, E\) = \[0, 4\), got "
                                             rf"{bad} at flat index 5"):
            moe(x, b, w, gu, dn)
    with pytest.raises(ValueError, match=r"moe: ids must name at least one expert"):
        moe(x, ids[:, :0], w[:, :0], gu, dn)
    with pytest.raises(ValueError, match=r"moe: gate_up must have 3 dimensions \[E, 2F, D\]"):
        moe(x, ids, w, gu[0], dn)
    with pytest.raises(ValueError, match=r"moe: gate_up must be \[E, 2F, D\].* 63 is odd"):
        moe(x, ids, w, gu[:, :63], dn)
    with pytest.raises(ValueError, match=r"moe: gate_up must have shape \[4, 64, 64\], got "
                                         r"\[4, 64, 63\]"):
        moe(x, ids, w, gu[:, :, :63], dn)
    with pytest.raises(ValueError, match=r"moe: down must have shape \[4, 64, 32\], got "
                                         r"\[3, 64, 32\]"):
        moe(x, ids, w, gu, dn[:3])
    with pytest.raises(ValueError, match=r"moe: down must have shape \[4, 64, 32\], got "
                                         r"\[4, 64, 31\]"):
        moe(x, ids, w, gu, dn[:, :, :31])
    with pytest.raises(TypeError, match=r"moe: down must be float32, float16 or bfloat16"):
        moe(x, ids, w, gu, dn.astype(np.float64))
    with pytest.raises(ValueError, match=r"moe: out must have shape \[3, 64\]"):
        moe(x, ids, w, gu, dn, out=np.zeros((3, 65), np.float32))
    # quantized stacks
    qdn, _ = quantized_experts(rng, "Q8_0", e, d, f)
    with pytest.raises(ValueError, match=r"moe: down.shape must be \(E, N, K\)"):
        moe(x, ids, w, gu, QuantizedTensor(qdn.data, "Q8_0", (e * d, f)))
    with pytest.raises(ValueError, match=r"moe: down must have shape \[4, 64, 32\], got "
                                         r"\[4, 32, 64\]"):
        moe(x, ids, w, gu, QuantizedTensor(qdn.data, "Q8_0", (e, f, d)))
    with pytest.raises(ValueError, match=r"moe: down: data has .* bytes but"):
        moe(x, ids, w, gu, QuantizedTensor(np.asarray(qdn.data)[:-34], "Q8_0", (e, d, f)))
    with pytest.raises(ValueError, match=r"moe: down: qtype 'Q9_9' is not a supported"):
        moe(x, ids, w, gu, QuantizedTensor(qdn.data, "Q9_9", (e, d, f)))
    with pytest.raises(ValueError, match=r"moe: down: K = 32 is not a multiple of Q4_K's block "
                                         r"size 256"):
        moe(x, ids, w, gu, QuantizedTensor(qdn.data, "Q4_K", (e, d, f)))
    with pytest.raises(TypeError, match=r"moe: down: data must be a uint8"):
        moe(x, ids, w, gu, QuantizedTensor(np.asarray(qdn.data).view(np.int8), "Q8_0", (e, d, f)))
