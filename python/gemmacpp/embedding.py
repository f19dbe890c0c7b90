"""Text embeddings: EmbeddingModel, what gemmacpp.load returns for EmbeddingGemma checkpoints.

    model = gemmacpp.load("path/to/embeddinggemma")      # a sentence-transformers folder, or GGUF
    q = model.embed(["Which planet is red?"], task="query")          # float32 [1, 768], unit norm
    d = model.embed(["Mars is red.", "Venus is hot."], task="document", dim=256)
    model.similarity(q, d)                                           # cosine similarities [1, 2]

The pipeline is the checkpoint's own (its sentence-transformers modules): the texts, each after
its task's prompt from config_sentence_transformers.json, are tokenized as the checkpoint's
tokenizer.json says (special tokens, truncation to max_seq_length), run through the Gemma 3
encoder (bidirectional attention) as ragged batches packed without padding, mean-pooled, projected
by the dense layers and normalised. `dim` keeps the first dim values (Matryoshka sizes: 512, 256,
128 for EmbeddingGemma) and normalize re-normalises them, as sentence-transformers'
encode(truncate_dim=..., normalize_embeddings=True) does. encode() takes sentence-transformers'
argument names, so code written for it ports with one line changed.

Hook points: the encoder's (hook_embed, blocks.{i}.*, ln_final.hook_normalized: the per-token last
hidden state) and the head's: hook_pooled [B, d], dense.{i}.hook_out, hook_embedding (the final
vector, after the norm). forward(tokens) and run_with_cache(tokens) take token ids as the text
models do; tokenize(texts, task=...) gives them for texts.
"""
from __future__ import annotations

import numpy as np

from . import checkpoint, weights
from .hooks import HookedMixin
from .tokenizer import CheckpointTokenizer, Tokenizer
from .tokens import token_batch


