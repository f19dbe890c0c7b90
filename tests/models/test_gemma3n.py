"""Gemma 3n text models against transformers (Gemma3nForCausalLM, float32, eager attention) on
small random configs: AltUp with 4, 3 and 2 streams, activation sparsity on some layers, the last
2 or 3 layers sharing the keys and values of earlier ones, per-layer MLP widths, windows shorter
than the sequence.

Logits and every hook point agree within 1e-4 of the largest value, for plain, ragged and cached
(token by token and chunked) runs; greedy generation equals the argmax of uncached forwards; the
cache holds the non-shared layers only; GGUF files written as llama.cpp's converter writes them
(F32, F16, Q8_0, Q4_K) give the same logits.
"""
import copy
import ctypes
import gc as gc_module
import mmap
import os
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "Gemma3nForCausalLM"):
    pytest.skip("transformers without Gemma 3n", allow_module_level=True)

import gemmacpp as gc
from gemmacpp.generate import generate_ids

from test_gemma_forward import rel_err
from test_hooks import assert_cache_matches, close

SEQ = 13
V = 128
S, F = "sliding_attention", "full_attention"
COMMON = dict(vocab_size=V, vocab_size_per_layer_input=V, hidden_size=32, num_hidden_layers=6, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, hidden_size_per_layer_input=8, laurel_rank=4, sliding_window=4,
              layer_types=[S, S, F, S, S, F], max_position_embeddings=64, initializer_range=0.15,
              attn_implementation="eager")
CONFIGS = {
    "altup4": dict(intermediate_size=64, altup_num_inputs=4, num_kv_shared_layers=2,
                   activation_sparsity_pattern=[0.95, 0.95, 0.0, 0.0, 0.0, 0.0]),
    "altup3": dict(intermediate_size=[64, 48, 64, 32, 64, 48], altup_num_inputs=3, num_kv_shared_layers=3,
                   activation_sparsity_pattern=[0.0, 0.8, 0.0, 0.3, 0.95, 0.0]),
    "altup2": dict(intermediate_size=48, altup_num_inputs=2, num_kv_shared_layers=2, num_key_value_heads=1,
                   activation_sparsity_pattern=[0.9, 0.0, 0.0, 0.0, 0.0, 0.6], altup_correct_scale=False),
}


def hf_model(name, **over):
    cfg = transformers.Gemma3nTextConfig(**{**COMMON, **CONFIGS[name], **over})
    torch.manual_seed(sum(map(ord, name)))
    model = transformers.Gemma3nForCausalLM(cfg).eval()
    with torch.no_grad():  # norms and scales are ones or zeros at initialisation: make them matter
        for pname, p in model.named_parameters():
            if p.ndim <= 1:
                p.uniform_(0.5, 1.5)
            elif "coefs" in pname:
                p.normal_(0, 0.5)
    return model


@pytest.fixture(scope="module", params=list(CONFIGS))
def pair(request, tmp_path_factory):
    model = hf_model(request.param)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return request.param, gc.load(str(folder)), model


def tokens(seed, batch=2, seq=SEQ):
    return np.random.default_rng(seed).integers(0, V, size=(batch, seq))


def reference(model, toks):
    with torch.no_grad():
        return model(torch.from_numpy(np.asarray(toks))).logits.double().numpy()


# ---- config --------------------------------------------------------------------------------

def test_config_is_read(pair):
    name, m, hf = pair
    c, h = m.config, hf.config
    assert c["family"] == "gemma3n" and c["num_layers"] == 6 and c["final_softcap"] == 30.0
    assert c["query_pre_attn_scalar"] == 1.0 and c["v_norm"] and not c["layer_scalar"]
    assert c["altup_streams"] == h.altup_num_inputs and c["altup_active"] == 0
    assert c["altup_correct_scale"] == h.altup_correct_scale and c["laurel_rank"] == 4
    assert c["per_layer_input"] == 8 and c["per_layer_vocab"] == V
    modes = h.kv_sharing_modes
    for i, layer in enumerate(c["layers"]):
        assert layer["type"] == ("local" if h.layer_types[i] == S else "global")
        assert layer["window"] == (4 if h.layer_types[i] == S else None)
        assert layer["intermediate_size"] == hf.model.layers[i].mlp.intermediate_size
        assert (layer["kv_source"] is not None) == (modes[i] == "reuse")
        p = h.activation_sparsity_pattern[i]
        if p > 0:
            z = torch.distributions.normal.Normal(0, 1).icdf(torch.tensor(p, dtype=torch.float32)).item()
            assert layer["gate_cutoff_z"] == pytest.approx(z, rel=1e-6)
        else:
            assert layer["gate_cutoff_z"] is None
    shared = [l["kv_source"] for l in c["layers"]]
    if name == "altup4":
        assert shared == [None, None, None, None, 3, 2]
    if name == "altup3":
        assert shared == [None, None, None, 1, 1, 2]


