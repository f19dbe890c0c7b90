"""gc.sae.load for Gemma Scope 1 (params.npz), Gemma Scope 2 (params.safetensors + config.json)
and SAELens folders, every architecture (JumpReLU, ReLU, TopK) and kind (SAE, transcoder, skip
transcoder): encode, decode and the reconstruction against the float64 formulas (always) and
against sae-lens on the same files (when sae-lens is installed; Gemma Scope files through
sae-lens's own Hugging Face loaders with the download redirected to the local file), float32
within 1e-5 relative. Also: weights stay memory-mapped in the stored dtype, hook names are mapped,
and bad files raise errors that name the problem.
"""
import json
import os

import ml_dtypes
import numpy as np
import pytest

import gemmacpp as gc
from sae_reference import (SAELENS_ARCH, clear_of_boundaries, random_weights, redirect_hub, reference,
                           rel_err, saelens_call, saelens_from_state, saelens_module,
                           write_gemma_scope_1, write_gemma_scope_2, write_saelens)

TOL = 1e-5


def data(rng, d_in, shape=(2, 25)):
    return rng.standard_normal((*shape, d_in)).astype(np.float32)


def prepared(rng, d_in, d_sae, d_out=None, *, architecture="jumprelu", kind="sae", k=None,
             apply_b_dec_to_input=False, dtype=np.float32):
    """Weights and inputs whose JumpReLU thresholds / TopK k-th values are clear of rounding."""
    w = random_weights(rng, d_in, d_sae, d_out, architecture=architecture, kind=kind, k=k, dtype=dtype)
    x = data(rng, d_in)
    pre = reference(w, x, architecture=architecture, apply_b_dec_to_input=apply_b_dec_to_input)[0]
    return clear_of_boundaries(w, pre, architecture=architecture), x


def check_maths(sae, w, x, *, architecture, apply_b_dec_to_input=False, saelens=None, heads=None):
    """encode (pre and acts, dense and sparse), decode and forward against the float64 formulas
    and, given one, a sae-lens SAE on the same weights; returns the largest relative error.
    heads: sae-lens reads hook_z SAEs as [..., heads, head_dim] (and decodes back to that)."""
    pre, acts, recons, out = reference(w, x, architecture=architecture,
                                       apply_b_dec_to_input=apply_b_dec_to_input)
    dense, p = sae.encode(x, dense=True, return_pre=True)
    got = {"pre": (p, pre), "acts": (dense, acts), "decode": (sae.decode(dense), recons),
           "forward": (sae.forward(x), out)}
    np.testing.assert_array_equal(sae.encode(x).to_dense(), dense)
    worst = 0.0
    for what, (g, r) in got.items():
        err = rel_err(g, r)
        assert err <= TOL, f"{what}: {err:.3g} from the float64 formula"
        worst = max(worst, err)
    if saelens is not None:
        import torch
        xs = x.reshape(*x.shape[:-1], heads, -1) if heads else x
        for what, g, r in (("encode", dense, saelens_call(saelens, "encode", xs)),
                           ("decode", got["decode"][0],
                            saelens_call(saelens, "decode", torch.as_tensor(dense))),
                           ("forward", got["forward"][0], saelens_call(saelens, "forward", xs))):
            err = rel_err(g, r.reshape(g.shape))
            assert err <= TOL, f"{what}: {err:.3g} from sae-lens"
            worst = max(worst, err)
    return worst


# ---- SAELens folders -------------------------------------------------------------------------------

