"""model.loglikelihood and model.loglikelihood_rolling against transformers.

References are computed the plain way: one transformers forward over (context + continuation)
[-(max_length + 1):][:-1], float64 log-softmax, the continuation's positions summed, is-greedy by
argmax. Token-id requests run on test_gemma_forward's random models (softcaps, sliding windows
shorter than the requests); text requests on tests/tiny_lm.py's model, which has a tokenizer, with
the harness's tokenization rule restated here with transformers' tokenizer. The shared-prefix
path must equal one context pass per request, results must come back in input order, and long
documents must be scored in the harness's windows.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import gemmacpp as gc
from gemmacpp.eval.scoring import rolling_windows
from gemmacpp.generate import generate_ids

import tiny_lm
from test_gemma_forward import COMMON, build

TOL = 2e-5  # relative, on sums of float32 log-probs


def ref_scores(hf, pairs, max_length=10**9):
    out = []
    for ctx, cont in pairs:
        inp = (list(ctx) + list(cont))[-(max_length + 1):][:-1]
        with torch.no_grad():
            logits = hf(torch.tensor([inp])).logits[0, -len(cont):].double()
        logp = torch.log_softmax(logits, -1)[torch.arange(len(cont)), torch.tensor(cont)]
        greedy = bool((logits.argmax(-1) == torch.tensor(cont)).all())
        out.append((float(logp.sum()), greedy))
    return out


def assert_scores_close(got, ref):
    assert len(got) == len(ref)
    for (g, gg), (r, rg) in zip(got, ref):
        assert abs(g - r) <= TOL * max(1.0, abs(r)), (g, r)
        assert gg == rg


def random_requests(seed, n_contexts=4, choices=(1, 2, 3, 5), vocab=COMMON["vocab_size"]):
    """Multiple-choice-like requests: each context (with BOS 2) and several continuations."""
    rng = np.random.default_rng(seed)
    reqs = []
    for i in range(n_contexts):
        ctx = [2] + [int(t) for t in rng.integers(3, vocab, int(rng.integers(1, 15)))]
        for n in choices:
            reqs.append((ctx, [int(t) for t in rng.integers(3, vocab, n)]))
    order = rng.permutation(len(reqs))  # interleave the groups: order must still be preserved
    return [reqs[i] for i in order]


@pytest.fixture(scope="module", params=["gemma2-gqa", "gemma3-gqa"])
def id_model(request, tmp_path_factory):
    folder, hf = build(request.param, tmp_path_factory)
    return gc.load(folder), hf


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_lm")
    hf = tiny_lm.build_checkpoint(str(folder))
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    return gc.load(str(folder)), hf, tok


def test_token_requests_match_transformers(id_model):
    m, hf = id_model
    reqs = random_requests(0)
    got = m.loglikelihood(reqs, batch_size=5)
    assert_scores_close(got, ref_scores(hf, reqs))
    assert all(isinstance(s, float) and isinstance(g, bool) for s, g in got)


def test_shared_prefix_equals_one_pass_per_request(id_model):
    m, _ = id_model
    reqs = random_requests(1)
    fast = m.loglikelihood(reqs, batch_size=64)
    plain = m.loglikelihood(reqs, shared_prefix=False)
    assert_scores_close(fast, plain)
    # Batch size does not change a score (beyond rounding), nor the order of the results.
    assert_scores_close(m.loglikelihood(reqs, batch_size=1), fast)
    assert_scores_close(m.loglikelihood(reqs[::-1], batch_size=3)[::-1], fast)


def test_greedy_continuation_is_greedy(id_model):
    m, hf = id_model
    ctx = [2, 17, 40, 5]
    greedy = [int(t) for t in generate_ids(m, ctx, max_new_tokens=4)]
    (s, g), (s2, g2) = m.loglikelihood([(ctx, greedy), (ctx, greedy[:-1] + [(greedy[-1] + 1) % 96])])
    assert g and not g2 and s > s2
    assert_scores_close([(s, g)], ref_scores(hf, [(ctx, greedy)]))


def test_truncation_keeps_the_latest_context(id_model):
    m, hf = id_model
    reqs = random_requests(2, n_contexts=2, choices=(1, 4))
    got = m.loglikelihood(reqs, max_length=6)
    assert_scores_close(got, ref_scores(hf, reqs, max_length=6))
    with pytest.raises(ValueError, match="max_length"):
        m.loglikelihood([([2], [5] * 7)], max_length=6)


def test_edge_cases(id_model):
    m, _ = id_model
    assert m.loglikelihood([]) == []
    assert m.loglikelihood([([2, 3], [])]) == [(0.0, True)]
    with pytest.raises(ValueError, match="context"):
        m.loglikelihood([([], [4, 5])])
    with pytest.raises(TypeError, match="pair"):
        m.loglikelihood([[2, 3, 4]])
    with pytest.raises(ValueError, match="out of range"):
        m.loglikelihood([([2], [COMMON["vocab_size"]])])


def harness_pair(tok, context, continuation):
    """lm-evaluation-harness's causal-LM split, with transformers' tokenizer."""
    if context == "":
        cont = tok.encode(continuation, add_special_tokens=False)
        return ([tok.bos_token_id], cont) if cont[0] != tok.bos_token_id else (cont[:1], cont[1:])
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    # (text that starts with the BOS text is encoded without another BOS)
    special = not context.startswith(tok.bos_token)
    whole = tok.encode(context + continuation, add_special_tokens=special)
    ctx = tok.encode(context, add_special_tokens=special)
    return ctx, whole[len(ctx):]


TEXT_REQUESTS = [
    ("The cat sat on the", " mat."), ("The cat sat on the", " hat."), ("The cat sat on the ", "dog"),
    ("Question: what is 2 and 2?\nAnswer:", " 4"), ("Question: what is 2 and 2?\nAnswer:", " five"),
    ("", "The end."), ("<bos>In the beginning", " there was"), ("a", "b"),
]


def test_text_requests_match_transformers(text_model):
    m, hf, tok = text_model
    pairs = [harness_pair(tok, c, k) for c, k in TEXT_REQUESTS]
    assert pairs[2][1][0] == tok.encode(" dog", add_special_tokens=False)[0]  # the space moved
    assert_scores_close(m.loglikelihood(TEXT_REQUESTS, batch_size=3), ref_scores(hf, pairs))
    # Strings and their ids give the same scores.
    assert_scores_close(m.loglikelihood(pairs), m.loglikelihood(TEXT_REQUESTS))


DOC = ("The quick brown fox jumps over the lazy dog. It is the end of the story, and the dog "
       "sleeps on. Then the cat wakes up and asks: is it morning? No, it is not.")


def ref_rolling(hf, ids, prefix, max_length):
    """Each token's log-prob given up to max_length tokens before it, re-derived: window k
    predicts ids[s:e] from the input ids[max(0, e-1-max_length):e-1] (with the prefix for k=0)."""
    total, done = 0.0, 0
    while done < len(ids):
        end = min(len(ids), done + max_length)
        inp = ([prefix] + ids[:end - 1]) if done == 0 else ids[end - 1 - max_length:end - 1]
        total += ref_scores(hf, [(inp[:len(inp) - (end - done) + 1], ids[done:end])])[0][0]
        done = end
    return total


def test_rolling_matches_transformers(text_model):
    m, hf, tok = text_model
    ids = tok.encode(DOC, add_special_tokens=False)
    assert len(ids) > 40
    short, = m.loglikelihood_rolling([DOC])
    assert abs(short - ref_scores(hf, [([tok.bos_token_id], ids)])[0][0]) <= TOL * abs(short)
    for max_length in (16, 7):
        got = m.loglikelihood_rolling([DOC, "The end.", ""], max_length=max_length)
        ref = ref_rolling(hf, ids, tok.bos_token_id, max_length)
        assert abs(got[0] - ref) <= TOL * abs(ref), max_length
        assert got[2] == 0.0
        assert got[1] == pytest.approx(m.loglikelihood([("", "The end.")])[0][0], rel=TOL)
    # Token ids are the tokens to predict, as the text's.
    assert m.loglikelihood_rolling([ids], max_length=16)[0] == pytest.approx(
        m.loglikelihood_rolling([DOC], max_length=16)[0], rel=1e-6)


def test_rolling_windows_are_the_harness_windows():
    lm_utils = pytest.importorskip("lm_eval.utils")
    tokens = list(range(100, 137))
    for max_length in (1, 4, 10, 37, 50):
        for context_len in sorted({1, max(1, max_length // 2), max_length}):
            ref = [lm_utils.make_disjoint_window(w) for w in lm_utils.get_rolling_token_windows(
                token_list=tokens, prefix_token=2, max_seq_len=max_length, context_len=context_len)]
            assert rolling_windows(tokens, 2, max_length, context_len) == ref, (max_length, context_len)
    assert rolling_windows([], 2, 8) == []


def test_rolling_token_ids_without_a_tokenizer(id_model):
    m, hf = id_model
    ids = [int(t) for t in np.random.default_rng(5).integers(3, COMMON["vocab_size"], 30)]
    whole, = m.loglikelihood_rolling([ids])  # predicted from Gemma's BOS, 2
    assert whole == pytest.approx(ref_scores(hf, [([2], ids)])[0][0], rel=TOL)
    windowed, = m.loglikelihood_rolling([ids], max_length=8, context_len=3)
    ref = sum(ref_scores(hf, [w])[0][0] for w in rolling_windows(ids, 2, 8, 3))
    assert windowed == pytest.approx(ref, rel=TOL)


def test_long_continuations_run_in_chunks(id_model, monkeypatch):
    """With a tiny logits budget the continuations pass through the cache a few tokens at a time;
    the scores must not change."""
    import gemmacpp.eval.scoring as scoring

    m, hf = id_model
    reqs = random_requests(6, n_contexts=3, choices=(1, 6, 11))
    full = m.loglikelihood(reqs, batch_size=4)
    monkeypatch.setattr(scoring, "LOGITS_BUDGET_BYTES", 3 * COMMON["vocab_size"] * 4)
    for bs in (1, 4):  # chunks of 3 tokens, and of 1
        assert_scores_close(m.loglikelihood(reqs, batch_size=bs), full)
    assert_scores_close(full, ref_scores(hf, reqs))
