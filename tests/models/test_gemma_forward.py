"""Gemma 1/2/3 forward against Hugging Face transformers on small random models.

Each configuration exercises features of its generation: MHA, MQA and GQA; head_dim != d / H;
query_pre_attn_scalar != head_dim; sliding windows shorter than the sequence; attention and final
softcaps; Gemma 3's layer pattern with dual RoPE bases and linear scaling on global layers; QK-norm;
and random (non-zero, non-one) norm weights. Checkpoints are written with save_pretrained
(safetensors) and read back by gc.load; logits must agree within 1e-4 of max |logit|.
"""
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import gemmacpp as gc

SEQ = 29
BATCH = 2
REL_TOL = 1e-4

COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=48, rms_norm_eps=1e-6,
              initializer_range=0.15, attn_implementation="eager")

CONFIGS = {
    "gemma1-mha": ("GemmaConfig", "GemmaForCausalLM",
                   dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, head_dim=16)),
    "gemma1-mqa": ("GemmaConfig", "GemmaForCausalLM",
                   dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, head_dim=8,
                        rope_parameters={"rope_type": "default", "rope_theta": 500.0})),
    "gemma2-gqa": ("Gemma2Config", "Gemma2ForCausalLM",
                   dict(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=12,
                        query_pre_attn_scalar=20, sliding_window=7, attn_logit_softcapping=3.0,
                        final_logit_softcapping=4.0)),
    "gemma2-mqa": ("Gemma2Config", "Gemma2ForCausalLM",
                   dict(num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                        query_pre_attn_scalar=32, sliding_window=5, attn_logit_softcapping=50.0,
                        final_logit_softcapping=30.0)),
    "gemma3-gqa": ("Gemma3TextConfig", "Gemma3ForCausalLM",
                   dict(num_hidden_layers=5, num_attention_heads=4, num_key_value_heads=2, head_dim=12,
                        query_pre_attn_scalar=24, sliding_window=6,
                        layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                     "sliding_attention", "full_attention"],
                        rope_parameters={
                            "sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
                            "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 5000.0}})),
    "gemma3-mqa": ("Gemma3TextConfig", "Gemma3ForCausalLM",
                   dict(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                        query_pre_attn_scalar=16, sliding_window=9, final_logit_softcapping=6.0,
                        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                        rope_parameters={
                            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6}})),
}


def build(name, tmp_path_factory):
    """A random float32 HF model saved as safetensors; returns (folder, model)."""
    config_cls, model_cls, extra = CONFIGS[name]
    cfg = getattr(transformers, config_cls)(**COMMON, **extra)
    torch.manual_seed(sum(map(ord, name)))
    model = getattr(transformers, model_cls)(cfg).eval().to(torch.float32)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:  # HF initialises norms to zero (1 + w) or one: make them matter
                p.uniform_(-0.6, 0.6)
    folder = tmp_path_factory.mktemp(name)
    model.save_pretrained(folder, safe_serialization=True)
    return str(folder), model


@pytest.fixture(scope="module", params=list(CONFIGS))
def checkpoint(request, tmp_path_factory):
    folder, model = build(request.param, tmp_path_factory)
    return request.param, folder, model


