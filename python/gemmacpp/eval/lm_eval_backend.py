"""An lm-evaluation-harness backend: the model class registered as "gemmacpp".

    lm_eval --model gemmacpp --model_args pretrained=model.gguf --tasks hellaswag
        # lm-eval versions that read the "lm_eval.models" entry point (see docs/evaluation.md)
    python -m gemmacpp.eval.lm_eval_backend run --model gemmacpp --model_args pretrained=model.gguf \
        --tasks hellaswag                          # any lm-eval 0.4.x: its CLI, backend registered
    import gemmacpp.eval.lm_eval_backend            # registers "gemmacpp" with lm_eval
    lm_eval.simple_evaluate(model="gemmacpp", model_args="pretrained=model.gguf", tasks=[...])

lm_eval 0.4.13 and earlier have no plugin discovery: there the registration happens when this
module is imported, and running it as a script imports it and then hands the arguments to
lm_eval's CLI. gemmacpp also declares the entry point (group "lm_eval.models") that later
lm-eval versions load.

model_args (anything else is a TypeError that names it): pretrained or path (a .gguf file, an HF
checkpoint folder or a hub id in the local HF cache; default: the gemmacpp[model] Gemma 3 270M),
threads, max_length (the window for long requests, default 8192), max_gen_toks (default 256),
batch_size, dtype (float32 or auto: activations are float32), device (cpu); workers (and ray, a
cluster address; default: a local cluster): data parallel on that many Ray workers of `threads`
threads each (gemmacpp.distributed, the same results). Requests are
tokenized as the harness's HF backend tokenizes them (BOS, the context/continuation split by
token ids), so scores equal the `hf` backend's on the same model.
"""
from __future__ import annotations

import functools

from .._extras import require

require("lm_eval.models", "the lm-evaluation-harness backend")  # the built-ins first: lm_eval only adds them to an empty registry
LM = require("lm_eval.api.model", "the lm-evaluation-harness backend").LM
_registry = require("lm_eval.api.registry", "the lm-evaluation-harness backend")
tqdm = require("tqdm", "the lm-evaluation-harness backend").tqdm

import gemmacpp as gc  # noqa: E402

from .._defaults import DEFAULT_MAX_LEN  # noqa: E402
from .. import generate  # noqa: E402
from .scoring import encode_text, encode_pair, rolling_windows, score_tokens


def _positive(name: str, value) -> int:
    """A model_arg that must be a positive whole number (lm-eval passes them as strings)."""
    try:
        n = int(str(value))
    except ValueError:
        raise ValueError(f"gemmacpp backend: {name}={value!r} is not a whole number") from None
    if n <= 0:
        raise ValueError(f"gemmacpp backend: {name}={value!r} must be positive")
    return n


