"""Text generation: one batched, KV-cached decode loop, the sampler, and incremental detokenization.

decode_batch is the loop. Prompts of different lengths are prefilled as one ragged batch into a
per-sequence KV cache, then every unfinished row advances one token per forward (finished rows
pass zero tokens). Everything that generates goes through it:
  generate_ids / generate: one prompt (model.generate, the CLI), greedy or sampled; generate_ids
      yields token ids (no tokenizer needed), generate text pieces, holding back bytes of an
      unfinished UTF-8 character and any tail that could still become a stop string.
  generate_until: many prompts, greedy, each ending at a stop string (the local eval tasks and the
      lm-eval backend's generate_until); its text is cut before the first stop string, and special
      tokens are left out of it, as the harness does.
"""
from __future__ import annotations

import time

import numpy as np

from . import _checks
from .chat import is_chat


class Sampler:
    """Greedy at temperature 0; otherwise softmax(logits / T) restricted to the top_k ids and the
    smallest set whose probability reaches top_p, drawn from a seeded NumPy generator."""

    def __init__(self, temperature=0.0, top_k=None, top_p=None, seed=None):
        temperature = _checks.number(temperature, "temperature")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        top_k = _checks.optional_integer(top_k, "top_k", lo=1)
        if top_p is not None:
            top_p = _checks.number(top_p, "top_p")
            if not 0 < top_p <= 1:
                raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        seed = _checks.optional_integer(seed, "seed", lo=0)
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
    """Prefill and decode token counts and seconds of the last decode_batch run (generate_ids,
    generate)."""

    def __init__(self):
        self.prefill_tokens = self.decode_tokens = 0
        self.prefill_s = self.decode_s = 0.0


def decode_batch(model, prompts, *, max_new_tokens: int, sampler=None, stop_ids=(), row_done=None,
                 timings=None, prefill_kwargs=None):
    """Yields (row, id) for each id generated after prompts (sequences of ids), a step at a time:
    every unfinished row's next id, rows in order, before the forward that continues them (a
    consumer that stops early costs no further forward). A row ends before an id in stop_ids,
    after max_new_tokens ids, or once row_done(row, its ids so far) is true. sampler (default:
    greedy) picks each row's id from its logits. prefill_kwargs: extra keyword arguments of the
    prompts' forward only (images=...)."""
    rows = [[int(t) for t in p] for p in prompts]
    if any(not r for r in rows):
        raise ValueError("generate: the prompt has no tokens" if len(rows) == 1 else
                         "generate: a prompt has no tokens")
    sampler = sampler or Sampler()
    timings = timings or Timings()
    if max_new_tokens <= 0 or not rows:
        return
    cache = model.new_cache(len(rows), min(max(len(r) for r in rows) + max_new_tokens, _checks.MAX_COUNT))
    start = time.perf_counter()
    logits = model.forward(rows, cache=cache, last_only=True, **(prefill_kwargs or {}))[:, 0]
    timings.prefill_s = time.perf_counter() - start
    timings.prefill_tokens = sum(len(r) for r in rows)
    out = [[] for _ in rows]
    live = np.ones(len(rows), dtype=bool)
    for step in range(max_new_tokens):
        nxt = np.zeros((len(rows), 1), dtype=np.int64)  # finished rows: a pad the forward skips
        for b in np.flatnonzero(live).tolist():
            tok = sampler(logits[b])
            if tok in stop_ids:
                live[b] = False
                continue
            nxt[b, 0] = tok
            out[b].append(tok)
            yield b, tok
            if row_done is not None and row_done(b, out[b]):
                live[b] = False
        if not live.any() or step + 1 == max_new_tokens:
            return
        lengths = None if live.all() else live.astype(np.int64).tolist()
        start = time.perf_counter()
        logits = model.forward(nxt, cache=cache, lengths=lengths)[:, 0]
        timings.decode_s += time.perf_counter() - start
        timings.decode_tokens += int(live.sum())


def generate_ids(model, prompt_ids, *, max_new_tokens=64, sampler=None, stop_ids=(), timings=None,
                 prefill_kwargs=None):
    """Yields up to max_new_tokens sampled ids after prompt_ids, ending before an id in stop_ids.
    prefill_kwargs: extra keyword arguments of the prompt's forward only (images=...)."""
    for _, tok in decode_batch(model, [prompt_ids], max_new_tokens=max_new_tokens, sampler=sampler,
                               stop_ids=stop_ids, timings=timings, prefill_kwargs=prefill_kwargs):
        yield tok


