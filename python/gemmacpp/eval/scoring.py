"""Log-likelihood scoring: model.loglikelihood and model.loglikelihood_rolling.

The numbers follow lm-evaluation-harness (HFLM) so that a score here equals the harness's score of
the same model:
  * text is encoded with BOS (unless it already starts with the BOS text); a (context,
    continuation) pair is split by token ids: trailing whitespace of the context moves to the
    continuation, context + continuation is encoded whole and the continuation is what follows the
    context's own encoding; an empty context becomes [BOS] (or the continuation's first token
    when that is BOS);
  * the model reads (context + continuation)[-(max_length + 1):][:-1], and the continuation's
    log-probs are summed from the last len(continuation) positions; is-greedy: every
    continuation token is the argmax of its position;
  * a rolling document is cut into disjoint windows of max_length predicted tokens, each with one
    token (context_len) of context before it; the first token is predicted from BOS.

Every request is run as two forwards: its context into a KV cache (logits of the last position
only), then its continuation (less its last token) from that cache. Requests that share a context
share that first forward (the shared-prefix path: one context per group, forked with
cache.select), so multiple-choice questions cost one context pass plus their short choices.
"""
from __future__ import annotations

import numpy as np

from .. import _checks, ops
from .._defaults import DEFAULT_MAX_LEN
from .._extras import progress_bar

# Logits of a batch's continuation pass are [rows, tokens, vocab] float32: long continuations run
# in chunks of tokens through the cache so that these stay under 256 MiB.
LOGITS_BUDGET_BYTES = 256 << 20


# ---- tokenization, as the harness does it ----

def encode_text(tok, text: str) -> list[int]:
    """Text with BOS, unless it already starts with the BOS text (then it is not doubled)."""
    bos_text = tok.id_to_piece(tok.bos_id)
    return tok.encode(text, add_bos=not text.startswith(bos_text))


def encode_pair(tok, context, continuation) -> tuple[list[int], list[int]]:
    """Token ids of a (context, continuation) request; each a str or a sequence of ids. Strings
    follow lm-evaluation-harness's split (see the module docstring); ids are used as given."""
    if isinstance(context, str) and isinstance(continuation, str):
        if context == "":
            cont = tok.encode(continuation, add_bos=False)
            if cont and cont[0] == tok.bos_id:
                return cont[:1], cont[1:]
            return [tok.bos_id], cont
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        whole = encode_text(tok, context + continuation)
        ctx = encode_text(tok, context)
        return ctx, whole[len(ctx):]
    ctx = encode_text(tok, context) if isinstance(context, str) else _checks.token_ids(context, "context")
    cont = tok.encode(continuation, add_bos=False) if isinstance(continuation, str) \
        else _checks.token_ids(continuation, "continuation")
    return ctx, cont


def rolling_windows(tokens: list[int], prefix: int, max_length: int, context_len: int = 1):
    """(context, continuation) pairs whose continuations cover `tokens` once, in order: the first
    is predicted from [prefix]; every later window predicts up to max_length - context_len + 1
    tokens after context_len..max_length tokens of context (the same windows as the harness's
    make_disjoint_window(get_rolling_token_windows(...)))."""
    if not 1 <= context_len <= max_length:
        raise ValueError(f"context_len must be in [1, max_length={max_length}], got {context_len}")
    n = len(tokens)
    if n == 0:
        return []
    first = min(max_length, n)
    windows = [([prefix], tokens[:first])]
    step = max_length - context_len + 1
    done = first
    while done < n:
        end = min(n, done + step)
        # The model reads max_length tokens ending just before `end`: all that precede the
        # predicted span are its context.
        windows.append((tokens[max(0, end - max_length - 1):done], tokens[done:end]))
        done = end
    return windows


# ---- batched scoring of token-id requests ----

def _log_probs(logits: np.ndarray, targets) -> tuple[float, bool]:
    """Sum of log softmax(logits[i])[targets[i]] (in float64) and whether each target is the
    argmax of its row."""
    targets = np.asarray(targets, dtype=np.int64)
    logp, argmax = ops.token_logprobs(logits, targets)
    return float(logp.sum()), bool((argmax == targets).all())


