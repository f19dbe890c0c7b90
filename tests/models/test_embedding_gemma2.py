"""EmbeddingGemma 2 against transformers' EmbeddingGemma2TextModel / EmbeddingGemma2Model and
sentence-transformers on small random checkpoints: the newer blocks (RMSNorm without the +1, q/k
norms and a weightless v norm with attention scale 1, global layers with their own head_dim and
key/value heads, a symmetric window given as a radius, projection-only per-layer inputs, a scalar
per layer, the per-token projection), every layer's output, ragged batches past the window."""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "EmbeddingGemma2TextModel"):
    pytest.skip("transformers has no EmbeddingGemma 2", allow_module_level=True)
st_models = pytest.importorskip("sentence_transformers.sentence_transformer.modules")
SentenceTransformer = pytest.importorskip("sentence_transformers").SentenceTransformer

import gemmacpp as gc  # noqa: E402
import tiny_lm  # noqa: E402
from test_embedding_gemma import PROMPTS, rel_err, texts  # noqa: E402

REL_TOL = 1e-4
LAYER_TYPES = ["sliding_attention", "sliding_attention", "full_attention"] * 2


def config(**extra):
    return transformers.EmbeddingGemma2TextConfig(
        vocab_size=tiny_lm.VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=6,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, global_head_dim=32,
        num_global_key_value_heads=1, hidden_size_per_layer_input=8, embedding_dim=24, sliding_window=3,
        layer_types=LAYER_TYPES, max_position_embeddings=512, attn_implementation="eager", **extra)


def randomize(model, seed):
    """Norm weights (ones at init) and the layer scalars (a buffer of ones): make them matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(model.named_buffers()):
            if "norm" in name or name.endswith("layer_scalar"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)


def save_tokenizer(folder):
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tiny_lm.tokenizer_json(), f)


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """(sentence-transformers folder, the HF text model, SentenceTransformer)."""
    torch.manual_seed(3)
    model = transformers.EmbeddingGemma2TextModel(config()).eval()
    randomize(model, 4)
    root = str(tmp_path_factory.mktemp("eg2"))
    hf = os.path.join(root, "hf")
    model.save_pretrained(hf)
    save_tokenizer(hf)
    tr = st_models.Transformer(hf)
    tr.tokenizer.pad_token = "<pad>"
    st = SentenceTransformer(modules=[tr, st_models.Pooling(24, "mean"), st_models.Normalize()], prompts=PROMPTS)
    st.save(os.path.join(root, "st"))
    st = SentenceTransformer(os.path.join(root, "st"))
    st.tokenizer.pad_token = "<pad>"
    return os.path.join(root, "st"), model, st


def test_config_is_read(text_model):
    folder, model, _ = text_model
    c = gc.load(folder).config
    assert c["family"] == "embedding_gemma2" and c["bidirectional"] and c["v_norm"] and c["layer_scalar"]
    assert (c["per_layer_input"], c["token_projection"]) == (8, 24)
    for l, t in zip(c["layers"], LAYER_TYPES):
        local = t == "sliding_attention"
        assert l["type"] == ("local" if local else "global")
        assert l["window"] == (3 if local else None)  # a radius: |i - j| <= 3
        assert (l["head_dim"], l["num_kv_heads"]) == ((16, 2) if local else (32, 1))


def test_every_layer_and_the_projection_match_transformers(text_model):
    folder, model, _ = text_model
    m = gc.load(folder)
    tokens, lengths, _ = m.tokenize(texts(5, seed=21, lengths=(1, 80)), task="query")
    mask = np.arange(tokens.shape[1])[None, :] < np.array(lengths)[:, None]
    _, acts = m.run_with_cache(tokens, lengths=lengths)
    with torch.no_grad():
        ref = model(torch.from_numpy(tokens), attention_mask=torch.from_numpy(mask.astype(np.int64)),
                    output_hidden_states=True)
    hidden = [h.double().numpy() for h in ref.hidden_states]
    assert rel_err(acts["hook_embed"][mask], hidden[0][mask]) < REL_TOL
    # hidden_states[i + 1] is layer i's output; transformers puts the model's output in the last.
    for i in range(5):
        assert rel_err(acts[f"blocks.{i}.hook_resid_post"][mask], hidden[i + 1][mask]) < REL_TOL, i
    got = acts["hook_projected"]
    assert got.shape == tuple(ref.last_hidden_state.shape)
    assert rel_err(got[mask], ref.last_hidden_state.double().numpy()[mask]) < REL_TOL
    # The per-layer inputs: RMSNorm_P(W x / sqrt(d)), [B, T, L, P].
    with torch.no_grad():
        ple = model.ple(model.embed_tokens(torch.from_numpy(tokens))).double().numpy()
    assert rel_err(acts["hook_per_layer_input"][mask], ple[mask]) < REL_TOL


def test_embeddings_match_sentence_transformers(text_model):
    folder, _, st = text_model
    m = gc.load(folder)
    batch = texts(7, seed=23)
    for task, dim in ((None, None), ("query", 16), ("document", 8)):
        got = m.embed(batch, task=task, dim=dim, batch_size=3)
        want = st.encode(batch, prompt_name=task, truncate_dim=dim, normalize_embeddings=True)
        assert rel_err(got, want) < REL_TOL, (task, dim)


def test_hooks_edit_the_per_layer_inputs(text_model):
    folder, model, _ = text_model
    m = gc.load(folder)
    batch = texts(3, seed=25, lengths=(4, 30))
    plain = m.embed(batch)
    with m.hooks({"blocks.2.ple.hook_gate": lambda a, n: np.zeros_like(a)}):
        zeroed = m.embed(batch)
    assert not np.allclose(plain, zeroed)
    np.testing.assert_array_equal(m.embed(batch), plain)


def test_multimodal_checkpoint_text_part(tmp_path):
    """An EmbeddingGemma2Model folder (its text model under language_model.) loads as the
    encoder; without sentence-transformers modules the vector is the mean of the projected tokens."""
    torch.manual_seed(5)
    model = transformers.EmbeddingGemma2Model(transformers.EmbeddingGemma2Config(
        text_config=config().to_dict())).eval()
    randomize(model, 6)
    model.config._attn_implementation = "eager"
    model.save_pretrained(tmp_path)
    save_tokenizer(tmp_path)
    m = gc.load(str(tmp_path))
    tokens = np.array([[2] + list(range(5, 40)), [2] + list(range(40, 75))], np.int64)
    with torch.no_grad():
        ref = model(input_ids=torch.from_numpy(tokens)).last_hidden_state.double().numpy()
    assert rel_err(m.forward(tokens), ref.mean(axis=1)) < REL_TOL
