"""gc.sae feature functions on small random Gemma 2 and Gemma 3 models: feature_activations
against the spliced hook points, top_activating (streaming, several batches) against a brute
force over every token, steering against the same addition made by a PyTorch hook in
transformers, and attribution against torch autograd (activation x gradient, with the SAE's error
term) and against ablation in transformers."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import gemmacpp as gc
from sae_reference import rel_err
from test_gemma_forward import COMMON, build
from test_sae_splice import on_point, prepared_case

MODELS = ["gemma2-gqa", "gemma3-gqa"]
V = COMMON["vocab_size"]


@pytest.fixture(scope="module", params=MODELS)
def pair(request, tmp_path_factory):
    folder, hf = build(request.param, tmp_path_factory)
    return request.param, gc.load(folder), hf


def texts(seed, n=7):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, V, size=int(rng.integers(5, 19))).tolist() for _ in range(n)]


@pytest.mark.parametrize("case", ["resid_post-jumprelu", "gs1-transcoder", "hook_z-relu-b_dec"])
def test_feature_activations_match_the_hook_point(pair, case):
    name, m, hf = pair
    toks = texts(1, 3)
    sae, _ = prepared_case(case, m, hf, np.array([t[:5] for t in toks]), seed=2)
    acts = gc.sae.feature_activations(m, sae, toks)
    assert acts.shape == (3, max(map(len, toks)), sae.d_sae)
    with m.saes([sae], splice=False):
        ref = m.run_with_cache(toks, names="*.hook_sae_acts_post")[1]
    ref = next(iter(ref.values()))
    dense = acts.to_dense()
    for b, t in enumerate(toks):
        np.testing.assert_array_equal(dense[b, :len(t)], ref[b, :len(t)])
        assert not dense[b, len(t):].any() and acts.l0()[b, len(t):].sum() == 0


@pytest.mark.parametrize("features", [None, [0, 5, 17, 63]])
def test_top_activating_matches_brute_force(pair, features):
    name, m, hf = pair
    corpus = texts(2)
    sae, _ = prepared_case("resid_post-jumprelu", m, hf, np.array([t[:5] for t in corpus]), seed=5)
    k, context = 3, 4
    got = gc.sae.top_activating(m, sae, corpus, features=features, k=k, context=context,
                                batch_size=2, progress=False)
    # brute force: every token of every text, at once
    every = gc.sae.feature_activations(m, sae, corpus, dense=True)
    feats = range(sae.d_sae) if features is None else features
    assert list(got) == list(feats)
    fired = 0
    for f in feats:
        entries = [(-every[b, t, f], b, t) for b, tx in enumerate(corpus) for t in range(len(tx))
                   if every[b, t, f] != 0]
        entries.sort()
        want = entries[:k]
        have = got[f]
        assert [(r["text"], r["position"]) for r in have] == [(b, t) for _, b, t in want], f
        assert [r["activation"] for r in have] == [float(-v) for v, _, _ in want]
        for r in have:
            tx = corpus[r["text"]]
            assert r["context_ids"] == tx[max(0, r["position"] - context):r["position"] + 1]
            assert r["token_id"] == tx[r["position"]]
        fired += bool(have)
    assert fired > 0


def test_steering_matches_pytorch(pair):
    name, m, hf = pair
    toks = np.random.default_rng(3).integers(0, V, (2, 15))
    for case in ("resid_post-jumprelu", "gs2-skip-transcoder"):
        sae, _ = prepared_case(case, m, hf, toks, seed=7)
        feats, alphas = [3, 11], [4.0, -2.5]
        direction = sum(a * sae.feature_direction(f) for f, a in zip(feats, alphas))

        def add(t):
            return t + torch.from_numpy(direction).to(t.dtype)

        h = on_point(hf, sae.hook_out, add)
        try:
            with torch.no_grad():
                ref = hf(torch.from_numpy(toks)).logits.double().numpy()
        finally:
            h.remove()
        with gc.sae.steer(m, sae, feats, alphas):
            got = m.forward(toks)
        assert rel_err(got, ref) <= 1e-4, case
        assert rel_err(got, m.forward(toks)) > 1e-3
        with gc.sae.steer(m, sae, 3, 4.0, positions=[-1]):  # only the last position moves
            last = m.forward(toks)
        np.testing.assert_array_equal(last[:, :-1], m.forward(toks)[:, :-1])


def hf_attributions(hf, sae, toks, metric_tokens):
    """activation x d metric / d activation by torch autograd: the activation at the SAE's output
    point written as activation + (acts - acts.detach()) @ W_dec (the error-term splice)."""
    a_id, b_id = metric_tokens
    eps = hf.config.rms_norm_eps
    state = {}

    def at_in(t):
        x = t.float().reshape(*t.shape[:2], -1)
        if sae.input_norm == "rms":
            x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        state["x"] = x.detach()

    def at_out(t):
        if sae.hook_in == sae.hook_out:
            at_in(t)
        acts = torch.from_numpy(sae.encode(state["x"].numpy(), dense=True)).requires_grad_(True)
        state["acts"] = acts
        W = torch.from_numpy(np.asarray(sae.W_dec, np.float32))
        return t + ((acts - acts.detach()) @ W).reshape(t.shape)

    handles = ([on_point(hf, sae.hook_in, at_in)] if sae.hook_in != sae.hook_out else [])
    handles.append(on_point(hf, sae.hook_out, at_out))
    try:
        logits = hf(torch.from_numpy(np.asarray([toks])).long()).logits
        (logits[0, -1, a_id] - logits[0, -1, b_id]).backward()
    finally:
        for h in handles:
            h.remove()
    acts = state["acts"]
    return (acts * acts.grad).detach().double().numpy()[0], acts.detach().numpy()[0]


@pytest.mark.parametrize("case", ["resid_post-jumprelu", "gs2-skip-transcoder"])
def test_attribution_matches_autograd_and_ablation(pair, case):
    name, m, hf = pair
    toks = np.random.default_rng(4).integers(0, V, 12).tolist()
    sae, _ = prepared_case(case, m, hf, np.array([toks]), seed=9)
    metric = gc.sae.logit_diff(3, 7)
    grad = gc.sae.attribute(m, sae, toks, metric, batch_size=32)
    ref, acts = hf_attributions(hf, sae, toks, (3, 7))
    assert len(grad) == np.count_nonzero(acts) > 0
    got = np.zeros_like(ref)
    for r in grad:
        got[r["position"], r["feature"]] = r["attribution"]
        assert r["activation"] == pytest.approx(acts[r["position"], r["feature"]],
                                                abs=1e-4 * float(np.max(acts)))
    err = rel_err(got, ref)
    print(f"{name} {case}: finite-difference attribution vs autograd {err:.2e}")
    assert err <= 1e-3
    assert abs(grad[0]["attribution"]) == np.max(np.abs(got))  # sorted by |attribution|
    # ablation: the metric's drop when the feature is removed, against transformers
    abl = gc.sae.attribute(m, sae, toks, metric, method="ablation", positions=[-1, -2], top=3)
    assert len(abl) == 3 and all(r["position"] in (10, 11) for r in abl)
    for r in abl:
        d = torch.from_numpy(r["activation"] * sae.feature_direction(r["feature"]))

        def remove(t, pos=r["position"], d=d):
            t = t.clone()
            t.reshape(*t.shape[:2], -1)[:, pos] -= d
            return t

        h = on_point(hf, sae.hook_out, remove)
        try:
            with torch.no_grad():
                lg = hf(torch.from_numpy(np.asarray([toks])).long()).logits.double().numpy()[0]
        finally:
            h.remove()
        with torch.no_grad():
            base = hf(torch.from_numpy(np.asarray([toks])).long()).logits.double().numpy()[0]
        want = (base[-1, 3] - base[-1, 7]) - (lg[-1, 3] - lg[-1, 7])
        assert r["attribution"] == pytest.approx(want, abs=1e-4 * float(np.max(np.abs(base))))
    # last_only gives the same numbers from the last position's logits alone
    fast = gc.sae.attribute(m, sae, toks, metric, method="ablation", positions=[-1, -2], top=3,
                            last_only=True)
    assert [(r["position"], r["feature"]) for r in fast] == [(r["position"], r["feature"]) for r in abl]
