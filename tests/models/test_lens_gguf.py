"""model.W_E / W_Q / W_K / W_V from a quantized GGUF file (the default model, Gemma 3 270M
Q4_K_M: Q8_0 embedding, Q5_0/Q4_K/Q6_K attention matrices, dequantized): the activations they
predict equal the forward's hook points (hook_q/hook_k/hook_v from ln1.hook_normalized,
hook_embed from the tokens), which checks the GGUF names and layouts as TransformerLens shapes
them. Also the token helpers on a real tokenizer."""
import numpy as np
import pytest

import gemmacpp as gc


@pytest.fixture(scope="module")
def model():
    try:
        return gc.load()
    except ImportError:
        pytest.skip("the default model is not installed (the model extra)")


def test_attention_matrices_predict_the_hook_points(model):
    toks = model.to_tokens("The capital of France is a city called")
    _, cache = model.run_with_cache(toks)
    group = model.cfg.n_heads // model.cfg.n_key_value_heads
    for layer in (0, model.cfg.n_layers - 1):
        x = cache[f"blocks.{layer}.ln1.hook_normalized"][0].astype(np.float64)
        for attr, point in (("W_Q", "hook_q"), ("W_K", "hook_k"), ("W_V", "hook_v")):
            w = getattr(model, attr)
            assert w.dtype == np.float32 and w.shape[:2] == (model.cfg.n_layers, model.cfg.n_heads)
            got = np.einsum("td,hde->the", x, w[layer].astype(np.float64))
            if attr != "W_Q":
                got = got[:, ::group]  # the repeated key/value heads, once each
            ref = cache[f"blocks.{layer}.attn.{point}"][0]
            assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max(), (layer, attr)
    np.testing.assert_allclose(model.W_E[toks[0]], cache["hook_embed"][0], rtol=1e-6, atol=1e-6)
    assert model.W_O.shape == (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head, model.cfg.d_model)
    assert model.W_U.shape == (model.cfg.d_model, model.cfg.d_vocab)


def test_token_helpers(model):
    text = "The capital of France is"
    toks = model.to_tokens(text)
    assert toks.dtype == np.int64 and toks.shape[0] == 1 and toks[0, 0] == model.tokenizer.bos_id
    assert model.to_string(toks[0]) == "<bos>" + text
    assert model.to_str_tokens(text) == ["<bos>", "The", " capital", " of", " France", " is"]
    assert model.to_str_tokens(toks) == model.to_str_tokens(text)
    assert model.to_tokens(text, prepend_bos=False)[0, 0] != model.tokenizer.bos_id
    batch = model.to_tokens(["a", "The capital of France"])
    assert batch.shape[0] == 2 and batch[0, 2] == model.tokenizer.pad_id
    assert model.to_single_token(" Paris") == model.tokenizer.encode(" Paris", add_bos=False)[0]
    with pytest.raises(ValueError, match="not one"):
        model.to_single_token(" Paris is nice")