def tokens_for(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    return rng.integers(0, COMMON["vocab_size"], size=(BATCH, SEQ))


def reference_logits(model, tokens):
    with torch.no_grad():
        return model(torch.from_numpy(tokens)).logits.double().numpy()


def rel_err(got, ref):
    return float(np.max(np.abs(got.astype(np.float64) - ref)) / np.max(np.abs(ref)))


def assert_forward_matches(name, m, tokens, ref, vocab):
    """m.forward(tokens) is float32 [B, T, vocab] within REL_TOL of ref (also used by
    test_griffin.py), and one sequence passed as a plain list gives the same rows as the batch."""
    got = m.forward(tokens)
    assert got.dtype == np.float32 and got.shape == (*tokens.shape, vocab)
    err = rel_err(got, ref)
    print(f"{name}: max rel err {err:.2e}")
    assert err <= REL_TOL, f"{name}: max abs err / max |ref| = {err:.3g}"
    one = m.forward(tokens[1].tolist())
    np.testing.assert_array_equal(one[0], got[1])


def test_logits_match_transformers(checkpoint):
    name, folder, model = checkpoint
    tokens = tokens_for(name)
    ref = reference_logits(model, tokens)
    assert_forward_matches(name, gc.load(folder), tokens, ref, COMMON["vocab_size"])


def test_config_is_read(checkpoint):
    name, folder, model = checkpoint
    c = gc.load(folder).config
    hf = model.config
    assert c["family"] == {"GemmaConfig": "gemma", "Gemma2Config": "gemma2",
                           "Gemma3TextConfig": "gemma3"}[type(hf).__name__]
    assert (c["num_layers"], c["num_heads"], c["num_kv_heads"], c["head_dim"]) == (
        hf.num_hidden_layers, hf.num_attention_heads, hf.num_key_value_heads, hf.head_dim)
    types = getattr(hf, "layer_types", None) or ["full_attention"] * hf.num_hidden_layers
    assert [l["type"] for l in c["layers"]] == ["local" if t == "sliding_attention" else "global" for t in types]
    for l in c["layers"]:
        assert (l["window"] is None) == (l["type"] == "global")
        if l["window"] is not None:
            assert l["window"] == hf.sliding_window
    rp = hf.rope_parameters
    if c["family"] == "gemma3":
        for l in c["layers"]:
            p = rp["sliding_attention" if l["type"] == "local" else "full_attention"]
            assert l["rope_base"] == p["rope_theta"]
            assert l["rope_scale"] == p.get("factor", 1.0)


def test_multimodal_gemma3_config_uses_text_config(tmp_path_factory):
    """model_type gemma3 (the multimodal wrapper) nests the text model's config."""
    folder, model = build("gemma3-gqa", tmp_path_factory)
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        text = json.load(f)
    with open(path, "w") as f:
        json.dump({"model_type": "gemma3", "text_config": text}, f)
    tokens = tokens_for("gemma3-gqa")
    assert rel_err(gc.load(folder).forward(tokens), reference_logits(model, tokens)) <= REL_TOL


def test_bad_tokens(tmp_path_factory):
    folder, _ = build("gemma1-mqa", tmp_path_factory)
    m = gc.load(folder)
    with pytest.raises(ValueError, match="96"):
        m.forward([[1, 2, 96]])
    with pytest.raises(ValueError, match="-1"):
        m.forward(np.array([3, -1]))
    with pytest.raises(ValueError, match="96"):
        m.forward([[1, 2], [96]])  # ragged rows are checked too
    with pytest.raises(ValueError, match="lengths"):
        m.forward(np.array([[1, 2], [3, 4]]), lengths=[1])
    with pytest.raises(ValueError, match="lengths"):
        m.forward(np.array([[1, 2], [3, 4]]), lengths=[1, 3])
    with pytest.raises(ValueError):
        m.forward([])
    with pytest.raises(TypeError):
        m.forward([0.5, 1.0])


def test_missing_checkpoint_and_config(tmp_path):
    with pytest.raises(FileNotFoundError):
        gc.load(tmp_path / "nope")
    with pytest.raises(ValueError, match="config.json"):
        gc.load(tmp_path)


@pytest.mark.parametrize("name", ["gemma2-gqa", "gemma3-gqa"])
def test_bfloat16_sharded_checkpoint(name, tmp_path_factory):
    """Weights stored as bfloat16 across several shards (as released checkpoints are) are read in
    place; the reference runs in float32 on the same bf16-rounded weights."""
    folder, model = build(name, tmp_path_factory)
    model = model.to(torch.bfloat16)
    sharded = tmp_path_factory.mktemp(name + "-bf16")
    model.save_pretrained(sharded, safe_serialization=True, max_shard_size="20KB")
    assert (sharded / "model.safetensors.index.json").exists()
    tokens = tokens_for(name)
    # A fresh float32 model from the bf16 files: casting the bf16 model back would keep its
    # bf16-rounded RoPE frequencies.
    f32 = transformers.AutoModelForCausalLM.from_pretrained(sharded, dtype=torch.float32,
                                                            attn_implementation="eager").eval()
    ref = reference_logits(f32, tokens)
    assert rel_err(gc.load(sharded).forward(tokens), ref) <= REL_TOL
    assert gc.weights.open(sharded).info("model.embed_tokens.weight").type == "bfloat16"


def test_single_file_and_thread_count(tmp_path_factory):
    """A .safetensors file next to its config.json loads like its folder; logits are bitwise the
    same for 1 and 2 threads."""
    folder, _ = build("gemma3-mqa", tmp_path_factory)
    tokens = tokens_for("gemma3-mqa")
    saved = gc.get_num_threads()
    try:
        one = gc.load(os.path.join(folder, "model.safetensors"), threads=1).forward(tokens)
        two = gc.load(folder, threads=2).forward(tokens)
    finally:
        gc.set_num_threads(saved)
    np.testing.assert_array_equal(one, two)
