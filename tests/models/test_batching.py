"""Batches of sequences of different lengths, in one forward and through the KV cache.

Every row of a ragged batch must get exactly the logits it gets alone, bit for bit (its own
positions, no attention to other rows or to padding, and batch-invariant linear layers), padding logits must be zero, and caches forked with
select() must continue each copy independently. Small random Gemma 2/3 models whose windows are
shorter than the sequences exercise the ring buffers with a different fill per sequence.
"""
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import gemmacpp as gc

from test_gemma_forward import COMMON, build, rel_err

TOL = 1e-5
NAMES = ["gemma1-mqa", "gemma2-gqa", "gemma3-gqa"]


@pytest.fixture(scope="module", params=NAMES)
def model(request, tmp_path_factory):
    folder, _ = build(request.param, tmp_path_factory)
    return gc.load(folder)


def seqs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [[int(t) for t in rng.integers(0, COMMON["vocab_size"], n)] for n in lengths]


def test_ragged_batch_rows_equal_single_runs(model):
    rows = seqs([11, 3, 17, 1])
    got = model.forward(rows)
    assert got.shape == (4, 17, COMMON["vocab_size"])
    for b, r in enumerate(rows):
        alone = model.forward(r)[0]
        np.testing.assert_array_equal(got[b, :len(r)], alone)  # bitwise: batch invariance
        assert not got[b, len(r):].any()


def test_lengths_on_padded_array_ignore_padding(model):
    rows = seqs([9, 4])
    arr = np.full((2, 9), 10**9, dtype=np.int64)  # padding out of the vocabulary: never read
    for b, r in enumerate(rows):
        arr[b, :len(r)] = r
    got = model.forward(arr, lengths=[9, 4])
    np.testing.assert_array_equal(got[1, :4], model.forward(rows[1])[0])
    assert not got[1, 4:].any()


def test_last_only_is_the_last_real_row(model):
    rows = seqs([6, 13, 2], seed=1)
    full = model.forward(rows)
    last = model.forward(rows, last_only=True)
    assert last.shape == (3, 1, COMMON["vocab_size"])
    for b, r in enumerate(rows):
        np.testing.assert_array_equal(last[b, 0], full[b, len(r) - 1])


def test_ragged_prompts_then_decoding_through_the_cache(model):
    # Prompts of different lengths, then several steps where each row adds 0..3 tokens, so the
    # rows' positions and ring fills keep differing.
    full = seqs([22, 25, 19], seed=2)
    steps = [[7, 3, 12], [1, 1, 0], [2, 3, 1], [1, 0, 3], [3, 1, 1]]
    cache = model.new_cache(batch=3, max_len=32)
    done = [0, 0, 0]
    for counts in steps:
        chunk = [full[b][done[b]:done[b] + n] for b, n in enumerate(counts)]
        width = max(counts)
        arr = np.zeros((3, width), dtype=np.int64)
        for b, c in enumerate(chunk):
            arr[b, :len(c)] = c
        got = model.forward(arr, cache=cache, lengths=counts)
        for b, n in enumerate(counts):
            if n:
                ref = model.forward(full[b][:done[b] + n])[0, done[b]:]
                assert rel_err(got[b, :n], ref) <= TOL, (counts, b)
            done[b] += n
        assert cache.lengths == done
    with pytest.raises(ValueError, match="different lengths"):
        cache.length


def test_select_forks_a_shared_prefix(model):
    context, conts = seqs([15], seed=3)[0], seqs([4, 9, 1], seed=4)
    cache = model.new_cache(batch=1, max_len=40)
    model.forward(context, cache=cache)
    forks = cache.select([0, 0, 0])
    assert forks.lengths == [15, 15, 15] and cache.lengths == [15]
    got = model.forward(conts, cache=forks)
    for b, c in enumerate(conts):
        ref = model.forward(context + c)[0, 15:]
        assert rel_err(got[b, :len(c)], ref) <= TOL
    assert cache.lengths == [15]  # the original is untouched
    copy = cache.copy()
    assert rel_err(model.forward(conts[0], cache=copy)[0], model.forward(context + conts[0])[0, 15:]) <= TOL
    assert forks.nbytes >= 3 * cache.nbytes > 0


def test_select_errors(model):
    cache = model.new_cache(batch=2, max_len=8)
    with pytest.raises(ValueError, match="out of range"):
        cache.select([2])
    with pytest.raises(ValueError, match="no sequences"):
        cache.select([])
    model.forward([[1, 2, 3], [4]], cache=cache)
    with pytest.raises(ValueError, match="sequence 0"):
        model.forward([[1] * 6, [2]], cache=cache)


def test_empty_rows(model):
    cache = model.new_cache(batch=2, max_len=8)
    got = model.forward(np.array([[1, 2], [0, 0]]), cache=cache, lengths=[2, 0])
    assert cache.lengths == [2, 0] and not got[1].any()
    got = model.forward(np.array([[5]]).repeat(2, 0), cache=cache, lengths=[0, 0], last_only=True)
    assert not got.any() and cache.lengths == [2, 0]
