"""Gemma's tokenizer (SentencePiece-style BPE with byte fallback), in C++.

    tok = gemmacpp.tokenizer.Tokenizer.from_gguf("gemma-3-270m.gguf")   # or .from_hf("folder/")
    ids = tok.encode("Hello world", add_bos=True)   # [2, 9259, 1902]
    tok.decode(ids)                                  # "<bos>Hello world"

It gives the ids Hugging Face gives for the same vocabulary: added tokens (<bos>,
<start_of_turn>, newline runs, ...) are matched whole in the text, spaces become U+2581, and
characters outside the vocabulary fall back to their UTF-8 bytes (<0x00>..<0xFF>).
"""
from __future__ import annotations

import os

from . import _core
from .weights import WeightFile


class Tokenizer:
    """Encode text to token ids and back. Build it with from_gguf or from_hf."""

    def __init__(self, core_tokenizer):
        self._t = core_tokenizer

    @classmethod
    def from_gguf(cls, path_or_weights) -> "Tokenizer":
        """From a GGUF file's tokenizer.ggml.* metadata (a path, or an open gemmacpp.weights file)."""
        if isinstance(path_or_weights, WeightFile):
            return cls(_core.tokenizer_from_weights(path_or_weights._f))
        return cls(_core.tokenizer_from_gguf(os.fspath(path_or_weights)))

    @classmethod
    def from_hf(cls, path) -> "Tokenizer":
        """From a Hugging Face tokenizer.json, or a folder that holds one."""
        return cls(_core.tokenizer_from_hf_json(os.fspath(path)))

    @property
    def vocab_size(self) -> int:
        return self._t.vocab_size

    @property
    def bos_id(self) -> int:
        return self._t.bos_id

    @property
    def eos_id(self) -> int:
        return self._t.eos_id

    @property
    def pad_id(self) -> int:
        return self._t.pad_id

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode: text must be a str, not {type(text).__name__}")
        return self._t.encode(text, bool(add_bos))

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Text of `ids` (a sequence of ints or an integer array). Special tokens are kept as
        text unless skip_special_tokens; byte runs that are not valid UTF-8 become U+FFFD."""
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"decode: ids must be a sequence of ints, not {type(ids).__name__}")
        if hasattr(ids, "tolist"):  # NumPy arrays and tensors
            ids = ids.tolist()
        # The core checks each id (ValueError naming one out of range; TypeError for a non-int).
        return self._t.decode(ids, bool(skip_special_tokens))

    def id_to_piece(self, id: int) -> str:  # noqa: A002
        return self._t.id_to_piece(int(id))

    def piece_to_id(self, piece: str) -> int | None:
        """The id of a vocabulary piece, or None when there is none."""
        i = self._t.piece_to_id(piece)
        return None if i < 0 else i

    def is_special(self, id: int) -> bool:  # noqa: A002
        return self._t.is_special(int(id))

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, bos_id={self.bos_id}, eos_id={self.eos_id})"


class CheckpointTokenizer:
    """The tokenizer of a loaded checkpoint, fixed at load: a HF checkpoint's tokenizer.json is read
    then (a file replaced on disk later must not pair another tokenizer with the loaded weights),
    and a GGUF model's tokenizer comes from the model's own mapping of its file (built at first
    use). An error reading it is raised at first use, as loading the weights alone succeeds."""

    def __init__(self, path: str, core_model=None):
        self._value, self._error, self._core_model = None, None, None
        if path.endswith(".gguf"):
            if core_model is not None:
                self._core_model = core_model
            else:
                self._read(lambda: Tokenizer.from_gguf(path))
            return
        folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
        if os.path.exists(os.path.join(folder, "tokenizer.json")):
            self._read(lambda: Tokenizer.from_hf(folder))
        else:
            self._error = FileNotFoundError(f"no tokenizer.json next to the checkpoint {path!r}")

    def _read(self, make):
        try:
            self._value = make()
        except (OSError, ValueError, NotImplementedError, MemoryError) as e:
            self._error = e

    def get(self) -> Tokenizer:
        if self._value is None and self._core_model is not None:
            self._value = Tokenizer(_core.tokenizer_from_model(self._core_model))
        if self._value is None:
            raise self._error
        return self._value
