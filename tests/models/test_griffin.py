"""RecurrentGemma (Griffin) against Hugging Face transformers on small random models.

Configurations cover MQA and MHA attention blocks with windows shorter than the sequence, the
default (recurrent, recurrent, attention) pattern and a custom one, lru_width != hidden_size,
conv widths 4 and 3, attention biases, a non-default partial rotary factor, and random norms and
biases (HF initialises them to zero). Checkpoints are written with save_pretrained (safetensors)
and read back by gc.load. Cached decoding must equal the full forward, and the cache must keep one
size however many tokens it has seen.
"""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import gemmacpp as gc
from gemmacpp.generate import generate_ids
from test_gemma_forward import assert_forward_matches, rel_err

SEQ = 29
BATCH = 2
REL_TOL = 1e-4
VOCAB = 97

CONFIGS = {
    "griffin-mqa": dict(num_hidden_layers=4, hidden_size=48, intermediate_size=96,
                        num_attention_heads=4, num_key_value_heads=1, lru_width=64,
                        attention_window_size=5, conv1d_width=4),
    "griffin-mha-bias": dict(num_hidden_layers=3, hidden_size=48, intermediate_size=64,
                             num_attention_heads=2, num_key_value_heads=2, lru_width=40,
                             attention_window_size=7, conv1d_width=3, attention_bias=True,
                             block_types=["attention", "recurrent"],
                             rope_parameters={"rope_type": "default", "rope_theta": 500.0,
                                              "partial_rotary_factor": 0.25}),
}


def build(name, folder):
    cfg = transformers.RecurrentGemmaConfig(vocab_size=VOCAB, rms_norm_eps=1e-6,
                                            attn_implementation="eager", **CONFIGS[name])
    torch.manual_seed(sum(map(ord, name)))
    model = transformers.RecurrentGemmaForCausalLM(cfg).eval().to(torch.float32)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname or pname.endswith("bias"):  # zero at init: make them matter
                p.uniform_(-0.5, 0.5)
    model.save_pretrained(folder, safe_serialization=True)
    return model


@pytest.fixture(scope="module", params=list(CONFIGS))
def checkpoint(request, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp(request.param))
    model = build(request.param, folder)
    return request.param, folder, model


def tokens_for(name, batch=BATCH, seq=SEQ):
    rng = np.random.default_rng(sum(map(ord, name)))
    return rng.integers(0, VOCAB, size=(batch, seq))


def reference_logits(model, tokens):
    with torch.no_grad():
        return model(torch.from_numpy(tokens), use_cache=False).logits.double().numpy()


def test_logits_match_transformers(checkpoint):
    name, folder, model = checkpoint
    tokens = tokens_for(name)
    assert_forward_matches(name, gc.load(folder), tokens, reference_logits(model, tokens), VOCAB)


def test_config_is_read(checkpoint):
    name, folder, model = checkpoint
    c = gc.load(folder).config
    hf = model.config
    assert c["family"] == "recurrent_gemma"
    assert (c["num_layers"], c["num_heads"], c["num_kv_heads"], c["head_dim"], c["lru_width"],
            c["conv1d_width"]) == (hf.num_hidden_layers, hf.num_attention_heads,
                                   hf.num_key_value_heads, hf.head_dim, hf.lru_width, hf.conv1d_width)
    assert c["intermediate_size"] == hf.intermediate_size // 2
    assert c["rotary_dim"] == int(hf.head_dim * hf.rope_parameters["partial_rotary_factor"])
    assert [l["type"] for l in c["layers"]] == [
        "recurrent" if t == "linear_attention" else "local" for t in hf.layers_block_type]
    assert all(l["window"] == hf.attention_window_size for l in c["layers"] if l["type"] == "local")
    # transformers keeps sqrt(d) in a bfloat16 buffer, so the scale is rounded.
    assert c["embed_scale"] == float(model.model.normalizer)
    assert c["final_softcap"] == hf.logits_soft_cap


