"""PaliGemma 1 (Gemma) and 2 (Gemma 2, sliding windows shorter than the prefix) against
transformers on small random checkpoints: soft tokens, prefix-LM logits (image + prefix
bidirectional, suffix causal), positions from 1."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import gemmacpp as gc

REL_TOL = 1e-4
IMG = 299
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              image_size=28, patch_size=7)
TEXT = {
    "paligemma1": dict(model_type="gemma", vocab_size=300, hidden_size=64, intermediate_size=96,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                       initializer_range=0.15),
    "paligemma2": dict(model_type="gemma2", vocab_size=300, hidden_size=64, intermediate_size=96,
                       num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                       query_pre_attn_scalar=16, sliding_window=5, attn_logit_softcapping=20.0,
                       final_logit_softcapping=10.0, initializer_range=0.15),
}


def rel_err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module", params=sorted(TEXT))
def paligemma(request, tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.PaliGemmaConfig(text_config=TEXT[request.param], vision_config=VISION,
                                       image_token_index=IMG, projection_dim=64)
    cfg._attn_implementation = "eager"
    model = transformers.PaliGemmaForConditionalGeneration(cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return str(folder), model


def pixels(n, seed):
    return torch.rand(n, 3, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


PREFIX = [IMG] * 16 + [2, 10, 11, 12, 108]   # image tokens, BOS, prompt, "\n"
SUFFIX = [20, 21, 22, 23, 1]


def hf_logits(model, ids, types, px):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), pixel_values=px,
                     token_type_ids=torch.tensor([types])).logits.double().numpy()


def test_soft_tokens_match(paligemma):
    folder, ref = paligemma
    m = gc.load(folder)
    px = pixels(2, 3)
    with torch.no_grad():
        want = ref.model.get_image_features(px).pooler_output.double().numpy()
    got = m.encode_image(px.numpy(), preprocess=False)
    assert got.shape == (2, 16, 64)
    assert rel_err(got, want) < REL_TOL


def test_prefix_logits_match(paligemma):
    folder, ref = paligemma
    m = gc.load(folder)
    px = pixels(1, 4)
    got = m.forward(PREFIX, images=px.numpy())
    want = hf_logits(ref, PREFIX, [0] * len(PREFIX), px)
    assert rel_err(got, want) < REL_TOL
    # The prefix is bidirectional: a causal prefix would give other logits.
    causal = hf_logits(ref, PREFIX, [1] * len(PREFIX), px)
    assert rel_err(got, causal) > 100 * REL_TOL


def test_suffix_is_causal_after_the_prefix(paligemma):
    folder, ref = paligemma
    m = gc.load(folder)
    px = pixels(1, 5)
    cache = m.new_cache(1, 64)
    m.forward(PREFIX, cache=cache, images=px.numpy())
    got = m.forward(SUFFIX, cache=cache)
    want = hf_logits(ref, PREFIX + SUFFIX, [0] * len(PREFIX) + [1] * len(SUFFIX), px)
    assert rel_err(got[0], want[0, len(PREFIX):]) < REL_TOL


def test_prompt_layout(paligemma):
    folder, _ = paligemma
    m = gc.load(folder)
    assert m._images.expand_prompt([2, 10, 11], 1) == [IMG] * 16 + [2, 10, 11]
    with pytest.raises(ValueError, match="image tokens"):
        m.forward(PREFIX[4:], images=pixels(1, 6).numpy())