@pytest.mark.parametrize("architecture,kind", list(SAELENS_ARCH))
def test_saelens_folder(tmp_path, rng, architecture, kind):
    transcoder = kind != "sae"
    apply_b = architecture == "relu" and not transcoder  # SAELens' standard SAEs subtract b_dec
    w, x = prepared(rng, 48, 300, 40 if transcoder else None, architecture=architecture,
                    kind=kind, k=25, apply_b_dec_to_input=apply_b)
    folder = write_saelens(tmp_path / "sae", w, architecture=architecture, kind=kind,
                           hook_name="blocks.1.hook_mlp_in" if transcoder else "blocks.1.hook_resid_post",
                           hook_name_out="blocks.1.hook_mlp_out" if transcoder else None,
                           apply_b_dec_to_input=apply_b)
    sae = gc.sae.load(folder)
    assert (sae.architecture, sae.kind, sae.apply_b_dec_to_input) == (architecture, kind, apply_b)
    if transcoder:
        assert (sae.hook_in, sae.hook_out) == ("blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out")
    else:
        assert sae.hook_in == sae.hook_out == "blocks.1.hook_resid_post"
    assert not sae.W_enc.flags.writeable and sae.W_enc.base is not None  # a view of the mapping
    sl = None
    try:
        sl = saelens_module().SAE.load_from_disk(str(folder))
    except pytest.skip.Exception:
        pass
    err = check_maths(sae, w, x, architecture=architecture, apply_b_dec_to_input=apply_b, saelens=sl)
    print(f"{architecture} {kind}: max rel err {err:.2e}")


def test_saelens_transformer_lens_hook_names(tmp_path, rng):
    w = random_weights(rng, 16, 40)
    for tl, ours, norm in (("blocks.2.ln2.hook_normalized", "blocks.2.hook_resid_mid", "rms"),
                           ("blocks.2.ln1.hook_normalized", "blocks.2.hook_resid_pre", "rms"),
                           ("blocks.2.hook_mlp_in", "blocks.2.ln2.hook_normalized", None),
                           ("blocks.2.attn.hook_z", "blocks.2.attn.hook_z", None),
                           ("hook_embed", "hook_embed", None)):
        sae = gc.sae.load(write_saelens(tmp_path / tl, w, architecture="jumprelu", kind="sae",
                                        hook_name=tl))
        assert (sae.hook_in, sae.input_norm) == (ours, norm), tl


# ---- Gemma Scope 2 ---------------------------------------------------------------------------------

GS2 = {  # folder -> (hf_hook_point_in, hf_hook_point_out, gemmacpp in, gemmacpp out, kind)
    "resid_post/layer_3_width_16k_l0_small": ("model.layers.3.output", None,
                                              "blocks.3.hook_resid_post", None, "sae"),
    "attn_out/layer_3_width_16k_l0_small": ("model.layers.3.self_attn.o_proj.input", None,
                                            "blocks.3.attn.hook_z", None, "sae"),
    "mlp_out_all/layer_3_width_16k_l0_big": ("model.layers.3.post_feedforward_layernorm.output", None,
                                             "blocks.3.hook_mlp_out", None, "sae"),
    "transcoder/layer_3_width_16k_l0_small": ("model.layers.3.pre_feedforward_layernorm.output",
                                              "model.layers.3.post_feedforward_layernorm.output",
                                              "blocks.3.ln2.hook_normalized", "blocks.3.hook_mlp_out",
                                              "transcoder"),
    "transcoder/layer_3_width_16k_l0_small_affine": (
        "model.layers.3.pre_feedforward_layernorm.output",
        "model.layers.3.post_feedforward_layernorm.output",
        "blocks.3.ln2.hook_normalized", "blocks.3.hook_mlp_out", "skip_transcoder"),
}


