"""Token batches as the models take them: a list of ids, a ragged list of lists, or an int array,
turned into one int64 [B, T] array with per-row lengths, every real id checked."""
from __future__ import annotations

import numpy as np


def token_batch(tokens, vocab: int, lengths=None):
    """tokens as a C-contiguous int64 [B, T] array and its rows' real lengths (None when every row
    is full), every real id checked against the vocabulary. Ragged lists are right-padded."""
    if isinstance(tokens, np.ndarray):
        if tokens.dtype.kind not in "iu":
            raise TypeError(f"tokens must be integers, got an array of {tokens.dtype}")
        arr = tokens
    else:
        rows = list(tokens) if isinstance(tokens, (list, tuple)) else None
        if rows and all(isinstance(r, (list, tuple, np.ndarray)) for r in rows) and \
                len({len(r) for r in rows}) > 1:
            if lengths is not None:
                raise ValueError("tokens: pass lengths only with a padded [B, T] array")
            lengths = [len(r) for r in rows]
            arr = np.zeros((len(rows), max(lengths)), dtype=np.int64)
            for b, r in enumerate(rows):
                row = np.asarray(r)
                if row.size and row.dtype.kind not in "iu":
                    raise TypeError(f"tokens must be integers, got {row.dtype}")
                arr[b, :len(r)] = row
        else:
            try:
                arr = np.asarray(tokens)
            except ValueError as e:
                raise ValueError("tokens: expected a sequence of ids or of id sequences") from e
            if arr.dtype == object:
                raise ValueError("tokens: expected a sequence of ids or of id sequences")
            if arr.size and arr.dtype.kind not in "iu":
                raise TypeError(f"tokens must be integers, got {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"tokens must be a non-empty [T] or [B, T] sequence, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    real = np.ones(arr.shape, dtype=bool)
    if lengths is not None:
        lengths = [int(n) for n in lengths]
        if len(lengths) != arr.shape[0]:
            raise ValueError(f"lengths: {len(lengths)} values for {arr.shape[0]} rows of tokens")
        if any(n < 0 or n > arr.shape[1] for n in lengths):
            raise ValueError(f"lengths must be in [0, {arr.shape[1]}], got {lengths}")
        real = np.arange(arr.shape[1])[None, :] < np.asarray(lengths)[:, None]
    bad = real & ((arr < 0) | (arr >= vocab))
    if bad.any():
        raise ValueError(f"token id {int(arr[bad][0])} is out of range [0, {vocab})")
    return arr, lengths
