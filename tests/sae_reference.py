"""Shared by the SAE tests: random SAE weights, files in each format (written with NumPy alone),
the float64 reference of the published formulas, and the same SAE as a sae-lens object (when
sae-lens is installed) for parity checks.

Formulas (SAELens saes/{standard,jumprelu,topk}_sae.py, transcoder.py; Gemma Scope model cards):
  pre = (x - b_dec if apply_b_dec_to_input) @ W_enc + b_enc
  acts = relu(pre) | relu(pre) * (pre > threshold) | relu of the top k of pre (others 0)
  out = acts @ W_dec + b_dec (+ x @ W_skip.T, skip transcoders)
"""
import json
import os

import numpy as np
import pytest

# (architecture, kind) -> the SAELens architecture name
SAELENS_ARCH = {
    ("relu", "sae"): "standard", ("jumprelu", "sae"): "jumprelu", ("topk", "sae"): "topk",
    ("relu", "transcoder"): "transcoder", ("relu", "skip_transcoder"): "skip_transcoder",
    ("jumprelu", "transcoder"): "jumprelu_transcoder",
    ("jumprelu", "skip_transcoder"): "jumprelu_skip_transcoder",
}


def random_weights(rng, d_in, d_sae, d_out=None, *, architecture="jumprelu", kind="sae", k=None,
                   dtype=np.float32):
    """{W_enc, W_dec, b_enc, b_dec, threshold?, W_skip? ([d_out, d_in]), k?}."""
    d_out = d_in if d_out is None else d_out
    w = {"W_enc": (rng.standard_normal((d_in, d_sae)) / np.sqrt(d_in)).astype(dtype),
         "W_dec": (rng.standard_normal((d_sae, d_out)) / np.sqrt(d_sae) * 3).astype(dtype),
         "b_enc": (rng.standard_normal(d_sae) * 0.2).astype(np.float32),
         "b_dec": (rng.standard_normal(d_out) * 0.2).astype(np.float32)}
    if architecture == "jumprelu":
        w["threshold"] = np.abs(rng.standard_normal(d_sae) * 0.5).astype(np.float32)
    if architecture == "topk":
        w["k"] = k or max(1, d_sae // 10)
    if kind == "skip_transcoder":
        w["W_skip"] = (rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)).astype(dtype)
    return w


def f64(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64) if a is not None else None


def reference(w, x, *, architecture="jumprelu", apply_b_dec_to_input=False):
    """float64 (pre, acts, recons, out) of the published formulas."""
    x = f64(x)
    xin = x - f64(w["b_dec"]) if apply_b_dec_to_input else x
    pre = xin @ f64(w["W_enc"]) + f64(w["b_enc"])
    if architecture == "relu":
        acts = np.maximum(pre, 0)
    elif architecture == "jumprelu":
        acts = np.where(pre > f64(w["threshold"]), np.maximum(pre, 0), 0)
    else:
        rows = pre.reshape(-1, pre.shape[-1])
        acts = np.zeros_like(rows)
        top = np.argsort(-rows, axis=1, kind="stable")[:, :w["k"]]
        np.put_along_axis(acts, top, np.maximum(np.take_along_axis(rows, top, 1), 0), 1)
        acts = acts.reshape(pre.shape)
    recons = acts @ f64(w["W_dec"]) + f64(w["b_dec"])
    out = recons + x @ f64(w["W_skip"]).T if "W_skip" in w else recons
    return pre, acts, recons, out


def clear_of_boundaries(w, pre, *, architecture, margin=1e-3):
    """Moves thresholds (JumpReLU) away from every pre-activation by `margin` (relative), so
    that float32 rounding cannot put a value on the other side; TopK: asserts a gap at the k-th
    value of each row (the caller picks data where that holds)."""
    scale = np.max(np.abs(pre))
    if architecture == "jumprelu":
        thr = w["threshold"].astype(np.float64)
        cols = pre.reshape(-1, pre.shape[-1])
        for f in range(thr.shape[0]):
            while np.any(np.abs(cols[:, f] - thr[f]) < margin * scale):
                thr[f] += 0.37 * margin * scale
        w["threshold"] = thr.astype(np.float32)
    elif architecture == "topk":
        rows = -np.sort(-pre.reshape(-1, pre.shape[-1]), axis=1)
        k = w["k"]
        if k < rows.shape[1]:
            assert np.min(rows[:, k - 1] - rows[:, k]) > 1e-5 * scale, "near tie at the k-th value"
    return w


# ---- files -----------------------------------------------------------------------------------------

