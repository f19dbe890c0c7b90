"""What a researcher does with SAE features every day:

    feature_activations(model, sae, tokens)        # SparseActs [B, T, d_sae], the forward cut short
    top_activating(model, sae, texts, features=[7])  # streaming over a corpus, bounded memory
    with steer(model, sae, 7, alpha=8.0): ...      # + alpha * W_dec[7] at the SAE's output point
    attribute(model, sae, tokens, logit_diff(a, b)) # features' effect on a logit difference

Attribution has no autograd to lean on, so it measures: method="gradient" is attribution patching
by central finite differences (activation x d metric / d activation, the derivative taken along
the feature's decoder direction at its position: two forwards per feature, batched), and
method="ablation" is the exact effect of removing the feature (metric - metric without it: one
forward per feature). Both perturb the SAE's output point by multiples of W_dec[f], which is what
editing the feature does when the SAE is spliced with its error term.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from .capture import capture, padded, text_batches
from .splice import hook_width


def _eps(model) -> float:
    return float(model.config.get("norm_eps", 1e-6))


def _tokenizer(model):
    """The model's tokenizer, or None for a checkpoint without one."""
    try:
        return model.tokenizer
    except FileNotFoundError:
        return None


def _progress(progress, total, desc):
    """A tqdm bar when asked for (progress=True) or by default when tqdm is installed; None when
    not (progress=False, or no tqdm)."""
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            from .._extras import missing
            raise missing("tqdm", "progress=True") from None
        return None
    return tqdm(total=total, desc=desc, unit="tok", leave=False)


def feature_activations(model, sae, tokens, *, lengths=None, dense: bool = False):
    """The SAE's feature activations on tokens (as model.forward takes them): SparseActs of
    shape (B, T, d_sae) with no entries at padding positions, or with dense=True a float32
    array [B, T, d_sae]. The forward stops at the SAE's input point."""
    from ..tokens import token_batch
    arr, row_lengths = token_batch(tokens, model.config["vocab_size"], lengths)
    act = capture(model, arr, [sae.hook_in], lengths=row_lengths)[sae.hook_in]
    B, T = arr.shape
    mask = (np.arange(T)[None, :] < np.asarray(row_lengths)[:, None]) if row_lengths else \
        np.ones((B, T), bool)
    x = sae.input_from(act, _eps(model))[mask]
    acts = sae.encode(x)
    counts = np.zeros(B * T, np.int64)
    counts[mask.ravel()] = np.diff(acts.offsets)
    full = ops.SparseActs(acts.values, acts.indices,
                          np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                          (B, T, sae.d_sae))
    return full.to_dense() if dense else full