def test_released_style_config_file(tmp_path):
    """Configs written by older transformers (as on the Hub for recurrentgemma-2b/9b) keep
    rope_theta and partial_rotary_factor at the top level and carry extra keys."""
    folder = str(tmp_path)
    model = build("griffin-mqa", folder)
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    rope = cfg.pop("rope_parameters")
    cfg.update(rope_theta=rope["rope_theta"], partial_rotary_factor=rope["partial_rotary_factor"],
               embeddings_scale_by_sqrt_dim=True, head_dim=999, _name_or_path="google/recurrentgemma-2b")
    with open(path, "w") as f:
        json.dump(cfg, f)
    tokens = tokens_for("griffin-mqa")
    assert rel_err(gc.load(folder).forward(tokens), reference_logits(model, tokens)) <= REL_TOL


@pytest.mark.parametrize("chunks", [[1] * SEQ, [10, 1, 1, 4, 7, 6], [SEQ]])
def test_cached_forward_matches_full(checkpoint, chunks):
    name, folder, _ = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name)
    full = m.forward(toks).astype(np.float64)
    cache = m.new_cache(batch=BATCH)
    pieces, pos = [], 0
    for n in chunks:
        pieces.append(m.forward(toks[:, pos:pos + n], cache=cache))
        pos += n
    assert cache.length == SEQ
    assert rel_err(np.concatenate(pieces, axis=1), full) <= 1e-5


def test_cache_size_does_not_grow(checkpoint):
    """Decoding 1000 tokens leaves the cache at the size it had after 10 (and when new), and the
    last logits still equal those of a full forward over everything seen."""
    name, folder, _ = checkpoint
    m = gc.load(folder)
    cache = m.new_cache()
    empty = (cache.nbytes, cache.layer_nbytes())
    seq = [int(t) for t in tokens_for(name, batch=1, seq=5)[0]]
    logits = m.forward(seq, cache=cache)[0, -1]
    sizes = {}
    for i in range(1, 1001):
        seq.append(int(np.argmax(logits)))
        logits = m.forward([seq[-1]], cache=cache)[0, -1]
        if i in (10, 1000):
            sizes[i] = (cache.nbytes, cache.layer_nbytes())
    assert sizes[10] == sizes[1000] == empty
    assert cache.length == len(seq) == 1005
    full = m.forward(seq)[0, -1].astype(np.float64)
    assert rel_err(logits, full) <= 1e-5
    # The state is what the config says: RG-LRU h and conv inputs, attention rings of `window`.
    c = m.config
    for lc, nb in zip(c["layers"], sizes[10][1]):
        if lc["type"] == "recurrent":
            assert nb == 4 * c["lru_width"] * c["conv1d_width"]
        else:
            assert nb == 4 * 2 * lc["window"] * c["num_kv_heads"] * c["head_dim"]


def test_last_only_and_lengths(checkpoint):
    name, folder, _ = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name)
    full = m.forward(toks)
    last = m.forward(toks, last_only=True)
    assert last.shape == (BATCH, 1, VOCAB)
    np.testing.assert_allclose(last[:, 0], full[:, -1], rtol=0, atol=1e-5 * np.abs(full).max())
    np.testing.assert_array_equal(m.forward(toks, lengths=[SEQ] * BATCH), full)
    with pytest.raises(ValueError, match="length"):
        m.forward(toks, lengths=[SEQ, SEQ + 1])


RAGGED = [SEQ, 7, 0, 1, 18]


def test_ragged_rows_equal_their_own_runs(checkpoint):
    """Each row of a right-padded batch is its own sequence: its logits equal a forward of that
    row alone, padding logits are zero, and padding tokens (out-of-range ids here) are never
    read. last_only gives each row's last real token (zeros for an empty row)."""
    name, folder, _ = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name, batch=len(RAGGED))
    padded = toks.copy()
    for b, n in enumerate(RAGGED):
        padded[b, n:] = 10 ** 9
    got = m.forward(padded, lengths=RAGGED)
    last = m.forward(padded, lengths=RAGGED, last_only=True)
    assert got.shape == (len(RAGGED), SEQ, VOCAB) and last.shape == (len(RAGGED), 1, VOCAB)
    for b, n in enumerate(RAGGED):
        assert not got[b, n:].any()
        if n == 0:
            assert not last[b].any()
            continue
        alone = m.forward(toks[b:b + 1, :n]).astype(np.float64)
        assert rel_err(got[b:b + 1, :n], alone) <= 1e-5, (b, n)
        assert rel_err(last[b, 0], alone[0, -1]) <= 1e-5, (b, n)


