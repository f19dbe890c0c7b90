"""EmbeddingGemma against sentence-transformers and transformers on small random checkpoints saved as
sentence-transformers folders: Gemma 3 run bidirectionally (sliding layers see |i - j| <= W / 2,
full layers everything), mean pooling, dense layers, L2 norm; prompts from the checkpoint,
Matryoshka truncation, ragged batches from 1 to 300 tokens (past the window), the hooks, GGUF.

Two pipelines: "eg" as EmbeddingGemma ships (<bos> ... <eos>, two bias-free identity dense layers,
Normalize, prompts pooled), and "other" with what sentence-transformers allows besides (a <bos>
only tokenizer, one dense layer with bias and tanh, no Normalize, prompts left out of the pooling,
max_seq_length 40 so that long texts are truncated).
"""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
st_models = pytest.importorskip("sentence_transformers.sentence_transformer.modules")
SentenceTransformer = pytest.importorskip("sentence_transformers").SentenceTransformer

import gemmacpp as gc  # noqa: E402
import tiny_lm  # noqa: E402

REL_TOL = 1e-4
LAYER_TYPES = ["sliding_attention", "sliding_attention", "full_attention",
               "sliding_attention", "sliding_attention", "full_attention"]
PROMPTS = {"query": "task: search result | query: ", "document": "title: none | text: ",
           "Clustering": "task: clustering | query: "}
WORDS = ("the cat sat on a mat while an old dog slept in the sun and birds sang songs of the river "
         "city market bread salt grain wool learning library").split()