class GemmaCppLM(LM):
    def __init__(self, pretrained: str | None = None, path: str | None = None,
                 threads: int | None = None, max_length: int | None = None,
                 max_gen_toks: int = 256, batch_size=16, max_batch_size=None,
                 device: str | None = None, dtype=None, workers=None, ray=None, **unknown):
        super().__init__()
        if unknown:
            raise TypeError(f"gemmacpp backend: unknown model_args {sorted(unknown)}; it takes "
                            "pretrained (or path), threads, max_length, max_gen_toks, batch_size, "
                            "dtype, device, workers, ray")
        if pretrained is not None and path is not None and str(pretrained) != str(path):
            raise ValueError(f"gemmacpp backend: pretrained={pretrained!r} and path={path!r} name "
                             "two checkpoints; give one")
        if device is not None and str(device) != "cpu":
            # lm-eval's CLI passes cuda:0 when --device is not given: say what to pass instead.
            raise NotImplementedError(f"gemmacpp backend: device {device!r}: gemmacpp runs models "
                                      "on the CPU only so far; pass --device cpu (lm-eval's "
                                      "command line asks for cuda:0 when --device is not given)")
        source = pretrained if pretrained is not None else path
        # Checked before loading; 0 or a negative number is a mistake, never "the default".
        max_length = DEFAULT_MAX_LEN if max_length is None else _positive("max_length", max_length)
        max_gen_toks = _positive("max_gen_toks", max_gen_toks)
        # "auto" (the harness's adaptive size) has no meaning here: a fixed default is used.
        batch_size = 16 if str(batch_size).startswith("auto") else _positive("batch_size", batch_size)
        if source is not None and not str(source):
            raise ValueError("gemmacpp backend: pretrained is empty")
        self.model = gc.load(None if source is None else str(source),
                             device="cpu" if device is None else str(device), dtype=dtype,
                             threads=None if threads is None else int(threads))
        # Data parallel on Ray (gemmacpp.distributed): `workers` workers of `threads` threads.
        self.pool = None
        if workers is not None or ray is not None:
            from ..distributed import Pool
            self.pool = Pool(None if source is None else str(source), workers=int(workers or 2),
                             threads=int(threads or 1),
                             address=None if ray in (None, "", "local") else ray)
        self.tok = self.model.tokenizer
        self.max_length, self.max_gen_toks, self.batch_size = max_length, max_gen_toks, batch_size

    def _score(self, pairs, **kwargs):
        if self.pool is not None:
            return self.pool.score_tokens(pairs, **kwargs)
        return score_tokens(self.model, pairs, **kwargs)

    # ---- the three request types ----

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        pairs = [encode_pair(self.tok, *req.args) for req in requests]
        with tqdm(total=len(pairs), disable=disable_tqdm, desc="gemmacpp loglikelihood") as bar:
            scores = self._score(pairs, batch_size=self.batch_size, max_length=self.max_length,
                                 progress=bar.update)
        for req, score in zip(requests, scores):
            self.cache_hook.add_partial("loglikelihood", req.args, score)
        return scores

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        # As the HF backend: the document is encoded as any text (with BOS for Gemma) and the
        # first window predicts all of it from BOS.
        pairs, owner = [], []
        for i, req in enumerate(requests):
            ids = encode_text(self.tok, req.args[0])
            for w in rolling_windows(ids, self.tok.bos_id, self.max_length):
                pairs.append(w)
                owner.append(i)
        with tqdm(total=len(pairs), disable=disable_tqdm, desc="gemmacpp loglikelihood_rolling") as bar:
            scores = self._score(pairs, batch_size=self.batch_size, max_length=self.max_length,
                                 progress=bar.update)
        totals = [0.0] * len(requests)
        for i, (logp, _) in zip(owner, scores):
            totals[i] += logp
        for req, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False):
        eos = self.tok.id_to_piece(self.tok.eos_id)
        # Requests with the same generation settings run together, in batches.
        groups = {}
        for i, req in enumerate(requests):
            context, kwargs = req.args
            kwargs = dict(kwargs or {})
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            if eos not in until:
                until.append(eos)
            max_new = int(kwargs.pop("max_gen_toks", None) or kwargs.pop("max_new_tokens", None)
                          or self.max_gen_toks)
            if kwargs.get("do_sample") and float(kwargs.get("temperature", 1.0)) > 0:
                raise NotImplementedError("gemmacpp backend: only greedy generation (do_sample=False)")
            groups.setdefault((tuple(until), max_new), []).append((i, context))
        out = [None] * len(requests)
        with tqdm(total=len(requests), disable=disable_tqdm, desc="gemmacpp generate_until") as bar:
            for (until, max_new), items in groups.items():
                if max_new >= self.max_length:
                    raise ValueError(f"max_gen_toks={max_new} leaves no room in max_length={self.max_length}")
                keep = self.max_length - max_new  # the harness keeps the prompt's latest tokens
                prompts = [encode_text(self.tok, c)[-keep:] for _, c in items]
                run = self.pool.generate_until if self.pool else \
                    functools.partial(generate.generate_until, self.model)
                texts = run(prompts, max_new_tokens=max_new, stops=list(until),
                            batch_size=self.batch_size, progress=bar.update)
                for (i, _), text in zip(items, texts):
                    out[i] = text
        for req, text in zip(requests, out):
            self.cache_hook.add_partial("generate_until", req.args, text)
        return out


# Registered on import, unless lm-eval's plugin discovery already holds the name as a lazy entry
# point (which loads this class; registering again would clash with it).
if "gemmacpp" not in _registry.model_registry:
    _registry.register_model("gemmacpp")(GemmaCppLM)


def main(argv=None) -> None:
    """lm_eval's command line with the "gemmacpp" model registered."""
    import sys

    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    if not any(a == "--device" or a.startswith("--device=") for a in sys.argv[1:]):
        sys.argv.extend(["--device", "cpu"])  # lm-eval's own default is cuda:0
    cli_evaluate()


if __name__ == "__main__":
    main()