def ragged_steps(m, seqs, steps):
    """Feeds the sequences through one cache, steps[i][b] tokens of sequence b at step i (0: it
    waits), and returns every sequence's logits concatenated over the steps."""
    cache = m.new_cache(batch=len(seqs))
    pos = [0] * len(seqs)
    out = [[] for _ in seqs]
    for counts in steps:
        T = max(1, max(counts))
        arr = np.full((len(seqs), T), 10 ** 9, dtype=np.int64)
        for b, n in enumerate(counts):
            arr[b, :n] = seqs[b][pos[b]:pos[b] + n]
        logits = m.forward(arr, cache=cache, lengths=counts)
        for b, n in enumerate(counts):
            assert not logits[b, n:].any()
            out[b].append(logits[b, :n])
            pos[b] += n
    assert cache.lengths == pos
    return [np.concatenate(o) for o in out], cache


def test_ragged_steps_through_the_cache_equal_full_forwards(checkpoint):
    name, folder, _ = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name, batch=3)
    seqs = [toks[0, :SEQ], toks[1, :12], toks[2, :20]]
    # Different prompt lengths, a row that waits (0), single-token decoding, chunks past the window.
    steps = [[9, 0, 3], [1, 5, 1], [8, 0, 9], [1, 1, 1], [10, 6, 0], [0, 0, 6]]
    got, cache = ragged_steps(m, seqs, steps)
    assert sorted(cache.lengths) == sorted([SEQ, 12, 20])
    for b, seq in enumerate(seqs):
        assert len(got[b]) == len(seq)
        assert rel_err(got[b], m.forward(seq[None]).astype(np.float64)) <= 1e-5, b
    with pytest.raises(ValueError, match="different lengths"):
        cache.length


def test_cache_reset_and_errors(checkpoint):
    name, folder, _ = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name, batch=1, seq=8)
    cache = m.new_cache(batch=1)
    first = m.forward(toks, cache=cache)
    with pytest.raises(ValueError, match="sequences"):
        m.forward([[1], [2]], cache=cache)
    assert cache.lengths == [8]
    cache.reset()
    assert cache.length == 0
    np.testing.assert_array_equal(m.forward(toks, cache=cache), first)


def test_cache_of_another_model_is_refused(checkpoint, tmp_path_factory):
    """A cache is made of the layers' slots (key/value rings, recurrent states): one made by a
    model with other layers, even as many of them, is a ValueError, not a misread."""
    name, folder, _ = checkpoint
    m = gc.load(folder)
    from test_gemma_forward import build as build_gemma
    other = gc.load(build_gemma("gemma2-gqa" if m.config["num_layers"] == 3 else "gemma3-mqa",
                                tmp_path_factory)[0])
    toks = [[3, 4, 5]]
    if other.config["num_layers"] == m.config["num_layers"]:
        with pytest.raises(ValueError, match="other layers"):
            m.forward(toks, cache=other.new_cache(1, 16))
        with pytest.raises(ValueError, match="other layers"):
            other.forward(toks, cache=m.new_cache(1, 16))
    else:
        with pytest.raises(ValueError, match="layers"):
            m.forward(toks, cache=other.new_cache(1, 16))


def test_greedy_generation_equals_argmax_of_full_forwards(checkpoint):
    name, folder, _ = checkpoint
    m = gc.load(folder)
    prompt = [int(t) for t in tokens_for(name, batch=1, seq=4)[0]]
    got = list(generate_ids(m, prompt, max_new_tokens=12))
    seq = list(prompt)
    for _ in range(12):
        seq.append(int(np.argmax(m.forward(seq)[0, -1])))
    assert got == seq[len(prompt):]


def test_same_bits_for_any_thread_count(checkpoint):
    name, folder, _ = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name)
    n = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        one = m.forward(toks)
        gc.set_num_threads(max(2, n))
        two = m.forward(toks)
    finally:
        gc.set_num_threads(n)
    np.testing.assert_array_equal(one, two)