def top_activating(model, sae, texts, *, features=None, k: int = 10, context: int = 12,
                   batch_size: int = 8, max_len: int | None = 256, skip_bos: bool = True,
                   progress=None) -> dict:
    """The k highest activations of each feature over a stream of texts (strings, tokenized with
    BOS, or token id lists), in one pass with bounded memory (k entries per feature).

    features: feature indices (default: every feature). Returns {feature: [record, ...]} in
    decreasing activation, each record {"activation", "text" (index in texts), "position",
    "token_id", "context_ids" (up to `context` tokens before it, and it), and with a tokenizer
    "token" and "context" (their text)}. Features
    that never fire have an empty list. Ties keep the earliest occurrence. skip_bos: leave out
    position 0 of strings (Gemma's BOS activations are outliers)."""
    d_sae = sae.d_sae
    feats = np.arange(d_sae) if features is None else np.asarray(features, np.int64).reshape(-1)
    if feats.size and (feats.min() < 0 or feats.max() >= d_sae):
        raise ValueError(f"features must be in [0, {d_sae}), got {feats.min()}..{feats.max()}")
    column = np.full(d_sae, -1, np.int64)
    column[feats] = np.arange(feats.size)
    F, W = feats.size, context + 1
    best_val = np.full((F, k), -np.inf, np.float32)
    best_text = np.full((F, k), -1, np.int64)
    best_pos = np.full((F, k), -1, np.int64)
    best_ctx = np.full((F, k, W), -1, np.int64)
    bar = _progress(progress, None, "top activations")
    eps = _eps(model)
    tok = _tokenizer(model)
    for first, batch in text_batches(model, texts, batch_size=batch_size, max_len=max_len):
        arr, mask = padded(batch)
        if skip_bos and tok is not None:
            mask[:, 0] &= arr[:, 0] != tok.bos_id
        act = capture(model, [list(r) for r in batch], [sae.hook_in])[sae.hook_in]
        rows_b, rows_t = np.nonzero(mask)
        acts = sae.encode(sae.input_from(act, eps)[mask])
        n = np.diff(acts.offsets)
        row = np.repeat(np.arange(len(rows_b)), n)
        col = column[np.asarray(acts.indices)]
        keep = col >= 0
        val, col, row = np.asarray(acts.values)[keep], col[keep], row[keep]
        # the best k of this batch per feature ...
        order = np.lexsort((-val, col))
        val, col, row = val[order], col[order], row[order]
        starts = np.r_[0, np.flatnonzero(np.diff(col)) + 1] if col.size else np.zeros(0, np.int64)
        rank = np.arange(col.size) - np.repeat(starts, np.diff(np.r_[starts, col.size]))
        sel = rank < k
        val, col, row, rank = val[sel], col[sel], row[sel], rank[sel]
        new_val = np.full((F, k), -np.inf, np.float32)
        new_text = np.full((F, k), -1, np.int64)
        new_pos = np.full((F, k), -1, np.int64)
        new_ctx = np.full((F, k, W), -1, np.int64)
        b, t = rows_b[row], rows_t[row]
        new_val[col, rank] = val
        new_text[col, rank] = first + b
        new_pos[col, rank] = t
        offs = t[:, None] - context + np.arange(W)[None, :]
        new_ctx[col, rank] = np.where(offs >= 0, arr[b[:, None], np.maximum(offs, 0)], -1)
        # ... merged with the best so far (stable: earlier entries first among equals)
        vals = np.concatenate([best_val, new_val], 1)
        top = np.argsort(-vals, axis=1, kind="stable")[:, :k]
        best_val = np.take_along_axis(vals, top, 1)
        best_text = np.take_along_axis(np.concatenate([best_text, new_text], 1), top, 1)
        best_pos = np.take_along_axis(np.concatenate([best_pos, new_pos], 1), top, 1)
        best_ctx = np.take_along_axis(np.concatenate([best_ctx, new_ctx], 1), top[:, :, None], 1)
        if bar is not None:
            bar.update(int(mask.sum()))
    if bar is not None:
        bar.close()
    out = {}
    for i, f in enumerate(feats.tolist()):
        records = []
        for j in range(k):
            if not np.isfinite(best_val[i, j]):
                break
            ids = best_ctx[i, j][best_ctx[i, j] >= 0].tolist()
            r = {"activation": float(best_val[i, j]), "text": int(best_text[i, j]),
                 "position": int(best_pos[i, j]), "token_id": ids[-1], "context_ids": ids}
            if tok is not None:
                r["token"], r["context"] = tok.decode(ids[-1:]), tok.decode(ids)
            records.append(r)
        out[f] = records
    return out


def steer(model, sae, feature, alpha: float = 1.0, *, hook: str | None = None, positions=None):
    """Context manager: while active, every forward adds alpha * W_dec[feature] (the feature's
    decoder row; feature may be a list, alpha then one value or one per feature) to the
    activation at `hook` (default: the SAE's output point) at `positions` (indices along the
    tokens of each call; default all). Works with or without the SAE attached."""
    feats = np.atleast_1d(np.asarray(feature, np.int64))
    alphas = np.broadcast_to(np.asarray(alpha, np.float32), feats.shape)
    direction = np.zeros(sae.d_out, np.float32)
    for f, a in zip(feats.tolist(), alphas.tolist()):
        direction += np.float32(a) * sae.feature_direction(f)
    hook = hook or sae.hook_out
    if hook is None:
        raise ValueError(f"{sae.name} does not know its hook point: give hook=")
    width = hook_width(model.config, hook)
    if width is not None and width != sae.d_out:
        raise ValueError(f"steer: {sae.name}'s decoder rows have {sae.d_out} values but {hook!r} "
                         f"has {width}")

    def add(activation, name):
        v = activation.reshape(activation.shape[0], activation.shape[1], -1)
        if positions is None:
            v += direction
        else:
            v[:, positions] += direction

    return model.hooks({hook: add})


