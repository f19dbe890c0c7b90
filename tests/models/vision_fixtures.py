"""The small random vision-language checkpoints the vision tests share (test_gemma3_vision.py,
test_paligemma.py, test_siglip.py, test_vision_hooks.py), written once so that every test runs on
the same models: a bare SigLIP tower, Gemma 3 with images, PaliGemma 1 and 2. Each build_* saves
the transformers model with save_pretrained and returns (folder, model), the model being the
reference; conftest.py makes them the fixtures siglip, gemma3, paligemma and paligemma2.

Needs torch and transformers: test modules import it after pytest.importorskip of both."""
import numpy as np
import torch
import transformers

import gemmacpp as gc

REL_TOL = 1e-4
BOI, EOI, IMG = 297, 298, 299
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              image_size=28, patch_size=7)
# Two Gemma 3 rows with image blocks: two images in row 0, one in row 1.
ROWS = [[2, 10, BOI, IMG, IMG, IMG, IMG, EOI, 11, 12, BOI, IMG, IMG, IMG, IMG, EOI, 13],
        [2, BOI, IMG, IMG, IMG, IMG, EOI, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29]]
PALIGEMMA_TEXT = {
    "paligemma1": dict(model_type="gemma", vocab_size=300, hidden_size=64, intermediate_size=96,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                       initializer_range=0.15),
    # sliding windows shorter than the 21-token prefix
    "paligemma2": dict(model_type="gemma2", vocab_size=300, hidden_size=64, intermediate_size=96,
                       num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                       query_pre_attn_scalar=16, sliding_window=5, attn_logit_softcapping=20.0,
                       final_logit_softcapping=10.0, initializer_range=0.15),
}


def rel_err(a, b):
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def pixels(n, seed, size=28):
    """n random images [n, 3, size, size] in [-1, 1) (already preprocessed)."""
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def assert_soft_tokens_match(checkpoint, px, shape):
    """encode_image gives the checkpoint's soft tokens (transformers' projected image features),
    of this shape [N, tokens per image, d]."""
    folder, ref = checkpoint
    with torch.no_grad():
        want = ref.model.get_image_features(px).pooler_output.double().numpy()
    got = gc.load(folder).encode_image(px.numpy(), preprocess=False)
    assert got.shape == shape
    assert rel_err(got, want) < REL_TOL


def randomize_norms(model, seed, match=("norm",), scale=0.3, layer_norm=False):
    """Norm weights (and biases) are 0 or 1 at init: make them random so that their binding and
    their use are tested. layer_norm: weights around 1 and biases around 0 (LayerNorm)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(m in name for m in match):
                value = torch.randn(p.shape, generator=g) * scale
                if layer_norm:
                    value = value + (1.0 if name.endswith("weight") else 0.0)
                p.copy_(value)


def save(model, tmp_path_factory, name):
    folder = tmp_path_factory.mktemp(name)
    model.save_pretrained(folder)
    return str(folder), model


def build_siglip(tmp_path_factory):
    """A bare SiglipVisionModel: 25 patches of 48 channels, random LayerNorms."""
    torch.manual_seed(0)
    cfg = transformers.SiglipVisionConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                                          num_attention_heads=4, image_size=35, patch_size=7,
                                          layer_norm_eps=1e-5)
    model = transformers.SiglipVisionModel(cfg).eval()
    randomize_norms(model, 1, match=("layer_norm", "layernorm"), layer_norm=True)
    return save(model, tmp_path_factory, "siglip")


def build_gemma3(tmp_path_factory):
    """Gemma3ForConditionalGeneration: 4 soft tokens per image, sliding windows (3) shorter than
    an image block."""
    torch.manual_seed(0)
    text = transformers.Gemma3TextConfig(
        vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16,
        sliding_window=3, layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        initializer_range=0.15)
    cfg = transformers.Gemma3Config(text_config=text.to_dict(), vision_config=VISION,
                                    mm_tokens_per_image=4, image_token_index=IMG,
                                    boi_token_index=BOI, eoi_token_index=EOI)
    cfg._attn_implementation = "eager"
    model = transformers.Gemma3ForConditionalGeneration(cfg).eval()
    # the projector starts at zero: make every piece matter
    randomize_norms(model, 1, match=("multi_modal_projector", "norm"))
    return save(model, tmp_path_factory, "gemma3_vision")


def build_paligemma(tmp_path_factory, name):
    """PaliGemmaForConditionalGeneration with the text model PALIGEMMA_TEXT[name]."""
    torch.manual_seed(0)
    cfg = transformers.PaliGemmaConfig(text_config=PALIGEMMA_TEXT[name], vision_config=VISION,
                                       image_token_index=IMG, projection_dim=64)
    cfg._attn_implementation = "eager"
    model = transformers.PaliGemmaForConditionalGeneration(cfg).eval()
    randomize_norms(model, 1)
    return save(model, tmp_path_factory, name)
