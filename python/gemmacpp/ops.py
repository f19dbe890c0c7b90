"""Kernels, one function each, with explicit keyword arguments.

Every op takes NumPy arrays (float32, float16, bfloat16 from ml_dtypes) or any tensor with
``__dlpack__`` (torch, JAX, CuPy) without copying, computes in float32, and returns the same kind
of array as its first argument, on the same device and in its dtype. ``out=`` writes the result
into a given array (same shape and dtype) and returns it. Strided inputs are read correctly.
The GIL is released while a kernel runs.
"""
from dataclasses import dataclass

import numpy as np

from . import _core
from ._arrays import like as _like
from ._arrays import result as _result
from .quant import QuantizedTensor

__all__ = ["attention", "softcap", "rms_norm", "layer_norm", "rope", "gelu_tanh", "geglu",
           "linear", "dequantize", "token_logprobs", "moe_route", "moe", "rg_lru", "conv1d_temporal",
           "sae_encode", "sae_decode", "SparseActs", "altup_predict", "altup_correct", "altup_rescale", "gaussian_topk"]


def attention(q, k, v, *, causal=True, window=None, softcap=None, scale=None, q_start=None,
              prefix_len=0, key_range=None, cu_seqlens_q=None, cu_seqlens_k=None, out=None):
    """Scaled dot-product attention for every head layout of the Gemma family.

    q: [B, Tq, Hq, D]; k, v: [B, Tk, Hkv, D] with Hq % Hkv == 0 (MHA, GQA, MQA); query head h
    reads KV head h // (Hq // Hkv). Query i sits at absolute position p = q_start + i (default
    Tk - Tq, i.e. the queries are the last Tq keys). Key j is visible to it iff j < prefix_len, or
    (not causal or j <= p) and (window is None or p - j < window).
    key_range: int [Tq, 2], optional: query i sees keys key_range[i, 0] <= j < key_range[i, 1]
    (plus the prefix) instead of the causal/window rule; both columns must be non-decreasing
    (e.g. bidirectional spans inside a causal sequence).

    Scores are s = scale * q.k (scale defaults to D ** -0.5); with softcap, s = softcap *
    tanh(s / softcap); then a softmax over the visible keys. A query with no visible key gets
    zeros. Returns [B, Tq, Hq, D].

    Packed sequences (flash-attention's ``flash_attn_varlen_func`` layout): with cu_seqlens_q and
    cu_seqlens_k (both or neither; int32 or int64 [n + 1] on the CPU, starting at 0,
    non-decreasing, ending at the number of rows), q is [total_q, Hq, D] and k, v are
    [total_k, Hkv, D]; sequence s is the queries q[cu_seqlens_q[s]:cu_seqlens_q[s + 1]] and the
    keys and values k[ks:ke], v[ks:ke] with ks, ke = cu_seqlens_k[s], cu_seqlens_k[s + 1], and
    attends to nothing else.
    Every option applies to each sequence in its own key indices (j counts from the sequence's
    first key; prefix_len keys of each sequence are visible to all its queries). Each sequence's
    queries are its last keys: q_start = Tk_s - Tq_s (the bottom-right aligned causal mask, as
    flash-attention >= 2.1), so q_start may not be given. key_range is [total_q, 2], each row in
    its own sequence's key indices, non-decreasing within each sequence. A sequence with no
    queries contributes no rows; one with no keys gets zeros. Returns [total_q, Hq, D], each
    sequence's rows bitwise equal to a separate call on that sequence alone (as [1, Tq_s, Hq, D]),
    for any thread count: one call schedules all sequences' work together, which is what makes
    many short sequences fast. CPU only for now: q on a GPU raises NotImplementedError.
    """
    opts = dict(causal=bool(causal), window=_opt_int(window, "window"),
                softcap=_opt_float(softcap, "softcap"), scale=_opt_float(scale, "scale"),
                q_start=_opt_int(q_start, "q_start"), prefix_len=_int(prefix_len, "prefix_len"),
                key_range=_opt_int_array(key_range, "key_range"), out=out)
    if cu_seqlens_q is None and cu_seqlens_k is None:
        return _result(q, out, _core.attention(q, k, v, **opts))
    if cu_seqlens_q is None or cu_seqlens_k is None:
        given = "cu_seqlens_q" if cu_seqlens_k is None else "cu_seqlens_k"
        raise ValueError(f"attention: cu_seqlens_q and cu_seqlens_k must be given together, got "
                         f"only {given}")
    return _result(q, out, _core.attention(q, k, v, cu_seqlens_q=_index_array(cu_seqlens_q),
                                           cu_seqlens_k=_index_array(cu_seqlens_k), **opts))


