"""A checkpoint's side files: config.json, the image processor's preprocessor_config.json (how
images are resized and normalised before the vision tower), and a sentence-transformers folder's
settings (prompts, input length) and tokenizer.json's special tokens (how text becomes an
embedding model's input).

Weights are read by the C++ core (gemmacpp.weights), which also decides which family a checkpoint
is; these files are read here because they say how the Python side prepares a model's inputs.
"""
from __future__ import annotations

import json
import os

# Processor settings where a checkpoint has no preprocessor_config.json: Gemma 3's
# Gemma3ImageProcessor (bilinear) and the SiglipImageProcessor of SigLIP and PaliGemma (bicubic).
DEFAULT_RESAMPLE = {"gemma3": "bilinear", "paligemma": "bicubic", "siglip_vision_model": "bicubic"}


def read_json(path: str, name: str) -> dict | None:
    """The JSON file `name` of a checkpoint folder or next to a weights file; None where there is
    none (or it is not JSON)."""
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    try:
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_config(path: str) -> dict | None:
    """config.json of a checkpoint folder or next to a .safetensors file; None for GGUF files."""
    return None if path.endswith(".gguf") else read_json(path, "config.json")


def is_vision_config(cfg: dict | None) -> bool:
    """Whether a config.json describes a checkpoint with a vision tower: a bare SigLIP tower,
    PaliGemma, or Gemma 3 with a vision_config (a text-only Gemma 3 is model_type gemma3_text)."""
    if not cfg:
        return False
    t = cfg.get("model_type")
    return t in ("siglip_vision_model", "paligemma") or (t == "gemma3" and "vision_config" in cfg)


def processor_settings(path: str, model_type: str, image_size: int) -> dict:
    """size/resample/mean/std/rescale from preprocessor_config.json, else the processor defaults."""
    s = dict(size=image_size, resample=DEFAULT_RESAMPLE[model_type], mean=0.5, std=0.5,
             rescale=1 / 255)
    p = read_json(path, "preprocessor_config.json")
    if p is None:
        return s
    if isinstance(p.get("resample"), int):
        s["resample"] = p["resample"]
    for key, name in (("image_mean", "mean"), ("image_std", "std"), ("rescale_factor", "rescale")):
        if p.get(key) is not None:
            s[name] = p[key]
    size = p.get("size")
    if isinstance(size, dict) and size.get("height") and size.get("height") == size.get("width"):
        s["size"] = int(size["height"])
    if s["size"] != image_size:
        raise ValueError(f"{path!r}: preprocessor size {s['size']} differs from the vision tower's "
                         f"image_size {image_size}")
    return s


def pan_and_scan_settings(path: str) -> dict:
    """Gemma 3's pan-and-scan settings from preprocessor_config.json (released defaults else)."""
    s = dict(min_crop_size=256, max_num_crops=4, min_ratio_to_activate=1.2)
    p = read_json(path, "preprocessor_config.json")
    if p is None:
        return s
    for name in s:
        if p.get("pan_and_scan_" + name) is not None:
            s[name] = p["pan_and_scan_" + name]
    return s


def sentence_settings(path: str) -> dict:
    """How a sentence-transformers checkpoint turns text into model input: its prompts
    (config_sentence_transformers.json: {name: text} and the default prompt's name), the
    similarity function's name, and the longest input in tokens (sentence_bert_config.json's
    max_seq_length, else the tokenizer's model_max_length, else the model's
    max_position_embeddings). Folders without those files get no prompts and cosine similarity."""
    st = read_json(path, "config_sentence_transformers.json") or {}
    prompts = st.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise ValueError(f"{path!r}: config_sentence_transformers.json's prompts must map names to strings")
    max_len = (read_json(path, "sentence_bert_config.json") or {}).get("max_seq_length")
    if max_len is None:
        max_len = (read_json(path, "tokenizer_config.json") or {}).get("model_max_length")
        if not isinstance(max_len, int) or max_len > 1 << 30:  # transformers' "no limit" sentinel
            max_len = None
    cfg = read_config(path) or {}
    if max_len is None:
        max_len = cfg.get("max_position_embeddings")
    return dict(prompts=dict(prompts), default_prompt_name=st.get("default_prompt_name"),
                similarity=st.get("similarity_fn_name") or "cosine", max_seq_length=max_len)


def special_tokens(path: str, tokenizer) -> tuple[list[int], list[int]]:
    """(ids before, ids after) the text that a Hugging Face tokenizer.json's post-processor adds
    to one sequence (TemplateProcessing, e.g. <bos> ... <eos>); without one, <bos> alone."""
    tj = read_json(path, "tokenizer.json") or {}
    post = tj.get("post_processor") or {}
    single = post.get("single") if post.get("type") == "TemplateProcessing" else None
    if not isinstance(single, list):
        return [tokenizer.bos_id], []
    before, after, seen_text = [], [], False
    for item in single:
        if "Sequence" in item:
            seen_text = True
            continue
        piece = item.get("SpecialToken", {}).get("id")
        i = tokenizer.piece_to_id(piece) if isinstance(piece, str) else None
        if i is None:
            raise ValueError(f"{path!r}: tokenizer.json's post-processor adds {piece!r}, which is "
                             "not in its vocabulary")
        (after if seen_text else before).append(i)
    return before, after
