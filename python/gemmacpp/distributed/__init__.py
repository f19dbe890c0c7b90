"""gemmacpp on a Ray cluster: scoring, generation and activation harvesting spread over workers.

    import gemmacpp.distributed as gd
    with gd.Pool("gemma-3-270m.gguf", workers=8, threads=4, address="auto") as pool:
        scores = pool.loglikelihood([(context, continuation), ...])
        totals = pool.loglikelihood_rolling(texts)
        texts = pool.generate(prompts, max_new_tokens=32)
        pool.harvest(texts, ["blocks.6.hook_resid_post"], "/shared/acts")

Each worker is a Ray actor that loads the model once, from the path (memory-mapped, on its own
machine), with its own thread count. A call tokenizes on the workers, plans the batches exactly
as one process would (sorted, shared contexts together), cuts them into shards of whole batches
(never between two requests that share a context where it can be helped), runs the shards on
whichever worker is free and puts the results back in input order: equal, bitwise, to one
process's (the kernels give the same bits whatever the thread count). A worker that dies has
its shard run again by another (the pool starts a replacement before the next call); a worker's
error (a model it cannot load, a bad hook name) is raised here as it was raised there. Requests
that cannot run (too long, a token out of range) raise RequestError after the others are done.

Needs the `ray` package (pip install "gemmacpp[ray]"); the rest of gemmacpp never imports it.
"""
try:
    import ray  # noqa: F401
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError('gemmacpp.distributed needs Ray: pip install "gemmacpp[ray]"') from e

from .pool import Pool, RequestError
from .runner import AllWorkersLost

__all__ = ["Pool", "RequestError", "AllWorkersLost"]
