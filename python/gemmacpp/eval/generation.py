"""Greedy generation for many prompts at once, ending at stop strings (the harness's generate_until).

Prompts of different lengths are prefilled as one ragged batch into a per-sequence KV cache, then
every unfinished row advances one token per forward (finished rows pass zero tokens). A row ends at
EOS (or another stop id), at max_new_tokens, or once its text contains a stop string; its text is
cut before the first stop string. Special tokens are left out of the text, as the harness does.
"""
from __future__ import annotations

import numpy as np


def cut_at_stops(text: str, stops) -> str:
    """text up to the first occurrence of any stop string (the harness splits on each in turn)."""
    for s in stops:
        if s:
            text = text.split(s)[0]
    return text


def greedy_until(model, prompts, *, max_new_tokens: int, stops=(), stop_ids=None,
                 batch_size: int = 16, progress=None) -> list[str]:
    """The greedy continuation text of each prompt (a list of token ids), in input order."""
    tok = model.tokenizer
    stops = [s for s in stops if s]
    if stop_ids is None:
        stop_ids = {tok.eos_id}
        end_of_turn = tok.piece_to_id("<end_of_turn>")
        if end_of_turn is not None:
            stop_ids.add(end_of_turn)
    stop_ids = set(stop_ids)
    results = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths together
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        rows = [[int(t) for t in prompts[i]] for i in idx]
        if any(not r for r in rows):
            raise ValueError("generate: a prompt has no tokens")
        if max_new_tokens <= 0:
            if progress is not None:
                progress(len(idx))
            continue
        cache = model.new_cache(len(rows), max(len(r) for r in rows) + max_new_tokens)
        logits = model.forward(rows, cache=cache, last_only=True)[:, 0]
        out = [[] for _ in rows]
        live = np.ones(len(rows), dtype=bool)
        for step in range(max_new_tokens):
            nxt = logits.argmax(axis=-1)
            for b in np.flatnonzero(live):
                t = int(nxt[b])
                if t in stop_ids:
                    live[b] = False
                    continue
                out[b].append(t)
                if stops and any(s in tok.decode(out[b], skip_special_tokens=True) for s in stops):
                    live[b] = False
            if not live.any() or step + 1 == max_new_tokens:
                break
            arr = np.where(live, nxt, 0).astype(np.int64)[:, None]
            logits = model.forward(arr, cache=cache, lengths=live.astype(np.int64).tolist())[:, 0]
        for b, i in enumerate(idx):
            results[i] = cut_at_stops(tok.decode(out[b], skip_special_tokens=True), stops)
        if progress is not None:
            progress(len(idx))
    return results