# ---- logits ---------------------------------------------------------------------------------

def test_logits_match_transformers(pair):
    name, m, hf = pair
    toks = tokens(1)
    got = m.forward(toks)
    close(got, reference(hf, toks), f"{name} logits")
    np.testing.assert_array_equal(m.forward(toks[1].tolist())[0], got[1])


def test_results_do_not_depend_on_the_thread_count(pair):
    _, m, _ = pair
    toks = tokens(11)
    before = gc.get_num_threads()
    try:
        gc.set_num_threads(1)
        one = m.forward(toks)
        gc.set_num_threads(2)
        two = m.forward(toks)
    finally:
        gc.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_ragged_batch_rows_equal_their_own_forwards(pair):
    name, m, hf = pair
    toks = tokens(2, batch=3)
    lengths = [SEQ, 5, 9]
    got = m.forward(toks, lengths=lengths)
    for b, n in enumerate(lengths):
        close(got[b, :n], reference(hf, toks[b:b + 1, :n])[0], f"{name} row {b}")
        assert not got[b, n:].any()


@pytest.mark.parametrize("chunks", [[1] * SEQ, [5, 1, 4, 3], [SEQ]])
def test_cached_forward_matches_the_full_one(pair, chunks):
    name, m, hf = pair
    toks = tokens(3)
    cache = m.new_cache(batch=2)
    pieces, pos = [], 0
    for n in chunks:
        pieces.append(m.forward(toks[:, pos:pos + n], cache=cache))
        pos += n
    close(np.concatenate(pieces, axis=1), reference(hf, toks), f"{name} cached {chunks}")


