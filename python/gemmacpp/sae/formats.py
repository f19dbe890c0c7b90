"""SAE files: Gemma Scope 1 (params.npz), Gemma Scope 2 (params.safetensors + config.json) and
SAELens folders (cfg.json + sae_weights.safetensors), read into SAE objects with their weights
memory-mapped in the stored dtype; Gemma Scope 2 written back. Hook points are mapped to
gemmacpp's names (docs/sae.md has the table).
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

from .. import weights
from .autoencoder import SAE
from .files import read_npz, write_json, write_safetensors

# ---- hook names -----------------------------------------------------------------------------------

# Hugging Face module points (Gemma Scope 2's hf_hook_point_in/out) -> gemmacpp hook names.
_HF_POINTS = [
    (r"layers\.(\d+)\.output", "blocks.{}.hook_resid_post"),
    (r"layers\.(\d+)\.input", "blocks.{}.hook_resid_pre"),
    (r"layers\.(\d+)\.input_layernorm\.output", "blocks.{}.ln1.hook_normalized"),
    (r"layers\.(\d+)\.self_attn\.q_proj\.output", "blocks.{}.attn.hook_q"),
    (r"layers\.(\d+)\.self_attn\.k_proj\.output", "blocks.{}.attn.hook_k"),
    (r"layers\.(\d+)\.self_attn\.q_norm\.output", "blocks.{}.attn.hook_q_normed"),
    (r"layers\.(\d+)\.self_attn\.k_norm\.output", "blocks.{}.attn.hook_k_normed"),
    (r"layers\.(\d+)\.self_attn\.o_proj\.input", "blocks.{}.attn.hook_z"),
    (r"layers\.(\d+)\.post_attention_layernorm\.output", "blocks.{}.hook_attn_out"),
    (r"layers\.(\d+)\.pre_feedforward_layernorm\.input", "blocks.{}.hook_resid_mid"),
    (r"layers\.(\d+)\.pre_feedforward_layernorm\.output", "blocks.{}.ln2.hook_normalized"),
    (r"layers\.(\d+)\.mlp\.down_proj\.input", "blocks.{}.mlp.hook_post"),
    (r"layers\.(\d+)\.post_feedforward_layernorm\.output", "blocks.{}.hook_mlp_out"),
]


def hook_from_hf(point: str) -> str:
    """The gemmacpp hook name of a Hugging Face module point such as
    "model.layers.12.post_feedforward_layernorm.output" (also under model.language_model.)."""
    m = re.fullmatch(r"(?:model\.)?(?:language_model\.)?(?:model\.)?(.+)", point)
    for pattern, name in _HF_POINTS:
        hit = re.fullmatch(pattern, m.group(1))
        if hit:
            return name.format(hit.group(1))
    raise NotImplementedError(f"the Hugging Face hook point {point!r} has no gemmacpp counterpart "
                              "here (known: decoder layer outputs/inputs, input_layernorm, q/k_proj and q/k_norm outputs, "
                              "o_proj input, post_attention_layernorm, pre/post_feedforward_layernorm, "
                              "down_proj input)")


def hook_to_hf(name: str) -> str:
    """The Hugging Face module point of a gemmacpp hook name (the inverse of hook_from_hf)."""
    hit = re.fullmatch(r"blocks\.(\d+)\.(.+)", name or "")
    if hit:
        for pattern, ours in _HF_POINTS:
            if ours.format(hit.group(1)) == name:
                return "model." + pattern.replace(r"(\d+)", hit.group(1)).replace("\\.", ".")
    raise ValueError(f"hook {name!r} has no Hugging Face module point that Gemma Scope 2 names")


def hook_from_transformer_lens(name: str):
    """(gemmacpp hook, input_norm) for a TransformerLens / SAELens hook name. TransformerLens's
    ln1/ln2.hook_normalized are x / rms(x) without the norm's weight, which gemmacpp's include:
    such SAEs read hook_resid_pre/hook_resid_mid and normalise; hook_mlp_in (HookedSAETransformer's
    MLP input, Gemma Scope 2 transcoders) is the norm's output with its weight."""
    hit = re.fullmatch(r"blocks\.(\d+)\.(.+)", name or "")
    if hit:
        layer, point = hit.groups()
        if point == "ln1.hook_normalized":
            return f"blocks.{layer}.hook_resid_pre", "rms"
        if point == "ln2.hook_normalized":
            return f"blocks.{layer}.hook_resid_mid", "rms"
        if point in ("hook_mlp_in", "mlp.hook_in"):
            return f"blocks.{layer}.ln2.hook_normalized", None
        if point in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out",
                     "hook_mlp_out", "attn.hook_z", "attn.hook_q", "attn.hook_k", "attn.hook_v",
                     "attn.hook_q_normed", "attn.hook_k_normed",
                     "mlp.hook_pre", "mlp.hook_post"):
            return name, None
    if name == "hook_embed":
        return name, None
    raise NotImplementedError(f"the TransformerLens hook {name!r} has no gemmacpp counterpart "
                              "here (see docs/sae.md for the mapped names)")


