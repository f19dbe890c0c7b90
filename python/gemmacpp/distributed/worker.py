"""The worker: one model, loaded once per process, that runs the shards the pool sends it.

Pool wraps Worker as a Ray actor; each method gets plain data (token ids, batches) and returns
plain data, so what crosses the network per request is its token ids and its result. Nothing
here imports Ray: the class also runs in-process (tests, debugging)."""
from __future__ import annotations

import os
import signal

import numpy as np


class Worker:
    def __init__(self, model, threads: int | None, load_kwargs: dict):
        self._source, self._threads, self._load_kwargs = model, threads, dict(load_kwargs)
        self._model = None

    @property
    def model(self):
        if self._model is None:  # the first call of a replacement worker loads it too
            import gemmacpp as gc
            self._model = gc.load(self._source, threads=self._threads, **self._load_kwargs)
        return self._model

    def load(self) -> dict:
        """Loads the model (raising its error) and says what it is."""
        import gemmacpp as gc
        m = self.model
        try:
            bos = m.tokenizer.bos_id
        except FileNotFoundError:
            bos = None
        return {"path": m.path, "vocab_size": m.config["vocab_size"], "bos_id": bos,
                "threads": gc.get_num_threads(), "pid": os.getpid()}

    def run(self, method: str, shard, args=(), die: bool = False):
        """Runs one shard; die (fault tests only) kills this process first, as a lost machine."""
        if die:
            os.kill(os.getpid(), signal.SIGKILL)
        return getattr(self, "_" + method)(shard, *args)

    # ---- tokenization (strings become ids where the model is) ----

    def _encode_requests(self, requests):
        from ..eval.scoring import encode_requests
        return encode_requests(self.model, requests)

    def _rolling_requests(self, texts, max_length, context_len):
        from ..eval.scoring import rolling_requests
        return rolling_requests(self.model, texts, max_length=max_length, context_len=context_len)

    def _encode_prompts(self, prompts):
        from ..generate import encode_prompt
        return [encode_prompt(self.model, p) for p in prompts]

    def _encode_texts(self, texts, max_len):
        from ..sae.capture import text_batches
        out = []
        for t in texts:
            try:
                [(_, [ids])] = text_batches(self.model, [t], batch_size=1, max_len=max_len)
            except ValueError as e:
                if "has no tokens" not in str(e):
                    raise
                ids = []  # the pool names the text by its index in the whole corpus
            out.append(ids)
        return out

    # ---- the work ----

    def _score(self, batches, shared_prefix):
        from ..eval.scoring import score_batch
        return [score_batch(self.model, batch, share=shared_prefix) for batch in batches]

    def _generate_until(self, batches, max_new_tokens, stops, stop_ids):
        from ..generate import generate_until_batch
        return [generate_until_batch(self.model, batch, max_new_tokens=max_new_tokens, stops=stops,
                                     stop_ids=stop_ids) for batch in batches]

    def _harvest_settings(self, arguments):
        from ..sae.harvest import checked_settings
        return checked_settings(self.model, *arguments)

    def _harvest_shard(self, shard, out_dir, names, dtype, batch_size, bos):
        """Writes one harvest shard: runs the batches that cover it, exactly as the
        single-process harvest batches them, and keeps its tokens."""
        from ..sae.capture import capture, padded
        from ..sae.harvest import write_shard
        texts, first = shard["ids"], shard["first_text"]
        parts = []
        for s in range(0, len(texts), batch_size):
            batch = texts[s:s + batch_size]
            arr, mask = padded(batch)
            if bos is not None:
                mask[:, 0] &= arr[:, 0] != bos
            if not mask.any():
                continue
            acts = capture(self.model, [list(r) for r in batch], names)
            rows_b, rows_t = np.nonzero(mask)
            parts.append(({n: acts[n].reshape(*arr.shape, -1)[mask] for n in names}, arr[mask],
                          first + s + rows_b, rows_t))
        lo, hi = shard["skip"], shard["skip"] + shard["tokens"]
        acts = {n: np.concatenate([p[0][n] for p in parts])[lo:hi] for n in names}
        ids, text_index, pos = (np.concatenate([p[i] for p in parts])[lo:hi] for i in (1, 2, 3))
        return write_shard(out_dir, shard["index"], dtype, acts, ids, text_index, pos)