def test_missing_tensor_is_named(tmp_path):
    from safetensors.numpy import load_file, save_file
    folder = str(tmp_path)
    build("griffin-mqa", folder)
    path = os.path.join(folder, "model.safetensors")
    tensors = load_file(path)
    del tensors["model.layers.1.temporal_block.rg_lru.recurrent_param"]
    save_file(tensors, path)
    with pytest.raises(ValueError, match=r"layers\.1\.temporal_block\.rg_lru\.recurrent_param"):
        gc.load(folder)


def test_cache_select_and_copy(checkpoint):
    """select forks sequences (repeats allowed) and copy duplicates the cache: continuing any
    fork equals a full forward over its whole sequence, and the source cache is untouched."""
    name, folder, _ = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name, batch=2)
    cache = m.new_cache(batch=2)
    m.forward(toks[:, :12], cache=cache, lengths=[12, 9])
    forks = cache.select([1, 0, 1])
    assert forks.lengths == [9, 12, 9] and cache.lengths == [12, 9]
    ends = [toks[1, 9:15], toks[0, 12:20], toks[0, 3:5]]  # the two forks of 1 go different ways
    arr = np.zeros((3, 8), dtype=np.int64)
    for b, e in enumerate(ends):
        arr[b, :len(e)] = e
    got = m.forward(arr, cache=forks, lengths=[len(e) for e in ends])
    for b, (src, e) in enumerate(zip([1, 0, 1], ends)):
        seq = np.concatenate([toks[src, :[12, 9][src]], e])
        ref = m.forward(seq[None]).astype(np.float64)[0, -len(e):]
        assert rel_err(got[b, :len(e)], ref) <= 1e-5, b
    dup = cache.copy()
    a = m.forward(toks[:, 12:13], cache=dup)
    b = m.forward(toks[:, 12:13], cache=cache)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="out of range"):
        cache.select([2])


def test_loglikelihood_matches_full_forwards(checkpoint):
    """model.loglikelihood (ragged contexts, last_only, cache.select forks of shared contexts,
    ragged continuations) equals log-probs read off one plain forward per request, and those of
    transformers."""
    name, folder, model = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name, batch=3)
    ctx_a, ctx_b = toks[0, :11].tolist(), toks[1, :4].tolist()
    requests = [(ctx_a, toks[2, :5].tolist()), (ctx_b, toks[2, 5:6].tolist()),
                (ctx_a, toks[2, 6:9].tolist()), (ctx_b, toks[0, 20:29].tolist()),
                (toks[2, :17].tolist(), toks[1, 4:7].tolist())]
    got = m.loglikelihood(requests, batch_size=4)

    def log_probs(logits, ctx, cont):
        z = logits[len(ctx) - 1:len(ctx) + len(cont) - 1].astype(np.float64)
        lse = z.max(-1) + np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1))
        return float((z[np.arange(len(cont)), cont] - lse).sum()), z.argmax(-1).tolist() == cont

    for (ctx, cont), (lp, greedy) in zip(requests, got):
        seq = np.array([ctx + cont])
        want, want_greedy = log_probs(m.forward(seq)[0], ctx, cont)
        assert abs(lp - want) <= 1e-4 * max(1.0, abs(want)), (lp, want)
        assert greedy == want_greedy
        hf, _ = log_probs(reference_logits(model, seq)[0], ctx, cont)
        assert abs(lp - hf) <= 1e-3 * max(1.0, abs(hf)), (lp, hf)


# ---- hooks ----

