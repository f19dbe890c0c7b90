"""How work is cut into shards for the workers (pure Python; no Ray here).

A shard is a run of consecutive batches of the single-process plan, so that each batch is run
exactly as one process would run it (the same rows, padding and shared contexts: results equal
bitwise), and a shard boundary never falls inside a group of requests that share a context when
another boundary nearby does not."""
from __future__ import annotations

import math


def shard_batches(batches, n_shards: int, key=None) -> list[list[int]]:
    """Indices of `batches` grouped into up to n_shards runs of consecutive batches of about
    equal count. key(batch, first): the group key of a batch's first (first=True) or last row;
    a run is only closed between two batches whose keys differ, unless no later boundary does."""
    if not batches:
        return []
    n_shards = max(1, min(int(n_shards), len(batches)))
    target = math.ceil(len(batches) / n_shards)
    shards, current = [], []
    for b in range(len(batches)):
        current.append(b)
        last = b + 1 == len(batches)
        splits_group = (not last and key is not None
                        and key(batches[b], False) == key(batches[b + 1], True))
        if last or (len(current) >= target and not splits_group):
            shards.append(current)
            current = []
    return shards


def chunks(n: int, parts: int) -> list[range]:
    """range(n) cut into up to `parts` contiguous, near-equal, non-empty ranges."""
    parts = max(1, min(int(parts), n))
    if n == 0:
        return []
    bounds = [n * p // parts for p in range(parts + 1)]
    return [range(bounds[p], bounds[p + 1]) for p in range(parts)]


def harvest_layout(kept: list[int], shard_tokens: int, batch_size: int) -> list[dict]:
    """The shards of a harvest whose texts keep kept[j] tokens each, in corpus order: for each
    shard, the texts of the batches that cover it (batches start at multiples of batch_size,
    as the single-process harvest runs them) and which of their kept tokens it holds.
    Returns [{"index", "texts": range, "skip": tokens before the shard's first, "tokens"}]."""
    starts = [0]
    for k in kept:
        starts.append(starts[-1] + k)
    total = starts[-1]
    layout = []
    j = 0  # the first text with a token at or after the shard's start
    for index, begin in enumerate(range(0, total, shard_tokens)):
        end = min(begin + shard_tokens, total)
        while starts[j + 1] <= begin:
            j += 1
        last = j
        while starts[last + 1] < end:
            last += 1
        first_text = j // batch_size * batch_size
        last_text = min(len(kept), (last // batch_size + 1) * batch_size)
        layout.append({"index": index, "texts": range(first_text, last_text),
                       "skip": begin - starts[first_text], "tokens": end - begin})
    return layout