@pytest.mark.parametrize("with_config", [True, False], ids=["config", "folder-name"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("folder", list(GS2))
def test_gemma_scope_2(tmp_path, rng, monkeypatch, folder, dtype, with_config):
    hf_in, hf_out, hook_in, hook_out, kind = GS2[folder]
    d_in, d_out = (32, 32) if kind == "sae" else (32, 24)
    if folder.startswith("attn_out"):
        d_in = d_out = 4 * 8  # heads x head_dim, flattened
    w, x = prepared(rng, d_in, 200, d_out, kind=kind,
                    dtype=ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float32)
    write_gemma_scope_2(tmp_path / folder, w, hf_in=hf_in, hf_out=hf_out, config=with_config)
    sae = gc.sae.load(tmp_path / folder)
    assert (sae.kind, sae.architecture, sae.hook_in) == (kind, "jumprelu", hook_in)
    assert sae.hook_out == (hook_out or hook_in)
    assert sae.W_enc.dtype == np.dtype(dtype) and not sae.W_enc.flags.writeable  # mapped as stored
    sl = None
    if with_config:
        try:
            loaders = redirect_hub(monkeypatch, str(tmp_path))
            cfg, state, _ = loaders.gemma_3_sae_huggingface_loader("google/gemma-scope-2-270m-pt", folder)
            # the hook points sae-lens names (TransformerLens names) are the ones gemmacpp reads
            assert gc.sae.hook_from_transformer_lens(cfg["hook_name"]) == (sae.hook_in, None)
            if "hook_name_out" in cfg:
                assert gc.sae.hook_from_transformer_lens(cfg["hook_name_out"])[0] == sae.hook_out
            sl = saelens_from_state(cfg, state)
        except pytest.skip.Exception:
            pass
    err = check_maths(sae, w, x, architecture="jumprelu", saelens=sl)
    print(f"{folder} {dtype}: max rel err {err:.2e}")


def test_gemma_scope_2_save_round_trip(tmp_path, rng):
    w, x = prepared(rng, 24, 90, 20, kind="skip_transcoder")
    sae = gc.sae.SAE(w["W_enc"], w["W_dec"], w["b_enc"], w["b_dec"], threshold=w["threshold"],
                     W_skip=w["W_skip"], hook_in="blocks.0.ln2.hook_normalized",
                     hook_out="blocks.0.hook_mlp_out")
    back = gc.sae.load(gc.sae.save_gemma_scope_2(sae, str(tmp_path / "tc"), model_name="m"))
    assert (back.kind, back.hook_in, back.hook_out) == (sae.kind, sae.hook_in, sae.hook_out)
    # The weights come back bit for bit; the skip term runs in the file's layout ([d_in, d_out]:
    # the SAE encoder's product, not linear's), so the forward agrees to float32 rounding.
    skip_back = back.W_skip if back.skip_layout == "out_in" else np.asarray(back.W_skip).T
    np.testing.assert_array_equal(skip_back, np.asarray(sae.W_skip))
    np.testing.assert_array_equal(back.W_dec, sae.W_dec)
    np.testing.assert_allclose(back.forward(x), sae.forward(x), rtol=1e-5, atol=1e-5)
    cfg = json.load(open(tmp_path / "tc" / "config.json"))
    assert cfg["hf_hook_point_in"] == "model.layers.0.pre_feedforward_layernorm.output"
    assert cfg["hf_hook_point_out"] == "model.layers.0.post_feedforward_layernorm.output"
    # a ReLU SAE is the JumpReLU with threshold 0
    r = random_weights(rng, 24, 90, architecture="relu")
    relu = gc.sae.SAE(r["W_enc"], r["W_dec"], r["b_enc"], r["b_dec"], architecture="relu",
                      hook_in="blocks.1.hook_resid_post")
    back = gc.sae.load(gc.sae.save_gemma_scope_2(relu, str(tmp_path / "relu")))
    assert back.architecture == "jumprelu"
    xx = data(rng, 24)
    np.testing.assert_array_equal(back.forward(xx), relu.forward(xx))
    t = random_weights(rng, 24, 90, architecture="topk", k=5)
    topk = gc.sae.SAE(t["W_enc"], t["W_dec"], architecture="topk", k=5, hook_in="hook_embed")
    with pytest.raises(ValueError, match="TopK SAE cannot be written"):
        gc.sae.save_gemma_scope_2(topk, str(tmp_path / "topk"))


# ---- Gemma Scope 1 ---------------------------------------------------------------------------------

GS1 = {  # repository, folder -> (gemmacpp in, out, input_norm)
    ("gemma-scope-2b-pt-res", "layer_3/width_16k/average_l0_50"): ("blocks.3.hook_resid_post", None, None),
    ("gemma-scope-2b-pt-mlp", "layer_3/width_16k/average_l0_50"): ("blocks.3.hook_mlp_out", None, None),
    ("gemma-scope-2b-pt-att", "layer_3/width_16k/average_l0_50"): ("blocks.3.attn.hook_z", None, None),
    ("gemma-scope-2b-pt-res", "embedding/width_4k/average_l0_50"): ("hook_embed", None, None),
    ("gemma-scope-2b-pt-transcoders", "layer_3/width_16k/average_l0_50"):
        ("blocks.3.hook_resid_mid", "blocks.3.hook_mlp_out", "rms"),
}


@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
@pytest.mark.parametrize("repo,folder", list(GS1))
def test_gemma_scope_1(tmp_path, rng, monkeypatch, repo, folder, compressed):
    hook_in, hook_out, norm = GS1[(repo, folder)]
    d = 32
    w, x = prepared(rng, d, 160)
    embedding = folder.startswith("embedding")
    if embedding:  # SAELens rescales: W_enc / sqrt(d), W_dec * sqrt(d)
        scaled = dict(w, W_enc=w["W_enc"] / np.float32(np.sqrt(d)), W_dec=w["W_dec"] * np.float32(np.sqrt(d)))
        pre = reference(scaled, x)[0]
        w = clear_of_boundaries(w, pre, architecture="jumprelu")
        scaled["threshold"] = w["threshold"]
    # HF cache layout: models--google--<repo>/snapshots/<rev>/<folder>/params.npz
    root = tmp_path / f"models--google--{repo}" / "snapshots" / "abc123"
    path = write_gemma_scope_1(str(root / folder / "params.npz"), w, compressed=compressed,
                               lower_case=repo.endswith("mlp"))
    sae = gc.sae.load(path)
    assert (sae.hook_in, sae.hook_out, sae.input_norm) == (hook_in, hook_out or hook_in, norm)
    assert sae.kind == ("transcoder" if hook_out else "sae")
    assert sae.mapped == (not compressed and not embedding)
    if sae.mapped:
        assert isinstance(sae.W_enc, np.memmap) and not sae.W_enc.flags.writeable
    assert gc.sae.load(root / folder).hook_in == hook_in  # the folder works too
    sl = None
    try:
        loaders = redirect_hub(monkeypatch, str(root))
        if repo.endswith("transcoders"):
            cfg, state, _ = loaders.gemma_2_transcoder_huggingface_loader(
                f"google/{repo}", folder, cfg_overrides={"d_in": d, "d_out": d, "d_sae": 160})
        else:
            cfg, state, _ = loaders.gemma_2_sae_huggingface_loader(
                f"google/{repo}", folder, cfg_overrides={"d_in": d, "d_sae": 160})
        assert sae.hook_in == cfg["hook_name"] or norm or repo.endswith("att")
        sl = saelens_from_state(cfg, state)
    except pytest.skip.Exception:
        pass
    check_maths(sae, scaled if embedding else w, x, architecture="jumprelu", saelens=sl,
                heads=4 if repo.endswith("att") else None)


# ---- bad files -------------------------------------------------------------------------------------

def test_bad_files_raise_named_errors(tmp_path, rng):
    w = random_weights(rng, 16, 40)
    no_thr = {k: v for k, v in w.items() if k != "threshold"}
    np.savez(tmp_path / "nothr.npz", **no_thr)
    with pytest.raises(ValueError, match="no threshold in the file"):
        gc.sae.load(tmp_path / "nothr.npz")
    folder = write_saelens(tmp_path / "sl_nothr", no_thr, architecture="jumprelu", kind="sae",
                           hook_name="blocks.0.hook_resid_post")
    with pytest.raises(ValueError, match="needs a threshold"):
        gc.sae.load(folder)
    bad = dict(w, W_dec=random_weights(rng, 16, 41)["W_dec"])
    np.savez(tmp_path / "mismatch.npz", **bad)
    with pytest.raises(ValueError, match=r"W_enc is \(16, 40\) .* W_dec is \(41, 16\)"):
        gc.sae.load(tmp_path / "mismatch.npz")
    folder = write_saelens(tmp_path / "sl_din", w, architecture="jumprelu", kind="sae",
                           hook_name="blocks.0.hook_resid_post", extra={"d_in": 17})
    with pytest.raises(ValueError, match="cfg.json says d_in = 17"):
        gc.sae.load(folder)
    folder = write_saelens(tmp_path / "sl_gated", w, architecture="jumprelu", kind="sae",
                           hook_name="blocks.0.hook_resid_post", extra={"architecture": "gated"})
    with pytest.raises(NotImplementedError, match="architecture 'gated' is not supported"):
        gc.sae.load(folder)
    folder = write_saelens(tmp_path / "sl_norm", w, architecture="jumprelu", kind="sae",
                           hook_name="blocks.0.hook_resid_post",
                           extra={"normalize_activations": "expected_average_only_in"})
    with pytest.raises(NotImplementedError, match="normalize_activations"):
        gc.sae.load(folder)
    folder = write_saelens(tmp_path / "sl_hook", w, architecture="jumprelu", kind="sae",
                           hook_name="blocks.0.attn.hook_result")
    with pytest.raises(NotImplementedError, match="hook 'blocks.0.attn.hook_result'"):
        gc.sae.load(folder)
    g = write_gemma_scope_2(tmp_path / "gs2", w, hf_in="model.layers.0.mlp.act_fn.output")
    with pytest.raises(NotImplementedError, match="act_fn.output"):
        gc.sae.load(g)
    cfg = json.load(open(g / "config.json"))
    json.dump(dict(cfg, architecture="topk", hf_hook_point_in="model.layers.0.output"),
              open(g / "config.json", "w"))
    with pytest.raises(NotImplementedError, match="architecture 'topk'"):
        gc.sae.load(g)
    from safetensors.numpy import save_file
    cc = tmp_path / "crosscoder"
    os.makedirs(cc)
    save_file({"w_enc": np.zeros((4, 16, 40), np.float32), "w_dec": np.zeros((40, 16), np.float32),
               "b_enc": np.zeros(40, np.float32), "b_dec": np.zeros(16, np.float32),
               "threshold": np.zeros(40, np.float32)}, str(cc / "params.safetensors"))
    json.dump({"hf_hook_point_in": "model.layers.0.output", "architecture": "jump_relu"},
              open(cc / "config.json", "w"))
    with pytest.raises(NotImplementedError, match="crosscoders"):
        gc.sae.load(cc)
    with pytest.raises(FileNotFoundError, match="no such SAE"):
        gc.sae.load(tmp_path / "missing.npz")
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="holds no SAE"):
        gc.sae.load(tmp_path / "empty")
    sae = gc.sae.load(write_gemma_scope_2(tmp_path / "ok", w, hf_in="model.layers.0.output"))
    with pytest.raises(ValueError, match="the input has 17 values per token, but the SAE reads d_in = 16"):
        sae.encode(data(rng, 17))


def test_bad_shapes_and_missing_arrays_raise_named_errors(tmp_path, rng):
    """Each array a file may get wrong, in each format, is named in the error."""
    w = random_weights(rng, 16, 40)

    def gs2(name, arrays, **cfg):
        folder = write_gemma_scope_2(tmp_path / name, dict(w, threshold=w["threshold"]),
                                     hf_in="model.layers.0.output")
        from safetensors.numpy import save_file
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                  str(folder / "params.safetensors"))
        if cfg:
            c = json.load(open(folder / "config.json"))
            json.dump(dict(c, **cfg), open(folder / "config.json", "w"))
        return folder

    lower = {"w_enc": w["W_enc"], "w_dec": w["W_dec"], "b_enc": w["b_enc"], "b_dec": w["b_dec"],
             "threshold": w["threshold"]}
    cases = [
        (gs2("gs2_nothr", {k: v for k, v in lower.items() if k != "threshold"}),
         ValueError, "no threshold in the file"),
        (gs2("gs2_thr", dict(lower, threshold=np.zeros(41, np.float32))),
         ValueError, r"threshold has shape \(41,\), expected \(40,\)"),
        (gs2("gs2_benc", dict(lower, b_enc=np.zeros(39, np.float32))),
         ValueError, r"b_enc has shape \(39,\), expected \(40,\)"),
        (gs2("gs2_bdec", dict(lower, b_dec=np.zeros(15, np.float32))),
         ValueError, r"b_dec has shape \(15,\), expected \(16,\)"),
        (gs2("gs2_wdec", dict(lower, w_dec=np.zeros((40, 17), np.float32), b_dec=np.zeros(17, np.float32))),
         ValueError, "an SAE reconstructs its input, but d_in = 16 and d_out = 17"),
        (gs2("gs2_int", dict(lower, w_enc=lower["w_enc"].astype(np.int32))),
         TypeError, "W_enc must be float32, bfloat16 or float16, got int32"),
        (gs2("gs2_skip", lower, hf_hook_point_out="model.layers.0.post_feedforward_layernorm.output",
             affine_connection=True),
         ValueError, "affine_connection but the file has no affine_skip_connection"),
        (gs2("gs2_skipshape", dict(lower, affine_skip_connection=np.zeros((16, 17), np.float32)),
             hf_hook_point_out="model.layers.0.post_feedforward_layernorm.output", affine_connection=True),
         ValueError, r"W_skip is \(16, 17\), expected \(16, 16\)"),
        (write_saelens(tmp_path / "sl_dsae", w, architecture="jumprelu", kind="sae",
                       hook_name="blocks.0.hook_resid_post", extra={"d_sae": 41}),
         ValueError, "cfg.json says d_sae = 41"),
        (write_saelens(tmp_path / "sl_k", dict({k: v for k, v in w.items() if k != "threshold"}, k=0),
                       architecture="topk", kind="sae", hook_name="blocks.0.hook_resid_post"),
         ValueError, "a TopK SAE needs 1 <= k <= d_sae = 40, got 0"),
        (write_saelens(tmp_path / "sl_skip", dict(w, W_skip=np.zeros((16, 15), np.float32)),
                       architecture="jumprelu", kind="skip_transcoder",
                       hook_name="blocks.0.hook_mlp_in", hook_name_out="blocks.0.hook_mlp_out"),
         ValueError, r"W_skip is \(16, 15\), expected \(16, 16\) \(\[d_out, d_in\]\)"),
    ]
    np.savez(tmp_path / "flat.npz", **dict(w, W_enc=w["W_enc"].reshape(-1)))
    cases.append((tmp_path / "flat.npz", ValueError, r"W_enc must be a 2-D matrix, got shape \(640,\)"))
    np.savez(tmp_path / "nodec.npz", **{k: v for k, v in w.items() if k != "b_dec"})
    cases.append((tmp_path / "nodec.npz", ValueError, "no b_dec in the file"))
    for path, error, message in cases:
        with pytest.raises(error, match=message):
            gc.sae.load(path)
    bare = tmp_path / "bare"
    write_gemma_scope_2(bare, w, hf_in="model.layers.0.output", config=False)
    with pytest.raises(ValueError, match="no config.json, and no layer_"):
        gc.sae.load(bare)