def write_saelens(folder, w, *, architecture, kind, hook_name, hook_name_out=None,
                  apply_b_dec_to_input=False, extra=None):
    """A SAELens 6 folder (cfg.json + sae_weights.safetensors), as SAE.save_model writes it."""
    from safetensors.numpy import save_file
    os.makedirs(folder, exist_ok=True)
    d_in, d_sae = w["W_enc"].shape
    cfg = {"d_in": int(d_in), "d_sae": int(d_sae), "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": apply_b_dec_to_input, "normalize_activations": "none",
           "reshape_activations": "hook_z" if hook_name.endswith("hook_z") else "none",
           "metadata": {"sae_lens_version": "6.54.12", "hook_name": hook_name,
                        "model_name": "tiny"},
           "architecture": SAELENS_ARCH[(architecture, kind)]}
    if kind != "sae":
        cfg["d_out"] = int(w["W_dec"].shape[1])
        cfg["metadata"]["hook_name_out"] = hook_name_out
    if architecture == "topk":
        cfg.update(k=int(w["k"]), rescale_acts_by_decoder_norm=False)
    cfg.update(extra or {})
    tensors = {n: np.ascontiguousarray(w[n]) for n in ("W_enc", "W_dec", "b_enc", "b_dec",
                                                       "threshold", "W_skip") if n in w}
    save_file(tensors, os.path.join(folder, "sae_weights.safetensors"))
    with open(os.path.join(folder, "cfg.json"), "w") as f:
        json.dump(cfg, f)
    return folder


def write_gemma_scope_2(folder, w, *, hf_in, hf_out=None, config=True):
    """A Gemma Scope 2 folder: params.safetensors (lower-case names; affine_skip_connection
    stored [d_in, d_out]) and config.json."""
    from safetensors.numpy import save_file
    os.makedirs(folder, exist_ok=True)
    t = {"w_enc": w["W_enc"], "w_dec": w["W_dec"], "b_enc": w["b_enc"], "b_dec": w["b_dec"],
         "threshold": w["threshold"]}
    if "W_skip" in w:
        t["affine_skip_connection"] = np.ascontiguousarray(w["W_skip"].T)
    save_file({k: np.ascontiguousarray(v) for k, v in t.items()},
              os.path.join(folder, "params.safetensors"))
    if config:
        cfg = {"hf_hook_point_in": hf_in, "width": int(w["W_enc"].shape[1]),
               "model_name": "google/gemma-3-tiny", "architecture": "jump_relu", "l0": 10,
               "type": "sae" if hf_out is None else "transcoder"}
        if hf_out is not None:
            cfg.update(hf_hook_point_out=hf_out, affine_connection="W_skip" in w)
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(cfg, f)
    return folder


def write_gemma_scope_1(path, w, *, compressed=False, lower_case=False):
    """A Gemma Scope 1 params.npz (np.savez, or np.savez_compressed)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    names = {"W_enc": "w_enc" if lower_case else "W_enc", "W_dec": "w_dec" if lower_case else "W_dec"}
    arrays = {names.get(n, n): w[n] for n in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


# ---- sae-lens --------------------------------------------------------------------------------------

def saelens_module():
    return pytest.importorskip("sae_lens", reason="sae-lens is not installed (pip install sae-lens)")


def saelens_from_state(cfg_dict, state_dict):
    """A sae-lens SAE from a loader's (cfg_dict, state_dict), as SAE.load_from_disk builds it."""
    saelens_module()
    import torch
    from sae_lens.loading.pretrained_sae_loaders import handle_config_defaulting
    from sae_lens.registry import get_sae_class
    cfg_dict = handle_config_defaulting(dict(cfg_dict))
    sae_cls, cfg_cls = get_sae_class(cfg_dict["architecture"])
    sae = sae_cls(cfg_cls.from_dict(cfg_dict))
    sae.load_state_dict({k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in state_dict.items()})
    return sae.eval()


def redirect_hub(monkeypatch, root):
    """sae-lens's Hugging Face loaders, reading `root` instead of downloading."""
    saelens_module()
    import sae_lens.loading.pretrained_sae_loaders as loaders

    def download(repo_id=None, filename=None, subfolder=None, **kw):
        path = os.path.join(root, subfolder or "", filename)
        if not os.path.exists(path):
            from huggingface_hub.utils import EntryNotFoundError
            raise EntryNotFoundError(path)
        return path

    def shapes(repo_id, filename):
        import gemmacpp as gc
        f = gc.weights.open(os.path.join(root, filename))
        return {n: list(f.info(n).shape) for n in f.names()}

    monkeypatch.setattr(loaders, "hf_hub_download", download)
    monkeypatch.setattr(loaders, "get_safetensors_tensor_shapes", shapes)
    return loaders


def saelens_call(sae, method, x):
    import torch
    with torch.no_grad():
        return getattr(sae, method)(torch.as_tensor(np.asarray(x))).double().numpy()


def rel_err(got, ref):
    ref = np.asarray(ref, np.float64)
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref), initial=0.0) /
                 max(np.max(np.abs(ref), initial=0.0), 1e-30))
