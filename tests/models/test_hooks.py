"""Hook points: every activation run_with_cache records equals its counterpart in transformers
(captured with PyTorch hooks, output_hidden_states and output_attentions on eager attention),
edits made through hooks equal the same edits made with PyTorch hooks, and hooks work with the KV
cache, ragged batches and last_only. Also: replacements of the wrong shape or dtype, exceptions
inside hooks, and that no hook leaves the logits bitwise unchanged.

Layer mapping (docs/hooks.md): HF hidden_states[0] = hook_embed = blocks.0.hook_resid_pre;
hidden_states[i] = blocks.{i-1}.hook_resid_post = blocks.{i}.hook_resid_pre for 0 < i < L;
hidden_states[L] = ln_final.hook_normalized (after the final norm; HF ties its last entry to
last_hidden_state). attentions[i] = blocks.{i}.attn.hook_pattern.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import gemmacpp as gc

from test_gemma_forward import COMMON, build, rel_err

NAMES = ["gemma1-mqa", "gemma2-gqa", "gemma3-gqa"]  # MQA/GQA, softcaps, windows < T, QK-norm
SEQ = 29
TOL = 1e-4
V = COMMON["vocab_size"]


@pytest.fixture(scope="module", params=NAMES)
def pair(request, tmp_path_factory):
    folder, hf = build(request.param, tmp_path_factory)
    return request.param, gc.load(folder), hf


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder, hf = build("gemma2-gqa", tmp_path_factory)
    return gc.load(folder), hf


def tokens(seed, batch=2, seq=SEQ):
    return np.random.default_rng(seed).integers(0, V, size=(batch, seq))


def close(got, ref, what, tol=TOL):
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    err = rel_err(got, ref)
    assert err <= tol, f"{what}: max abs err / max |ref| = {err:.3g}"


def hf_activations(hf, toks):
    """Every activation the hook names stand for, from the transformers model (float64 NumPy)."""
    cfg = hf.config
    H, K, D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    gemma1 = type(hf).__name__ == "GemmaForCausalLM"
    qk_norm = hasattr(hf.model.layers[0].self_attn, "q_norm")
    acts, handles = {}, []

    def keep(name, reshape=None, use_input=False, per_head_first=False):
        def hook(module, inputs, output):
            t = inputs[0] if use_input else (output[0] if isinstance(output, tuple) else output)
            if per_head_first:  # [B, H, T, D] -> [B, T, H, D]
                t = t.transpose(1, 2)
            if reshape:
                t = t.reshape(*t.shape[:2], *reshape)
            acts[name] = t.detach().double().numpy()
        return hook

    for i, layer in enumerate(hf.model.layers):
        a, mlp, p = layer.self_attn, layer.mlp, f"blocks.{i}."
        handles.append(a.q_proj.register_forward_hook(keep(p + "attn.hook_q", (H, D))))
        handles.append(a.k_proj.register_forward_hook(keep(p + "attn.hook_k", (K, D))))
        if qk_norm:  # TransformerLens' names for the normed ones
            handles.append(a.q_norm.register_forward_hook(keep(p + "attn.hook_q_normed", per_head_first=True)))
            handles.append(a.k_norm.register_forward_hook(keep(p + "attn.hook_k_normed", per_head_first=True)))
        handles.append(a.v_proj.register_forward_hook(keep(p + "attn.hook_v", (K, D))))
        handles.append(a.o_proj.register_forward_hook(keep(p + "attn.hook_z", (H, D), use_input=True)))
        attn_out = a.o_proj if gemma1 else layer.post_attention_layernorm
        pre_mlp_norm = layer.post_attention_layernorm if gemma1 else layer.pre_feedforward_layernorm
        mlp_out = mlp if gemma1 else layer.post_feedforward_layernorm
        handles.append(layer.input_layernorm.register_forward_hook(keep(p + "ln1.hook_normalized")))
        handles.append(pre_mlp_norm.register_forward_hook(keep(p + "ln2.hook_normalized")))
        handles.append(attn_out.register_forward_hook(keep(p + "hook_attn_out")))
        handles.append(pre_mlp_norm.register_forward_hook(keep(p + "hook_resid_mid", use_input=True)))
        handles.append(mlp.gate_proj.register_forward_hook(keep(p + "mlp.hook_pre")))
        handles.append(mlp.up_proj.register_forward_hook(keep(p + "mlp.hook_pre_linear")))
        handles.append(mlp.down_proj.register_forward_hook(keep(p + "mlp.hook_post", use_input=True)))
        handles.append(mlp_out.register_forward_hook(keep(p + "hook_mlp_out")))
    try:
        with torch.no_grad():
            out = hf(torch.from_numpy(toks), output_hidden_states=True, output_attentions=True)
    finally:
        for h in handles:
            h.remove()
    hs = [t.double().numpy() for t in out.hidden_states]
    L = len(hf.model.layers)
    acts["hook_embed"] = hs[0]
    for i in range(L):
        acts[f"blocks.{i}.hook_resid_pre"] = hs[i]
        acts[f"blocks.{i}.attn.hook_pattern"] = out.attentions[i].double().numpy()
        if i + 1 < L:
            acts[f"blocks.{i}.hook_resid_post"] = hs[i + 1]
    acts["ln_final.hook_normalized"] = hs[L]
    acts["hook_logits"] = out.logits.double().numpy()
    return acts


def assert_cache_matches(cache, ref, what, tol=TOL):
    """Every recorded activation is float32 and within tol of its transformers counterpart; the
    scores, which eager attention never writes out, are checked through their softmax."""
    for n, got in cache.items():
        assert got.dtype == np.float32
        if not n.endswith("hook_scores"):
            assert n in ref, f"{what}: no transformers counterpart for {n}"
            close(got, ref[n], f"{what} {n}", tol)


# ---- equality with transformers --------------------------------------------------------------

def test_every_activation_matches_transformers(pair):
    name, m, hf = pair
    toks = tokens(1)
    ref = hf_activations(hf, toks)
    logits, cache = m.run_with_cache(toks)
    assert list(cache) == [n for n in m.hook_names()]  # everything, in forward order
    L = m.config["num_layers"]
    # the last block's resid_post is not among HF's hidden states: it is the final norm's input
    ref[f"blocks.{L - 1}.hook_resid_post"] = cache[f"blocks.{L - 1}.hook_resid_post"]
    assert_cache_matches(cache, ref, name)
    np.testing.assert_array_equal(logits, cache["hook_logits"])


def test_scores_are_masked_softcapped_and_give_the_pattern(pair):
    name, m, _ = pair
    _, cache = m.run_with_cache(tokens(2), names=["blocks.*.attn.hook_scores", "blocks.*.attn.hook_pattern"])
    for i, layer in enumerate(m.config["layers"]):
        s = cache[f"blocks.{i}.attn.hook_scores"].astype(np.float64)
        p = cache[f"blocks.{i}.attn.hook_pattern"]
        q_pos, k_pos = np.arange(SEQ)[:, None], np.arange(SEQ)[None, :]
        masked = k_pos > q_pos
        if layer["window"] is not None:
            masked |= q_pos - k_pos >= layer["window"]
        assert np.all(np.isneginf(s[..., masked])) and np.all(np.isfinite(s[..., ~masked]))
        cap = m.config["attn_softcap"]
        if cap is not None:
            assert np.abs(s[..., ~masked]).max() < cap
        e = np.exp(s - s.max(-1, keepdims=True))
        close(p, e / e.sum(-1, keepdims=True), f"{name} softmax(scores) layer {i}", 1e-6)


def test_zero_ablating_a_head_matches_a_torch_hook(pair):
    name, m, hf = pair
    toks, layer, head = tokens(3), 1, 1
    D = m.config["head_dim"]

    def torch_pre_hook(module, inputs):
        x = inputs[0].clone()
        x[..., head * D:(head + 1) * D] = 0
        return (x,)

    handle = hf.model.layers[layer].self_attn.o_proj.register_forward_pre_hook(torch_pre_hook)
    try:
        with torch.no_grad():
            ref = hf(torch.from_numpy(toks)).logits.double().numpy()
    finally:
        handle.remove()

    def ablate(z, _):
        z[:, :, head] = 0

    with m.hooks({f"blocks.{layer}.attn.hook_z": ablate}):
        got = m.forward(toks)
    close(got, ref, f"{name} ablated head")
    assert rel_err(m.forward(toks), ref) > 10 * TOL  # the ablation mattered


def test_patching_a_residual_position_matches_a_torch_hook(pair):
    name, m, hf = pair
    clean, corrupt = tokens(4, batch=1), tokens(5, batch=1)
    layer, pos = 0, 7
    _, cache = m.run_with_cache(clean, names=f"blocks.{layer}.hook_resid_post")
    with torch.no_grad():
        donor = hf(torch.from_numpy(clean), output_hidden_states=True).hidden_states[layer + 1]

    def torch_hook(module, inputs, output):
        out = output.clone()
        out[:, pos] = donor[:, pos]
        return out

    handle = hf.model.layers[layer].register_forward_hook(torch_hook)
    try:
        with torch.no_grad():
            ref = hf(torch.from_numpy(corrupt)).logits.double().numpy()
    finally:
        handle.remove()

    def patch(resid, _):
        out = resid.copy()
        out[:, pos] = cache[f"blocks.{layer}.hook_resid_post"][:, pos]
        return out  # a replacement this time

    with m.hooks({f"blocks.{layer}.hook_resid_post": patch}):
        got = m.forward(corrupt)
    close(got, ref, f"{name} patched resid")
    plain = m.forward(corrupt)
    assert np.array_equal(got[:, :pos], plain[:, :pos])  # causal: earlier positions unchanged
    assert not np.allclose(got[:, pos:], plain[:, pos:])


# ---- edits and their semantics ---------------------------------------------------------------

def test_no_hook_leaves_logits_bitwise_unchanged(small):
    m, _ = small
    toks = tokens(6)
    plain = m.forward(toks)
    with m.hooks({}):
        np.testing.assert_array_equal(m.forward(toks), plain)
    seen = []
    # hooks that only read (also every point but the attention scores/pattern, which switch a
    # layer to the plain attention path) change nothing
    with m.hooks({(lambda n: "attn.hook_scores" not in n and "attn.hook_pattern" not in n):
                  lambda a, n: seen.append(n)}):
        np.testing.assert_array_equal(m.forward(toks), plain)
    assert len(seen) == len(m.hook_names()) - 2 * m.config["num_layers"]
    np.testing.assert_array_equal(m.run_with_cache(toks, names="blocks.*.hook_resid_post")[0], plain)
    np.testing.assert_array_equal(m.forward(toks), plain)  # the context is gone


def test_pattern_edits_drive_the_layer_output(small):
    m, _ = small
    toks = tokens(7, batch=1)
    layer = 2
    G = m.config["num_heads"] // m.config["num_kv_heads"]

    def uniform(p, _):
        vis = p > 0
        return (vis / vis.sum(-1, keepdims=True)).astype(np.float32)

    names = [f"blocks.{layer}.attn.hook_v", f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.attn.hook_pattern"]
    with m.hooks({f"blocks.{layer}.attn.hook_pattern": uniform}):
        _, cache = m.run_with_cache(toks, names=names)
    p = cache[names[2]].astype(np.float64)  # recorded after the edit
    v = np.repeat(cache[names[0]], G, axis=2).astype(np.float64)  # [B, T, H, D]
    z = np.einsum("bhqk,bkhd->bqhd", p, v)
    close(cache[names[1]], z, "z from the edited pattern", 1e-5)
    assert not np.allclose(m.forward(toks), m.run_with_cache(toks, names=names)[0])


def test_hooks_on_one_point_run_in_order_and_nest(small):
    m, _ = small
    toks = tokens(8, batch=1)
    order = []
    with m.hooks({"hook_embed": [lambda a, n: order.append(1), lambda a, n: order.append(2)]}):
        with m.hooks({"hook_e*": lambda a, n: order.append(3)}):
            m.forward(toks)
        m.forward(toks)
    assert order == [1, 2, 3, 1, 2]


def test_logit_and_final_norm_hooks_with_last_only(small):
    m, _ = small
    rows = [list(tokens(9, batch=1)[0, :n]) for n in (5, 12)]
    full = m.forward(rows)
    logits, cache = m.run_with_cache(rows, names=["ln_final.hook_normalized", "hook_logits"], last_only=True)
    assert cache["ln_final.hook_normalized"].shape == (2, 1, m.config["hidden_size"])
    np.testing.assert_array_equal(cache["hook_logits"], logits)
    for b, r in enumerate(rows):
        assert rel_err(logits[b, 0], full[b, len(r) - 1]) <= 1e-5

    def boost(lg, _):
        lg[..., 3] += 100.0

    with m.hooks({"hook_logits": boost}):
        got = m.forward(rows)
    assert np.all(got[0, :5].argmax(-1) == 3) and not got[0, 5:].any()  # padding stays zero


# ---- KV cache and ragged batches -------------------------------------------------------------

@pytest.mark.parametrize("prefill", [20, 28])
def test_hooks_with_a_kv_cache_see_the_new_positions(small, prefill):
    m, _ = small
    toks = tokens(10)
    names = ["blocks.*.hook_resid_post", "blocks.*.attn.hook_pattern", "blocks.*.attn.hook_z"]
    _, full = m.run_with_cache(toks, names=names)
    cache = m.new_cache(batch=2, max_len=64)
    m.forward(toks[:, :prefill], cache=cache)
    _, new = m.run_with_cache(toks[:, prefill:], names=names, cache=cache)
    for n, got in new.items():
        if "pattern" in n:  # [B, H, new queries, all keys]; the ring's dropped keys are weight 0
            assert got.shape == full[n][:, :, prefill:].shape
            close(got, full[n][:, :, prefill:], n, 1e-5)
        else:
            close(got, full[n][:, prefill:], n, 1e-5)


def test_ragged_batch_hooks_are_padded_and_padding_edits_ignored(small):
    m, _ = small
    rows = [list(r) for r in tokens(11, batch=3, seq=14)]
    rows[0], rows[2] = rows[0][:9], rows[2][:3]
    names = ["blocks.1.hook_resid_post", "blocks.1.attn.hook_pattern", "blocks.1.mlp.hook_post"]
    logits, cache = m.run_with_cache(rows, names=names)
    for b, r in enumerate(rows):
        _, alone = m.run_with_cache(r, names=names)
        n = len(r)
        for name in names:
            got = cache[name][b]
            if "pattern" in name:
                close(got[:, :n, :n], alone[name][0], name, 1e-5)
                assert not got[:, n:].any() and not got[:, :, n:].any()
            else:
                close(got[:n], alone[name][0], name, 1e-5)
                assert not got[n:].any()

    def scribble(a, _):  # garbage in the padding only
        a[0, 9:] = 1e6
        a[2, 3:] = np.nan

    plain = m.forward(rows)  # (logits above took layer 1's plain attention path for its pattern)
    assert rel_err(logits, plain) <= 1e-5
    with m.hooks({"blocks.*.hook_resid_*": scribble, "blocks.*.attn.hook_[qkvz]": scribble}):
        np.testing.assert_array_equal(m.forward(rows), plain)


# ---- errors ----------------------------------------------------------------------------------

def test_replacement_of_wrong_shape_or_dtype_is_a_clear_error(small):
    m, _ = small
    toks = tokens(12, batch=1)
    name = "blocks.1.hook_mlp_out"
    with m.hooks({name: lambda a, n: a[:, :-1]}):
        with pytest.raises(ValueError, match=r"blocks\.1\.hook_mlp_out.*shape"):
            m.forward(toks)
    with m.hooks({name: lambda a, n: a.astype(np.float64)}):
        with pytest.raises(TypeError, match=r"blocks\.1\.hook_mlp_out.*float64"):
            m.forward(toks)
    with m.hooks({name: lambda a, n: "zero"}):
        with pytest.raises(TypeError, match=r"blocks\.1\.hook_mlp_out"):
            m.forward(toks)
    # a replacement of the right kind works, including torch tensors and the array itself
    with m.hooks({name: lambda a, n: torch.zeros(a.shape)}):
        zeroed = m.forward(toks)
    with m.hooks({name: lambda a, n: (a.fill(0), a)[1]}):
        np.testing.assert_array_equal(m.forward(toks), zeroed)


def test_exception_inside_a_hook_propagates(small):
    m, _ = small

    class Boom(Exception):
        pass

    def hook(a, n):
        raise Boom(f"stop at {n}")

    with m.hooks({"blocks.2.attn.hook_pattern": hook}):
        with pytest.raises(Boom, match=r"stop at blocks\.2\.attn\.hook_pattern"):
            m.forward(tokens(13))
    with m.hooks({"hook_embed": lambda a, n: 1 / 0}):
        with pytest.raises(ZeroDivisionError):
            m.run_with_cache(tokens(13))
    np.testing.assert_array_equal(m.forward(tokens(13)), m.forward(tokens(13)))  # still usable


def test_keeping_the_activation_view_is_refused(small):
    m, _ = small
    kept = []
    with m.hooks({"blocks.0.hook_resid_pre": lambda a, n: kept.append(a[0])}):
        with pytest.raises(ValueError, match=r"blocks\.0\.hook_resid_pre.*copy"):
            m.forward(tokens(14))
    kept.clear()
    with m.hooks({"blocks.0.hook_resid_pre": lambda a, n: kept.append(a.copy())}):
        m.forward(tokens(14))
    assert kept[0].shape == (2, SEQ, m.config["hidden_size"])


def test_names_select_exact_glob_predicate_and_list(small):
    m, _ = small
    names = m.hook_names()
    L = m.config["num_layers"]
    assert len(names) == len(set(names)) == 3 + 16 * L
    assert names[0] == "hook_embed" and names[-2:] == ["ln_final.hook_normalized", "hook_logits"]
    toks = tokens(15, batch=1)
    _, c = m.run_with_cache(toks, names="blocks.*.hook_resid_post")
    assert list(c) == [f"blocks.{i}.hook_resid_post" for i in range(L)]
    assert c.stack("blocks.*.hook_resid_post").shape == (L, 1, SEQ, m.config["hidden_size"])
    _, c = m.run_with_cache(toks, names=lambda n: n.startswith("blocks.0.mlp"))
    assert list(c) == ["blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_pre_linear", "blocks.0.mlp.hook_post"]
    _, c = m.run_with_cache(toks, names=["hook_logits", "hook_embed"])
    assert list(c) == ["hook_embed", "hook_logits"]
    for bad in ["blocks.99.hook_resid_post", "blocks.01.hook_resid_post", "hook_nope", "blocks.*.hook_x"]:
        with pytest.raises(ValueError, match="hook"):
            m.run_with_cache(toks, names=bad)
        with pytest.raises(ValueError, match="hook"):
            m.hooks({bad: lambda a, n: None})
    with pytest.raises(TypeError):
        m.hooks({"hook_embed": 3})