def test_hook_names(checkpoint):
    name, folder, model = checkpoint
    m = gc.load(folder)
    names = m.hook_names()
    assert names[0] == "hook_embed" and names[-2:] == ["ln_final.hook_normalized", "hook_logits"]
    for i, lc in enumerate(m.config["layers"]):
        recurrent = lc["type"] == "recurrent"
        assert (f"blocks.{i}.rglru.hook_h" in names) == recurrent
        assert (f"blocks.{i}.conv.hook_out" in names) == recurrent
        assert (f"blocks.{i}.hook_attn_out" in names) == (not recurrent)
        for s in ("hook_resid_pre", "hook_resid_mid", "mlp.hook_post", "hook_mlp_out", "hook_resid_post"):
            assert f"blocks.{i}.{s}" in names
        assert (f"blocks.{i}.rglru.hook_a" in names) == recurrent
        for s in ("q", "k", "v", "scores", "pattern", "z"):  # the shared attention block's sites
            assert (f"blocks.{i}.attn.hook_{s}" in names) == (not recurrent)
    assert len(set(names)) == len(names)


def test_attention_layer_hooks_match_transformers(checkpoint):
    """An attention layer's attn.hook_q/k/v are its projections (before RoPE), attn.hook_z the
    o_proj input; the pattern is a causal, windowed softmax whose rows give z from v; zeroing a
    head of z equals zeroing it with a PyTorch pre-hook on o_proj."""
    name, folder, model = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name)
    cfg = m.config
    layer = next(i for i, lc in enumerate(cfg["layers"]) if lc["type"] != "recurrent")
    H, K, D, W = cfg["num_heads"], cfg["num_kv_heads"], cfg["head_dim"], cfg["layers"][layer]["window"]
    tb = model.model.layers[layer].temporal_block
    seen = {}

    def keep(key, inputs=False):
        def hook(mod, args, out=None):
            x = (args[0] if inputs else out).detach().double().numpy()
            seen[key] = x.reshape(x.shape[0], x.shape[1], -1, D)
        return hook
    handles = [tb.q_proj.register_forward_hook(keep("q")), tb.k_proj.register_forward_hook(keep("k")),
               tb.v_proj.register_forward_hook(keep("v")), tb.o_proj.register_forward_pre_hook(keep("z", True))]
    try:
        with torch.no_grad():
            model(torch.from_numpy(toks), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    _, acts = m.run_with_cache(toks, names=f"blocks.{layer}.attn.*")
    for s in "qkvz":
        assert rel_err(acts[f"blocks.{layer}.attn.hook_{s}"], seen[s]) <= REL_TOL, s
    pattern, v, z = (acts[f"blocks.{layer}.attn.hook_{s}"].astype(np.float64) for s in ("pattern", "v", "z"))
    T = toks.shape[1]
    assert pattern.shape == (toks.shape[0], H, T, T)
    np.testing.assert_allclose(pattern.sum(-1), 1, atol=1e-5)
    q_pos, k_pos = np.arange(T)[:, None], np.arange(T)[None, :]
    assert np.all(pattern[..., (k_pos > q_pos) | (q_pos - k_pos >= W)] == 0)
    z_from_pattern = np.einsum("bhqk,bkhd->bqhd", pattern, np.repeat(v, H // K, axis=2))
    assert rel_err(z_from_pattern, z) <= REL_TOL

    def zero_head(mod, args):
        x = args[0].clone()
        x[..., D:2 * D] = 0  # head 1
        return (x,)
    handle = tb.o_proj.register_forward_pre_hook(zero_head)
    try:
        with torch.no_grad():
            want = model(torch.from_numpy(toks), use_cache=False).logits.double().numpy()
    finally:
        handle.remove()
    with m.hooks({f"blocks.{layer}.attn.hook_z": lambda a, n: a[:, :, 1].fill(0)}):
        got = m.forward(toks)
    assert rel_err(got, want) <= REL_TOL
    assert rel_err(m.forward(toks), want) > 100 * REL_TOL  # the edit matters


def hf_recurrent_capture(model, toks, edit_layer=None):
    """transformers' logits, hidden states, and per recurrent layer the RG-LRU module's input
    (the conv output) and output (h), optionally zeroing the RG-LRU output of one layer."""
    seen, handles = {}, []
    for i, layer in enumerate(model.model.layers):
        rg = getattr(layer.temporal_block, "rg_lru", None)
        if rg is None:
            continue

        def hook(mod, inputs, output, i=i):
            seen[i] = (inputs[0].detach().double().numpy(), output.detach().double().numpy())
            if i == edit_layer:
                return torch.zeros_like(output)
        handles.append(rg.register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(toks), use_cache=False, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    return out.logits.double().numpy(), [h.double().numpy() for h in out.hidden_states], seen


def test_hooks_read_what_transformers_computes(checkpoint):
    """Mapping (docs/hooks.md): HF hidden_states[i] = blocks.{i}.hook_resid_pre for i < L (the
    scaled embeddings for i = 0), hidden_states[L] = ln_final.hook_normalized; the RG-LRU
    module's input = blocks.{i}.conv.hook_out, its output = blocks.{i}.rglru.hook_h."""
    name, folder, model = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name)
    logits, acts = m.run_with_cache(toks)
    ref_logits, hidden, rg = hf_recurrent_capture(model, toks)
    assert rel_err(logits, ref_logits) <= REL_TOL
    L = m.config["num_layers"]
    assert len(hidden) == L + 1
    assert rel_err(acts["hook_embed"], hidden[0]) <= REL_TOL
    for i in range(L):
        assert rel_err(acts[f"blocks.{i}.hook_resid_pre"], hidden[i]) <= REL_TOL, i
        if i + 1 < L:
            np.testing.assert_array_equal(acts[f"blocks.{i}.hook_resid_post"],
                                          acts[f"blocks.{i + 1}.hook_resid_pre"])
    assert rel_err(acts["ln_final.hook_normalized"], hidden[L]) <= REL_TOL
    np.testing.assert_array_equal(acts["hook_logits"], logits)
    assert rg
    for i, (conv_out, h) in rg.items():
        assert rel_err(acts[f"blocks.{i}.conv.hook_out"], conv_out) <= REL_TOL, i
        assert rel_err(acts[f"blocks.{i}.rglru.hook_h"], h) <= REL_TOL, i
    # Residual bookkeeping: pre + mixing out = mid, mid + mlp out = post.
    for i, lc in enumerate(m.config["layers"]):
        if lc["type"] != "recurrent":
            mid = acts[f"blocks.{i}.hook_resid_pre"] + acts[f"blocks.{i}.hook_attn_out"]
            np.testing.assert_allclose(acts[f"blocks.{i}.hook_resid_mid"], mid, rtol=0, atol=1e-5)
        post = acts[f"blocks.{i}.hook_resid_mid"] + acts[f"blocks.{i}.hook_mlp_out"]
        np.testing.assert_allclose(acts[f"blocks.{i}.hook_resid_post"], post, rtol=0, atol=1e-5)


def test_zeroing_hook_h_matches_a_transformers_forward_hook(checkpoint):
    name, folder, model = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name)
    layer = next(i for i, lc in enumerate(m.config["layers"]) if lc["type"] == "recurrent")
    plain = m.forward(toks)
    with m.hooks({f"blocks.{layer}.rglru.hook_h": lambda a, n: np.zeros_like(a)}):
        edited = m.forward(toks)
    ref, _, _ = hf_recurrent_capture(model, toks, edit_layer=layer)
    assert rel_err(edited, ref) <= REL_TOL
    assert rel_err(plain, ref) > 100 * REL_TOL  # the edit matters
    np.testing.assert_array_equal(m.forward(toks), plain)  # and ends with the context


def rg_lru_gates(rg, x):
    """float64 gates of transformers' RG-LRU module `rg` for its input x [B, T, L]: sigmoid of
    the block-diagonal input gate, and a_t (before resets)."""
    H, bw = rg.num_attention_heads, rg.block_width
    B, T, L = x.shape
    xh = x.reshape(B, T, H, bw)

    def gate(w, b):
        w, b = w.detach().double().numpy(), b.detach().double().numpy()
        return 1 / (1 + np.exp(-(np.einsum("bthi,hij->bthj", xh, w) + b).reshape(B, T, L)))
    p = rg.recurrent_param.detach().double().numpy()
    softplus = np.logaddexp(0, p)
    a = np.exp(-8.0 * gate(rg.recurrent_gate_weight, rg.recurrent_gate_bias) * softplus)
    return gate(rg.input_gate_weight, rg.input_gate_bias), a


def scan_reference(a, gx, x):
    """float64 h_t = a_t h_{t-1} + sqrt(1 - a_t^2) gx_t x_t from h = 0, over [B, T, L]."""
    h = np.zeros((a.shape[0], a.shape[2]))
    out = np.empty_like(a)
    for t in range(a.shape[1]):
        h = a[:, t] * h + np.sqrt(1 - a[:, t] ** 2) * gx[:, t] * x[:, t]
        out[:, t] = h
    return out


def test_hook_a_reads_the_recurrence_weights(checkpoint):
    """blocks.{i}.rglru.hook_a = exp(-8 sigmoid(gate_a) softplus(recurrent_param)) from the
    RG-LRU module's input as transformers computes it, and 0 at position 0 (a reset)."""
    name, folder, model = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name)
    _, acts = m.run_with_cache(toks, names="*rglru.hook_a")
    _, _, rg = hf_recurrent_capture(model, toks)
    assert rg
    for i, (conv_out, _) in rg.items():
        _, a = rg_lru_gates(model.model.layers[i].temporal_block.rg_lru, conv_out)
        a[:, 0] = 0.0
        got = acts[f"blocks.{i}.rglru.hook_a"]
        assert got.shape == a.shape and got.dtype == np.float32
        assert np.abs(got - a).max() <= 1e-5, i


def test_editing_hook_a_runs_the_recurrence_on_the_edited_weights(checkpoint):
    """Halving a_t in one layer: that layer's h is the float64 scan of the halved weights over its
    own input (so the sqrt(1 - a^2) factor follows the edit); returning a unchanged keeps the fused
    kernel's logits bit for bit; and cached token-by-token decoding under the edit equals the full
    forward under it (the carried state comes from the edited scan)."""
    name, folder, model = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name)
    layer = next(i for i, lc in enumerate(m.config["layers"]) if lc["type"] == "recurrent")
    rg = model.model.layers[layer].temporal_block.rg_lru
    plain = m.forward(toks)
    with m.hooks({f"blocks.{layer}.rglru.hook_a": lambda a, n: a.copy()}):
        np.testing.assert_array_equal(m.forward(toks), plain)

    seen = {}

    def keep(a, n):
        seen[n] = a.copy()
    halve = {f"blocks.{layer}.rglru.hook_a": lambda a, n: a * 0.5,
             f"blocks.{layer}.conv.hook_out": keep, f"blocks.{layer}.rglru.hook_h": keep}
    with m.hooks(halve):
        edited = m.forward(toks)
    x = seen[f"blocks.{layer}.conv.hook_out"].astype(np.float64)
    gx, a = rg_lru_gates(rg, x)
    a[:, 0] = 0.0
    want = scan_reference(0.5 * a, gx, x)
    assert rel_err(seen[f"blocks.{layer}.rglru.hook_h"], want) <= REL_TOL
    assert rel_err(edited, plain) > 100 * REL_TOL  # the edit matters

    halve_only = {f"blocks.{layer}.rglru.hook_a": lambda a, n: a * 0.5}
    cache = m.new_cache(BATCH, SEQ)
    steps = []
    with m.hooks(halve_only):
        for t in range(SEQ):
            steps.append(m.forward(toks[:, t:t + 1], cache=cache))
    assert rel_err(np.concatenate(steps, axis=1), edited) <= REL_TOL


def test_hooks_on_ragged_batches_and_the_cache(checkpoint):
    """Hooks see [B, T, ...] with zero padding; an edit on a ragged cached step changes only
    what it should: zeroing hook_h of a row that waits (length 0) changes nothing."""
    name, folder, _ = checkpoint
    m = gc.load(folder)
    toks = tokens_for(name, batch=3)
    lengths = [SEQ, 5, 0]
    logits, acts = m.run_with_cache(toks, lengths=lengths, names="*hook_resid_post")
    for k, a in acts.items():
        assert a.shape == (3, SEQ, m.config["hidden_size"])
        assert not a[1, 5:].any() and not a[2].any()
    alone = m.run_with_cache(toks[1:2, :5], names="*hook_resid_post")[1]
    for k in acts:
        np.testing.assert_allclose(acts[k][1, :5], alone[k][0], rtol=0, atol=1e-5)
