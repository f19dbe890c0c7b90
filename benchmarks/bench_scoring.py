"""Multiple-choice scoring throughput of the default model: gemmacpp's loglikelihood with and
without the shared-prefix path, against transformers on the CPU, side by side in one process.

The requests are the questions of tests/data/tasks/tiny_mc.jsonl ("Question: ...\\nAnswer:" and
" choice"), repeated --repeat times, tokenized once by gemmacpp's tokenizer so that every engine
scores the same ids. transformers runs the same GGUF dequantized to float32, one request per
forward (as lm-eval's hf backend does at batch size 1), from the module bench_generate.py
converts once into ~/.cache/gemmacpp-bench (run that script first, or pass --convert). Printed:
requests/s of each, the ratios, and the largest difference between the engines' log-probs.

    python benchmarks/bench_scoring.py [--threads 2] [--repeat 2] [--rounds 3]

--workload lm-eval is shaped like an lm-evaluation-harness multiple-choice task instead: --requests
(default 1,000) four-choice requests, each question's context 40-200 tokens and each choice's
continuation 1-20 tokens (random ordinary token ids, seeded: speed does not depend on which).
Printed: requests/s and scored tokens/s of gemmacpp (shared prefix, batches of 16), transformers
(one request per forward) and llama.cpp through llama-cpp-python (one request per eval, every
position's logits kept), the peers on the first --peer-requests of them (200), and where
gemmacpp's time goes: the contexts' forward (prefill of each
distinct context, last position's logits only), the continuations' forward through the forked
cache (full logits over the vocabulary), the targets' log-probs from those logits, and the rest
(packing the batches, Python). llama.cpp's log-probs differ from gemmacpp's (exact float32
activations) by about 0.14 nats per token, summed over a request's tokens: it rounds activations
to int8 before its quantized products, as gemmacpp's activations="int8" mode does, which is as far
(docs/benchmarks.md measures it; on float32 weights llama.cpp agrees to 0.01).

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402
from timing import best_of  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TASK = os.path.join(HERE, "..", "tests", "data", "tasks", "tiny_mc.jsonl")


def requests(model, repeat):
    """[(context ids, continuation ids)] for every choice of every question, repeat times."""
    tok = model.tokenizer
    out = []
    with open(TASK) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for _ in range(repeat):
        for row in rows:
            ctx = f"Question: {row['question']}\nAnswer:"
            ctx_ids = tok.encode(ctx, add_bos=True)
            for choice in row["choices"]:
                full = tok.encode(ctx + " " + choice, add_bos=True)
                assert full[:len(ctx_ids)] == ctx_ids, "the context's ids must be a prefix"
                out.append((ctx_ids, full[len(ctx_ids):]))
    return out


def lm_eval_requests(n, seed=0, vocab=(1000, 200000)):
    """n four-choice requests [(context ids, continuation ids)]: each question's context 40-200
    tokens (BOS first), its four continuations 1-20 tokens."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        ctx = [2] + rng.integers(*vocab, size=int(rng.integers(39, 200))).tolist()
        for _ in range(4):
            out.append((ctx, rng.integers(*vocab, size=int(rng.integers(1, 21))).tolist()))
    return out[:n]


class ScoringProfile:
    """Seconds gemmacpp's scoring spends in the contexts' forward, the continuations' forward and
    the log-softmax, from wrappers around model.forward and the scorer's _log_probs."""

    def __init__(self, model):
        from gemmacpp.eval import scoring
        self.model, self.scoring = model, scoring
        self.ctx = self.cont = self.logsoftmax = 0.0

    def __enter__(self):
        forward, log_probs = self.model.forward, self.scoring._log_probs

        def timed_forward(*a, **kw):
            t = time.perf_counter()
            out = forward(*a, **kw)
            dt = time.perf_counter() - t
            if kw.get("last_only"):
                self.ctx += dt
            else:
                self.cont += dt
            return out

        def timed_log_probs(*a, **kw):
            t = time.perf_counter()
            out = log_probs(*a, **kw)
            self.logsoftmax += time.perf_counter() - t
            return out

        self._restore = (forward, log_probs)
        self.model.forward, self.scoring._log_probs = timed_forward, timed_log_probs
        return self

    def __exit__(self, *exc):
        del self.model.forward  # the instance attribute; the class's method shows again
        self.scoring._log_probs = self._restore[1]

    def report(self, total):
        parts = [("contexts' forward (last position's logits)", self.ctx),
                 ("continuations' forward (every position's logits)", self.cont),
                 ("log-probs of the continuations (gc.ops.token_logprobs)", self.logsoftmax),
                 ("the rest: packing, forks, Python", total - self.ctx - self.cont - self.logsoftmax)]
        print("\nwhere gemmacpp's time goes (one profiled run):")
        for name, t in parts:
            print(f"  {name:52s} {t:7.2f} s {t / total:6.1%}")


def llama_cpp_scores(reqs, threads):
    """llama.cpp through llama-cpp-python on the same GGUF, one request per eval."""
    import llama_cpp
    sys.path.insert(0, HERE)
    from bench_generate import DEFAULT_MODEL
    longest = max(len(c) + len(k) for c, k in reqs)
    llm = llama_cpp.Llama(model_path=DEFAULT_MODEL, n_ctx=max(512, longest), n_batch=512,
                          n_ubatch=512, n_threads=threads, n_threads_batch=threads,
                          logits_all=True, verbose=False)

    def run():
        out = []
        for ctx, cont in reqs:
            llm.reset()
            llm.eval(ctx + cont)
            rows = np.asarray(llm.scores[len(ctx) - 1:len(ctx) + len(cont) - 1], dtype=np.float64)
            rows -= rows.max(axis=1, keepdims=True)
            logp = rows - np.log(np.exp(rows).sum(axis=1, keepdims=True))
            out.append(float(logp[np.arange(len(cont)), cont].sum()))
        return out
    return run


