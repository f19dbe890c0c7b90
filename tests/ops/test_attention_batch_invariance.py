"""Batch invariance of attention: one query row's output is bitwise the same whatever the number
of queries in the call (the decode kernel takes Tq <= 4, prefill more), whichever other queries
share its block, whatever the other sequences of a ragged or padded batch and however many threads
run it; for every K/V dtype and masking feature. (Bitwise within one SIMD target; the targets
differ in their last bits.)"""
import numpy as np
import pytest

import gemmacpp as gc
from util import random

T = 300  # queries at positions 0..T-1 over T keys: three key tiles of 128, two decode chunks

# (heads, head_dim, options): each masking feature on its own and together.
CASES = [
    ((4, 2, 32), dict()),
    ((2, 2, 13), dict(causal=False)),
    ((8, 2, 72), dict(window=50)),
    ((4, 1, 16), dict(window=1, prefix_len=3)),
    ((4, 4, 40), dict(softcap=5.0, prefix_len=140)),
    ((3, 1, 64), dict(causal=False, window=130, softcap=20.0, scale=0.3)),
    ((4, 2, 8), dict(key_range="spans")),
]
# Rows checked: the first, tile and chunk edges, the last.
ROWS = [0, 1, 127, 128, 129, 255, 256, 299]


def spans_ranges(n, q_start=0):
    """Causal ranges with two bidirectional spans (as Gemma 3's image blocks), rows q_start.."""
    r = np.zeros((n, 2), np.int64)
    for i in range(n):
        p = q_start + i
        hi = p + 1
        for s, e in [(10, 140), (200, 260)]:
            if s <= p < e:
                hi = max(hi, e)
        r[i] = (0, hi)
    return r


def inputs(rng, heads, dtype):
    Hq, Hkv, D = heads
    return (random(rng, (1, T, Hq, D), dtype), random(rng, (1, T, Hkv, D), dtype),
            random(rng, (1, T, Hkv, D), dtype))


def call(q, k, v, q_start, opts):
    """gc.ops.attention on queries q (positions q_start..) with the options of a case."""
    opts = dict(opts)
    if opts.get("key_range") == "spans":
        opts["key_range"] = spans_ranges(q.shape[1], q_start)
    return np.asarray(gc.ops.attention(q, k, v, q_start=q_start, **opts))


def same(a, b):
    return np.array_equal(a.view(f"u{a.dtype.itemsize}"), b.view(f"u{b.dtype.itemsize}"))


@pytest.mark.parametrize("heads,opts", CASES)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_a_query_alone_equals_it_among_any_number_of_queries(rng, heads, opts, dtype):
    q, k, v = inputs(rng, heads, dtype)
    every = call(q, k, v, 0, opts)  # all T queries in one prefill call
    for i in ROWS:
        for n in [1, 2, 3, 4, 5, 17, 200]:
            for s in sorted({max(0, min(i, T - n)), max(0, min(i - n // 2, T - n))}):
                y = call(q[:, s:s + n], k, v, s, opts)
                assert same(y[0, i - s], every[0, i]), (i, n, s)
        if opts.get("causal", True) and "key_range" not in opts:
            # Alone with its cache: only the keys up to its own (and the prefix).
            keys = max(i + 1, opts.get("prefix_len", 0))
            y = call(q[:, i:i + 1], k[:, :keys], v[:, :keys], i, opts)
            assert same(y[0, 0], every[0, i]), i


@pytest.mark.parametrize("heads,opts", CASES[:5])
def test_a_sequence_alone_equals_it_in_ragged_batches(rng, heads, opts):
    """A sequence's rows, alone or as the queries of a varlen batch with other sequences of
    various lengths (decode and prefill entries mixed), and as one row of a padded batch."""
    q, k, v = inputs(rng, heads, "float32")
    alone = call(q, k, v, 0, opts)
    Hq, Hkv, D = heads
    for lens_q, lens_k in [([1, 7, 3], [T, 40, 500]), ([250, 2, 5], [260, 7, 9]),
                           ([4, 1, 300], [9, 600, 300])]:
        # The sequence under test is one of the entries: its last n queries, the others random.
        for at in range(len(lens_q)):
            n = lens_q[at]
            parts_q, parts_k, parts_v = [], [], []
            for e, (lq, lk) in enumerate(zip(lens_q, lens_k)):
                if e == at:
                    lq, lk = min(n, T), T
                    parts_q.append(q[0, T - lq:]), parts_k.append(k[0]), parts_v.append(v[0])
                else:
                    parts_q.append(random(rng, (lq, Hq, D)))
                    parts_k.append(random(rng, (lk, Hkv, D)))
                    parts_v.append(random(rng, (lk, Hkv, D)))
            lq = [len(p) for p in parts_q]
            lk = [len(p) for p in parts_k]
            cu_q = np.cumsum([0] + lq).astype(np.int64)
            cu_k = np.cumsum([0] + lk).astype(np.int64)
            y = np.asarray(gc.ops.attention(np.concatenate(parts_q), np.concatenate(parts_k),
                                            np.concatenate(parts_v), cu_seqlens_q=cu_q,
                                            cu_seqlens_k=cu_k, **opts))
            assert same(y[cu_q[at]:cu_q[at + 1]], alone[0, T - lq[at]:]), (lens_q, at)
    # Padded: the sequence in a batch of three whose other rows hold other numbers.
    for n in [1, 3, 9]:
        qs, ks, vs = (np.concatenate([random(rng, (1,) + a.shape[1:]), a, random(rng, (1,) + a.shape[1:])])
                      for a in (q[:, T - n:], k, v))
        y = call(qs, ks, vs, T - n, opts)
        assert same(y[1], alone[0, T - n:]), n


@pytest.mark.parametrize("n", [1, 3, 40])
def test_invariant_results_are_the_same_for_any_thread_count(rng, n):
    q, k, v = inputs(rng, (4, 2, 32), "float32")
    before = gc.get_num_threads()
    try:
        out = []
        for threads in (1, 2, 3):
            gc.set_num_threads(threads)
            out.append(call(q[:, T - n:], k, v, T - n, dict(window=200, softcap=30.0)))
        gc.set_num_threads(1)
        every = call(q, k, v, 0, dict(window=200, softcap=30.0))
    finally:
        gc.set_num_threads(before)
    assert same(out[0], out[1]) and same(out[0], out[2])
    assert same(out[0][0], every[0, T - n:])