def softcap(x, cap, *, out=None):
    """cap * tanh(x / cap), elementwise (Gemma 2's attention and final-logit soft-capping)."""
    return _result(x, out, _core.softcap(x, _float(cap, "cap"), out))


def rms_norm(x, weight, eps=1e-6, *, unit_offset=True, out=None):
    """x / sqrt(mean(x**2, -1) + eps) * (1 + weight), over the last axis of x.

    weight: [D], any float dtype. unit_offset=False gives the plain x / rms(x) * weight. The
    statistics are computed in float32 whatever the dtype of x.
    """
    return _result(x, out, _core.rms_norm(x, weight, _float(eps, "eps"), bool(unit_offset), out))


def layer_norm(x, weight, bias=None, eps=1e-6, *, out=None):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis of x (biased variance, as
    torch.nn.LayerNorm). weight and bias: [D], one float dtype (bias None: no bias). The
    statistics are computed in float32 whatever the dtype of x.
    """
    return _result(x, out, _core.layer_norm(x, weight, bias, _float(eps, "eps"), out))


def rope(x, positions, *, base=10000.0, scale=1.0, rotary_dim=None, rotated_pairs=None, out=None):
    """Rotary position embedding, rotate-half layout, on x [B, T, H, D].

    positions: integers, [T] (shared by the batch) or [B, T]. For i < rotary_dim / 2 the pair
    (x_i, x_{i + rotary_dim/2}) turns by the angle positions / scale * base ** (-2i / rotary_dim);
    dimensions from rotary_dim on (default D: none) pass through unchanged. With rotated_pairs
    (default rotary_dim / 2: all), only the pairs i < rotated_pairs turn: Gemma 4's "proportional"
    RoPE (transformers' partial_rotary_factor p on a head of D: rotated_pairs = int(p * D / 2)).
    """
    if not hasattr(positions, "__dlpack__") and not isinstance(positions, np.ndarray):
        # Integers become int64; anything else (floats) goes through as is, so that the core
        # rejects it with a TypeError instead of silently truncating 1.5 to 1.
        positions = np.asarray(positions)
        if positions.dtype.kind in "iu" or positions.size == 0:
            positions = positions.astype(np.int64)
    return _result(x, out, _core.rope(x, positions, _float(base, "base"), _float(scale, "scale"),
                                      _opt_int(rotary_dim, "rotary_dim"),
                                      _opt_int(rotated_pairs, "rotated_pairs"), out))


def gelu_tanh(x, *, out=None):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), elementwise."""
    return _result(x, out, _core.gelu_tanh(x, out))


def geglu(gate, up, *, out=None):
    """gelu_tanh(gate) * up, elementwise (the Gemma MLP's gating); gate and up share a shape."""
    return _result(gate, out, _core.geglu(gate, up, out))


def gaussian_topk(x, z, *, out=None):
    """max(x - (mean + z * std), 0) per row of x [..., F]: Gemma 3n's activation sparsity.

    mean and std (the population std, as torch.std(unbiased=False)) are the row's, accumulated in
    float64; z is the standard normal quantile of the sparsity p (transformers'
    Normal(0, 1).icdf(p): z = 1.645 keeps about the top 5%). A row of equal values gives zeros.
    """
    return _result(x, out, _core.gaussian_topk(x, _float(z, "z"), out))


def altup_predict(streams, router_logits, coefs, *, out=None):
    """AltUp's prediction of its N streams (Gemma 3n), per row.

    streams: [N, ..., d]; router_logits: [..., N] (the modality router's output, before its tanh);
    coefs: [N * N, N] (prediction_coefs.weight). With C = reshape(coefs @ tanh(router_logits),
    [N, N]): out[k] = streams[k] + sum_n C[k, n] streams[n]. float32; N <= 16.
    """
    return _result(streams, out, _core.altup_predict(streams, router_logits, coefs, out))


def altup_correct(predictions, activated, router_logits, coefs, *, out=None):
    """AltUp's correction of its N predicted streams (Gemma 3n) by the active stream's new value.

    predictions: [N, ..., d]; activated: [..., d] (stream 0 after the layer); router_logits:
    [..., N] (the router on activated, before its tanh); coefs: [N, N] (correction_coefs.weight).
    With c = coefs @ tanh(router_logits) + 1: out[k] = predictions[k] + c[k] (activated -
    predictions[0]). float32; N <= 16.
    """
    return _result(predictions, out, _core.altup_correct(predictions, activated, router_logits, coefs, out))


def altup_rescale(streams, *, eps=1e-5, out=None):
    """AltUp's magnitude matching (Gemma 3n, after spreading the embedding into its N streams and
    after gathering them back): streams [N, ..., d] float32; per row, out[0] = streams[0] and
    out[k] = streams[k] * rms(streams[0]) / sqrt(max(mean(streams[k] ** 2), eps)) for k >= 1
    (rms: the root mean square over d)."""
    return _result(streams, out, _core.altup_rescale(streams, _float(eps, "eps"), out))


def linear(x, weight, *, bias=None, out=None, activations="float32"):
    """x @ weight.T (+ bias), as torch.nn.functional.linear.

    x: [..., K] float32; weight: [N, K] float32, bfloat16 or float16, read in place (as a model
    stores it), or a QuantizedTensor of shape (N, K), whose GGML blocks are read in place and
    dequantized on the fly (y = x @ dequantize(weight).T); bias: [N] or None. Returns [..., N]
    float32. A row of the result is bitwise the same whatever the other rows of x, their number
    and the thread count (on a given SIMD target): decoding one row, prefilling many or scoring a
    ragged batch give each row the same bits.

    activations: "float32" (default: the exact products above) or "int8": with a QuantizedTensor,
    each row of x is first rounded to int8 per block, as llama.cpp does (blocks of 32 values for
    Q8_0/Q4_0/Q4_1/Q5_0/Q5_1, of 256 for the K-quants; scale max|x|/127, round to nearest even),
    and the blocks meet in integer dot products (docs/models.md, "int8 activations"). Float
    weights take the float32 path in either mode.
    """
    if not isinstance(activations, str):
        raise TypeError(f"linear: activations must be 'float32' or 'int8', got {activations!r}")
    if isinstance(weight, QuantizedTensor):
        n, k = _shape2(weight.shape, "linear: weight.shape")
        return _result(x, out, _core.linear_quantized(x, weight.data, weight.qtype, n, k, bias,
                                                      out, activations))
    return _result(x, out, _core.linear(x, weight, bias, out, activations))


def moe_route(logits, k, *, per_expert_scale=None):
    """Gemma 4's expert choice from router logits [..., E] (float32): returns (ids, weights), both
    [..., k], int32 and float32.

    As transformers' Gemma4TextRouter after its projection: p = softmax(logits) in float32; ids
    the k experts of largest p, in descending order; weights their p divided by their sum, times
    per_expert_scale[ids] ([E], any float dtype) when given. Equal probabilities are taken lower
    expert index first (torch.topk leaves the order of ties unspecified, so on exact ties the two
    may differ). 1 <= k <= E.
    """
    ids, weights = _core.moe_route(logits, _int(k, "k"), per_expert_scale)
    return _like(logits, ids), _like(logits, weights)


def moe(x, ids, weights, gate_up, down, *, out=None):
    """The experts of a mixture-of-experts layer (Gemma 4): for each row u of x,
    sum_j weights[j] * down[e] @ (gelu_tanh(gate[e] @ u) * (up[e] @ u)) with e = ids[j].

    x: [..., D] float32; ids: [..., k] int32 or int64 in [0, E) and weights: [..., k] float32 (as
    moe_route returns them; a repeated id counts twice); gate_up: [E, 2F, D] (each expert's gate
    rows, then its up rows: transformers' experts.gate_up_proj, GGUF's ffn_gate_up_exps) and down:
    [E, D, F] (experts.down_proj, ffn_down_exps), each float32, float16 or bfloat16, or a
    QuantizedTensor of shape (E, N, K) holding the E matrices' GGML blocks back to back (D or F a
    multiple of the block size); the two may differ in type. Weights are read in place. Each
    expert runs once on the rows of the tokens routed to it; experts no token chose are not read.
    Returns [..., D] float32. CPU only.
    """
    gu, gu_q, gu_s = _experts(gate_up, "moe: gate_up.shape")
    dn, dn_q, dn_s = _experts(down, "moe: down.shape")
    return _result(x, out, _core.moe(x, ids, weights, gu, gu_q, gu_s, dn, dn_q, dn_s, out))


def _experts(w, name):
    """(array, qtype, (E, N, K)) for the core: a float array goes as it is."""
    if not isinstance(w, QuantizedTensor):
        return w, None, None
    shape = tuple(w.shape)
    if len(shape) != 3:
        raise ValueError(f"{name} must be (E, N, K), got {shape}")
    return w.data, str(w.qtype), tuple(_int(d, name) for d in shape)


def rg_lru(x, gate_x, gate_a, a_param, *, h0=None, reset=None, c=8.0):
    """Griffin's real-gated linear recurrent unit over x [B, T, W]; returns (y, h_last).

    gate_x, gate_a: input- and recurrence-gate logits (before the sigmoid), x's shape and dtype;
    a_param: [W], the stored recurrence parameter (HF recurrent_param, DeepMind a_param). Per step:
    log a_t = -c * sigmoid(gate_a) * softplus(a_param), and
    h_t = a_t * h_{t-1} + sqrt(1 - a_t**2) * sigmoid(gate_x) * x_t, with a_t = 0 and the sqrt
    factor 1 where reset [B, T] (bool) is True. h0: [B, W] state before x[:, 0] (zeros if None);
    reset defaults to True at t = 0 when h0 is None (a fresh sequence), else to no resets.
    y: [B, T, W] in x's dtype; h_last: [B, W] float32, to pass as h0 to the next chunk.
    """
    y, h = _core.rg_lru(x, gate_x, gate_a, a_param, h0, _opt_mask(reset), _float(c, "c"))
    return _like(x, y), _like(x, h)


def conv1d_temporal(x, weight, bias=None, *, state=None, reset=None):
    """Causal depthwise convolution along time (Griffin's Conv1D); returns (y, new_state).

    x: [B, T, W]; weight: [K, W]; bias: [W] or None; state: [B, K-1, W] in x's dtype, the K-1
    inputs before x[:, 0] (zeros if None). y[:, t] = bias + sum_k weight[k] * u[:, t + k] with
    u = concat(state, x) along time; new_state = the last K-1 rows of u, to pass as state to the
    next chunk. reset: [B, T] bool, True at segment starts: inputs before a segment start are not
    seen from inside it.
    """
    y, s = _core.conv1d_temporal(x, weight, bias, state, _opt_mask(reset))
    return _like(x, y), _like(x, s)


def token_logprobs(logits, targets):
    """Log-probabilities of given tokens: logits [..., V] float32 and targets [...] (int32 or int64
    in [0, V)) give (logp, argmax), both [...]: logp = logits[..., target] - logsumexp(logits)
    computed in float64 (float64 array), and argmax the first index of each row's largest logit
    (int64; of its first NaN when it has one, as NumPy's argmax). What scoring needs from a
    forward's logits, without a [..., V] log-softmax: NaN or infinite logits give NaN, as the
    float64 formula does. CPU only.
    """
    logp, argmax = _core.token_logprobs(logits, targets)
    return _like(logits, logp), _like(logits, argmax)


def dequantize(qt):
    """The float32 [N, K] matrix held by a QuantizedTensor (GGML blocks of qt.qtype: Q8_0, Q4_0,
    Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), as the same kind of array as qt.data.

    Values are computed in float32 exactly as GGML (and the `gguf` package) defines them.
    """
    if not isinstance(qt, QuantizedTensor):
        raise TypeError(f"dequantize: expected a QuantizedTensor, got {type(qt).__name__}")
    n, k = _shape2(qt.shape, "dequantize: qt.shape")
    return _result(qt.data, None, _core.dequantize(qt.data, qt.qtype, n, k))


@dataclass(frozen=True)
class SparseActs:
    """Sparse activations of a sparse autoencoder, row by row (compressed sparse rows): row m of
    the flattened leading dimensions has the nonzero values[j] at features indices[j] for
    offsets[m] <= j < offsets[m + 1], features in increasing order. shape: the dense shape
    (..., d_sae). Arrays are of the kind sae_encode's x was (NumPy: float32, int32, int64)."""

    values: object
    indices: object
    offsets: object
    shape: tuple

    @property
    def nnz(self) -> int:
        return int(self.values.shape[0])

    def l0(self) -> np.ndarray:
        """The number of active features of each row, shape[:-1]."""
        return np.diff(np.asarray(self.offsets)).reshape(self.shape[:-1])

    def to_dense(self) -> np.ndarray:
        """The dense float32 NumPy array of shape `shape`."""
        offsets = np.asarray(self.offsets)
        d = np.zeros((len(offsets) - 1, self.shape[-1]), np.float32)
        rows = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        d[rows, np.asarray(self.indices)] = np.asarray(self.values)
        return d.reshape(self.shape)


def sae_encode(x, W_enc, b_enc=None, *, threshold=None, k=None, activation=None, b_dec=None,
               dense=False, return_pre=False):
    """A sparse autoencoder's encoder, one fused pass: p = (x - b_dec) @ W_enc + b_enc, then the
    activation, applied to each tile of p while it is in cache.

    x: [..., d_in] float32; W_enc: [d_in, d_sae] (as SAELens and Gemma Scope store it), float32,
    bfloat16 or float16, read in place; b_enc, threshold: [d_sae]; b_dec: [d_in] or None (SAELens'
    apply_b_dec_to_input). activation: "relu" (max(p, 0)), "jumprelu" (p where p > threshold and
    p > 0, else 0: SAELens' relu(p) * (p > threshold), so p == threshold is off), "topk" (the k
    largest p of each row, ties to the lower feature index, then the ReLU), or "identity" (p);
    by default "jumprelu" when threshold is given, "topk" when k is, else "relu". NaN
    pre-activations are never active.

    Returns SparseActs (the nonzero activations of each row, features in increasing order), or
    with dense=True the float32 array [..., d_sae]; with return_pre=True, (acts, p) with p the
    dense pre-activations [..., d_sae]. CPU only.
    """
    if activation is None:
        activation = "jumprelu" if threshold is not None else "topk" if k is not None else "relu"
    if not isinstance(activation, str):
        raise TypeError(f"sae_encode: activation must be a str, got {type(activation).__name__}")
    values, indices, offsets, d, pre = _core.sae_encode(
        x, W_enc, b_enc, threshold, 0 if k is None else _int(k, "k"), activation, b_dec,
        sparse=not dense, dense=bool(dense), pre=bool(return_pre))
    if dense:
        acts = _like(x, d)
    else:
        shape = tuple(x.shape[:-1]) + (int(W_enc.shape[1]),)
        acts = SparseActs(_like(x, values), _like(x, indices), _like(x, offsets), shape)
    return (acts, _like(x, pre)) if return_pre else acts


def sae_decode(acts, W_dec, b_dec=None, *, out=None):
    """A sparse autoencoder's decoder: acts @ W_dec (+ b_dec), reading only the rows of W_dec
    of active features (each row's active features summed in increasing order, then b_dec).

    acts: SparseActs (from sae_encode) or dense float32 [..., d_sae] (its nonzero entries are
    used); W_dec: [d_sae, d_out] float32, bfloat16 or float16, read in place; b_dec: [d_out] or
    None. Returns float32 [..., d_out].
    """
    if not isinstance(acts, SparseActs):
        return _result(acts, out, _core.sae_decode_dense(acts, W_dec, b_dec, out))
    shape = tuple(acts.shape[:-1]) + (int(W_dec.shape[1]),)
    rows = (len(acts.offsets) - 1, shape[-1])
    target = out
    if out is not None and tuple(out.shape) != rows:
        if tuple(out.shape) != shape or not (isinstance(out, np.ndarray) and out.flags.c_contiguous):
            raise ValueError(f"sae_decode: out must be a C-contiguous NumPy array of shape {shape} "
                             f"or an array of shape {rows}, got {tuple(out.shape)}")
        target = out.reshape(rows)  # a view
    y = _core.sae_decode(acts.values, acts.indices, acts.offsets, W_dec, b_dec, target)
    if out is not None:
        return out
    return _like(acts.values, y).reshape(shape)


def _opt_mask(value):
    """Arrays go through as they are (the core wants bool); lists of bools become NumPy bools."""
    if value is None or hasattr(value, "__dlpack__") or isinstance(value, np.ndarray):
        return value
    arr = np.asarray(value)
    return arr.astype(bool) if arr.size == 0 else arr


def _shape2(shape, name):
    if len(tuple(shape)) != 2:
        raise ValueError(f"{name} must be (N, K), got {tuple(shape)}")
    return _int(shape[0], name + "[0]"), _int(shape[1], name + "[1]")


def _float(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def _opt_float(value, name):
    return None if value is None else _float(value, name)


def _int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def _opt_int(value, name):
    return None if value is None else _int(value, name)


def _index_array(value):
    """Arrays go through as they are (the core checks their dtype); integer lists become int64
    NumPy arrays, anything else (floats) goes through so that the core rejects it."""
    if hasattr(value, "__dlpack__") or isinstance(value, np.ndarray):
        return value
    arr = np.asarray(value)
    return arr.astype(np.int64) if arr.dtype.kind in "iu" or arr.size == 0 else arr


def _opt_int_array(value, name):
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)