def texts(n, seed, lengths=(1, 300)):
    """n texts of about lengths[0]..lengths[1] tokens (the tiny tokenizer spells most words in a
    few pieces), of random words; the first is the shortest possible, the last the longest."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        target = lengths[0] if i == 0 else lengths[1] if i == n - 1 else int(rng.integers(*lengths))
        words = []
        while sum(len(w) + 1 for w in words) < target:
            words.append(str(rng.choice(WORDS)))
        out.append(" ".join(words)[:max(1, target)])
    return out


def build(kind, folder):
    """A random EmbeddingGemma-shaped sentence-transformers folder; returns (folder, SentenceTransformer)."""
    torch.manual_seed(len(kind))
    cfg = transformers.Gemma3TextConfig(
        vocab_size=tiny_lm.VOCAB_SIZE, hidden_size=48, intermediate_size=64, num_hidden_layers=6,
        num_attention_heads=3, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
        sliding_window=8, use_bidirectional_attention=True, layer_types=LAYER_TYPES,
        max_position_embeddings=512, attn_implementation="eager")
    model = transformers.Gemma3TextModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(-0.6, 0.6)
    hf = os.path.join(folder, "hf")
    model.save_pretrained(hf)
    tj = tiny_lm.tokenizer_json()
    if kind == "eg":  # EmbeddingGemma's tokenizer: <bos> text <eos>
        tj["post_processor"]["single"].append({"SpecialToken": {"id": "<eos>", "type_id": 0}})
        tj["post_processor"]["special_tokens"]["<eos>"] = {"id": "<eos>", "ids": [1], "tokens": ["<eos>"]}
    with open(os.path.join(hf, "tokenizer.json"), "w") as f:
        json.dump(tj, f)
    d = cfg.hidden_size
    if kind == "eg":
        pooling = st_models.Pooling(d, pooling_mode="mean")
        heads = [st_models.Dense(d, 4 * d, bias=False, activation_function=torch.nn.Identity()),
                 st_models.Dense(4 * d, d, bias=False, activation_function=torch.nn.Identity()),
                 st_models.Normalize()]
    else:
        pooling = st_models.Pooling(d, pooling_mode="mean", include_prompt=False)
        heads = [st_models.Dense(d, 24, bias=True, activation_function=torch.nn.Tanh())]
    with torch.no_grad():
        for h in heads:
            if isinstance(h, st_models.Dense):
                h.linear.weight.normal_(0, 0.3)
                if h.linear.bias is not None:
                    h.linear.bias.normal_(0, 0.3)
    transformer = st_models.Transformer(hf, max_seq_length=None if kind == "eg" else 40)
    st = SentenceTransformer(modules=[transformer, pooling, *heads], prompts=PROMPTS)
    out = os.path.join(folder, "st")
    st.save(out)
    return out, SentenceTransformer(out)


@pytest.fixture(scope="module", params=["eg", "other"])
def pipeline(request, tmp_path_factory):
    folder, st = build(request.param, str(tmp_path_factory.mktemp(request.param)))
    return request.param, folder, st


def rel_err(got, want):
    return float(np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)))


def test_loads_as_an_embedding_model(pipeline):
    kind, folder, st = pipeline
    m = gc.load(folder)
    assert isinstance(m, gc.EmbeddingModel)
    assert m.dimension == (48 if kind == "eg" else 24)
    assert m.prompts == PROMPTS and m.similarity_fn_name == "cosine"
    assert m.max_seq_length == st.max_seq_length
    c = m.config
    assert c["bidirectional"] and c["family"] == "gemma3"
    # The config's sliding_window 8 is a width: a radius of 4.
    assert [l["window"] for l in c["layers"]] == [4 if t == "sliding_attention" else None for t in LAYER_TYPES]


@pytest.mark.parametrize("task", [None, "query", "document", "Clustering"])
def test_embeddings_match_sentence_transformers(pipeline, task):
    kind, folder, st = pipeline
    m = gc.load(folder)
    batch = texts(9, seed=len(task or ""))
    dims = [None, 32, 16] if kind == "eg" else [None, 16]
    for dim in dims:
        got = m.embed(batch, task=task, dim=dim, batch_size=4)
        want = st.encode(batch, prompt_name=task, truncate_dim=dim, normalize_embeddings=True)
        assert got.shape == want.shape and got.dtype == np.float32
        assert rel_err(got, want) < REL_TOL, (task, dim)
        cos = np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        assert np.max(1 - cos) < 1e-5, (task, dim)
    # Without the final re-normalisation: the pipeline's own output (no Normalize module in "other").
    got = m.embed(batch, task=task, normalize=False)
    want = st.encode(batch, prompt_name=task)
    assert rel_err(got, want) < REL_TOL


def test_long_texts_are_truncated_as_sentence_transformers_does(pipeline):
    kind, folder, st = pipeline
    m = gc.load(folder)
    long = texts(3, seed=3, lengths=(200, 400))
    ids = m.tokenize(long)[0]
    assert ids.shape[1] == min(st.max_seq_length, max(len(st.tokenizer(t)["input_ids"]) for t in long))
    assert rel_err(m.embed(long), st.encode(long, normalize_embeddings=True)) < REL_TOL


def test_per_token_hidden_states_match_transformers(pipeline):
    """ln_final.hook_normalized is the encoder's last hidden state, token by token, in a ragged
    batch (transformers' Gemma3TextModel with an attention mask, right-padded)."""
    kind, folder, _ = pipeline
    m = gc.load(folder)
    hf = transformers.AutoModel.from_pretrained(os.path.join(os.path.dirname(folder), "hf"),
                                                attn_implementation="eager").eval()
    tokens, lengths, _ = m.tokenize(texts(5, seed=7, lengths=(1, 60)), task="query")
    _, acts = m.run_with_cache(tokens, lengths=lengths, names=["ln_final.hook_normalized", "hook_embed"])
    mask = np.arange(tokens.shape[1])[None, :] < np.array(lengths)[:, None]
    with torch.no_grad():
        want = hf(torch.from_numpy(tokens), attention_mask=torch.from_numpy(mask.astype(np.int64)))
    got = acts["ln_final.hook_normalized"]
    assert got.shape == tuple(want.last_hidden_state.shape)
    ref = want.last_hidden_state.double().numpy()
    assert rel_err(got[mask], ref[mask]) < REL_TOL
    assert np.all(got[~mask] == 0)  # padding rows of a hook's view are zero


def test_head_hooks_match_the_pipeline_modules(pipeline):
    kind, folder, st = pipeline
    m = gc.load(folder)
    batch = texts(4, seed=11, lengths=(3, 30))
    tokens, lengths, skip = m.tokenize(batch, task="document")
    names = ["hook_pooled"] + [n for n in m.hook_names() if n.startswith("dense.")] + ["hook_embedding"]
    out, acts = m.run_with_cache(tokens, lengths=lengths, pool_skip=skip, names=names)
    np.testing.assert_array_equal(acts["hook_embedding"], out)
    feats = st.preprocess(batch, prompt=PROMPTS["document"])
    with torch.no_grad():
        f = dict(feats)
        stages = []
        for module in st:
            f = module(f)
            if "sentence_embedding" in f:
                stages.append(f["sentence_embedding"].double().numpy())
    # Pooling, each Dense, and (eg) Normalize: the head's hook points in order.
    for name, want in zip(names, stages):
        assert rel_err(acts[name], want) < REL_TOL, name
    assert len(stages) == len(names) - (0 if kind == "eg" else 1)


def test_hook_edit_changes_the_embedding(pipeline):
    _, folder, _ = pipeline
    m = gc.load(folder)
    batch = texts(3, seed=5, lengths=(5, 20))
    plain = m.embed(batch)
    with m.hooks({"hook_pooled": lambda a, n: a * np.float32(-1)}):
        flipped = m.embed(batch)
    assert not np.allclose(plain, flipped)
    np.testing.assert_array_equal(m.embed(batch), plain)


def test_same_bits_for_any_thread_count(pipeline):
    _, folder, _ = pipeline
    m = gc.load(folder)
    batch = texts(6, seed=9)
    before = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        one = m.embed(batch, task="query")
        gc.set_num_threads(2)
        two = m.embed(batch, task="query")
    finally:
        gc.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_encode_alias_and_similarity(pipeline):
    kind, folder, st = pipeline
    m = gc.load(folder)
    batch = texts(4, seed=13, lengths=(5, 40))
    got = m.encode(batch, prompt_name="query", truncate_dim=16, normalize_embeddings=True)
    want = st.encode(batch, prompt_name="query", truncate_dim=16, normalize_embeddings=True)
    assert rel_err(got, want) < REL_TOL
    one = m.encode(batch[0])
    assert one.shape == (m.dimension,)
    sim = m.similarity(got, got[:2])
    assert sim.shape == (4, 2)
    np.testing.assert_allclose(sim, st.similarity(got, got[:2]).numpy(), atol=1e-6)
    np.testing.assert_allclose(gc.cosine_similarity(got, got[:2]), sim, atol=1e-6)


def test_bad_input_is_named(pipeline):
    _, folder, _ = pipeline
    m = gc.load(folder)
    with pytest.raises(ValueError, match="texts is empty"):
        m.embed([])
    with pytest.raises(ValueError, match="text 1 is empty"):
        m.embed(["a", ""])
    with pytest.raises(TypeError, match="text 0 is a int"):
        m.embed([3])
    with pytest.raises(ValueError, match="'STS' is not one of this checkpoint's prompts"):
        m.embed(["a"], task="STS")
    with pytest.raises(ValueError, match=r"dim must be in \[1,"):
        m.embed(["a"], dim=m.dimension + 1)
    with pytest.raises(ValueError, match=r"dim must be in \[1,"):
        m.embed(["a"], dim=0)
    with pytest.raises(ValueError, match="batch_size"):
        m.embed(["a"], batch_size=0)
    with pytest.raises(ValueError, match="task .* or prompt"):
        m.embed(["a"], task="query", prompt="x: ")
    with pytest.raises(ValueError, match="pool_skip"):
        m.forward([[2, 5, 6]], pool_skip=[1, 2])


def write_gguf(folder, path):
    """The "eg" pipeline as llama.cpp's converter writes a gemma-embedding file: Gemma 3 tensors
    with norms stored as 1 + w, dense_2 and dense_3, the sliding window as the config states it."""
    gguf = pytest.importorskip("gguf")
    from safetensors.numpy import load_file
    hf = os.path.join(os.path.dirname(folder), "hf")
    with open(os.path.join(hf, "config.json")) as f:
        cfg = json.load(f)
    arch = gguf.MODEL_ARCH.GEMMA_EMBEDDING
    w = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[arch])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_parameters"]["full_attention"]["rope_theta"])
    w.add_rope_freq_base_swa(cfg["rope_parameters"]["sliding_attention"]["rope_theta"])
    w.add_sliding_window(cfg["sliding_window"])
    w.add_sliding_window_pattern([t == "sliding_attention" for t in cfg["layer_types"]])
    names = gguf.get_tensor_name_map(arch, cfg["num_hidden_layers"])
    for hf_name, t in load_file(os.path.join(hf, "model.safetensors")).items():
        name = names.get_name(hf_name, try_suffixes=(".weight",))
        assert name is not None, hf_name
        w.add_tensor(name, t + 1 if name.endswith("norm.weight") else t)
    for i, sub in ((2, "2_Dense"), (3, "3_Dense")):
        w.add_tensor(f"dense_{i}.weight", load_file(os.path.join(folder, sub, "model.safetensors"))["linear.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_gemma_embedding_file(pipeline, tmp_path):
    kind, folder, _ = pipeline
    if kind != "eg":
        pytest.skip("the GGUF format holds EmbeddingGemma's own pipeline")
    path = str(tmp_path / "eg.gguf")
    write_gguf(folder, path)
    g, m = gc.load(path), gc.load(folder)
    assert isinstance(g, gc.EmbeddingModel) and g.dimension == m.dimension
    assert [l["window"] for l in g.config["layers"]] == [l["window"] for l in m.config["layers"]]
    tokens, lengths, _ = m.tokenize(texts(5, seed=17), task="query")
    assert rel_err(g.forward(tokens, lengths=lengths), m.forward(tokens, lengths=lengths)) < REL_TOL


REAL = os.environ.get("GEMMACPP_EMBEDDINGGEMMA")


@pytest.mark.skipif(not REAL, reason="set GEMMACPP_EMBEDDINGGEMMA to an embeddinggemma-300m folder")
def test_real_embeddinggemma_matches_sentence_transformers():
    m, st = gc.load(REAL), SentenceTransformer(REAL)
    batch = ["Which planet is known as the Red Planet?",
             "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
             "Venus is often called Earth's twin because of its similar size."]
    for task, dim in (("query", None), ("document", 256), ("STS", 128)):
        got = m.embed(batch, task=task, dim=dim)
        assert rel_err(got, st.encode(batch, prompt_name=task, truncate_dim=dim, normalize_embeddings=True)) < REL_TOL