def transformers_scores(reqs):
    import torch
    sys.path.insert(0, HERE)
    from bench_generate import transformers_model
    model = transformers_model()

    def run():
        out = []
        with torch.no_grad():
            for ctx, cont in reqs:
                ids = torch.tensor([ctx + cont])
                logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
                pos = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1)
                out.append(float(logp[pos, torch.tensor(cont)].sum()))
        return out
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="copies of the question set")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each engine (best kept)")
    ap.add_argument("--convert", action="store_true", help="convert the GGUF for transformers first")
    ap.add_argument("--workload", choices=["tiny_mc", "lm-eval"], default="tiny_mc",
                    help="tiny_mc: the test task's questions; lm-eval: random four-choice requests "
                         "shaped like an lm-evaluation-harness task")
    ap.add_argument("--requests", type=int, default=1000, help="requests of --workload lm-eval")
    ap.add_argument("--peer-requests", type=int, default=200,
                    help="--workload lm-eval: the peers score the first this many requests (their "
                         "rates are per request, so they compare; the full set takes them long)")
    args = ap.parse_args()

    model = gc.load(threads=args.threads)
    if args.workload == "lm-eval":
        reqs = lm_eval_requests(args.requests)
    else:
        reqs = requests(model, args.repeat)
    n = len(reqs)
    scored = sum(len(k) for _, k in reqs)
    print(f"{n} requests ({len({tuple(c) for c, _ in reqs})} distinct contexts, "
          f"{sum(len(c) for c, _ in reqs) / n:.0f} context and {scored / n:.1f} continuation "
          f"tokens on average), {args.threads} threads, best of {args.rounds}, "
          f"simd={gc.simd_target()}, load average {os.getloadavg()[0]:.1f}\n")
    if args.workload == "lm-eval":
        return lm_eval_workload(model, reqs, args)

    rows = []
    t_shared, shared = best_of(args.rounds, lambda: model.loglikelihood(reqs, shared_prefix=True))
    rows.append(("gemmacpp, shared prefix", t_shared))
    t_plain, plain = best_of(args.rounds, lambda: model.loglikelihood(reqs, shared_prefix=False))
    rows.append(("gemmacpp, each context per request", t_plain))
    diff = max(abs(a[0] - b[0]) for a, b in zip(shared, plain))

    t_hf = None
    try:
        import torch
        torch.set_num_threads(args.threads)
        if args.convert:
            sys.path.insert(0, HERE)
            from bench_generate import DEFAULT_MODEL, convert_for_transformers
            convert_for_transformers(DEFAULT_MODEL)
        run = transformers_scores(reqs)
        t_hf, hf = best_of(max(1, args.rounds - 1), run)
        rows.append(("transformers (float32, batch 1)", t_hf))
    except (ImportError, RuntimeError) as e:
        print(f"transformers skipped: {e}\n")

    print(f"{'engine':38s} {'s':>8s} {'requests/s':>11s}")
    for name, t in rows:
        print(f"{name:38s} {t:8.2f} {n / t:11.1f}")
    print(f"\nshared prefix / per request: {t_plain / t_shared:.2f}x faster "
          f"(log-probs agree to {diff:.1e})")
    if t_hf is not None:
        gap = max(abs(a[0] - b) for a, b in zip(shared, hf))
        print(f"gemmacpp shared / transformers: {t_hf / t_shared:.2f}x faster; "
              f"per request / transformers: {t_hf / t_plain:.2f}x; largest log-prob difference "
              f"{gap:.1e}")


def lm_eval_workload(model, reqs, args):
    n = len(reqs)
    rows = []
    t_gc, ours = best_of(args.rounds, lambda: model.loglikelihood(reqs))
    rows.append(("gemmacpp (shared prefix, batches of 16)", t_gc, ours))
    peer = reqs[:args.peer_requests]
    try:
        if not peer:
            raise ImportError("--peer-requests 0")
        import torch
        torch.set_num_threads(args.threads)
        t, hf = best_of(1, transformers_scores(peer))
        rows.append(("transformers (float32, one per forward)", t, [(x, None) for x in hf]))
    except (ImportError, RuntimeError) as e:
        print(f"transformers skipped: {e}\n")
    try:
        if not peer:
            raise ImportError("--peer-requests 0")
        t, lc = best_of(1, llama_cpp_scores(peer, args.threads))
        rows.append(("llama.cpp (one per eval)", t, [(x, None) for x in lc]))
    except ImportError as e:
        print(f"llama.cpp skipped: {e}\n")

    print(f"{'engine':42s} {'requests':>8s} {'s':>8s} {'requests/s':>11s} {'tokens/s':>9s} "
          f"{'gemmacpp':>9s} {'max |dlogp|':>11s}")
    for name, t, res in rows:
        k = len(res)
        gap = max((abs(a[0] - b[0]) for a, b in zip(ours, res)), default=0.0)
        print(f"{name:42s} {k:8d} {t:8.2f} {k / t:11.1f} {sum(len(c) for _, c in reqs[:k]) / t:9.0f} "
              f"{(t / k) / (t_gc / n):8.2f}x {gap:11.1e}")
    print("tokens/s: continuation tokens scored per second; gemmacpp: how many times faster per "
          "request it is; max |dlogp|: the largest difference from gemmacpp's request log-probs "
          "(llama.cpp's int8 activations account for its, docs/benchmarks.md)")

    with ScoringProfile(model) as prof:
        start = time.perf_counter()
        model.loglikelihood(reqs)
        total = time.perf_counter() - start
    prof.report(total)


if __name__ == "__main__":
    main()