# ---- Gemma Scope 1 --------------------------------------------------------------------------------

def _gemma_scope_1_hooks(path: str):
    """(hook_in, hook_out, input_norm, embedding) from a Gemma Scope 1 path such as
    .../gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz (also Hugging Face's
    cache, models--google--gemma-scope-2b-pt-res/snapshots/<rev>/layer_12/...)."""
    s = path.replace("\\", "/")
    repo = re.search(r"gemma-scope-[0-9a-z]+-(?:pt|it)-(res|mlp|att|transcoders)(?![a-z])", s)
    layer = re.search(r"(?:^|/)layer_(\d+)(?:/|$)", s)
    if repo is None:
        return None, None, None, False
    kind = repo.group(1)
    if kind == "res" and re.search(r"(?:^|/)embedding(?:/|$)", s):
        return "hook_embed", "hook_embed", None, True
    if layer is None:
        return None, None, None, False
    L = layer.group(1)
    if kind == "res":
        return f"blocks.{L}.hook_resid_post", None, None, False
    if kind == "mlp":
        return f"blocks.{L}.hook_mlp_out", None, None, False
    if kind == "att":
        return f"blocks.{L}.attn.hook_z", None, None, False
    # transcoders: in = the pre-MLP norm's x / rms(x), without the (1 + w) gain; out = mlp_out
    return f"blocks.{L}.hook_resid_mid", f"blocks.{L}.hook_mlp_out", "rms", False


def _take(arrays, path, *names, required=True):
    for n in names:
        if n in arrays:
            return arrays.pop(n)
    if required:
        raise ValueError(f"{path!r}: no {names[0]} in the file (has: {', '.join(sorted(arrays)) or 'nothing'})")
    return None


def _check_scaling_factor(arrays, path):
    sf = arrays.pop("scaling_factor", None)
    if sf is not None and not np.all(np.asarray(sf) == 1):
        raise NotImplementedError(f"{path!r}: a scaling_factor other than ones (finetuned "
                                  "activation scaling) is not supported")


def load_gemma_scope_1(path: str, name: str | None = None) -> SAE:
    """A Gemma Scope 1 params.npz (JumpReLU; SAE, or transcoder for gemma-scope-*-transcoders).
    The hook point comes from the path (repository and layer_{L} folders) when it names them."""
    arrays, mapped = read_npz(path)
    arrays = {(k[0].upper() + k[1:] if k in ("w_enc", "w_dec") else k): v for k, v in arrays.items()}
    hook_in, hook_out, input_norm, embedding = _gemma_scope_1_hooks(os.path.abspath(path))
    W_enc, W_dec = _take(arrays, path, "W_enc"), _take(arrays, path, "W_dec")
    b_enc, b_dec = _take(arrays, path, "b_enc"), _take(arrays, path, "b_dec")
    threshold = _take(arrays, path, "threshold")
    _check_scaling_factor(arrays, path)
    if embedding:  # trained on the unscaled embedding, as SAELens adjusts it: copies
        d = int(W_enc.shape[0])
        W_enc = (np.asarray(W_enc, np.float32) / np.float32(np.sqrt(d))).astype(np.float32)
        W_dec = (np.asarray(W_dec, np.float32) * np.float32(np.sqrt(d))).astype(np.float32)
        mapped = False
    return SAE(W_enc, W_dec, b_enc, b_dec, threshold=threshold, architecture="jumprelu",
               kind="transcoder" if hook_out and hook_out != hook_in else "sae",
               hook_in=hook_in, hook_out=hook_out, input_norm=input_norm,
               name=name or _short_name(path), metadata={"format": "gemma-scope-1", "path": path},
               mapped=mapped)


