"""Running a model only as far as it must: capture() records hook points and stops the forward
after the last of them (later layers and the vocabulary head are not computed); text_batches()
tokenizes a stream of texts into bounded batches."""
from __future__ import annotations

import numpy as np


class _StopForward(Exception):
    """Raised by capture's hook once it has what it needs: the forward stops there."""


def capture(model, tokens, names, *, lengths=None) -> dict:
    """{name: float32 copy} of the activations at `names` for tokens (as model.forward takes
    them), from a forward stopped right after the last of them."""
    names = list(dict.fromkeys(names))
    position = {n: i for i, n in enumerate(model.hook_names())}
    for n in names:
        if n not in position:
            raise ValueError(f"no hook point named {n!r} (see model.hook_names())")
    last = max(names, key=position.get)
    got = {}

    def keep(activation, name):
        got[name] = activation.copy()
        if name == last:
            raise _StopForward

    # every position of every point, except the two that last_only cuts to the last token
    last_only = not any(n in ("ln_final.hook_normalized", "hook_logits") for n in names)
    try:
        with model.hooks({n: keep for n in names}):
            model.forward(tokens, lengths=lengths, last_only=last_only)
    except _StopForward:
        pass
    missing = [n for n in names if n not in got]
    if missing:
        raise RuntimeError(f"the forward did not reach {missing}")
    return got


def text_batches(model, texts, *, batch_size: int, max_len: int | None, add_bos: bool = True):
    """Yields (first index, [token id lists]) for consecutive batches of `texts` (strings,
    tokenized with BOS, or token id lists taken as they are), each cut to max_len tokens."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch, first = [], 0
    for i, t in enumerate(texts):
        ids = model.tokenizer.encode(t, add_bos=add_bos) if isinstance(t, str) else [int(v) for v in t]
        if max_len is not None:
            ids = ids[:max_len]
        if not ids:
            raise ValueError(f"texts[{i}] has no tokens")
        batch.append(ids)
        if len(batch) == batch_size:
            yield first, batch
            batch, first = [], i + 1
    if batch:
        yield first, batch


def padded(batch) -> tuple[np.ndarray, np.ndarray]:
    """(int64 [B, T] right-padded tokens, bool [B, T] mask of real tokens) of token id lists."""
    T = max(len(r) for r in batch)
    arr = np.zeros((len(batch), T), np.int64)
    mask = np.zeros((len(batch), T), bool)
    for b, r in enumerate(batch):
        arr[b, :len(r)] = r
        mask[b, :len(r)] = True
    return arr, mask