def default_stop_ids(tok) -> set[int]:
    """EOS, and the end of a turn where the vocabulary has it (instruction-tuned models end on it):
    <end_of_turn> (Gemma 1/2/3), <turn|> (Gemma 4)."""
    stop_ids = {tok.eos_id}
    for piece in ("<end_of_turn>", "<turn|>"):
        end_of_turn = tok.piece_to_id(piece)
        if end_of_turn is not None:
            stop_ids.add(end_of_turn)
    return stop_ids


def cut_at_stops(text: str, stops) -> str:
    """text up to the first occurrence of any stop string (the harness splits on each in turn)."""
    for s in stops:
        if s:
            text = text.split(s)[0]
    return text


def generate_until(model, prompts, *, max_new_tokens: int, stops=(), stop_ids=None,
                   batch_size: int = 16, progress=None) -> list[str]:
    """The greedy continuation text of each prompt (a list of token ids), in input order: prompts
    run in batches of similar lengths, each row ending at a stop id (default: EOS and
    <end_of_turn>), at max_new_tokens, or once its text (without special tokens) holds a stop
    string; the text is cut before the first stop string. progress: a callable given the number
    of prompts done after each batch."""
    results = [""] * len(prompts)
    for idx in until_batches(prompts, batch_size):
        texts = generate_until_batch(model, [prompts[i] for i in idx], max_new_tokens=max_new_tokens,
                                     stops=stops, stop_ids=stop_ids)
        for i, text in zip(idx, texts):
            results[i] = text
        if progress is not None:
            progress(len(idx))
    return results


def until_batches(prompts, batch_size: int) -> list[list[int]]:
    """The batches generate_until runs, as lists of prompt indices: longest prompts first, so
    that a batch's rows have similar lengths."""
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


def generate_until_batch(model, prompts, *, max_new_tokens: int, stops=(), stop_ids=None) -> list[str]:
    """generate_until's texts of one batch of prompts, decoded together."""
    tok = model.tokenizer
    stops = [s for s in stops if s]
    stop_ids = default_stop_ids(tok) if stop_ids is None else set(stop_ids)

    def holds_stop(_row, ids) -> bool:
        text = tok.decode(ids, skip_special_tokens=True)
        return any(s in text for s in stops)

    out = [[] for _ in prompts]
    for b, t in decode_batch(model, prompts, max_new_tokens=max_new_tokens, stop_ids=stop_ids,
                             row_done=holds_stop if stops else None):
        out[b].append(t)
    return [cut_at_stops(tok.decode(ids, skip_special_tokens=True), stops) for ids in out]


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
             seed=None, stop=None, timings=None, prefill_kwargs=None):
    """An iterator over the text pieces of model.generate (see there); arguments are checked now,
    not at the first piece. prefill_kwargs: extra keyword arguments of the prompt's forward only
    (images=...)."""
    max_new_tokens = _checks.integer(max_new_tokens, "max_new_tokens", lo=0, hi=_checks.MAX_COUNT)
    if stop is not None and not isinstance(stop, (str, list, tuple)):
        raise TypeError(f"stop must be a str or a list of str, got {type(stop).__name__}")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    stops = [_checks.text(s, f"stop[{i}]") for i, s in enumerate(stops)]
    stops = [s for s in stops if s]
    tok = model.tokenizer
    ids = encode_prompt(model, prompt)
    stop_ids = default_stop_ids(tok)
    sampler = Sampler(temperature, top_k, top_p, seed)
    if not ids:
        raise ValueError("generate: the prompt has no tokens")
    return _pieces(tok, generate_ids(model, ids, max_new_tokens=max_new_tokens, sampler=sampler,
                                     stop_ids=stop_ids, timings=timings,
                                     prefill_kwargs=prefill_kwargs), stops)


def encode_prompt(model, prompt) -> list[int]:
    """Token ids of a prompt: a str (encoded with BOS), a chat (a list of {"role", "content"}
    messages, formatted with the model's chat template), or token ids as they are."""
    if isinstance(prompt, str):
        return model.tokenizer.encode(_checks.text(prompt, "prompt"), add_bos=True)
    if is_chat(prompt):
        return model.apply_chat_template(prompt, tokenize=True)
    return _checks.token_ids(prompt, "prompt")


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