# ---- Gemma Scope 2 --------------------------------------------------------------------------------

def _gemma_scope_2_config_from_folder(folder: str) -> dict:
    """What config.json says, inferred from a folder name like layer_9_width_16k_l0_small[_affine]
    under resid_post/, attn_out/, mlp_out/ or transcoder/ (as SAELens does without the file)."""
    s = folder.replace("\\", "/")
    layer = re.search(r"layer_(\d+)", os.path.basename(s.rstrip("/")))
    if layer is None:
        raise ValueError(f"{folder!r}: no config.json, and no layer_{{L}} in the folder name to infer "
                         "the hook point from")
    L = layer.group(1)
    for kind, point in (("transcoder", None), ("resid_post", f"model.layers.{L}.output"),
                        ("attn_out", f"model.layers.{L}.self_attn.o_proj.input"),
                        ("mlp_out", f"model.layers.{L}.post_feedforward_layernorm.output")):
        if re.search(rf"(?:^|/){kind}(?:_all)?/", s):
            if point:
                return {"architecture": "jump_relu", "hf_hook_point_in": point}
            return {"architecture": "jump_relu",
                    "hf_hook_point_in": f"model.layers.{L}.pre_feedforward_layernorm.output",
                    "hf_hook_point_out": f"model.layers.{L}.post_feedforward_layernorm.output",
                    "affine_connection": "affine" in os.path.basename(s.rstrip("/"))}
    raise ValueError(f"{folder!r}: no config.json, and the path names none of resid_post/, "
                     "attn_out/, mlp_out/, transcoder/ to infer the hook point from")


def load_gemma_scope_2(folder: str, file: str = "params.safetensors", name: str | None = None) -> SAE:
    """A Gemma Scope 2 folder: params.safetensors (w_enc, w_dec, b_enc, b_dec, threshold,
    affine_skip_connection for skip transcoders) and config.json (hf_hook_point_in/out)."""
    path = os.path.join(folder, file)
    cfg_path = os.path.join(folder, "config.json")
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            cfg = json.load(f)
    else:
        cfg = _gemma_scope_2_config_from_folder(os.path.abspath(folder))
    arch = cfg.get("architecture", "jump_relu")
    if arch != "jump_relu":
        raise NotImplementedError(f"{cfg_path!r}: architecture {arch!r} is not supported (Gemma "
                                  "Scope 2 files are jump_relu)")
    if "hf_hook_point_in" not in cfg:
        raise ValueError(f"{cfg_path!r}: no hf_hook_point_in")
    wf = weights.open(path)
    arrays = {n: wf[n] for n in wf.names()}
    w_enc = _take(arrays, path, "w_enc", "W_enc")
    if len(w_enc.shape) != 2:
        raise NotImplementedError(f"{path!r}: w_enc has shape {tuple(w_enc.shape)}; crosscoders and "
                                  "cross-layer transcoders (more than one layer) are not supported")
    hook_in = hook_from_hf(cfg["hf_hook_point_in"])
    out_point = cfg.get("hf_hook_point_out")
    hook_out = hook_from_hf(out_point) if out_point else None
    W_skip = _take(arrays, path, "affine_skip_connection", required=False)
    if cfg.get("affine_connection") and W_skip is None:
        raise ValueError(f"{path!r}: config.json says affine_connection but the file has no "
                         "affine_skip_connection")
    transcoder = hook_out is not None and hook_out != hook_in
    sae = SAE(w_enc, _take(arrays, path, "w_dec", "W_dec"), _take(arrays, path, "b_enc"),
              _take(arrays, path, "b_dec"), threshold=_take(arrays, path, "threshold"),
              architecture="jumprelu",
              kind="skip_transcoder" if W_skip is not None else "transcoder" if transcoder else "sae",
              W_skip=W_skip, skip_layout="in_out", hook_in=hook_in,
              hook_out=hook_out if transcoder else hook_in,
              name=name or _short_name(folder),
              metadata={"format": "gemma-scope-2", "path": folder, **cfg})
    return sae


