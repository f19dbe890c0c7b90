"""Vision tower hooks (vision.hook_embed, vision.blocks.{i}.* as the text blocks name theirs,
vision.hook_out) against transformers: what they offer equals SiglipVisionModel's hidden states,
attentions and projections, and an edit there changes the image features and Gemma 3's logits
exactly as the same edit made with a PyTorch forward hook."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import gemmacpp as gc
from vision_fixtures import BOI, IMG, REL_TOL, ROWS, pixels, rel_err


def hf_logits(model, px, hooks=()):
    """Logits of ROWS with the images px, with PyTorch forward hooks [(module, fn)] in place."""
    ids = torch.tensor(ROWS)
    handles = [m.register_forward_hook(fn) for m, fn in hooks]
    try:
        with torch.no_grad():
            return model(input_ids=ids, pixel_values=px, token_type_ids=(ids == IMG).long()).logits.double().numpy()
    finally:
        for h in handles:
            h.remove()


def tower(ref):
    """The SigLIP modules (embeddings, encoder, post_layernorm) of a Gemma 3 or a bare tower;
    transformers 5 has them at the top, older versions below .vision_model."""
    t = ref.model.vision_tower if hasattr(ref, "model") else ref
    return getattr(t, "vision_model", t)


# ---- a bare SiglipVisionModel ----

VIT_LAYER_POINTS = ["hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_scores",
                    "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid", "mlp.hook_pre",
                    "mlp.hook_post", "hook_mlp_out", "hook_resid_post"]


def vision_names(n_layers):
    return (["vision.hook_embed"] + [f"vision.blocks.{i}.{p}" for i in range(n_layers) for p in VIT_LAYER_POINTS]
            + ["vision.hook_out"])


def hf_vision_activations(ref, px):
    """Every vision hook point's value in transformers' SiglipVisionModel, from its hidden states
    and forward hooks on the projections (the pattern: the softmax of their q k^T / sqrt(D))."""
    t = tower(ref)
    cfg = t.config
    H = cfg.num_attention_heads
    got, handles = {}, []

    def keep(name, heads=False, inputs=False):
        def hook(module, args, output=None):
            x = (args[0] if inputs else output).detach().double().numpy()
            got[name] = x.reshape(x.shape[0], x.shape[1], H, -1) if heads else x
        return hook
    for i, layer in enumerate(t.encoder.layers):
        a, p = layer.self_attn, f"vision.blocks.{i}."
        handles += [a.q_proj.register_forward_hook(keep(p + "attn.hook_q", heads=True)),
                    a.k_proj.register_forward_hook(keep(p + "attn.hook_k", heads=True)),
                    a.v_proj.register_forward_hook(keep(p + "attn.hook_v", heads=True)),
                    a.out_proj.register_forward_pre_hook(keep(p + "attn.hook_z", heads=True, inputs=True)),
                    a.out_proj.register_forward_hook(keep(p + "hook_attn_out")),
                    layer.mlp.fc1.register_forward_hook(keep(p + "mlp.hook_pre")),
                    layer.mlp.fc2.register_forward_pre_hook(keep(p + "mlp.hook_post", inputs=True)),
                    layer.mlp.fc2.register_forward_hook(keep(p + "hook_mlp_out"))]
    try:
        with torch.no_grad():
            out = ref(pixel_values=px, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    hidden = [h.double().numpy() for h in out.hidden_states]
    got["vision.hook_embed"] = hidden[0]
    for i in range(len(hidden) - 1):
        p = f"vision.blocks.{i}."
        got[p + "hook_resid_pre"] = hidden[i]
        got[p + "hook_resid_mid"] = hidden[i] + got[p + "hook_attn_out"]
        got[p + "hook_resid_post"] = hidden[i + 1]
        q, k = got[p + "attn.hook_q"], got[p + "attn.hook_k"]
        s = np.einsum("nphd,nqhd->nhpq", q, k) / np.sqrt(q.shape[-1])
        e = np.exp(s - s.max(-1, keepdims=True))
        got[p + "attn.hook_pattern"] = e / e.sum(-1, keepdims=True)
    got["vision.hook_out"] = out.last_hidden_state.double().numpy()
    return got


def test_bare_tower_names_and_cache_match_transformers(siglip):
    folder, ref = siglip
    m = gc.load(folder)
    assert m.hook_names() == vision_names(3)
    px = pixels(2, 3, 35)
    want = hf_vision_activations(ref, px)
    plain = m.encode_image(px.numpy(), preprocess=False)
    out, cache = m.run_with_cache(px.numpy(), preprocess=False)
    assert list(cache) == m.hook_names()
    assert rel_err(out, plain) < REL_TOL  # scores and patterns take the plain attention path
    _, resid = m.run_with_cache(px.numpy(), preprocess=False, names="vision.*resid*")
    assert np.array_equal(m.run_with_cache(px.numpy(), preprocess=False, names="vision.*resid*")[0], plain)
    for name in m.hook_names():
        got = cache[name]
        assert got.dtype == np.float32
        if name.endswith("hook_scores"):  # their softmax is the pattern
            assert got.shape == (2, 4, 25, 25)
            e = np.exp(got - got.max(-1, keepdims=True))
            assert np.allclose(e / e.sum(-1, keepdims=True), cache[name.replace("scores", "pattern")], atol=1e-6)
            continue
        assert got.shape == want[name].shape, name
        assert rel_err(got, want[name]) < REL_TOL, name
    assert np.array_equal(cache["vision.hook_out"], out)
    assert cache.stack("vision.blocks.*.hook_resid_post").shape == (3, 2, 25, 48)


def test_bare_tower_resid_edit_matches_torch_hook(siglip):
    folder, ref = siglip
    m = gc.load(folder)
    px = pixels(2, 4, 35)

    def edit(x):  # in place on patch 3 of every image, plus a shift of everything
        x[:, 3] *= -2.0
        x += 0.25

    def torch_edit(module, inputs, output):
        out = output.clone()
        edit(out)
        return out

    handle = tower(ref).encoder.layers[1].register_forward_hook(torch_edit)
    try:
        with torch.no_grad():
            want = ref(pixel_values=px).last_hidden_state.double().numpy()
    finally:
        handle.remove()
    plain = m.encode_image(px.numpy(), preprocess=False)
    with m.hooks({"vision.blocks.1.hook_resid_post": lambda a, name: edit(a)}):
        got = m.encode_image(px.numpy(), preprocess=False)
    assert rel_err(got, want) < REL_TOL
    assert rel_err(plain, want) > 1e-2  # the edit mattered
    assert np.array_equal(m.encode_image(px.numpy(), preprocess=False), plain)  # hooks are gone


def test_bare_tower_errors(siglip):
    folder, _ = siglip
    m = gc.load(folder)
    px = pixels(1, 5, 35).numpy()
    with pytest.raises(ValueError, match="vision.blocks.3"):
        with m.hooks({"vision.blocks.3.hook_resid_post": lambda a, n: None}):
            pass
    kept = []
    with m.hooks({"vision.hook_out": lambda a, n: kept.append(a)}):
        with pytest.raises(ValueError, match="kept a reference"):
            m.encode_image(px, preprocess=False)
    with m.hooks({"vision.hook_out": lambda a, n: np.zeros((1, 2), np.float32)}):
        with pytest.raises(ValueError, match="vision.hook_out"):
            m.encode_image(px, preprocess=False)

    def boom(a, n):
        raise KeyError("from the hook")
    with m.hooks({"vision.blocks.0.hook_resid_post": boom}):
        with pytest.raises(KeyError, match="from the hook"):
            m.encode_image(px, preprocess=False)


# ---- Gemma 3 with a vision tower ----

def test_gemma3_names_and_cache(gemma3):
    folder, ref = gemma3
    m = gc.load(folder)
    names = m.hook_names()
    nv = len(vision_names(2))
    assert names[:nv] == vision_names(2)
    assert names[nv] == "hook_embed" and names[-1] == "hook_logits"
    assert not any(n.startswith("vision.") for n in names[nv:])
    px = pixels(3, 6, 28)
    with torch.no_grad():
        want = tower(ref)(pixel_values=px, output_hidden_states=True)
    plain = m.forward(np.array(ROWS), images=px.numpy())
    logits, cache = m.run_with_cache(np.array(ROWS), images=px.numpy(),
                                     names=["vision.*resid*", "vision.hook_out", "hook_embed"])
    assert np.array_equal(logits, plain)
    assert list(cache) == [n for n in names[:nv + 1] if "resid" in n or "hook_out" in n or n == "hook_embed"]
    assert cache["vision.hook_out"].shape == (3, 16, 32)
    for i in range(2):
        assert rel_err(cache[f"vision.blocks.{i}.hook_resid_post"],
                       want.hidden_states[i + 1].double().numpy()) < REL_TOL
    assert rel_err(cache["vision.hook_out"], want.last_hidden_state.double().numpy()) < REL_TOL
    # Without images the vision points are simply not reached.
    _, text_only = m.run_with_cache(np.array([[2, 10, 11]]))
    assert "vision.hook_out" not in text_only and "hook_logits" in text_only


def test_gemma3_zeroed_out_matches_torch_hook(gemma3):
    folder, ref = gemma3
    m = gc.load(folder)
    px = pixels(3, 7, 28)
    want = hf_logits(ref, px, [(tower(ref).post_layernorm, lambda mod, i, o: torch.zeros_like(o))])
    plain = m.forward(np.array(ROWS), images=px.numpy())

    def zero(a, name):
        a[...] = 0
    with m.hooks({"vision.hook_out": zero}):
        got = m.forward(np.array(ROWS), images=px.numpy())
        soft = m.encode_image(px.numpy(), preprocess=False)
    assert rel_err(got, want) < REL_TOL
    assert rel_err(plain, want) > 1e-2  # the edit mattered
    assert np.all(soft == 0)  # zero features: RMSNorm and projection keep them zero
    assert np.array_equal(m.forward(np.array(ROWS), images=px.numpy()), plain)


def test_gemma3_edits_match_torch_hooks(gemma3):
    folder, ref = gemma3
    m = gc.load(folder)
    px = pixels(3, 8, 28)
    rng = np.random.default_rng(9)
    noise = rng.standard_normal((3, 16, 32)).astype(np.float32)

    def resid_edit(x):  # in place: flip one patch of image 1
        x[1, 5] *= -1.0

    def torch_resid(module, inputs, output):
        out = output.clone()
        resid_edit(out)
        return out

    def torch_out(module, inputs, output):
        return output + torch.from_numpy(noise)

    want = hf_logits(ref, px, [(tower(ref).encoder.layers[0], torch_resid),
                               (tower(ref).post_layernorm, torch_out)])
    with m.hooks({"vision.blocks.0.hook_resid_post": lambda a, n: resid_edit(a)}):
        # hook_out's edit returns a replacement (the model's hooks.py writes it back)
        with m.hooks({"vision.hook_out": lambda a, n: a + noise}):
            got = m.forward(np.array(ROWS), images=px.numpy())
    assert rel_err(got, want) < REL_TOL
    with m.hooks({"vision.hook_out": lambda a, n: a + noise}):
        soft = m.encode_image(px.numpy(), preprocess=False)
    with torch.no_grad():
        want_soft = ref.model.multi_modal_projector(
            tower(ref)(pixel_values=px).last_hidden_state + torch.from_numpy(noise)).double().numpy()
    assert rel_err(soft, want_soft) < REL_TOL


def test_gemma3_no_vision_hook_is_bitwise_plain(gemma3):
    folder, _ = gemma3
    m = gc.load(folder)
    px = pixels(3, 10, 28).numpy()
    plain = m.forward(np.array(ROWS), images=px)
    soft = m.encode_image(px, preprocess=False)
    seen = []
    # A text hook only: the tower runs with no hook set; no-op vision hooks change nothing either.
    with m.hooks({"hook_embed": lambda a, n: seen.append(n)}):
        assert np.array_equal(m.forward(np.array(ROWS), images=px), plain)
        assert np.array_equal(m.encode_image(px, preprocess=False), soft)
    # Every vision point but the scores and patterns, which take the plain attention path.
    with m.hooks({lambda n: n.startswith("vision.") and "hook_scores" not in n and "hook_pattern" not in n:
                  lambda a, n: seen.append(n)}):
        assert np.array_equal(m.forward(np.array(ROWS), images=px), plain)
    assert seen == ["hook_embed"] + [n for n in vision_names(2) if "scores" not in n and "pattern" not in n]


def test_gemma3_generate_with_images_calls_vision_hooks(gemma3):
    from gemmacpp.generate import generate_ids
    folder, _ = gemma3
    m = gc.load(folder)
    img = pixels(1, 11, 28).numpy()
    prompt = m._images.expand_prompt([2, 10, BOI, 11], 1)
    shapes = []

    def zero(a, name):
        shapes.append(a.shape)
        a[...] = 0
    with m.hooks({"vision.hook_out": zero}):
        got = list(generate_ids(m, prompt, max_new_tokens=3, prefill_kwargs={"images": img}))
        assert shapes == [(1, 16, 32)]  # the prompt's forward only; later steps have no images
        first = int(np.argmax(m.forward(np.array([prompt]), images=img)[0, -1]))
    assert got and got[0] == first  # generation saw the edited image


# ---- PaliGemma 2 (a linear projector, one soft token per patch) ----

def test_paligemma_out_edit_matches_torch_hook(paligemma2):
    folder, ref = paligemma2
    m = gc.load(folder)
    assert m.hook_names()[:len(vision_names(2))] == vision_names(2)
    prefix = [IMG] * 16 + [2, 10, 11, 12, 108]
    px = pixels(1, 12, 28)
    scale = np.linspace(-1.0, 2.0, 16, dtype=np.float32)[None, :, None]  # per patch

    def torch_scale(module, inputs, output):
        return output * torch.from_numpy(scale)

    handle = tower(ref).post_layernorm.register_forward_hook(torch_scale)
    try:
        with torch.no_grad():
            want = ref(input_ids=torch.tensor([prefix]), pixel_values=px,
                       token_type_ids=torch.zeros(1, len(prefix), dtype=torch.long)).logits.double().numpy()
    finally:
        handle.remove()
    plain = m.forward(prefix, images=px.numpy())

    def edit(a, name):
        a *= scale
    with m.hooks({"vision.hook_out": edit}):
        got = m.forward(prefix, images=px.numpy())
    assert rel_err(got, want) < REL_TOL
    assert rel_err(plain, want) > 1e-2
