"""TransformerLens compatibility: on tiny random Gemma 2 and Gemma 3 checkpoints, every hook name
gemmacpp shares with TransformerLens (3: a HookedTransformer built from the same HF model with its
own Gemma weight conversion, unfolded; 4: a TransformerBridge around the HF model) holds the same
activation, and the logits agree. QK-norm: hook_q / hook_k are the projections in all three;
gemmacpp's hook_q_normed / hook_k_normed are TransformerLens 4's names (3 records them as
attn.q_norm / k_norm.hook_normalized). Also the TransformerLens-style API (run_with_hooks,
names_filter, ActivationCache shorthand and methods, cfg, W_*) against TransformerLens' results.

Where TransformerLens differs by convention, the comparison converts (each noted at its place):
its RMSNorm's hook_normalized is before the norm's weight (gemmacpp's is the norm's output: 3
multiplies by the weight here, 4 has it as hook_out); 4's hook_q_normed is [B, H, T, D]; 4's W_E
lacks the sqrt(d) scale and its W_K / W_V are not repeated over the query heads (gemmacpp keeps 3's
shapes and scale). Skipped without transformer-lens (the test extra installs it).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
tl = pytest.importorskip("transformer_lens")

import gemmacpp as gc

try:  # TransformerLens 3
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gemma_weights
    TL4 = False
except ImportError:  # TransformerLens 4 removed HookedTransformer
    from transformer_lens.model_bridge import TransformerBridge
    TL4 = True

from test_gemma_forward import COMMON, build, rel_err

TOL = 1e-4
SEQ = 11
# gemmacpp point -> TransformerLens point, where the names differ.
TL_NAMES = {"attn.hook_scores": "attn.hook_attn_scores"}
if TL4:
    TL_NAMES.update({"ln1.hook_normalized": "ln1.hook_out", "ln2.hook_normalized": "ln2.hook_out",
                     "ln_final.hook_normalized": "ln_final.hook_out"})
else:
    TL_NAMES.update({"attn.hook_q_normed": "attn.q_norm.hook_normalized",
                     "attn.hook_k_normed": "attn.k_norm.hook_normalized"})


def tl_config(name, hf):
    c = hf.config
    n = c.num_hidden_layers
    common = dict(d_model=c.hidden_size, d_head=c.head_dim, n_heads=c.num_attention_heads,
                  d_mlp=c.intermediate_size, n_layers=n, n_ctx=64, eps=c.rms_norm_eps,
                  d_vocab=c.vocab_size, act_fn="gelu_pytorch_tanh", normalization_type="RMS",
                  positional_embedding_type="rotary", rotary_dim=c.head_dim, use_attn_scale=True,
                  attn_scale=float(np.sqrt(c.query_pre_attn_scalar)),
                  n_key_value_heads=c.num_key_value_heads, window_size=c.sliding_window,
                  use_local_attn=True, gated_mlp=True, final_rms=True,
                  use_normalization_before_and_after=True, dtype=torch.float32,
                  attn_types=["local" if t == "sliding_attention" else "global" for t in c.layer_types])
    if name.startswith("gemma2"):
        return HookedTransformerConfig(**common, original_architecture="Gemma2ForCausalLM",
                                       rotary_base=c.rope_parameters["rope_theta"],
                                       attn_scores_soft_cap=c.attn_logit_softcapping,
                                       output_logits_soft_cap=c.final_logit_softcapping)
    rope = c.rope_parameters
    return HookedTransformerConfig(**common, original_architecture="Gemma3ForCausalLM", use_qk_norm=True,
                                   rotary_base=rope["full_attention"]["rope_theta"],
                                   rotary_base_local=rope["sliding_attention"]["rope_theta"],
                                   rotary_scaling_factor=rope["full_attention"].get("factor", 1.0))


def tl_model(name, folder, hf):
    if TL4:
        return TransformerBridge.boot_transformers(folder, hf_model=hf, device="cpu")
    cfg = tl_config(name, hf)
    ht = HookedTransformer(cfg)
    ht.load_and_process_state_dict(convert_gemma_weights(hf, cfg), fold_ln=False,
                                   center_writing_weights=False, center_unembed=False,
                                   fold_value_biases=False, refactor_factored_attn_matrices=False)
    return ht.eval()


@pytest.fixture(scope="module", params=["gemma2-gqa", "gemma3-gqa"])
def pair(request, tmp_path_factory):
    folder, hf = build(request.param, tmp_path_factory)
    return request.param, gc.load(folder), tl_model(request.param, folder, hf)


def tokens(seed=0, batch=2):
    return np.random.default_rng(seed).integers(0, COMMON["vocab_size"], size=(batch, SEQ))


def tl_name(name, tl_names):
    for ours, theirs in TL_NAMES.items():
        if name.endswith(ours) and name[: -len(ours)] + theirs in tl_names:
            return name[: -len(ours)] + theirs
    return name if name in tl_names else None


def tl_activation(ht, ref, theirs, shape):
    """TransformerLens' activation in gemmacpp's layout and meaning."""
    a = ref[theirs].detach().double()
    if theirs.endswith("hook_normalized"):  # 3: before the norm's weight
        a = a * ht.get_submodule(theirs.removesuffix(".hook_normalized")).w.detach().double()
    if theirs.endswith(("q_norm.hook_normalized", "k_norm.hook_normalized")):
        a = a.reshape(shape)  # 3 norms [B*T*heads, D] rows
    if TL4 and theirs.endswith(("hook_q_normed", "hook_k_normed")):
        a = a.transpose(1, 2)  # 4: [B, heads, T, D]
    return a.numpy()


def tl_weight(m, ht, attr):
    w = getattr(ht, attr).detach().double().numpy()
    if TL4 and attr == "W_E":  # 4: the embedding without Gemma's scale
        w = w * m.config["embed_scale"]
    if TL4 and attr in ("W_K", "W_V") and w.shape[1] != m.cfg.n_heads:  # 4: one per KV head
        w = np.repeat(w, m.cfg.n_heads // w.shape[1], axis=1)
    return w


def test_every_shared_hook_name_holds_the_same_activation(pair):
    name, m, ht = pair
    toks = tokens()
    logits, cache = m.run_with_cache(toks)
    with torch.no_grad():
        ref_logits, ref = ht.run_with_cache(torch.from_numpy(toks))
    assert rel_err(logits, ref_logits.double().numpy()) <= TOL
    shared = {n: tl_name(n, ref) for n in m.hook_names() if tl_name(n, ref)}
    for n, theirs in shared.items():
        got, want = cache[n], tl_activation(ht, ref, theirs, cache[n].shape)
        if n.endswith("attn.hook_scores"):  # masked entries: gemmacpp -inf, TransformerLens -inf/huge
            keep = np.isfinite(got) & (np.abs(want) < 1e4)
            got, want = np.where(keep, got, 0), np.where(keep, want, 0)
        assert got.shape == want.shape, (n, got.shape, want.shape)
        assert rel_err(got, want) <= TOL, (name, n, rel_err(got, want))
    per_layer = ["hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern",
                 "attn.hook_z", "hook_attn_out", "hook_resid_mid", "ln1.hook_normalized",
                 "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out",
                 "hook_resid_post"]
    if name.startswith("gemma3"):
        per_layer += ["attn.hook_q_normed", "attn.hook_k_normed"]
    for i in range(m.cfg.n_layers):
        for p in per_layer:
            assert f"blocks.{i}.{p}" in shared, (name, f"blocks.{i}.{p}")
    assert "hook_embed" in shared and "ln_final.hook_normalized" in shared


def test_qk_norm_names_only_where_there_is_a_qk_norm(pair):
    name, m, _ = pair
    normed = [n for n in m.hook_names() if n.endswith(("hook_q_normed", "hook_k_normed"))]
    assert bool(normed) == name.startswith("gemma3")
    if normed:  # each right after its projection
        names = m.hook_names()
        assert names.index("blocks.0.attn.hook_q_normed") == names.index("blocks.0.attn.hook_q") + 1
        assert names.index("blocks.0.attn.hook_k_normed") == names.index("blocks.0.attn.hook_k") + 1


def test_editing_the_projection_before_the_norm_matches_transformer_lens(pair):
    name, m, ht = pair
    toks = tokens(1)

    # A shift, not a scale: the QK-norm would undo a scale of the projection.
    def shift_head(q, hook):
        assert hook.name == "blocks.1.attn.hook_q" and hook.layer() == 1
        q[:, :, 1] += np.linspace(-1, 1, q.shape[-1], dtype=np.float32)

    def shift_head_torch(q, hook):
        q = q.clone()
        q[:, :, 1] += torch.linspace(-1, 1, q.shape[-1])
        return q

    got = m.run_with_hooks(toks, fwd_hooks=[("blocks.1.attn.hook_q", shift_head)])
    with torch.no_grad():
        want = ht.run_with_hooks(torch.from_numpy(toks), fwd_hooks=[("blocks.1.attn.hook_q", shift_head_torch)])
    assert rel_err(got, want.double().numpy()) <= TOL
    assert rel_err(got, m.forward(toks)) > 1e-3  # the edit changed something


def test_cache_shorthand_and_methods_match_transformer_lens(pair):
    name, m, ht = pair
    toks = tokens(2)
    logits, cache = m.run_with_cache(toks, names_filter=lambda n: not n.endswith(("scores", "pattern")))
    with torch.no_grad():
        _, ref = ht.run_with_cache(torch.from_numpy(toks))
    assert not any(n.endswith("pattern") for n in cache)
    np.testing.assert_array_equal(cache["resid_post", 1], cache["blocks.1.hook_resid_post"])
    np.testing.assert_array_equal(cache["q", 0], cache["blocks.0.attn.hook_q"])
    np.testing.assert_array_equal(cache["scale", 0, "ln1"] if "blocks.0.ln1.hook_scale" in cache
                                  else cache["normalized", 0, "ln1"], cache["blocks.0.ln1.hook_normalized"])
    np.testing.assert_array_equal(cache["normalized"], cache["ln_final.hook_normalized"])
    for method, kw in [("accumulated_resid", {}), ("accumulated_resid", dict(layer=2, incl_mid=True)),
                       ("decompose_resid", {}), ("decompose_resid", dict(layer=1, mlp_input=True)),
                       ("stack_activation", dict(activation_name="attn_out"))]:
        got, want = getattr(cache, method)(**kw), getattr(ref, method)(**kw)
        assert rel_err(got, want.double().numpy()) <= TOL, (method, kw)
    _, labels = cache.decompose_resid(return_labels=True)
    _, ref_labels = ref.decompose_resid(return_labels=True)
    assert labels == ref_labels
    # The decomposition sums to the residual; through the final norm to its output, and onto W_U
    # to the logits (before the final softcap).
    parts = cache.decompose_resid()
    assert rel_err(parts.sum(0), cache[f"blocks.{m.cfg.n_layers - 1}.hook_resid_post"]) <= TOL
    normed = cache.apply_ln_to_stack(parts)
    assert rel_err(normed.sum(0), cache["ln_final.hook_normalized"]) <= TOL
    ids = toks[:, 1:]
    attrs = cache.logit_attrs(parts[:, :, :-1], ids, pos_slice=slice(0, -1))
    raw = cache["ln_final.hook_normalized"][:, :-1].astype(np.float64) @ m.W_U.astype(np.float64)
    want = np.take_along_axis(raw, ids[..., None], -1)[..., 0]
    assert attrs.shape == (len(parts), 2, SEQ - 1)
    assert rel_err(attrs.sum(0), want) <= TOL
    if ht.cfg.output_logits_soft_cap <= 0:  # no softcap: the logits themselves
        assert rel_err(attrs.sum(0), np.take_along_axis(logits[:, :-1], ids[..., None], -1)[..., 0]) <= TOL


def test_weights_and_config_as_transformer_lens_has_them(pair):
    name, m, ht = pair
    for attr in ["W_E", "W_U", "W_Q", "W_K", "W_V", "W_O"]:
        got, want = getattr(m, attr), tl_weight(m, ht, attr)
        assert got.dtype == np.float32 and got.shape == want.shape, (attr, got.shape, want.shape)
        assert rel_err(got, want) <= 1e-6, attr
    exact = ["n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "n_key_value_heads"]
    approx = ["eps"]
    if not TL4:  # 4's bridge leaves the attention details at their defaults (the HF model has them)
        exact += ["window_size", "attn_types", "use_qk_norm", "normalization_type", "act_fn"]
        approx += ["attn_scale", "attn_scores_soft_cap", "output_logits_soft_cap"]
    for f in exact:
        assert getattr(m.cfg, f) == getattr(ht.cfg, f), f
    for f in approx:
        assert getattr(m.cfg, f) == pytest.approx(getattr(ht.cfg, f), rel=1e-6), f


def test_legacy_qk_names_are_the_normed_ones_with_a_warning(pair):
    name, m, _ = pair
    toks = tokens(3)
    qk_norm = name.startswith("gemma3")
    _, new = m.run_with_cache(toks, names="blocks.0.attn.hook_q_normed" if qk_norm else "blocks.0.attn.hook_q")
    seen = []
    m.legacy_qk_hook_names = True
    try:
        if qk_norm:
            with pytest.warns(DeprecationWarning, match="hook_q_normed"):
                _, old = m.run_with_cache(toks, names="blocks.0.attn.hook_q")
            with pytest.warns(DeprecationWarning):
                with m.hooks({"blocks.0.attn.hook_q": lambda a, hook: seen.append(str(hook))}):
                    m.forward(toks)
        else:  # no QK-norm: nothing to rename, nothing to warn about
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                _, old = m.run_with_cache(toks, names="blocks.0.attn.hook_q")
    finally:
        m.legacy_qk_hook_names = False
    want = new["blocks.0.attn.hook_q_normed" if qk_norm else "blocks.0.attn.hook_q"]
    np.testing.assert_array_equal(old["blocks.0.attn.hook_q"], want)
    assert seen == (["blocks.0.attn.hook_q_normed"] if qk_norm else [])