def save_gemma_scope_2(sae: SAE, folder: str, *, model_name: str | None = None, l0=None) -> str:
    """Writes `sae` as a Gemma Scope 2 folder (params.safetensors + config.json) and returns its
    path. JumpReLU, or ReLU (written as JumpReLU with threshold 0, the same function); its hook
    points must have Hugging Face counterparts."""
    if sae.architecture == "topk":
        raise ValueError(f"{sae.name}: Gemma Scope 2 files hold JumpReLU SAEs; a TopK SAE cannot "
                         "be written as one")
    if sae.input_norm is not None or sae.apply_b_dec_to_input:
        raise ValueError(f"{sae.name}: Gemma Scope 2 has no input normalisation or b_dec "
                         "subtraction; this SAE cannot be written as one")
    if sae.hook_in is None:
        raise ValueError(f"{sae.name}: the SAE has no hook point (give one with sae.at(hook))")
    os.makedirs(folder, exist_ok=True)
    zeros = np.zeros(sae.d_sae, np.float32)
    tensors = {"w_enc": np.asarray(sae.W_enc), "w_dec": np.asarray(sae.W_dec),
               "b_enc": sae.b_enc if sae.b_enc is not None else zeros,
               "b_dec": sae.b_dec if sae.b_dec is not None else np.zeros(sae.d_out, np.float32),
               "threshold": sae.threshold if sae.threshold is not None else zeros}
    if sae.W_skip is not None:
        w = np.asarray(sae.W_skip)
        tensors["affine_skip_connection"] = w if sae.skip_layout == "in_out" else w.T
    cfg = {"hf_hook_point_in": hook_to_hf(sae.hook_in), "width": sae.d_sae,
           "model_name": model_name or sae.metadata.get("model_name", ""),
           "architecture": "jump_relu", "type": "sae" if sae.kind == "sae" else "transcoder"}
    if sae.kind != "sae":
        cfg["hf_hook_point_out"] = hook_to_hf(sae.hook_out)
        cfg["affine_connection"] = sae.W_skip is not None
    if l0 is not None:
        cfg["l0"] = l0
    write_safetensors(os.path.join(folder, "params.safetensors"), tensors)
    write_json(os.path.join(folder, "config.json"), cfg)
    return folder


# ---- SAELens --------------------------------------------------------------------------------------

_SAELENS_ARCH = {
    "standard": ("relu", "sae"), "jumprelu": ("jumprelu", "sae"), "topk": ("topk", "sae"),
    "transcoder": ("relu", "transcoder"), "skip_transcoder": ("relu", "skip_transcoder"),
    "jumprelu_transcoder": ("jumprelu", "transcoder"),
    "jumprelu_skip_transcoder": ("jumprelu", "skip_transcoder"),
}