def logit_diff(token_a: int, token_b: int, position: int = -1):
    """A metric for attribute(): logits[position, token_a] - logits[position, token_b]."""
    return lambda logits: float(logits[position, token_a]) - float(logits[position, token_b])


def attribute(model, sae, tokens, metric, *, positions=None, features=None,
              method: str = "gradient", eps: float = 1e-2, batch_size: int = 16,
              last_only: bool = False, top: int | None = None) -> list:
    """Attribution of metric(logits) (a float from one sequence's logits [T, V], or [1, V] with
    last_only) to the SAE's active features on one sequence of tokens (ids, or a string tokenized
    with BOS), at `positions` (default all) and for `features` (default all active).

    method="gradient": attribution patching by central finite differences, activation x
    (metric(a + h) - metric(a - h)) / 2h with h = eps x activation, the feature's activation
    moved along its decoder row at its position (the first-order effect, as activation x
    gradient). method="ablation": metric - metric with the feature removed (exact). Returns
    [{"position", "feature", "activation", "attribution"}] by decreasing |attribution| (the
    first `top` of them)."""
    if method not in ("gradient", "ablation"):
        raise ValueError(f"attribute: method must be 'gradient' or 'ablation', got {method!r}")
    toks = model.tokenizer.encode(tokens) if isinstance(tokens, str) else [int(t) for t in tokens]
    acts = feature_activations(model, sae, [toks], dense=False)
    off, idx, val = np.asarray(acts.offsets), np.asarray(acts.indices), np.asarray(acts.values)
    T = len(toks)
    pos = np.arange(T) if positions is None else np.atleast_1d(np.arange(T)[positions])
    cand = []  # (position, feature, activation)
    wanted = None if features is None else set(np.atleast_1d(features).tolist())
    for t in pos.tolist():
        for j in range(off[t], off[t + 1]):
            if wanted is None or int(idx[j]) in wanted:
                cand.append((t, int(idx[j]), float(val[j])))
    if not cand:
        return []

    def run(shifts):
        """metric for each (position, feature, shift): the activation at the SAE's output point
        moved by shift * W_dec[feature] at that position."""
        out = []
        for s in range(0, len(shifts), batch_size):
            chunk = shifts[s:s + batch_size]
            rows = np.stack([shift * sae.feature_direction(f) for _, f, shift in chunk])

            def move(activation, name, chunk=chunk, rows=rows):
                v = activation.reshape(activation.shape[0], activation.shape[1], -1)
                for r, (t, _, _) in enumerate(chunk):
                    v[r, t] += rows[r]

            with model.hooks({sae.hook_out: move}):
                logits = model.forward([toks] * len(chunk), last_only=last_only)
            out += [float(metric(logits[r])) for r in range(len(chunk))]
        return np.asarray(out)

    if method == "ablation":
        base = float(metric(model.forward([toks], last_only=last_only)[0]))
        attr = base - run([(t, f, -a) for t, f, a in cand])
    else:
        h = [eps * a for _, _, a in cand]
        m = run([(t, f, s * hh) for (t, f, _), hh in zip(cand, h) for s in (1.0, -1.0)])
        attr = np.asarray([a for _, _, a in cand]) * (m[0::2] - m[1::2]) / (2 * np.asarray(h))
    result = [{"position": t, "feature": f, "activation": a, "attribution": float(x)}
              for (t, f, a), x in zip(cand, attr)]
    result.sort(key=lambda r: -abs(r["attribution"]))
    return result[:top] if top is not None else result