class EmbeddingModel(HookedMixin):
    """A text embedding model (EmbeddingGemma); see gemmacpp.load."""

    def __init__(self, core_encoder, path: str):
        self._e = core_encoder
        self._path = path
        self._config = None
        self._tokenizer = CheckpointTokenizer(path)  # fixed at load
        self._specials = None
        s = checkpoint.sentence_settings(path) if not path.endswith(".gguf") else \
            dict(prompts={}, default_prompt_name=None, similarity="cosine", max_seq_length=None)
        self.prompts: dict = s["prompts"]
        self.default_prompt_name: str | None = s["default_prompt_name"]
        self.similarity_fn_name: str = s["similarity"]
        if self.similarity_fn_name not in ("cosine", "dot"):
            raise NotImplementedError(f"{path!r}: similarity function {self.similarity_fn_name!r} "
                                      "(only cosine and dot)")
        self.max_seq_length: int | None = s["max_seq_length"]

    @property
    def config(self) -> dict:
        """The encoder's config (as a text model's: sizes, layers, bidirectional=True)."""
        if self._config is None:
            self._config = self._e.config()
        return self._config

    @property
    def path(self) -> str:
        return self._e.path

    @property
    def dimension(self) -> int:
        """Length of the embeddings the pipeline gives (before any truncation to `dim`)."""
        return int(self._e.out_dim)

    @property
    def tokenizer(self) -> Tokenizer:
        t = self._tokenizer  # a CheckpointTokenizer, or any tokenizer put in its place
        return t.get() if isinstance(t, CheckpointTokenizer) else t

    # ---- text to token ids ----

    def _special_tokens(self):
        if self._specials is None:
            tok = self.tokenizer
            if self._path.endswith(".gguf"):
                # As llama.cpp reads the file: its add_bos/add_eos flags (EmbeddingGemma's
                # tokenizer adds both, which a converted file says).
                meta = weights.open(self._path).metadata
                bos = meta.get("tokenizer.ggml.add_bos_token", True)
                eos = meta.get("tokenizer.ggml.add_eos_token", True)
                self._specials = ([tok.bos_id] if bos else [], [tok.eos_id] if eos else [])
            else:
                self._specials = checkpoint.special_tokens(self._path, tok)
        return self._specials

    def _prompt_text(self, task, prompt) -> str:
        if task is not None and prompt is not None:
            raise ValueError("embed: give task (a prompt's name) or prompt (its text), not both")
        if prompt is not None:
            if not isinstance(prompt, str):
                raise TypeError(f"embed: prompt must be a str, got {type(prompt).__name__}")
            return prompt
        if task is None:
            task = self.default_prompt_name
            if task is None:
                return ""
        if not isinstance(task, str):
            raise TypeError(f"embed: task must be a prompt name (str), got {type(task).__name__}")
        if task not in self.prompts:
            known = ", ".join(repr(n) for n in self.prompts) or "none"
            raise ValueError(f"embed: task {task!r} is not one of this checkpoint's prompts ({known})")
        return self.prompts[task]

    def _ids(self, text: str) -> list[int]:
        before, after = self._special_tokens()
        body = self.tokenizer.encode(text, add_bos=False)
        if self.max_seq_length is not None:  # truncation keeps the special tokens, as HF's does
            body = body[:max(0, self.max_seq_length - len(before) - len(after))]
        return before + body + after

    def tokenize(self, texts, *, task=None, prompt=None):
        """(tokens int64 [B, T] right-padded, lengths, pool_skip) of texts after their prompt, as
        forward and run_with_cache take them; pool_skip: per row, the prompt tokens the pooling
        leaves out (0 unless the checkpoint's Pooling excludes the prompt)."""
        texts = _texts(texts, "tokenize")
        p = self._prompt_text(task, prompt)
        rows = [self._ids(p + t) for t in texts]
        skip = self._pool_skip(p)
        tokens = np.zeros((len(rows), max(len(r) for r in rows)), np.int64)
        for b, r in enumerate(rows):
            tokens[b, :len(r)] = r
        return tokens, [len(r) for r in rows], [skip] * len(rows)

    def _pool_skip(self, prompt: str) -> int:
        """The prompt tokens the pooling leaves out: none unless the checkpoint's Pooling excludes
        the prompt; then the prompt's tokens less a trailing special one, as sentence-transformers
        measures a prompt."""
        if not prompt or self._e.pool_includes_prompt:
            return 0
        ids = self._ids(prompt)
        return len(ids) - (1 if ids and self.tokenizer.is_special(ids[-1]) else 0)

    # ---- embeddings ----

    def forward(self, tokens, *, lengths=None, pool_skip=None) -> np.ndarray:
        """The pipeline's output [B, dimension] float32 for token ids (a list of ints, a list of
        lists, or an int array [T] or [B, T], rows right-padded past lengths[b])."""
        arr, row_lengths = token_batch(tokens, self.config["vocab_size"], lengths)
        if pool_skip is not None:
            pool_skip = [int(n) for n in pool_skip]
        return self._e.encode(arr, row_lengths, pool_skip, hooks=self._hook_dispatch())

    def embed(self, texts, *, task=None, prompt=None, dim: int | None = None, normalize: bool = True,
              batch_size: int = 32, progress: bool | None = None) -> np.ndarray:
        """Embeddings float32 [N, dim] of texts (a str gives [dim]). task: the name of one of the
        checkpoint's prompts (self.prompts: "query", "document", ...; None: its default prompt,
        if any), put in front of each text; prompt: a prompt's text instead. dim: keep the first
        dim values (None: all, self.dimension). normalize: scale each to unit L2 norm after the
        truncation. Texts are run longest first in ragged batches of batch_size, packed without
        padding; progress: a progress bar (None: for long lists, when tqdm is installed)."""
        single = isinstance(texts, str)
        texts = _texts(texts, "embed")
        if dim is not None:
            if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
                raise TypeError(f"embed: dim must be an int, got {type(dim).__name__}")
            if not 1 <= dim <= self.dimension:
                raise ValueError(f"embed: dim must be in [1, {self.dimension}], got {dim}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"embed: batch_size must be an int >= 1, got {batch_size!r}")
        p = self._prompt_text(task, prompt)
        rows = [self._ids(p + t) for t in texts]
        skip = self._pool_skip(p)
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        out = np.empty((len(rows), self.dimension), np.float32)
        bar = _progress(progress, len(rows), batch_size)
        try:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                width = len(rows[idx[0]])
                tokens = np.zeros((len(idx), width), np.int64)
                for b, i in enumerate(idx):
                    tokens[b, :len(rows[i])] = rows[i]
                out[idx] = self._e.encode(tokens, [len(rows[i]) for i in idx], [skip] * len(idx),
                                          hooks=self._hook_dispatch())
                if bar is not None:
                    bar.update(len(idx))
        finally:
            if bar is not None:
                bar.close()
        if dim is not None:
            out = np.ascontiguousarray(out[:, :dim])
        if normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out[0] if single else out

    def encode(self, sentences, prompt_name=None, prompt=None, batch_size: int = 32,
               show_progress_bar: bool | None = None, convert_to_numpy: bool = True,
               normalize_embeddings: bool = False, truncate_dim: int | None = None) -> np.ndarray:
        """sentence-transformers' SentenceTransformer.encode, by its argument names: the same as
        embed(sentences, task=prompt_name, prompt=prompt, dim=truncate_dim,
        normalize=normalize_embeddings, ...). The pipeline's own Normalize module (EmbeddingGemma
        has one) applies either way. Returns NumPy arrays (convert_to_numpy=False is refused)."""
        if not convert_to_numpy:
            raise NotImplementedError("encode: gemmacpp returns NumPy arrays (convert_to_numpy=True)")
        return self.embed(sentences, task=prompt_name, prompt=prompt, dim=truncate_dim,
                          normalize=normalize_embeddings, batch_size=batch_size, progress=show_progress_bar)

    def similarity(self, a, b) -> np.ndarray:
        """[len(a), len(b)] similarities of two sets of embeddings ([N, d] or [d]) by the
        checkpoint's similarity function (cosine for EmbeddingGemma; dot if it says so)."""
        if self.similarity_fn_name == "cosine":
            return cosine_similarity(a, b)
        a, b = _pair(a, b, "similarity")
        return (a @ b.T).astype(np.float32)

    # ---- hooks (docs/hooks.md) ----

    def hook_names(self) -> list[str]:
        """Every hook point, in the order an encode reaches them: the encoder's, then
        hook_pooled, dense.{i}.hook_out, hook_embedding."""
        return list(self._e.hook_names())

    def run_with_cache(self, tokens, *, names=None, lengths=None, pool_skip=None):
        """(forward(tokens, ...), activations at the selected points (None: all) as an
        ActivationCache), recorded after any active hooks edited them."""
        with self._recording(names) as acts:
            out = self.forward(tokens, lengths=lengths, pool_skip=pool_skip)
        return out, acts

    def __repr__(self) -> str:
        c = self.config
        return (f"<gemmacpp.EmbeddingModel {c['family']} {c['num_layers']} layers, d={c['hidden_size']}, "
                f"dimension={self.dimension}: {self.path!r}>")


def _texts(texts, what: str) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    elif isinstance(texts, (bytes, bytearray)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"{what}: texts must be a str or a list of str, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{what}: texts is empty")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{what}: text {i} is a {type(t).__name__}, not a str")
        if not t:
            raise ValueError(f"{what}: text {i} is empty")
    return texts


def _progress(progress, n: int, batch_size: int):
    if progress is False or (progress is None and n <= 16 * batch_size):
        return None
    try:  # an optional dependency (the eval extra)
        from tqdm import tqdm
    except ImportError:
        if progress:
            from ._extras import missing
            raise missing("tqdm", "embed(progress=True)") from None
        return None
    return tqdm(total=n, desc="gemmacpp embed", unit="text")


def _pair(a, b, what: str):
    a = np.atleast_2d(np.asarray(a, np.float64))
    b = np.atleast_2d(np.asarray(b, np.float64))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"{what}: embeddings must be [N, d] and [M, d], got {a.shape} and {b.shape}")
    return a, b


def cosine_similarity(a, b) -> np.ndarray:
    """[len(a), len(b)] cosine similarities of two sets of vectors ([N, d] or [d])."""
    a, b = _pair(a, b, "cosine_similarity")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a @ b.T).astype(np.float32)
