"""Text generation: a KV-cached decode loop, the sampler, and incremental detokenization.

generate_ids yields token ids (no tokenizer needed); generate yields text pieces, holding back
bytes of an unfinished UTF-8 character and any tail that could still become a stop string.
"""
from __future__ import annotations

import time

import numpy as np


class Sampler:
    """Greedy at temperature 0; otherwise softmax(logits / T) restricted to the top_k ids and the
    smallest set whose probability reaches top_p, drawn from a seeded NumPy generator."""

    def __init__(self, temperature=0.0, top_k=None, top_p=None, seed=None):
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        self.temperature, self.top_k, self.top_p = float(temperature), top_k, top_p
        self.rng = np.random.default_rng(seed)

    def __call__(self, logits: np.ndarray) -> int:
        if self.temperature == 0.0:
            return int(np.argmax(logits))
        z = logits.astype(np.float64) / self.temperature
        order = np.argsort(-z, kind="stable")
        if self.top_k is not None:
            order = order[: self.top_k]
        p = np.exp(z[order] - z[order[0]])
        p /= p.sum()
        if self.top_p is not None:
            keep = int(np.searchsorted(np.cumsum(p), self.top_p)) + 1  # first prefix reaching top_p
            order, p = order[:keep], p[:keep] / p[:keep].sum()
        return int(order[self.rng.choice(len(order), p=p)])


class Timings:
    """Prefill and decode token counts and seconds of the last generate_ids run."""

    def __init__(self):
        self.prefill_tokens = self.decode_tokens = 0
        self.prefill_s = self.decode_s = 0.0


def generate_ids(model, prompt_ids, *, max_new_tokens=64, sampler=None, stop_ids=(), timings=None):
    """Yields up to max_new_tokens sampled ids after prompt_ids, ending before an id in stop_ids."""
    prompt_ids = [int(t) for t in prompt_ids]
    if not prompt_ids:
        raise ValueError("generate: the prompt has no tokens")
    sampler = sampler or Sampler()
    timings = timings or Timings()
    if max_new_tokens <= 0:
        return
    cache = model.new_cache(1, len(prompt_ids) + max_new_tokens)
    start = time.perf_counter()
    logits = model.forward(prompt_ids, cache=cache, last_only=True)[0, -1]
    timings.prefill_s, timings.prefill_tokens = time.perf_counter() - start, len(prompt_ids)
    for i in range(max_new_tokens):
        tok = sampler(logits)
        if tok in stop_ids:
            return
        yield tok
        if i + 1 == max_new_tokens:
            return
        start = time.perf_counter()
        logits = model.forward([tok], cache=cache)[0, -1]
        timings.decode_s += time.perf_counter() - start
        timings.decode_tokens += 1


def _stop_holdback(text: str, stops) -> int:
    """Length of the longest tail of text that is a proper prefix of a stop string."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best


def generate(model, prompt, *, max_new_tokens=64, temperature=0.0, top_k=None, top_p=None,
             seed=None, stop=None, timings=None):
    """An iterator over the text pieces of model.generate (see there); arguments are checked now,
    not at the first piece."""
    tok = model.tokenizer
    ids = tok.encode(prompt, add_bos=True) if isinstance(prompt, str) else [int(t) for t in prompt]
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    stops = [s for s in stops if s]
    stop_ids = {tok.eos_id}
    end_of_turn = tok.piece_to_id("<end_of_turn>")
    if end_of_turn is not None:
        stop_ids.add(end_of_turn)
    sampler = Sampler(temperature, top_k, top_p, seed)
    if not ids:
        raise ValueError("generate: the prompt has no tokens")
    return _pieces(tok, generate_ids(model, ids, max_new_tokens=max_new_tokens, sampler=sampler,
                                     stop_ids=stop_ids, timings=timings), stops)


def _pieces(tok, id_stream, stops):
    """Text pieces of the ids: decoded so far, less an unfinished character and any stop prefix."""
    out_ids, emitted = [], 0
    for t in id_stream:
        out_ids.append(t)
        text = tok.decode(out_ids)
        hits = [i for i in (text.find(s) for s in stops) if i >= 0]
        if hits:
            end = min(hits)
            if end > emitted:
                yield text[emitted:end]
            return
        if text.endswith("\ufffd"):  # an unfinished UTF-8 character: wait for its other bytes
            continue
        safe = len(text) - _stop_holdback(text, stops)
        if safe > emitted:
            yield text[emitted:safe]
            emitted = safe
    if out_ids:
        text = tok.decode(out_ids)
        if len(text) > emitted:
            yield text[emitted:]