def score_batch(model, items, share: bool = True) -> list[tuple[float, bool]]:
    """items: (context_ids, continuation_ids) with non-empty contexts and continuations, that fit
    the model's window. With share, identical contexts are run once."""
    ctx_index, contexts = {}, []
    which = []
    for i, (ctx, _) in enumerate(items):
        key = tuple(ctx) if share else i
        if key not in ctx_index:
            ctx_index[key] = len(contexts)
            contexts.append(ctx)
        which.append(ctx_index[key])
    longest = max(len(ctx) + len(cont) for ctx, cont in items)
    cache = model.new_cache(len(contexts), longest)
    last = model.forward(contexts, cache=cache, last_only=True)[:, 0]  # predicts continuation[0]
    totals, greedy = [], []
    for b, (_, cont) in enumerate(items):
        lp, g = _log_probs(last[which[b]][None], cont[:1])
        totals.append(lp)
        greedy.append(g)
    rest = [cont[:-1] for _, cont in items]  # each predicts the continuation token after it
    width = max(len(r) for r in rest)
    if width:
        forks = cache.select(which)
        # The continuations run through the cache in column chunks small enough that their
        # logits ([rows, chunk, vocab] float32) stay within the budget, however long they are.
        vocab = model.config["vocab_size"]
        chunk = max(1, LOGITS_BUDGET_BYTES // (len(items) * vocab * 4))
        for s in range(0, width, chunk):
            counts = [max(0, min(chunk, len(r) - s)) for r in rest]
            arr = np.zeros((len(items), max(counts)), dtype=np.int64)
            for b, r in enumerate(rest):
                arr[b, :counts[b]] = r[s:s + counts[b]]
            logits = model.forward(arr, cache=forks, lengths=counts)
            for b, n in enumerate(counts):
                if n:
                    lp, g = _log_probs(logits[b, :n], items[b][1][s + 1:s + 1 + n])
                    totals[b] += lp
                    greedy[b] = greedy[b] and g
    return list(zip(totals, greedy))


def plan_batches(pairs, vocab: int, *, batch_size: int = 16, max_length: int | None = None,
                 errors: dict | None = None):
    """(results, batches): how score_tokens runs `pairs`. results holds (0.0, True) for empty
    continuations and None for the rest; batches are lists of (index, context_ids,
    continuation_ids), contexts cut to fit max_length, sorted by context (longest first) so that
    equal contexts sit together. A bad request raises ValueError, or with an `errors` dict is
    left out and recorded there as {index: message} (gemmacpp.distributed answers the others)."""
    max_length = _max_length(max_length)
    batch_size = _checks.integer(batch_size, "batch_size", lo=1)
    results = [None] * len(pairs)
    todo = []
    for i, (ctx, cont) in enumerate(pairs):
        if not cont:
            results[i] = (0.0, True)
            continue
        problem = None
        if not ctx:
            problem = (f"request {i}: the context has no tokens (nothing predicts the first "
                       "continuation token); start it with BOS")
        elif any(not 0 <= t < vocab for t in (*ctx, *cont)):
            bad = [t for t in (*ctx, *cont) if not 0 <= t < vocab]
            problem = f"request {i}: token id {bad[0]} is out of range [0, {vocab})"
        elif len(cont) > max_length:
            problem = (f"request {i}: the continuation has {len(cont)} tokens, more than "
                       f"max_length={max_length}")
        if problem is not None:
            if errors is None:
                raise ValueError(problem)
            errors[i] = problem
            continue
        if len(ctx) + len(cont) > max_length + 1:
            ctx = ctx[-(max_length + 1 - len(cont)):]
        todo.append((i, list(ctx), list(cont)))
    todo.sort(key=lambda r: (-len(r[1]), r[1], -len(r[2])))
    return results, [todo[s:s + batch_size] for s in range(0, len(todo), batch_size)]


def score_tokens(model, pairs, *, batch_size: int = 16, shared_prefix: bool = True,
                 max_length: int | None = None, progress=None) -> list[tuple[float, bool]]:
    """(sum log-prob, is-greedy) of each (context_ids, continuation_ids) pair, in input order.
    Contexts longer than max_length - len(continuation) + 1 lose their oldest tokens, as in the
    harness. Pairs are sorted (by context, longest first) so that equal contexts sit together
    and rows of a batch have similar lengths; with shared_prefix, a batch runs each distinct
    context once. progress: True (a tqdm bar), a callable given the number of pairs done after
    each batch, or a tqdm-like bar; None/False: none."""
    progress, close_bar = progress_bar(progress, len(pairs), "gemmacpp score", "req")
    try:
        return _score_tokens(model, pairs, batch_size, shared_prefix, max_length, progress)
    finally:
        close_bar()


def _score_tokens(model, pairs, batch_size, shared_prefix, max_length, progress):
    results, batches = plan_batches(pairs, model.config["vocab_size"], batch_size=batch_size,
                                    max_length=max_length)
    for chunk in batches:
        # Without shared_prefix every request has its own context row (for checks and benchmarks).
        scored = score_batch(model, [(c, k) for _, c, k in chunk], share=shared_prefix)
        for (i, _, _), r in zip(chunk, scored):
            results[i] = r
        if progress is not None:
            progress(len(chunk))
    return results


# ---- the public entry points (model.loglikelihood, model.loglikelihood_rolling) ----

def loglikelihood(model, requests, *, batch_size: int = 16, shared_prefix: bool = True,
                  max_length: int | None = None, progress=None) -> list[tuple[float, bool]]:
    return score_tokens(model, encode_requests(model, requests), batch_size=batch_size,
                        shared_prefix=shared_prefix, max_length=max_length, progress=progress)


def encode_requests(model, requests) -> list[tuple[list[int], list[int]]]:
    """The (context_ids, continuation_ids) pair of each (context, continuation) request."""
    tok = None
    pairs = []
    for i, req in enumerate(requests):
        try:
            context, continuation = req
        except (TypeError, ValueError):
            raise TypeError(f"request {i}: expected a (context, continuation) pair, got {req!r}") from None
        context = _checks.text_or_ids(context, f"request {i}: context")
        continuation = _checks.text_or_ids(continuation, f"request {i}: continuation")
        if isinstance(context, str) or isinstance(continuation, str):
            tok = tok or model.tokenizer
        pairs.append(encode_pair(tok, context, continuation))
    return pairs


def loglikelihood_rolling(model, texts, *, max_length: int | None = None, context_len: int = 1,
                          batch_size: int = 16, progress=None) -> list[float]:
    max_length = _max_length(max_length)
    context_len = _checks.integer(context_len, "context_len")
    if isinstance(texts, (str, bytes)):  # would be scored character by character
        raise TypeError(f"texts must be a list of texts (or of token-id lists), got one "
                        f"{type(texts).__name__}: pass [text]")
    pairs, owner = rolling_requests(model, texts, max_length=max_length, context_len=context_len)
    scored = score_tokens(model, pairs, batch_size=batch_size, max_length=max_length, progress=progress)
    return sum_by_owner(scored, owner, len(texts))


def rolling_requests(model, texts, *, max_length: int, context_len: int = 1):
    """(pairs, owner): the windows of each text (a str, or the token ids to predict) as
    (context_ids, continuation_ids) pairs, and the index of the text each belongs to."""
    tok = None
    pairs, owner = [], []
    for i, text in enumerate(texts):
        text = _checks.text_or_ids(text, f"texts[{i}]")
        if isinstance(text, str):
            tok = tok or model.tokenizer
            ids, prefix = tok.encode(text, add_bos=False), tok.bos_id
        else:
            ids = text  # the tokens to predict
            prefix = tok.bos_id if tok else _bos_id(model)
        for w in rolling_windows(ids, prefix, max_length, context_len):
            pairs.append(w)
            owner.append(i)
    return pairs, owner


def sum_by_owner(scored, owner, n: int) -> list[float]:
    """Each text's log-likelihood: the sum of its windows' (in window order)."""
    totals = [0.0] * n
    for i, (logp, _) in zip(owner, scored):
        totals[i] += logp
    return totals


def _max_length(max_length) -> int:
    """The scoring window: DEFAULT_MAX_LEN for None, else an integer >= 1 (0 is no window)."""
    if max_length is None:
        return DEFAULT_MAX_LEN
    return _checks.integer(max_length, "max_length", lo=1)


def _bos_id(model) -> int:
    """The tokenizer's BOS id; without a tokenizer (a bare checkpoint scored by ids), Gemma's 2."""
    try:
        return model.tokenizer.bos_id
    except (FileNotFoundError, ValueError, NotImplementedError):
        return 2
