"""gc.harvest: activations over a stream of texts as sharded safetensors with a manifest. The
shards hold exactly the corpus's tokens in order (no gap, no duplicate) with the activations a
plain run_with_cache gives; a run interrupted after some shards (an exception injected into the
forward, and a crash between a shard's write and the manifest's) resumes to the same result as an
uninterrupted run; a changed corpus or changed settings are refused; to_saelens() gives the
dataset SAELens' ActivationsStore reads."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import gemmacpp as gc
from test_gemma_forward import COMMON, build

NAMES = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_z"]
V = COMMON["vocab_size"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder, _ = build("gemma3-gqa", tmp_path_factory)
    return gc.load(folder)


def corpus(seed=0, n=11):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, V, size=int(rng.integers(3, 17))).tolist() for _ in range(n)]


def read_all(out_dir):
    parts = list(gc.sae.shards(out_dir))
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def test_shards_hold_every_token_once_with_its_activations(model, tmp_path):
    texts = corpus()
    m = gc.harvest(model, texts, NAMES, str(tmp_path), shard_tokens=17, batch_size=3, progress=False)
    assert m["complete"] and m["texts"] == len(texts) and m["widths"] == {NAMES[0]: 32, NAMES[1]: 48}
    total = sum(map(len, texts))
    assert m["tokens"] == total and [s["tokens"] for s in m["shards"]][:-1] == [17] * (total // 17)
    got = read_all(str(tmp_path))
    np.testing.assert_array_equal(got["token_ids"], np.concatenate(texts))
    np.testing.assert_array_equal(got["text_index"], np.repeat(np.arange(len(texts)), list(map(len, texts))))
    np.testing.assert_array_equal(got["position"], np.concatenate([np.arange(len(t)) for t in texts]))
    for i, t in enumerate(texts):
        _, cache = model.run_with_cache([t], names=NAMES)
        rows = got["text_index"] == i
        for n in NAMES:  # batched vs alone: equal to float32 rounding
            ref = cache[n][0].reshape(len(t), -1)
            np.testing.assert_allclose(got[n][rows], ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    assert got[NAMES[0]].dtype == np.float32
    # the manifest is what a later call returns, without running anything
    assert gc.harvest(model, texts, NAMES, str(tmp_path), shard_tokens=17, batch_size=3,
                      progress=False) == json.load(open(tmp_path / "manifest.json"))


class Boom(Exception):
    pass


def bomb_after(out, shards):
    """A hook that raises Boom once `out` holds the manifest and `shards` shards."""
    def bomb(activation, name):
        if len(os.listdir(out)) > shards:
            raise Boom
    return bomb


def test_interrupted_run_resumes_without_gaps_or_duplicates(model, tmp_path):
    texts = corpus(1, 13)
    kw = dict(shard_tokens=10, batch_size=2, dtype="bfloat16", progress=False)
    full = gc.harvest(model, texts, NAMES, str(tmp_path / "full"), **kw)
    # interrupt after 3 shards: a hook raises in the forward that follows them
    out = str(tmp_path / "cut")
    with model.hooks({NAMES[0]: bomb_after(out, 3)}):
        with pytest.raises(Boom):
            gc.harvest(model, texts, NAMES, out, **kw)
    cut = json.load(open(os.path.join(out, "manifest.json")))
    assert not cut["complete"] and 3 <= len(cut["shards"]) < len(full["shards"])
    # and a crash between writing a shard and listing it: an orphan shard and a temporary file
    orphan = os.path.join(out, f"shard_{len(cut['shards']):05d}.safetensors")
    with open(orphan, "wb") as f:
        f.write(b"partial garbage")
    open(os.path.join(out, "manifest.json.tmp123"), "w").write("{")
    resumed = gc.harvest(model, texts, NAMES, out, **kw)
    assert resumed["complete"] and resumed["tokens"] == full["tokens"]
    assert [s["tokens_sha256"] for s in resumed["shards"]] == [s["tokens_sha256"] for s in full["shards"]]
    a, b = read_all(out), read_all(str(tmp_path / "full"))
    for k in b:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not [f for f in os.listdir(out) if ".tmp" in f]


def test_resume_refuses_other_texts_and_settings(model, tmp_path):
    texts = corpus(2)
    out = str(tmp_path)
    with model.hooks({NAMES[0]: bomb_after(out, 2)}):
        with pytest.raises(Boom):
            gc.harvest(model, texts, NAMES, out, shard_tokens=8, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="shard_tokens = 8, not 9"):
        gc.harvest(model, texts, NAMES, out, shard_tokens=9, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="names"):
        gc.harvest(model, texts, NAMES[:1], out, shard_tokens=8, batch_size=2, progress=False)
    other = [list(t) for t in texts]
    other[0][1] = (other[0][1] + 1) % V
    with pytest.raises(ValueError, match="texts differ"):
        gc.harvest(model, other, NAMES, out, shard_tokens=8, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="texts ended before"):
        gc.harvest(model, texts[:1], NAMES, out, shard_tokens=8, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="no hook point named 'blocks.9.hook_resid_post'"):
        gc.harvest(model, texts, ["blocks.9.hook_resid_post"], str(tmp_path / "x"))
    with pytest.raises(ValueError, match="dtype must be one of"):
        gc.harvest(model, texts, NAMES, str(tmp_path / "y"), dtype="int8")


def test_saelens_reads_the_exported_dataset(model, tmp_path):
    datasets = pytest.importorskip("datasets")
    texts = corpus(3, 20)
    gc.harvest(model, texts, NAMES, str(tmp_path / "h"), shard_tokens=23, batch_size=4, progress=False)
    ctx = 8
    rows = gc.sae.to_saelens(str(tmp_path / "h"), str(tmp_path / "ds"), name=NAMES[0], context_size=ctx)
    total = sum(map(len, texts))
    assert rows == total // ctx
    got = read_all(str(tmp_path / "h"))
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert ds.features[NAMES[0]].shape == (ctx, 32) and len(ds) == rows
    np.testing.assert_array_equal(np.asarray(ds["token_ids"]).reshape(-1), got["token_ids"][:rows * ctx])
    sae_lens = pytest.importorskip("sae_lens")
    import torch
    from sae_lens.training.activations_store import ActivationsStore
    store = ActivationsStore(model=None, dataset=None, streaming=False, hook_name=NAMES[0],
                             hook_head_index=None, context_size=ctx, d_in=32, n_batches_in_buffer=2,
                             total_training_tokens=rows * ctx, store_batch_size_prompts=3,
                             train_batch_size_tokens=8, prepend_bos=True, normalize_activations="none",
                             device=torch.device("cpu"), dtype="float32",
                             cached_activations_path=str(tmp_path / "ds"))
    acts, ids = store.get_raw_llm_batch()
    np.testing.assert_array_equal(acts.numpy(), got[NAMES[0]][:3 * ctx])
    np.testing.assert_array_equal(ids.numpy(), got["token_ids"][:3 * ctx])
    del sae_lens
