"""Gemma 4 text models against transformers (Gemma4ForCausalLM, float32, eager attention) on small
random configs of each released shape:

* dense: the 31B's layout (sliding and global layers of different head shapes, keys as values on
  global layers, proportional RoPE turning a quarter of the global heads' pairs);
* moe: the 26B-A4B's (the same attention, and experts beside every layer's dense MLP);
* e2b: the E2B/E4B's (per-layer inputs with a token table, the last layers sharing the keys and
  values of earlier ones, double-wide MLPs on those layers).

Logits and every hook point agree within 1e-4 of the largest value, for plain, ragged and cached
(token by token and chunked) runs with windows shorter than the sequence; greedy generation equals
the argmax of uncached forwards; the cache holds the non-shared layers only; GGUF files written as
llama.cpp's converter writes them give the same logits.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
if not hasattr(transformers, "Gemma4ForCausalLM"):
    pytest.skip("transformers without Gemma 4", allow_module_level=True)

import gemmacpp as gc
from gemmacpp.generate import generate_ids

from test_hooks import assert_cache_matches, close

SEQ = 13
V = 128
S, F = "sliding_attention", "full_attention"
COMMON = dict(vocab_size=V, hidden_size=32, num_hidden_layers=6, num_attention_heads=4, head_dim=16,
              global_head_dim=32, sliding_window=4, layer_types=[S, S, F, S, S, F], final_logit_softcapping=30.0,
              max_position_embeddings=64, initializer_range=0.15, attn_implementation="eager")
CONFIGS = {
    "dense": dict(intermediate_size=48, num_key_value_heads=2, num_global_key_value_heads=1, attention_k_eq_v=True,
                  hidden_size_per_layer_input=0),
    "moe": dict(intermediate_size=48, num_key_value_heads=2, num_global_key_value_heads=1, attention_k_eq_v=True,
                hidden_size_per_layer_input=0, enable_moe_block=True, num_experts=8, top_k_experts=2,
                moe_intermediate_size=16),
    "e2b": dict(intermediate_size=64, num_key_value_heads=1, hidden_size_per_layer_input=8,
                vocab_size_per_layer_input=V, num_kv_shared_layers=2, use_double_wide_mlp=True),
}


def hf_model(name, **over):
    cfg = transformers.Gemma4TextConfig(**{**COMMON, **CONFIGS[name], **over})
    torch.manual_seed(sum(map(ord, name)))
    model = transformers.Gemma4ForCausalLM(cfg).eval()
    with torch.no_grad():  # norms, scales and layer scalars are ones at initialisation: make them matter
        for pname, p in model.named_parameters():
            if p.ndim <= 1:
                p.uniform_(0.5, 1.5)
        for bname, b in model.named_buffers():
            if bname.endswith("layer_scalar"):
                b.uniform_(0.5, 1.5)
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
    assert c["family"] == "gemma4" and c["num_layers"] == 6 and c["final_softcap"] == 30.0
    assert c["query_pre_attn_scalar"] == 1.0 and c["v_norm"] and c["layer_scalar"]
    modes = h.kv_sharing_modes
    for i, layer in enumerate(c["layers"]):
        assert layer["type"] == ("local" if h.layer_types[i] == S else "global")
        assert layer["head_dim"] == hf.model.layers[i].self_attn.head_dim
        attn = hf.model.layers[i].self_attn
        assert layer["num_kv_heads"] == c["num_heads"] // attn.num_key_value_groups
        assert layer["k_eq_v"] == (hf.model.layers[i].self_attn.use_alternative_attention and modes[i] != "reuse")
        assert layer["intermediate_size"] == hf.model.layers[i].mlp.intermediate_size
        assert (layer["kv_source"] is not None) == (modes[i] == "reuse")
        assert layer["rotated_pairs"] == (layer["head_dim"] // 8 if layer["type"] == "global" else layer["head_dim"] // 2)
    if name == "e2b":
        assert [l["kv_source"] for l in c["layers"]] == [None, None, None, None, 3, 2]
        assert c["per_layer_input"] == 8 and c["per_layer_vocab"] == V
    if name == "moe":
        assert (c["num_experts"], c["top_k_experts"], c["expert_intermediate_size"]) == (8, 2, 16)


# ---- logits ---------------------------------------------------------------------------------

def test_logits_match_transformers(pair):
    name, m, hf = pair
    toks = tokens(1)
    got = m.forward(toks)
    close(got, reference(hf, toks), f"{name} logits")
    one = m.forward(toks[1].tolist())[0]
    if name == "moe":  # an expert's rows take the matrix-vector or the GEMM path by their number
        close(one, got[1].astype(np.float64), f"{name} one row", tol=1e-5)
    else:
        np.testing.assert_array_equal(one, got[1])


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

def hf_activations(hf, toks):
    """Every activation the hook names stand for, from the transformers model (float64 NumPy)."""
    H = hf.config.num_attention_heads
    acts, handles = {}, []

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

    for i, layer in enumerate(hf.model.layers):
        p, a = f"blocks.{i}.", layer.self_attn
        handles.append(layer.register_forward_pre_hook(
            lambda mod, args, i=i: acts.__setitem__(f"blocks.{i}.hook_resid_pre", args[0].double().numpy())))
        if hf.config.hidden_size_per_layer_input:
            handles.append(layer.register_forward_pre_hook(
                lambda mod, args, i=i: acts.setdefault("per_layer", {}).__setitem__(i, args[1].double().numpy())))
        on(layer, p + "hook_resid_post")
        on(layer.input_layernorm, p + "ln1.hook_normalized")
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
        on(layer.mlp.up_proj, p + "mlp.hook_pre_linear")
        on(layer.mlp.down_proj, p + "mlp.hook_post", output=False)
        on(layer.post_feedforward_layernorm, p + "hook_mlp_out")
        if layer.enable_moe_block:
            k = hf.config.top_k_experts
            on(layer.post_feedforward_layernorm_1, p + "mlp.hook_out")
            on(layer.router.proj, p + "moe.hook_router_logits", reshape=(hf.config.num_experts,))
            on(layer.router, p + "moe.hook_expert_weights", index=1, reshape=(k,))
            on(layer.router, p + "moe.hook_expert_ids", index=2, reshape=(k,))
            on(layer.post_feedforward_layernorm_2, p + "moe.hook_out")
        if hf.config.hidden_size_per_layer_input:
            on(layer.per_layer_projection, p + "ple.hook_gate", output=False)
            on(layer.post_per_layer_input_norm, p + "hook_ple_out")
    on(hf.model.norm, "ln_final.hook_normalized")
    try:
        with torch.no_grad():
            out = hf(torch.from_numpy(toks), output_hidden_states=True, output_attentions=True)
    finally:
        for h in handles:
            h.remove()
    acts["hook_embed"] = out.hidden_states[0].double().numpy()
    if "per_layer" in acts:
        per_layer = acts.pop("per_layer")
        acts["hook_per_layer_input"] = np.stack([per_layer[i] for i in range(len(per_layer))], axis=2)
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
    # e2b's last layer sees float32 rounding of 6 layers with per-layer inputs and scores up to 23
    # (softmax amplifies them): against a float64 run, transformers' own float32 is 3e-5 off and
    # the SIMD targets without FMA (SSE4, SCALAR: the sanitizer build's) 1.4e-4 at its pattern.
    assert_cache_matches(cache, ref, name, tol=2e-4 if name == "e2b" else 1e-4)
    shared = [i for i, l in enumerate(m.config["layers"]) if l["kv_source"] is not None]
    for i in shared:  # a layer reading another's keys and values has no points of its own for them
        assert not any(f"blocks.{i}.attn.hook_{p}" in cache for p in ("k", "k_normed", "v"))
    np.testing.assert_array_equal(logits, cache["hook_logits"])


def test_an_edit_of_the_shared_keys_reaches_the_layers_that_share_them(pair):
    name, m, hf = pair
    shared = [(i, l["kv_source"]) for i, l in enumerate(m.config["layers"]) if l["kv_source"] is not None]
    if not shared:
        pytest.skip("no KV sharing")
    i, src = shared[0]
    toks = tokens(7, batch=1)

    def zero_head(k, n):
        k[:, :, 0] = 0

    with m.hooks({f"blocks.{src}.attn.hook_k_normed": zero_head}):
        _, edited = m.run_with_cache(toks, names=f"blocks.{i}.attn.hook_z")
    # The same edit in transformers: zero the source's normed keys before RoPE.
    handle = hf.model.layers[src].self_attn.k_norm.register_forward_hook(
        lambda mod, inp, out: out.index_fill(2, torch.tensor([0]), 0.0))
    try:
        ref = hf_activations(hf, toks)
    finally:
        handle.remove()
    close(edited[f"blocks.{i}.attn.hook_z"], ref[f"blocks.{i}.attn.hook_z"], f"{name} shared edit")


# ---- GGUF ------------------------------------------------------------------------------------

gguf = pytest.importorskip("gguf")
from test_gemma_gguf import K_QUANT_BLOCKS, add_stored  # noqa: E402

# K-quants need rows of whole 256-value blocks.
K_QUANT_SIZES = dict(hidden_size=256, head_dim=64, global_head_dim=128, intermediate_size=256,
                     moe_intermediate_size=256)


def stored_type(qtype, cols):
    """What llama-quantize stores a matrix with rows of `cols` values as: the asked type, or the
    fallback it takes when rows are not whole blocks of it."""
    if qtype in K_QUANT_BLOCKS and cols % 256:
        qtype = "Q8_0"
    if qtype == "Q8_0" and cols % 32:
        qtype = "F16"
    return qtype


def write_gguf(model, qtype, path):
    """The model as llama.cpp's converter writes Gemma 4 (norms not shifted, per-layer arrays,
    rope_freqs, the router's scales under ffn_gate_inp.scale / ffn_down_exps.scale), its matrices
    in qtype; the stored (rounded) values are put back into the model."""
    cfg = model.config
    L = cfg.num_hidden_layers
    w = gguf.GGUFWriter(str(path), "gemma4")
    w.add_block_count(L)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_head_count(cfg.num_attention_heads)
    swa = [t == S for t in cfg.layer_types]
    modes = cfg.kv_sharing_modes
    ffn = [model.model.layers[i].mlp.intermediate_size for i in range(L)]
    w.add_feed_forward_length(ffn if len(set(ffn)) > 1 else ffn[0])
    kv = [cfg.num_attention_heads // model.model.layers[i].self_attn.num_key_value_groups for i in range(L)]
    w.add_head_count_kv(kv if len(set(kv)) > 1 else kv[0])
    head_dims = [model.model.layers[i].self_attn.head_dim for i in range(L)]
    global_hd, swa_hd = head_dims[swa.index(False)], head_dims[swa.index(True)]
    w.add_key_length(global_hd)
    w.add_value_length(global_hd)
    w.add_key_length_swa(swa_hd)
    w.add_value_length_swa(swa_hd)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_parameters[F]["rope_theta"])
    w.add_sliding_window(cfg.sliding_window)
    w.add_sliding_window_pattern(swa)
    w.add_shared_kv_layers(cfg.num_kv_shared_layers)
    w.add_embedding_length_per_layer_input(cfg.hidden_size_per_layer_input or 0)
    if cfg.enable_moe_block:
        w.add_expert_count(cfg.num_experts)
        w.add_expert_used_count(cfg.top_k_experts)
        w.add_expert_feed_forward_length(cfg.moe_intermediate_size)
    n_rot = int(global_hd * cfg.rope_parameters[F]["partial_rotary_factor"] / 2)
    w.add_tensor("rope_freqs.weight", np.array([1.0] * n_rot + [1e30] * (global_hd // 2 - n_rot), np.float32))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA4, L)
    state = model.state_dict()
    with torch.no_grad():
        for hf_name, p in state.items():
            if hf_name == "lm_head.weight":
                continue
            base = hf_name.removesuffix(".weight")
            if base.endswith("router.scale"):
                name = f"blk.{base.split('.')[2]}.ffn_gate_inp.scale"
            elif base.endswith("router.per_expert_scale"):
                name = f"blk.{base.split('.')[2]}.ffn_down_exps.scale"
            else:
                name = names.get_name(base) + ".weight"
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


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("qtype", ["F32", "F16", "Q8_0", "Q4_K"])
def test_gguf_logits_match_transformers(name, qtype, tmp_path):
    model = hf_model(name, **(K_QUANT_SIZES if qtype.endswith("_K") else {}))
    path = tmp_path / f"gemma4-{name}-{qtype}.gguf"
    write_gguf(model, qtype, path)
    m = gc.load(str(path))
    hf_folder = tmp_path / "hf"
    model.save_pretrained(hf_folder)  # the same (stored) weights through the HF reader
    # The same config from either file (GGUF stores eps as float32).
    assert m.config == gc.load(str(hf_folder)).config | {"norm_eps": m.config["norm_eps"]}
    assert m.config["norm_eps"] == np.float32(model.config.rms_norm_eps)
    toks = tokens(8)
    close(m.forward(toks), reference(model, toks), f"{name} {qtype}")


# ---- experts -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def moe(tmp_path_factory):
    model = hf_model("moe")
    folder = tmp_path_factory.mktemp("moe-edits")
    model.save_pretrained(folder)
    return gc.load(str(folder)), model, folder


def test_editing_router_logits_changes_the_routing(moe):
    m, hf, _ = moe
    toks = tokens(9)
    layer = 1
    _, plain = m.run_with_cache(toks, names=f"blocks.{layer}.moe.hook_expert_ids")
    favourite = 5

    def prefer(logits, name):
        logits[..., favourite] += 100.0

    with m.hooks({f"blocks.{layer}.moe.hook_router_logits": prefer}):
        logits, edited = m.run_with_cache(toks, names=f"blocks.{layer}.moe.hook_expert_ids")
    ids = edited[f"blocks.{layer}.moe.hook_expert_ids"]
    assert (ids[..., 0] == favourite).all()  # the favourite comes first for every token
    assert not (plain[f"blocks.{layer}.moe.hook_expert_ids"][..., 0] == favourite).all()
    handle = hf.model.layers[layer].router.proj.register_forward_hook(
        lambda mod, inp, out: out + 100.0 * torch.nn.functional.one_hot(torch.tensor(favourite), out.shape[-1]))
    try:
        ref = reference(hf, toks)
    finally:
        handle.remove()
    close(logits, ref, "logits with the edited routing")


def test_editing_expert_ids_and_weights_drives_the_experts(moe):
    m, hf, _ = moe
    toks = tokens(10, batch=1)
    layer, k = 2, m.config["top_k_experts"]
    names = [f"blocks.{layer}.moe.hook_expert_ids", f"blocks.{layer}.moe.hook_expert_weights"]

    def pick(a, name):
        if name.endswith("ids"):
            a[...] = np.arange(k)  # experts 0 and 1 for every token
        else:
            a[...] = 0.5

    with m.hooks({n: pick for n in names}):
        got = m.forward(toks)
    handle = hf.model.layers[layer].router.register_forward_hook(
        lambda mod, inp, out: (out[0], torch.full_like(out[1], 0.5), torch.arange(k).expand_as(out[2])))
    try:
        ref = reference(hf, toks)
    finally:
        handle.remove()
    close(got, ref, "logits with chosen experts")

    def bad(a, name):
        a[0, 0, 0] = m.config["num_experts"]

    with m.hooks({names[0]: bad}), pytest.raises(ValueError, match=r"moe.hook_expert_ids: expert ids must be integers in \[0, 8\)"):
        m.forward(toks)


def test_bad_configs_and_files_raise_named_errors(moe, tmp_path):
    import json
    import shutil
    _, _, folder = moe
    config = json.loads((folder / "config.json").read_text())

    def variant(name, **changes):
        out = tmp_path / name
        shutil.copytree(folder, out)
        (out / "config.json").write_text(json.dumps({**config, **changes}))
        return str(out)

    with pytest.raises(ValueError, match=r"top_k_experts \(9\) must be in \[1, num_experts = 8\]"):
        gc.load(variant("topk", top_k_experts=9))
    with pytest.raises(ValueError, match=r"num_kv_shared_layers \(7\) must be in \[0, num_hidden_layers = 6\)"):
        gc.load(variant("shared", num_kv_shared_layers=7))
    with pytest.raises(ValueError, match=r"experts.gate_up_proj"):
        gc.load(variant("experts", moe_intermediate_size=24))  # the stored experts are of 16
    from safetensors.numpy import load_file, save_file
    tensors = load_file(folder / "model.safetensors")
    del tensors["model.layers.3.experts.down_proj"]
    out = tmp_path / "missing"
    shutil.copytree(folder, out)
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"model.layers.3.experts.down_proj"):
        gc.load(str(out))
