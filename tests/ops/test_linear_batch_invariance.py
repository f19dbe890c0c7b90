"""Batch invariance of linear (float and GGML-quantized weights) and moe: a row's result is bitwise
the same computed alone (M = 1, decode) and inside any batch, whatever the other rows, the number
of rows M and the thread count, on every SIMD target (conftest.py runs each test per target).
So a sequence's logits do not depend on the batch it was scored in, on padding, or on last_only."""
import numpy as np
import pytest

import gemmacpp as gc
from test_moe import experts, quantized_experts, routed
from test_quant import QTYPES, LAYOUT, random_blocks
from util import random

# Row counts of the batches: decode sizes, both sides of every small tile size, odd tails, and
# more than one 64-row task.
BATCH_ROWS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 33, 70)
THREADS = (1, 2, 3)


def assert_rows_invariant(rng, f, pool):
    """f(x) for x made of rows of pool, in random batch compositions of every BATCH_ROWS size (rows
    repeated, in any order) and on every thread count: row j must equal f(pool[i]) alone, bit for
    bit, where i is the pool row at position j."""
    before = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        alone = np.stack([f(pool[i:i + 1])[0] for i in range(len(pool))])
        for threads in THREADS:
            gc.set_num_threads(threads)
            for m in BATCH_ROWS:
                idx = rng.integers(0, len(pool), m)
                y = f(np.ascontiguousarray(pool[idx]))
                for j, i in enumerate(idx):
                    np.testing.assert_array_equal(
                        y[j], alone[i], err_msg=f"row {j} (pool row {i}) of M={m}, {threads} threads")
    finally:
        gc.set_num_threads(before)


# K with every kind of tail of the vector loops (1..2 vectors, a lone vector, a partial one).
FLOAT_SHAPES = [(1, 1), (5, 7), (13, 16), (67, 33), (9, 100), (70, 640), (4, 2304)]  # (N, K)


@pytest.mark.parametrize("wdtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("n,k", FLOAT_SHAPES)
def test_linear_rows_do_not_depend_on_the_batch(rng, wdtype, n, k):
    w = random(rng, (n, k), wdtype)
    bias = random(rng, (n,))
    pool = random(rng, (24, k))
    assert_rows_invariant(rng, lambda x: gc.ops.linear(x, w, bias=bias), pool)


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("n,blocks", [(1, 1), (13, 3), (67, 9), (9, "long")])
def test_quantized_linear_rows_do_not_depend_on_the_batch(rng, qtype, n, blocks):
    if blocks == "long":  # rows of more than 4 KiB: decode takes the four-row tile there
        blocks = 4096 // LAYOUT[qtype][1] + 1
    qt = random_blocks(rng, qtype, n, LAYOUT[qtype][0] * blocks)
    bias = random(rng, (n,))
    pool = random(rng, (24, qt.shape[1]))
    assert_rows_invariant(rng, lambda x: gc.ops.linear(x, qt, bias=bias), pool)


@pytest.mark.parametrize("qtype", QTYPES)
@pytest.mark.parametrize("n,blocks", [(1, 1), (13, 3), (67, 9), (300, 20)])
def test_int8_linear_rows_do_not_depend_on_the_batch(rng, qtype, n, blocks):
    # activations="int8" (quant_int8.h): one row (matrix-vector kernels), a few and many (the
    # matrix-matrix kernels, their row and column tails), several tasks of weight rows (n = 300).
    qt = random_blocks(rng, qtype, n, LAYOUT[qtype][0] * blocks)
    bias = random(rng, (n,))
    pool = random(rng, (24, qt.shape[1]))
    assert_rows_invariant(rng, lambda x: gc.ops.linear(x, qt, bias=bias, activations="int8"), pool)


def moe_token_alone_and_in_batches(rng, gu, dn, d, e, k):
    """moe on a pool of routed tokens: each token alone against batches of the pool's tokens, with
    their own routing (tokens sharing experts or not), at every BATCH_ROWS size."""
    pool = random(rng, (40, d))
    ids, w = routed(rng, 40, e, k)
    # A batch where every token goes to the same experts: expert groups of every size.
    ids[:20] = ids[0]
    before = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        alone = np.stack([gc.ops.moe(pool[i:i + 1], ids[i:i + 1], w[i:i + 1], gu, dn)[0]
                          for i in range(40)])
        for threads in THREADS:
            gc.set_num_threads(threads)
            for m in BATCH_ROWS + (40,):
                idx = rng.integers(0, 20 if m % 2 else 40, m)  # odd sizes: all on the same experts
                y = gc.ops.moe(pool[idx], ids[idx], w[idx], gu, dn)
                for j, i in enumerate(idx):
                    np.testing.assert_array_equal(
                        y[j], alone[i], err_msg=f"token {j} (pool token {i}) of M={m}, {threads} threads")
    finally:
        gc.set_num_threads(before)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_moe_token_does_not_depend_on_the_batch(rng, dtype):
    e, k, d, f = 6, 2, 72, 40
    gu, dn = experts(rng, e, d, f, dtype)
    moe_token_alone_and_in_batches(rng, gu, dn, d, e, k)


@pytest.mark.parametrize("qtype", ["Q4_K", "Q8_0", "Q5_0"])
def test_quantized_moe_token_does_not_depend_on_the_batch(rng, qtype):
    e, k = 5, 2
    d = f = LAYOUT[qtype][0]
    gu, _ = quantized_experts(rng, qtype, e, 2 * f, d)
    dn, _ = quantized_experts(rng, qtype, e, d, f)
    moe_token_alone_and_in_batches(rng, gu, dn, d, e, k)