def test_cache_holds_only_the_layers_with_keys_of_their_own(pair):
    name, m, _ = pair
    cache = m.new_cache(batch=1, max_len=32)
    m.forward(tokens(4, batch=1, seq=SEQ), cache=cache)
    per_layer = cache.layer_nbytes()
    layers = m.config["layers"]
    assert sum(l["kv_source"] is not None for l in layers) >= 2
    for i, layer in enumerate(layers):
        if layer["kv_source"] is not None:
            assert per_layer[i] == 0
            continue
        rows = SEQ
        if layer["type"] == "local":  # a window buffer (csrc/nn/cache.h): a longer prefill keeps W - 1
            w = layer["window"]
            rows = SEQ if SEQ <= w - 1 + max(1, w // 4) else w - 1
        assert per_layer[i] == 2 * rows * layer["num_kv_heads"] * layer["head_dim"] * 4, (i, per_layer[i])
    assert cache.nbytes == sum(per_layer[i] for i, l in enumerate(layers) if l["kv_source"] is None)


def test_greedy_generation_equals_argmax_of_uncached_forwards(pair):
    name, m, _ = pair
    prompt = tokens(5, batch=1, seq=4)[0].tolist()
    got = list(generate_ids(m, prompt, max_new_tokens=10))
    seq = list(prompt)
    for _ in range(10):
        seq.append(int(np.argmax(m.forward(seq)[0, -1])))
    assert got == seq[len(prompt):]


# ---- hooks ----------------------------------------------------------------------------------

def streams(t):
    """transformers' stacked streams [N, B, T, d] as the hooks offer them, [B, T, N, d]."""
    return t.detach().double().permute(1, 2, 0, 3).numpy()


def hf_activations(hf, toks):
    """Every activation the hook names stand for, from the transformers model (float64 NumPy)."""
    H = hf.config.num_attention_heads
    acts, handles, patched = {}, [], []

    def keep(name, output=True, index=None, reshape=None):
        def hook(module, inputs, out):
            t = out if output else inputs[0]
            if index is not None:
                t = t[index]
            if reshape is not None:
                t = t.reshape(*toks.shape, *reshape)
            acts[name] = t.detach().double().numpy()
        return hook

    def on(module, name, **kw):
        handles.append(module.register_forward_hook(keep(name, **kw)))

    def wrap(obj, method, name, convert):
        original = getattr(obj, method)

        def wrapped(*args, **kwargs):
            out = original(*args, **kwargs)
            acts[name] = convert(out)  # a copy: transformers edits the corrected streams in place
            return out
        setattr(obj, method, wrapped)
        patched.append((obj, method))

    for i, layer in enumerate(hf.model.layers):
        p, a = f"blocks.{i}.", layer.self_attn

        def pre(mod, args, i=i):
            acts[f"blocks.{i}.hook_resid_pre"] = args[0][0].double().numpy()
            acts[f"blocks.{i}.hook_per_layer_input"] = args[2].double().numpy()
            if i == 0:
                acts["altup.hook_streams"] = streams(args[0])
        handles.append(layer.register_forward_pre_hook(pre))
        on(layer, p + "hook_resid_post", index=0)
        handles.append(layer.register_forward_hook(
            lambda mod, inp, out, i=i: acts.__setitem__(f"final_streams_{i}", out.detach().double().numpy())))
        wrap(layer.altup, "predict", p + "altup.hook_predicted", streams)
        wrap(layer.altup, "correct", p + "altup.hook_corrected", streams)
        on(layer.input_layernorm, p + "ln1.hook_normalized")
        on(layer.laurel, p + "laurel.hook_out")
        on(a.q_proj, p + "attn.hook_q", reshape=(H, a.head_dim))  # TransformerLens: before the norm
        on(a.q_norm, p + "attn.hook_q_normed")
        if not a.is_kv_shared_layer:
            on(a.k_proj, p + "attn.hook_k", reshape=(-1, a.head_dim))
            on(a.k_norm, p + "attn.hook_k_normed")
            on(a.v_norm, p + "attn.hook_v")
        on(a.o_proj, p + "attn.hook_z", output=False, reshape=(H, a.head_dim))
        on(layer.post_attention_layernorm, p + "hook_attn_out")
        on(layer.pre_feedforward_layernorm, p + "hook_resid_mid", output=False)
        on(layer.pre_feedforward_layernorm, p + "ln2.hook_normalized")
        on(layer.mlp.gate_proj, p + "mlp.hook_pre")
        if layer.mlp.activation_sparsity > 0:
            wrap(layer.mlp, "_gaussian_topk", p + "mlp.hook_sparse_gate", lambda t: t.detach().double().numpy())
        on(layer.mlp.up_proj, p + "mlp.hook_pre_linear")
        on(layer.mlp.down_proj, p + "mlp.hook_post", output=False)
        on(layer.post_feedforward_layernorm, p + "hook_mlp_out")
        on(layer.per_layer_projection, p + "ple.hook_gate", output=False)
        on(layer.post_per_layer_input_norm, p + "hook_ple_out")
    on(hf.model.embed_tokens, "hook_embed")
    on(hf.model.norm, "ln_final.hook_normalized")
    try:
        with torch.no_grad():
            out = hf(torch.from_numpy(toks), output_attentions=True)
    finally:
        for h in handles:
            h.remove()
        for obj, method in patched:
            delattr(obj, method)
    L = hf.config.num_hidden_layers
    acts["hook_per_layer_input"] = np.stack([acts[f"blocks.{i}.hook_per_layer_input"] for i in range(L)], axis=2)
    # The streams mapped back after the last layer: a float64 reference of transformers' formula.
    last = acts.pop(f"final_streams_{L - 1}")
    for i in range(L - 1):
        acts.pop(f"final_streams_{i}")
    rms0 = np.sqrt(np.mean(last[0] ** 2, axis=-1, keepdims=True))
    out_streams = [last[0]]
    for k, proj in enumerate(hf.model.altup_unembed_projections):
        y = last[k + 1] @ proj.weight.detach().double().numpy().T
        out_streams.append(y * rms0 / np.sqrt(np.maximum(np.mean(y ** 2, axis=-1, keepdims=True), 1e-5)))
    acts["altup.hook_unembedded"] = np.stack(out_streams, axis=2)
    for i, att in enumerate(out.attentions):
        acts[f"blocks.{i}.attn.hook_pattern"] = att.double().numpy()
    acts["hook_logits"] = out.logits.double().numpy()
    return acts


def test_every_hook_point_matches_transformers(pair):
    name, m, hf = pair
    toks = tokens(6)
    ref = hf_activations(hf, toks)
    logits, cache = m.run_with_cache(toks)
    assert list(cache) == m.hook_names()
    assert_cache_matches(cache, ref, name)
    sparse = [i for i, l in enumerate(m.config["layers"]) if l["gate_cutoff_z"] is not None]
    assert sparse and all(f"blocks.{i}.mlp.hook_sparse_gate" in cache for i in sparse)
    for i, layer in enumerate(m.config["layers"]):
        assert (f"blocks.{i}.mlp.hook_sparse_gate" in cache) == (i in sparse)
        shared = layer["kv_source"] is not None
        assert (f"blocks.{i}.attn.hook_k" in cache) != shared and (f"blocks.{i}.attn.hook_v" in cache) != shared
    for i in sparse:  # about a fraction p of a sparse gate is zero: the cutoff is the normal p-quantile
        p = hf.config.activation_sparsity_pattern[i]
        assert abs((cache[f"blocks.{i}.mlp.hook_sparse_gate"] == 0).mean() - p) < 0.25
    np.testing.assert_array_equal(logits, cache["hook_logits"])


def test_ragged_hooks_match_their_own_rows(pair):
    name, m, hf = pair
    toks = tokens(7, batch=2)
    lengths = [SEQ, 6]
    names = ["blocks.1.altup.hook_predicted", "blocks.4.altup.hook_corrected", "blocks.3.laurel.hook_out",
             "altup.hook_unembedded", "blocks.2.hook_per_layer_input"]
    _, cache = m.run_with_cache(toks, lengths=lengths, names=names)
    ref = hf_activations(hf, toks[1:, :6])
    for n in names:
        close(cache[n][1, :6], ref[n][0], f"{name} ragged {n}")
        assert not cache[n][1, 6:].any()


def test_an_edit_of_the_streams_drives_the_forward(pair):
    """Zeroing a non-active stream after the prediction, here and in transformers, changes the
    logits the same way."""
    name, m, hf = pair
    toks = tokens(8, batch=1)
    layer, k = 2, m.config["altup_streams"] - 1

    def zero(a, n):
        a[:, :, k] = 0

    with m.hooks({f"blocks.{layer}.altup.hook_predicted": zero}):
        got = m.forward(toks)
    alt = hf.model.layers[layer].altup
    original = alt.predict

    def predict(h):
        out = original(h).clone()
        out[k] = 0
        return out
    alt.predict = predict
    try:
        ref = reference(hf, toks)
    finally:
        del alt.predict
    close(got, ref, f"{name} edited stream")
    assert rel_err(got, reference(hf, toks)) > 1e-3


# ---- bad input ------------------------------------------------------------------------------

def test_bad_configs_raise_named_errors(tmp_path):
    import json
    import shutil
    hf = hf_model("altup4")
    folder = tmp_path / "base"
    hf.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())

    def variant(tag, **changes):
        out = tmp_path / tag
        shutil.copytree(folder, out)
        (out / "config.json").write_text(json.dumps({**config, **changes}))
        return str(out)

    with pytest.raises(NotImplementedError, match="altup_active_idx 1 is not supported"):
        gc.load(variant("active", altup_active_idx=1))
    with pytest.raises(ValueError, match=r"activation_sparsity_pattern\[1\] = 1 must be in \[0, 1\)"):
        gc.load(variant("sparsity", activation_sparsity_pattern=[0.0, 1.0, 0.0, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="activation_sparsity_pattern must be a number or a list of 6"):
        gc.load(variant("sparsity_len", activation_sparsity_pattern=[0.5]))
    with pytest.raises(ValueError, match="has no tensor 'model.altup_projections.3.weight'"):
        gc.load(variant("streams", altup_num_inputs=5))
    with pytest.raises(ValueError, match="laurel.linear_left.weight"):
        gc.load(variant("laurel", laurel_rank=5))


def test_the_text_part_of_a_multimodal_checkpoint_is_read(tmp_path):
    """A gemma3n (multimodal) checkpoint: the text config under text_config, the weights under
    model.language_model.; the vision and audio towers (here absent) are not read."""
    import json
    from safetensors.numpy import save_file
    hf = hf_model("altup3")
    hf.save_pretrained(tmp_path / "text")
    m = gc.load(str(tmp_path / "text"))
    text = hf.config.to_dict()
    config = {"model_type": "gemma3n", "architectures": ["Gemma3nForConditionalGeneration"], "text_config": text,
              "vision_config": {"model_type": "gemma3n_vision"}, "audio_config": {"model_type": "gemma3n_audio"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    tensors = {"model.language_model." + k.removeprefix("model."): v.detach().numpy().copy()
               for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    tensors["model.vision_tower.timm_model.conv_stem.conv.weight"] = np.zeros((4, 3, 3, 3), np.float32)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.warns(UserWarning, match="vision and audio tower"):
        mm = gc.load(str(tmp_path))
    toks = tokens(9)
    np.testing.assert_array_equal(mm.forward(toks), m.forward(toks))


# ---- GGUF ------------------------------------------------------------------------------------

gguf = pytest.importorskip("gguf")
from test_gemma_gguf import K_QUANT_BLOCKS, add_stored  # noqa: E402

# K-quants need rows of whole 256-value blocks.
K_QUANT_SIZES = dict(hidden_size=256, head_dim=64)


def stored_type(qtype, cols):
    """What llama-quantize stores a matrix with rows of `cols` values as: the asked type, or the
    fallback it takes when rows are not whole blocks of it."""
    if qtype in K_QUANT_BLOCKS and cols % 256:
        qtype = "Q8_0"
    if qtype == "Q8_0" and cols % 32:
        qtype = "F16"
    return qtype


def write_gguf(model, qtype, path):
    """The model as llama.cpp's converter writes Gemma 3n (norms not shifted, the AltUp
    projections stacked, activation_sparsity_scale as the normal quantile, -inf on dense layers),
    its matrices in qtype; the stored (rounded) values are put back into the model."""
    cfg = model.config
    L = cfg.num_hidden_layers
    w = gguf.GGUFWriter(str(path), "gemma3n")
    w.add_block_count(L)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(list(cfg.intermediate_size))
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_parameters[F]["rope_theta"])
    w.add_rope_freq_base_swa(cfg.rope_parameters[S]["rope_theta"])
    w.add_sliding_window(cfg.sliding_window)
    w.add_sliding_window_pattern([t == S for t in cfg.layer_types])
    w.add_shared_kv_layers(cfg.num_kv_shared_layers)
    w.add_embedding_length_per_layer_input(cfg.hidden_size_per_layer_input)
    w.add_altup_active_idx(cfg.altup_active_idx)
    w.add_altup_num_inputs(cfg.altup_num_inputs)
    normal = torch.distributions.normal.Normal(0, 1)
    w.add_activation_sparsity_scale(
        [normal.icdf(torch.tensor(s, dtype=torch.float32)).item() for s in cfg.activation_sparsity_pattern])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3N, L)
    state = model.state_dict()
    stacks = {"altup_proj": "model.altup_projections", "altup_unembd_proj": "model.altup_unembed_projections"}
    with torch.no_grad():
        for name, prefix in stacks.items():
            mats = [state[f"{prefix}.{k}.weight"].numpy() for k in range(cfg.altup_num_inputs - 1)]
            back = add_stored(w, name + ".weight", np.stack(mats).astype(np.float32),
                              stored_type(qtype, cfg.hidden_size))
            for k in range(len(mats)):
                state[f"{prefix}.{k}.weight"].copy_(torch.from_numpy(back[k]))
        for hf_name, p in state.items():
            if hf_name == "lm_head.weight" or "altup_projections" in hf_name or "altup_unembed" in hf_name:
                continue
            name = names.get_name(hf_name.removesuffix(".weight")) + ".weight"
            data = p.detach().numpy().astype(np.float32)
            if data.ndim == 1:
                w.add_tensor(name, data)
                continue
            back = add_stored(w, name, data, stored_type(qtype, data.shape[-1]))
            p.copy_(torch.from_numpy(back))  # the reference runs on the stored values
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("name", ["altup4", "altup3"])
@pytest.mark.parametrize("qtype", ["F32", "F16", "Q8_0", "Q4_K"])
def test_gguf_logits_match_transformers(name, qtype, tmp_path):
    model = hf_model(name, **(K_QUANT_SIZES if qtype.endswith("_K") else {}))
    if qtype.endswith("_K"):  # the MLPs' rows must be whole blocks too
        model = hf_model(name, **K_QUANT_SIZES, intermediate_size=256)
    path = tmp_path / f"gemma3n-{name}-{qtype}.gguf"
    write_gguf(model, qtype, path)
    m = gc.load(str(path))
    hf_folder = tmp_path / "hf"
    model.save_pretrained(hf_folder)  # the same (stored) weights through the HF reader
    got, want = copy.deepcopy(m.config), copy.deepcopy(gc.load(str(hf_folder)).config)
    # The same config from either file (GGUF stores eps and the quantiles as float32).
    for g, h in zip(got["layers"], want["layers"]):
        zg, zh = g.pop("gate_cutoff_z"), h.pop("gate_cutoff_z")
        assert (zg is None and zh is None) or zg == pytest.approx(zh, rel=1e-6)
    assert got == want | {"norm_eps": got["norm_eps"]}
    toks = tokens(8)
    close(m.forward(toks), reference(model, toks), f"{name} {qtype}")


# ---- MatFormer ----------------------------------------------------------------------------------

def sliced_reference(model, ffn, skip):
    """transformers' Gemma 3n with the weights sliced in PyTorch: the kept layers renumbered, their
    MLPs cut to the first ffn[j] rows (gate, up) / columns (down), the per-layer table and
    projection cut to the kept layers' slices, the KV-sharing layers counted again."""
    cfg = model.config
    L, P = cfg.num_hidden_layers, cfg.hidden_size_per_layer_input
    keep = [i for i in range(L) if i not in skip]
    first_shared = L - cfg.num_kv_shared_layers
    over = dict(num_hidden_layers=len(keep), intermediate_size=list(ffn),
                layer_types=[cfg.layer_types[i] for i in keep],
                activation_sparsity_pattern=[cfg.activation_sparsity_pattern[i] for i in keep],
                num_kv_shared_layers=sum(i >= first_shared for i in keep))
    kw = {k: v for k, v in cfg.to_dict().items() if k in transformers.Gemma3nTextConfig.__dataclass_fields__}
    new = transformers.Gemma3nForCausalLM(transformers.Gemma3nTextConfig(**{**kw, **over},
                                                                        attn_implementation="eager")).eval()
    old = model.state_dict()
    state = {}
    cols = torch.cat([torch.arange(i * P, (i + 1) * P) for i in keep])
    for k, v in old.items():
        if ".layers." not in k:
            if k.endswith("embed_tokens_per_layer.weight"):
                v = v[:, cols]
            elif k.endswith("per_layer_model_projection.weight"):
                v = v[cols]
            state[k] = v
            continue
        i = int(k.split(".layers.")[1].split(".")[0])
        if i not in keep:
            continue
        j = keep.index(i)
        name = k.replace(f".layers.{i}.", f".layers.{j}.")
        if name.endswith(("mlp.gate_proj.weight", "mlp.up_proj.weight")):
            v = v[:ffn[j]]
        elif name.endswith("mlp.down_proj.weight"):
            v = v[:, :ffn[j]]
        state[name] = v
    missing, unexpected = new.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    new.tie_weights()
    return new


@pytest.mark.parametrize("ffn,skip", [([32, 48, 16, 64, 40, 24], []), ([32, 16, 48, 24], [3, 4]), ([40], [1])])
def test_matformer_slices_match_the_sliced_reference(ffn, skip, tmp_path):
    model = hf_model("altup4")
    model.save_pretrained(tmp_path)
    m = gc.load(str(tmp_path), matformer={"ffn": ffn, "skip_layers": skip})
    kept = 6 - len(skip)
    widths = ffn * kept if len(ffn) == 1 else ffn
    assert [l["intermediate_size"] for l in m.config["layers"]] == widths
    ref = sliced_reference(model, widths, skip)
    assert [l["kv_source"] is not None for l in m.config["layers"]] == \
        [mode == "reuse" for mode in ref.config.kv_sharing_modes]
    toks = tokens(12)
    close(m.forward(toks), reference(ref, toks), f"matformer {ffn} skip {skip}")
    cache = m.new_cache(batch=2)
    got = np.concatenate([m.forward(toks[:, :5], cache=cache), m.forward(toks[:, 5:], cache=cache)], axis=1)
    close(got, reference(ref, toks), f"matformer cached {ffn} skip {skip}")


@pytest.mark.parametrize("qtype,sizes,ffn,skip", [
    ("Q8_0", dict(intermediate_size=96), [32, 64, 96, 32, 64], [1]),
    ("Q4_K", dict(K_QUANT_SIZES, intermediate_size=512), [256, 512, 256, 256, 512, 256], []),
])
def test_matformer_slices_of_quantized_gguf_match_the_sliced_reference(qtype, sizes, ffn, skip, tmp_path):
    # The down matrices' column slices are whole blocks of each quantized row, read in place
    # with the stored row stride; the reference slices the stored (dequantized) values.
    model = hf_model("altup4", **sizes)
    path = tmp_path / f"gemma3n-{qtype}.gguf"
    write_gguf(model, qtype, path)
    assert gc.weights.open(str(path)).info("blk.0.ffn_down.weight").type == qtype
    m = gc.load(str(path), matformer={"ffn": ffn, "skip_layers": skip})
    ref = sliced_reference(model, ffn, skip)
    toks = tokens(13)
    close(m.forward(toks), reference(ref, toks), f"matformer {qtype} {ffn}")
    cache = m.new_cache(batch=2)
    got = np.concatenate([m.forward(toks[:, :1], cache=cache), m.forward(toks[:, 1:], cache=cache)], axis=1)
    close(got, reference(ref, toks), f"matformer {qtype} cached {ffn}")


def test_matformer_slices_of_quantized_rows_must_be_whole_blocks(tmp_path):
    model = hf_model("altup4", intermediate_size=96)
    path = tmp_path / "gemma3n-Q8_0.gguf"
    write_gguf(model, "Q8_0", path)
    with pytest.raises(NotImplementedError, match=r"'blk.1.ffn_down.weight' is stored as Q8_0 \(blocks of 32 "
                                                  r"values\): a slice of its columns \(48 of 96\) must be a "
                                                  r"multiple of 32 values"):
        gc.load(str(path), matformer={"ffn": [64, 48, 96, 32, 64, 96]})


def test_matformer_bad_slices_raise_named_errors(tmp_path):
    model = hf_model("altup4")
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"layer 2 \(kept as 2\) has an MLP of 64; ffn 65 must be in \[1, 64\]"):
        gc.load(str(tmp_path), matformer={"ffn": [32, 32, 65, 32, 32, 32]})
    with pytest.raises(ValueError, match="ffn must be one width or 5"):
        gc.load(str(tmp_path), matformer={"ffn": [32, 32], "skip_layers": [0]})
    with pytest.raises(ValueError, match="skip_layers holds 6"):
        gc.load(str(tmp_path), matformer={"skip_layers": [6]})
    with pytest.raises(ValueError, match="matformer must be a dict"):
        gc.load(str(tmp_path), matformer={"width": 3})
    with pytest.raises(ValueError, match="matformer: layer 4 shares the keys and values of an earlier full layer"):
        gc.load(str(tmp_path), matformer={"skip_layers": [2]})  # the only full layer before the shared ones


def test_matformer_is_refused_for_other_families(tmp_path):
    cfg = transformers.Gemma3TextConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    transformers.Gemma3ForCausalLM(cfg).save_pretrained(tmp_path)
    with pytest.raises(NotImplementedError, match="matformer slices Gemma 3n models only"):
        gc.load(str(tmp_path), matformer={"ffn": 32})


# ---- MatFormer memory ---------------------------------------------------------------------------
# A slice's resident memory is its own bytes: measured as the weight file's pages mapped into this
# process (/proc/self/smaps) after a forward from a cold page cache, and as the pages a forward
# references. Rows are long (an 8192-wide MLP in bfloat16: 16 KB a down row) so that page
# granularity does not hide what is read; the file is 25 MB.
MEM_CONFIG = dict(hidden_size=128, intermediate_size=8192, num_hidden_layers=4, head_dim=64, num_attention_heads=2,
                  num_key_value_heads=1, layer_types=[S, S, S, F], num_kv_shared_layers=0,
                  activation_sparsity_pattern=[0.95, 0.0, 0.0, 0.0])
MEM_SLICE = {"ffn": 2048, "skip_layers": [1]}


def mapped_kb(path):
    """Rss and Referenced (KB) of this process's mappings of `path`."""
    out, current = {"Rss": 0, "Referenced": 0}, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and ":" not in head[0]:  # a mapping's first line: range, perms, ..., path
                current = line.rstrip("\n").endswith(" " + path)
            elif current and head[0][:-1] in out:
                out[head[0][:-1]] += int(head[1])
    return out


def drop_from_page_cache(path, keep_kb=1024):
    """Drops the file's clean pages that no process maps; read-ahead still in flight is waited for
    (pages under I/O stay), up to a second."""
    for _ in range(50):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        if cached_fraction(path) * os.path.getsize(path) / 1024 <= keep_kb:
            return
        time.sleep(0.02)


def cached_fraction(path):
    """The fraction of the file's pages in the page cache (mincore on a mapping of it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    size = os.path.getsize(path)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        vec = (ctypes.c_ubyte * pages)()
        try:
            assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)
    return sum(v & 1 for v in vec) / pages


def slice_budget_kb(path, ffn, skip, stored_ffn):
    """The slice's bytes (the kept layers' tensors, their MLP matrices cut to ffn of stored_ffn,
    the rest whole), plus what page granularity adds: a page per down-matrix row (its used part
    may straddle one more page) and two per tensor (its first and last pages), in KB."""
    info = gc.weights.open(path)
    page = mmap.PAGESIZE
    total = extra = 0
    for name in info.names():
        t = info.info(name)
        if ".layers." in name:
            layer = int(name.split(".layers.")[1].split(".")[0])
            if layer in skip:
                continue
            if ".mlp." in name:
                total += t.nbytes * ffn // stored_ffn
                extra += t.shape[0] * page if "down_proj" in name else 0
                extra += 2 * page
                continue
        total += t.nbytes
        extra += 2 * page
    return total / 1024, (total + extra) / 1024


@pytest.fixture(scope="module")
def mem_checkpoint(tmp_path_factory):
    if not sys.platform.startswith("linux"):
        pytest.skip("resident pages are read from Linux's /proc/self/smaps")
    folder = tmp_path_factory.mktemp("gemma3n_mem")
    hf_model("altup4", **MEM_CONFIG).to(torch.bfloat16).save_pretrained(folder)
    path = str(folder / "model.safetensors")
    used, budget = slice_budget_kb(path, MEM_SLICE["ffn"], MEM_SLICE["skip_layers"], MEM_CONFIG["intermediate_size"])
    return folder, path, used, budget


def test_matformer_slice_forward_reads_only_the_slice(mem_checkpoint):
    folder, path, used, budget = mem_checkpoint
    m = gc.load(str(folder), matformer=MEM_SLICE)
    toks = tokens(21, batch=1, seq=16)
    m.forward(toks)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("1")  # clear the pages' referenced bits: the next forward sets those it reads
    m.forward(toks)
    referenced = mapped_kb(path)["Referenced"]
    file_kb = os.path.getsize(path) / 1024
    assert used < budget < 0.45 * file_kb  # the bound is far below the file
    assert used * 0.9 < referenced <= budget, (referenced, used, budget, file_kb)


def test_matformer_slice_resident_after_a_cold_forward_is_the_slice(mem_checkpoint):
    # Cold: the file's pages are dropped from the page cache before the forward; the kernel's
    # read-around (read_ahead_kb, up to megabytes) would otherwise bring in, and map, the skipped
    # layer and the down matrices' unused columns around every page the slice faults in.
    folder, path, used, budget = mem_checkpoint
    probe = folder / "probe.bin"
    probe.write_bytes(os.urandom(1 << 20))
    drop_from_page_cache(str(probe), keep_kb=0)
    if cached_fraction(str(probe)) > 0:
        pytest.skip("this file system keeps a file's pages in memory (tmpfs?): no cold read to measure")
    gc_module.collect()  # no model of an earlier test maps the file any more
    m = gc.load(str(folder), matformer=MEM_SLICE)
    drop_from_page_cache(path)  # what the load read (the header, the norms) apart from what it maps
    assert cached_fraction(path) * os.path.getsize(path) / 1024 < 1024
    m.forward(tokens(22, batch=1, seq=16))
    resident = mapped_kb(path)["Rss"]
    assert resident <= budget, (resident, used, budget)
    assert cached_fraction(path) * os.path.getsize(path) / 1024 <= budget
