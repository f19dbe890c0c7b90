"""Multiple-choice scoring throughput of the default model: gemmacpp's loglikelihood with and
without the shared-prefix path, against transformers on the CPU, side by side in one process.

The requests are the questions of tests/data/tasks/tiny_mc.jsonl ("Question: ...\\nAnswer:" and
" choice"), repeated --repeat times, tokenized once by gemmacpp's tokenizer so that every engine
scores the same ids. transformers runs the same GGUF dequantized to float32, one request per
forward (as lm-eval's hf backend does at batch size 1), from the module bench_generate.py
converts once into ~/.cache/gemmacpp-bench (run that script first, or pass --convert). Printed:
requests/s of each, the ratios, and the largest difference between the engines' log-probs.

    python benchmarks/bench_scoring.py [--threads 2] [--repeat 2] [--rounds 3]

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import json
import os
import sys
import time

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402

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


def best_of(rounds, fn):
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


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
    args = ap.parse_args()

    model = gc.load(threads=args.threads)
    reqs = requests(model, args.repeat)
    n = len(reqs)
    print(f"{n} requests ({len({tuple(c) for c, _ in reqs})} distinct contexts), "
          f"{args.threads} threads, best of {args.rounds}, simd={gc.simd_target()}, "
          f"load average {os.getloadavg()[0]:.1f}\n")

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


if __name__ == "__main__":
    main()