def load_saelens(folder: str, name: str | None = None) -> SAE:
    """A SAELens folder (SAE.save_model): cfg.json and sae_weights.safetensors."""
    cfg_path = os.path.join(folder, "cfg.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    meta = dict(cfg.get("metadata") or {})
    arch = cfg.get("architecture")
    if arch is None:  # SAELens < 6 configs
        arch = "topk" if cfg.get("activation_fn", cfg.get("activation_fn_str")) == "topk" else "standard"
    if arch not in _SAELENS_ARCH:
        raise NotImplementedError(f"{cfg_path!r}: architecture {arch!r} is not supported "
                                  f"(supported: {', '.join(_SAELENS_ARCH)})")
    architecture, kind = _SAELENS_ARCH[arch]
    norm = cfg.get("normalize_activations") or "none"
    if norm not in ("none", False):
        raise NotImplementedError(f"{cfg_path!r}: normalize_activations={norm!r} is not supported "
                                  "(fold it into the weights first)")
    if cfg.get("rescale_acts_by_decoder_norm"):
        raise NotImplementedError(f"{cfg_path!r}: rescale_acts_by_decoder_norm is not supported")
    k = cfg.get("k")
    if architecture == "topk" and k is None:
        k = (cfg.get("activation_fn_kwargs") or {}).get("k")
    tl_in = meta.get("hook_name") or cfg.get("hook_name") or cfg.get("hook_point")
    tl_out = meta.get("hook_name_out") or cfg.get("hook_name_out")
    if (meta.get("hook_head_index") or cfg.get("hook_head_index")) is not None:
        raise NotImplementedError(f"{cfg_path!r}: SAEs on one head (hook_head_index) are not supported")
    hook_in, input_norm = hook_from_transformer_lens(tl_in) if tl_in else (None, None)
    hook_out = hook_from_transformer_lens(tl_out)[0] if tl_out else None
    path = os.path.join(folder, "sae_weights.safetensors")
    wf = weights.open(path)
    arrays = {n: wf[n] for n in wf.names()}
    _check_scaling_factor(arrays, path)
    threshold = arrays.pop("threshold", None)
    if threshold is None and "log_threshold" in arrays:
        threshold = np.exp(np.asarray(arrays.pop("log_threshold"), np.float64)).astype(np.float32)
    W_enc = _take(arrays, path, "W_enc")
    if threshold is None and architecture == "jumprelu":
        raise ValueError(f"{path!r}: a JumpReLU SAE needs a threshold, and the file has none")
    for dim, n in (("d_in", int(W_enc.shape[0])), ("d_sae", int(W_enc.shape[1]))):
        if dim in cfg and int(cfg[dim]) != n:
            raise ValueError(f"{cfg_path!r}: cfg.json says {dim} = {cfg[dim]}, but W_enc is "
                             f"{tuple(W_enc.shape)} ([d_in, d_sae])")
    return SAE(W_enc, _take(arrays, path, "W_dec"), _take(arrays, path, "b_enc"),
               _take(arrays, path, "b_dec"), threshold=threshold, k=k, architecture=architecture,
               kind=kind, W_skip=arrays.pop("W_skip", None), skip_layout="out_in",
               hook_in=hook_in, hook_out=hook_out if kind != "sae" else hook_in,
               input_norm=input_norm,
               apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", arch == "standard")) and kind == "sae",
               name=name or _short_name(folder),
               metadata={"format": "saelens", "path": folder, "hook_name": tl_in,
                         "hook_name_out": tl_out, **{k_: v for k_, v in meta.items()
                                                      if isinstance(v, (str, int, float))}})


# ---- dispatch -------------------------------------------------------------------------------------

def _short_name(path: str) -> str:
    parts = [p for p in os.path.abspath(path).replace("\\", "/").split("/") if p]
    if parts and parts[-1].endswith((".npz", ".safetensors")):
        parts = parts[:-1]
    return "/".join(parts[-3:]) if parts else path


def load(path, *, hook: str | None = None, hook_out: str | None = None, input_norm="keep",
         name: str | None = None) -> SAE:
    """An SAE or transcoder from a Gemma Scope 1 params.npz (or its folder), a Gemma Scope 2
    folder (params.safetensors + config.json) or a SAELens folder (cfg.json +
    sae_weights.safetensors). Weights are memory-mapped in their stored dtype (a compressed .npz
    is read into memory: sae.mapped says which). hook / hook_out: the gemmacpp hook points to use
    instead of (or, for a bare params.npz, in the absence of) those the files name; input_norm
    None or "rms" (x / rms(x), as Gemma Scope 1 transcoders read the pre-MLP norm), with them."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"no such SAE file or folder: {p!r}")
    if os.path.isdir(p):
        has = set(os.listdir(p))
        if {"cfg.json", "sae_weights.safetensors"} <= has:
            sae = load_saelens(p, name)
        elif "params.safetensors" in has:
            sae = load_gemma_scope_2(p, name=name)
        elif "params.npz" in has:
            sae = load_gemma_scope_1(os.path.join(p, "params.npz"), name)
        else:
            raise FileNotFoundError(f"{p!r} holds no SAE: expected params.npz (Gemma Scope 1), "
                                    "params.safetensors (Gemma Scope 2) or cfg.json + "
                                    "sae_weights.safetensors (SAELens)")
    elif p.endswith(".npz"):
        sae = load_gemma_scope_1(p, name)
    elif p.endswith(".safetensors"):
        folder, base = os.path.split(os.path.abspath(p))
        if base == "sae_weights.safetensors" and os.path.exists(os.path.join(folder, "cfg.json")):
            sae = load_saelens(folder, name)
        else:
            sae = load_gemma_scope_2(folder, base, name)
    else:
        raise ValueError(f"{p!r} is not an SAE file: expected a folder, a .npz or a .safetensors")
    if hook is not None or hook_out is not None:
        if (hook or sae.hook_in) is None:
            raise ValueError(f"{p!r}: hook_out given, but the file names no input hook: give hook")
        sae = sae.at(hook or sae.hook_in, hook_out, input_norm=input_norm)
    elif input_norm != "keep":
        sae = sae.at(sae.hook_in, sae.hook_out, input_norm=input_norm)
    return sae
