"""Vision tower hooks (vision.blocks.{i}.hook_resid_post, vision.hook_out) against transformers:
what they offer equals SiglipVisionModel's hidden states, and an edit there changes the image
features and Gemma 3's logits exactly as the same edit made with a PyTorch forward hook."""
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

def test_bare_tower_names_and_cache_match_hidden_states(siglip):
    folder, ref = siglip
    m = gc.load(folder)
    assert m.hook_names() == ["vision.blocks.0.hook_resid_post", "vision.blocks.1.hook_resid_post",
                              "vision.blocks.2.hook_resid_post", "vision.hook_out"]
    px = pixels(2, 3, 35)
    with torch.no_grad():
        want = ref(pixel_values=px, output_hidden_states=True)
    plain = m.encode_image(px.numpy(), preprocess=False)
    out, cache = m.run_with_cache(px.numpy(), preprocess=False)
    assert list(cache) == m.hook_names()
    assert np.array_equal(out, plain)  # recording changes nothing
    for i in range(3):
        got = cache[f"vision.blocks.{i}.hook_resid_post"]
        assert got.shape == (2, 25, 48) and got.dtype == np.float32
        assert rel_err(got, want.hidden_states[i + 1].double().numpy()) < REL_TOL
    assert rel_err(cache["vision.hook_out"], want.last_hidden_state.double().numpy()) < REL_TOL
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
    assert names[:3] == ["vision.blocks.0.hook_resid_post", "vision.blocks.1.hook_resid_post",
                         "vision.hook_out"]
    assert names[3] == "hook_embed" and names[-1] == "hook_logits"
    assert not any(n.startswith("vision.") for n in names[3:])
    px = pixels(3, 6, 28)
    with torch.no_grad():
        want = tower(ref)(pixel_values=px, output_hidden_states=True)
    plain = m.forward(np.array(ROWS), images=px.numpy())
    logits, cache = m.run_with_cache(np.array(ROWS), images=px.numpy(),
                                     names=["vision.*", "hook_embed"])
    assert np.array_equal(logits, plain)
    assert list(cache) == names[:4]
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
    with m.hooks({"vision.*": lambda a, n: seen.append(n)}):
        assert np.array_equal(m.forward(np.array(ROWS), images=px), plain)
    assert seen == ["hook_embed", "vision.blocks.0.hook_resid_post", "vision.blocks.1.hook_resid_post",
                    "vision.hook_out"]


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
    assert m.hook_names()[:3] == ["vision.blocks.0.hook_resid_post", "vision.blocks.1.hook_resid_post",
                                  "vision.hook_out"]
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
