"""Pool: a gemmacpp model on Ray workers (see the package docstring)."""
from __future__ import annotations

import hashlib
import os

import ray

from ..eval.scoring import plan_batches, sum_by_owner
from ..generate import until_batches
from .plan import chunks, harvest_layout, shard_batches
from .runner import run_shards
from .worker import Worker


class RequestError(ValueError):
    """Some requests could not be run (named in .errors, {index: message}); the others were:
    .results holds their results in input order, None for the failed ones."""

    def __init__(self, errors: dict, results: list):
        self.errors, self.results = dict(sorted(errors.items())), results
        first = next(iter(self.errors.values()))
        super().__init__(f"{len(errors)} of {len(results)} requests failed (the others were "
                         f"answered, see .results); {first}")


def _bar(progress, total, desc):
    """(update callable or None, close callable) of the progress argument: a callable is used
    as it is, None shows a tqdm bar when tqdm is installed, False nothing."""
    if callable(progress):
        return progress, lambda: None
    if progress is False:
        return None, lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            raise ImportError("progress=True needs the tqdm package") from None
        return None, lambda: None
    bar = tqdm(total=total, desc=desc, unit="req")
    return bar.update, bar.close


class Pool:
    """`workers` Ray actors, each holding the model loaded once (memory-mapped) with `threads`
    threads. model: a checkpoint path as gemmacpp.load takes it (None: the default model),
    opened by each worker on its own machine; load_kwargs: gemmacpp.load's other arguments.
    address: a running Ray cluster ("auto": the one `ray start` started on this machine;
    "host:6379", "ray://host:10001"); None: the one this process already started, or a new
    local one. shards_per_worker: how finely
    work is cut (more shards balance better and lose less to a dead worker; each costs a
    round trip). start_timeout: seconds to wait for the workers to be placed and load.
    Use as a context manager, or call close()."""

    def __init__(self, model=None, *, workers: int = 2, threads: int = 1, address=None,
                 load_kwargs: dict | None = None, shards_per_worker: int = 4,
                 start_timeout: float = 300.0):
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.workers, self.threads = int(workers), int(threads)
        self._source = None if model is None else os.fspath(model)
        self._load_kwargs = dict(load_kwargs or {})
        self.shards_per_worker = max(1, int(shards_per_worker))
        self.start_timeout = float(start_timeout)
        self._kill_first = {}  # {method: shard indices}: the fault tests' lost workers
        self._tokenizer = None
        self._actors = []
        if not ray.is_initialized():  # None: a new local cluster, not one `ray start` left
            ray.init(address=address or "local", include_dashboard=False)
        elif address is not None:
            raise RuntimeError("Ray is already initialised in this process; pass address=None "
                               "to use that cluster")
        self.info = None
        self._top_up()

    # ---- workers ----

    def _top_up(self):
        """Starts workers until there are `workers` of them (after some were lost), each loading
        the model; a worker that cannot load it ends the pool with its error."""
        missing = self.workers - len(self._actors)
        if missing <= 0:
            return
        actor = ray.remote(Worker).options(num_cpus=self.threads, max_restarts=0)
        new = [actor.remote(self._source, self.threads, self._load_kwargs) for _ in range(missing)]
        refs = [a.load.remote() for a in new]
        ready, late = ray.wait(refs, num_returns=len(refs), timeout=self.start_timeout)
        try:
            if late:
                raise TimeoutError(
                    f"{len(late)} of {missing} gemmacpp workers did not start within "
                    f"{self.start_timeout:.0f} s: each needs {self.threads} free CPUs "
                    f"(the cluster has {ray.available_resources().get('CPU', 0):g} free)")
            infos = ray.get(refs)  # a worker's load error is raised here, as it was raised there
        except BaseException:
            for a in new:
                ray.kill(a)
            raise
        self._actors.extend(new)
        self.info = self.info or infos[0]

    def close(self):
        """Stops the workers (the Ray cluster stays up)."""
        for a in self._actors:
            ray.kill(a)
        self._actors = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def worker_info(self) -> list[dict]:
        """What each live worker loaded: path, vocab_size, bos_id, threads, pid."""
        return ray.get([a.load.remote() for a in self._actors])

    def _run(self, method, shards, args=(), *, sizes=None, progress=None, on_result=None):
        self._top_up()
        return run_shards(self._actors, method, shards, args, sizes=sizes, progress=progress,
                          on_result=on_result, kill_first=self._kill_first.get(method, ()))

    def _map(self, method, items, args=()):
        """method over contiguous chunks of items, one or more per worker, concatenated."""
        parts = chunks(len(items), self.workers * self.shards_per_worker)
        out = self._run(method, [[items[i] for i in r] for r in parts], args)
        return [x for part in out for x in part]

    @property
    def path(self) -> str:
        """The checkpoint the workers loaded (as the first of them names it)."""
        return self.info["path"]

    @property
    def tokenizer(self):
        """The model's tokenizer, read here (the local eval tasks tokenize generation prompts in
        the calling process): needs the checkpoint on this machine too."""
        if self._tokenizer is None:
            import gemmacpp as gc
            self._tokenizer = gc.load(self._source, **self._load_kwargs).tokenizer
        return self._tokenizer

    # ---- scoring ----

    def _score_pairs(self, pairs, *, batch_size, shared_prefix, max_length, progress, desc):
        errors = {}
        results, batches = plan_batches(pairs, self.info["vocab_size"], batch_size=batch_size,
                                        max_length=max_length, errors=errors)
        groups = shard_batches(batches, self.workers * self.shards_per_worker,
                               key=lambda b, first: b[0][1] if first else b[-1][1])
        shards = [[[(c, k) for _, c, k in batches[b]] for b in g] for g in groups]
        update, close = _bar(progress, sum(map(len, batches)), desc)
        try:
            out = self._run("score", shards, (shared_prefix,), progress=update,
                            sizes=[sum(len(batches[b]) for b in g) for g in groups])
        finally:
            close()
        for g, shard_out in zip(groups, out):
            for b, scored in zip(g, shard_out):
                for (i, _, _), r in zip(batches[b], scored):
                    results[i] = r
        return results, errors

    def loglikelihood(self, requests, *, batch_size: int = 16, shared_prefix: bool = True,
                      max_length: int | None = None, progress=None) -> list[tuple[float, bool]]:
        """Model.loglikelihood over the workers: the same results, bitwise, in input order. A
        request that cannot be scored (a continuation longer than max_length, a token out of
        range) raises RequestError naming it, after the others are answered."""
        requests = list(requests)
        for i, req in enumerate(requests):
            if not (isinstance(req, (tuple, list)) and len(req) == 2):
                raise TypeError(f"request {i}: expected a (context, continuation) pair, got {req!r}")
        return self.score_tokens(self._map("encode_requests", requests), batch_size=batch_size,
                                 shared_prefix=shared_prefix, max_length=max_length,
                                 progress=progress)

    def score_tokens(self, pairs, *, batch_size: int = 16, shared_prefix: bool = True,
                     max_length: int | None = None, progress=None) -> list[tuple[float, bool]]:
        """gemmacpp.eval.score_tokens over the workers: (context_ids, continuation_ids) pairs
        (the lm-evaluation-harness backend tokenizes itself)."""
        results, errors = self._score_pairs(pairs, batch_size=batch_size, shared_prefix=shared_prefix,
                                            max_length=max_length, progress=progress,
                                            desc="loglikelihood")
        if errors:
            raise RequestError(errors, results)
        return results

    def loglikelihood_rolling(self, texts, *, max_length: int | None = None, context_len: int = 1,
                              batch_size: int = 16, progress=None) -> list[float]:
        """Model.loglikelihood_rolling over the workers (the same results, bitwise)."""
        from .._defaults import DEFAULT_MAX_LEN
        texts = list(texts)
        max_length = int(max_length or DEFAULT_MAX_LEN)
        parts = chunks(len(texts), self.workers * self.shards_per_worker)
        out = self._run("rolling_requests", [[texts[i] for i in r] for r in parts],
                        (max_length, context_len))
        pairs, owner = [], []
        for r, (p, o) in zip(parts, out):
            pairs += p
            owner += [r.start + i for i in o]
        scored, errors = self._score_pairs(pairs, batch_size=batch_size, shared_prefix=True,
                                           max_length=max_length, progress=progress,
                                           desc="loglikelihood_rolling")
        text_errors = {}
        for w, message in errors.items():
            text_errors.setdefault(owner[w], f"text {owner[w]}: window {message}")
        totals = sum_by_owner([(0.0, True) if s is None else s for s in scored], owner, len(texts))
        if text_errors:
            raise RequestError(text_errors, [None if i in text_errors else t
                                             for i, t in enumerate(totals)])
        return totals

    # ---- generation ----

    def generate_until(self, prompts, *, max_new_tokens: int, stops=(), stop_ids=None,
                       batch_size: int = 16, max_length: int | None = None,
                       progress=None) -> list[str]:
        """gemmacpp.generate.generate_until over the workers: the greedy continuation of each
        prompt (token ids), in input order, the same text as one process gives. A prompt whose
        tokens and max_new_tokens exceed max_length (default 8192) raises RequestError naming
        it, after the others are answered."""
        from .._defaults import DEFAULT_MAX_LEN
        max_length = int(max_length or DEFAULT_MAX_LEN)
        prompts = [[int(t) for t in p] for p in prompts]
        errors, keep = {}, []
        for i, p in enumerate(prompts):
            if not p:
                errors[i] = f"prompt {i} has no tokens"
            elif len(p) + max_new_tokens > max_length:
                errors[i] = (f"prompt {i}: {len(p)} tokens and max_new_tokens={max_new_tokens} "
                             f"exceed max_length={max_length}")
            else:
                keep.append(i)
        batches = [[keep[j] for j in b] for b in until_batches([prompts[i] for i in keep], batch_size)]
        groups = shard_batches(batches, self.workers * self.shards_per_worker)
        shards = [[[prompts[i] for i in batches[b]] for b in g] for g in groups]
        update, close = _bar(progress, len(keep), "generate")
        try:
            out = self._run("generate_until", shards,
                            (max_new_tokens, list(stops), None if stop_ids is None else set(stop_ids)),
                            progress=update, sizes=[sum(len(batches[b]) for b in g) for g in groups])
        finally:
            close()
        results = [None] * len(prompts)
        for g, shard_out in zip(groups, out):
            for b, texts in zip(g, shard_out):
                for i, text in zip(batches[b], texts):
                    results[i] = text
        if errors:
            raise RequestError(errors, results)
        return results

    def generate(self, prompts, *, max_new_tokens: int = 64, stop=None, batch_size: int = 16,
                 max_length: int | None = None, progress=None) -> list[str]:
        """The greedy continuation of each prompt (a str, encoded with BOS; a chat; or token
        ids, as Model.generate takes them), ending at EOS, the end of a turn, max_new_tokens or
        before the first stop string: generate_until's batches, run on the workers."""
        prompts = list(prompts)
        ids = self._map("encode_prompts", prompts)
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        return self.generate_until(ids, max_new_tokens=max_new_tokens, stops=stops,
                                   batch_size=batch_size, max_length=max_length, progress=progress)

    # ---- harvest ----

    def harvest(self, texts, names, out_dir, *, dtype: str = "float32", shard_tokens: int = 65536,
                batch_size: int = 8, max_len: int | None = 1024, skip_bos: bool = True,
                progress=None) -> dict:
        """gemmacpp.harvest over the workers, each writing whole shards into out_dir (a folder
        every worker and this process can reach: one machine's disk, or a shared file system);
        this process writes the manifest. The shards' bytes and the manifest are those of a
        single-process harvest with the same arguments, which also reads and resumes it; an
        interrupted run resumes after its last shard that all earlier ones precede."""
        from ..sae.files import write_json
        from ..sae.harvest import open_manifest
        texts = list(texts)
        settings = self._run("harvest_settings", [(names, dtype, shard_tokens, max_len, skip_bos)])[0]
        manifest = open_manifest(out_dir, settings)
        if manifest.get("complete"):
            return manifest
        ids = self._map("encode_texts", texts, (max_len,))
        for i, t in enumerate(ids):
            if not t:
                raise ValueError(f"texts[{i}] has no tokens")
        bos = self.info["bos_id"] if skip_bos else None
        kept = [t[1:] if bos is not None and t[0] == bos else t for t in ids]
        layout = harvest_layout([len(k) for k in kept], int(shard_tokens), int(batch_size))
        # The manifest's running token hash, shard by shard, from the ids alone.
        stream = [t for k in kept for t in k]
        running, hashes = hashlib.sha256(), []
        for s in layout:
            lo = s["index"] * int(shard_tokens)
            running.update(_int64_bytes(stream[lo:lo + s["tokens"]]))
            hashes.append(running.hexdigest())
        done = manifest["shards"]
        if any(e.get("tokens_sha256") != hashes[k] if k < len(hashes) else True
               for k, e in enumerate(done)):
            raise ValueError(f"harvest: the texts differ from those of the interrupted run in "
                             f"{out_dir!r} (their tokens do not match the shards)")
        todo = layout[len(done):]
        shards = [{"index": s["index"], "first_text": s["texts"].start, "skip": s["skip"],
                   "tokens": s["tokens"], "ids": [ids[j] for j in s["texts"]]} for s in todo]
        path = os.path.join(out_dir, "manifest.json")
        finished = {}

        def shard_done(k, entry):
            # The manifest lists the shards that all earlier ones precede: a rerun goes on there.
            finished[todo[k]["index"]] = entry
            while finished.get(len(done)) is not None:
                index = len(done)
                done.append(dict(finished.pop(index), tokens_sha256=hashes[index]))
                manifest.update(shards=done, tokens=sum(e["tokens"] for e in done))
                write_json(path, manifest)

        update, close = _bar(progress, len(todo), "harvest shards")
        try:
            self._run("harvest_shard", shards,
                      (out_dir, settings["names"], dtype, int(batch_size), bos),
                      progress=update, on_result=shard_done)
        finally:
            close()
        manifest.update(shards=done, tokens=sum(e["tokens"] for e in done), texts=len(texts),
                        complete=True)
        write_json(path, manifest)
        return manifest


def _int64_bytes(ids) -> bytes:
    import numpy as np
    return np.asarray(ids, dtype=np.int64).tobytes()
