"""Sliding-window layers' cache (a window buffer per sequence, csrc/nn/cache.h) far past the window.

A sequence decoded through the cache, one token at a time or in chunks of any size (some larger
than the buffer of W - 1 + W / 4 rows, a long prefill into it), must give bitwise the full
forward's logits at every step (the models are batch invariant: tests/models/test_batch_invariance.py),
also after cache.select forks it; and a buffer stops growing at its most rows.
"""
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import gemmacpp as gc  # noqa: E402

from test_gemma_forward import COMMON, build  # noqa: E402

SEQ = 61  # windows 5..9: six to twelve windows
CHUNKS = {
    "one": [1] * SEQ,
    "two-three": [2, 3] * 12 + [1],
    "ragged": [4, 1, 1, 7, 2, 1, 5, 3, 1, 1, 6, 2, 9, 1, 1, 3, 2, 1, 10],
    "over-buffer": [1, 12, 1, 1, 13, 2, 30, 1],  # 12, 13, 30 rows: more than any buffer (<= 10)
    "prefill-then-one": [40] + [1] * 21,
}


@pytest.fixture(scope="module", params=["gemma2-gqa", "gemma2-mqa", "gemma3-gqa", "gemma3-mqa"])
def model(request, tmp_path_factory):
    folder, _ = build(request.param, tmp_path_factory)
    return gc.load(folder)


def tokens(seed, n=SEQ):
    return [int(t) for t in np.random.default_rng(seed).integers(0, COMMON["vocab_size"], n)]


def window_rows(w):
    return w - 1 + max(1, w // 4)


@pytest.mark.parametrize("chunks", CHUNKS.values(), ids=CHUNKS.keys())
def test_chunked_decode_is_bitwise_the_full_forward(model, chunks):
    assert sum(chunks) == SEQ
    toks = tokens(7)
    full = model.forward(toks)[0]
    cache = model.new_cache(batch=1, max_len=SEQ)
    pos = 0
    for n in chunks:
        got = model.forward(toks[pos:pos + n], cache=cache)[0]
        assert np.array_equal(got, full[pos:pos + n]), ("positions", pos, pos + n)
        pos += n


def test_forked_sequences_keep_their_windows(model):
    # Two rows at different places in their buffers (different first positions), forked by select.
    a, b = tokens(11), tokens(12)
    cache = model.new_cache(batch=2, max_len=2 * SEQ)
    model.forward([a[:23], b[:3]], cache=cache)
    for t in range(23, 31):
        model.forward([[a[t]], [b[t - 20]]], cache=cache)
    fork = cache.select([0, 0, 1])
    c = a[:31] + tokens(13, SEQ - 31)
    want = [model.forward(a)[0], model.forward(c)[0], model.forward(b[:SEQ - 20])[0]]
    for t in range(31, SEQ):
        got = model.forward([[a[t]], [c[t]], [b[t - 20]]], cache=fork)
        for row in range(2):
            assert np.array_equal(got[row, 0], want[row][t]), ("row", row, "position", t)
        assert np.array_equal(got[2, 0], want[2][t - 20]), ("row", 2, "position", t - 20)


def test_window_buffer_stops_growing(model):
    cache = model.new_cache(batch=1, max_len=SEQ)
    row = 2 * model.config["num_kv_heads"] * model.config["head_dim"] * 4  # one position's K and V
    sizes = []
    for t in tokens(3):
        model.forward([t], cache=cache)
        sizes.append(cache.layer_nbytes())
    sizes = np.array(sizes)  # [step, layer]
    for li, lc in enumerate(model.config["layers"]):
        if lc["type"] == "local":
            most = window_rows(lc["window"])
            assert (sizes[:most, li] == np.arange(1, most + 1) * row).all()
            assert (sizes[most:, li] == most * row).all()
        else:
            assert sizes[-1, li] == SEQ * row
    cache.reset()
    assert sum(cache.layer_nbytes()) == 0
