"""Batched short-context work with the default model: B sequences of a short prompt each, prefilled
as one batch into a cache, then greedy decode steps of all B at once; gemmacpp against transformers.

    python benchmarks/bench_batched.py [--batch 8 32] [--tokens 64] [--steps 64] [--threads 1 2]
                                       [--engines gemmacpp transformers] [--model PATH] [--rounds 2]

This is the shape of scoring many short requests or sampling many continuations, where the
per-sequence work (attention over each sequence's own keys, its cache) is a larger share than in
one long prompt. Every row gets its own prompt (different slices of one text, BOS first, the same
ids for every engine). Per engine, thread count and batch size: prefill tokens/s (B * tokens over
the forward that fills a fresh cache) and decode tokens/s (B * steps over that many one-token
forwards), each the best of --rounds runs, plus whether the engines' greedy tokens agree. Each
engine runs in its own child process, as in bench_generate.py (whose transformers conversion of
the GGUF file, cached under ~/.cache/gemmacpp-bench, this script reuses).

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_env  # noqa: E402

bench_env.select_gemmacpp()

from bench_generate import DEFAULT_MODEL, TEXT, TF_CACHE, convert_for_transformers, transformers_model  # noqa: E402

ENGINES = ["gemmacpp", "transformers"]
CHECK_STEPS = 8  # leading greedy steps compared across engines


def prompts(model_path, batch, tokens):
    """batch prompts of `tokens` ids: BOS and a slice of TEXT (repeated) starting at row * 7."""
    import gemmacpp as gc
    tok = gc.load(model_path).tokenizer
    base = tok.encode(TEXT, add_bos=False)
    while len(base) < tokens + 7 * batch:
        base = base + base
    return [[tok.bos_id] + [int(t) for t in base[7 * b:7 * b + tokens - 1]] for b in range(batch)]


# ---- engines: run(rows, steps) -> (prefill seconds, decode seconds, greedy ids [steps][B]) ----

def engine_gemmacpp(model_path, threads):
    import gemmacpp as gc
    model = gc.load(model_path, threads=threads)

    def run(rows, steps):
        B = len(rows)
        cache = model.new_cache(B, len(rows[0]) + steps + 1)
        t = time.perf_counter()
        logits = model.forward(rows, cache=cache, last_only=True)[:, 0]
        prefill = time.perf_counter() - t
        out = [logits.argmax(-1)]
        t = time.perf_counter()
        for _ in range(steps):
            logits = model.forward(out[-1][:, None], cache=cache)[:, 0]
            out.append(logits.argmax(-1))
        return prefill, time.perf_counter() - t, np.stack(out[:steps]).tolist()

    return run


def engine_transformers(model_path, threads):
    import torch
    torch.set_num_threads(threads)
    model = transformers_model()

    def run(rows, steps):
        with torch.inference_mode():
            t = time.perf_counter()
            r = model(torch.tensor(rows), use_cache=True, logits_to_keep=1)
            prefill = time.perf_counter() - t
            out = [r.logits[:, -1].argmax(-1)]
            past = r.past_key_values
            t = time.perf_counter()
            for _ in range(steps):
                r = model(out[-1][:, None], past_key_values=past, use_cache=True, logits_to_keep=1)
                past = r.past_key_values
                out.append(r.logits[:, -1].argmax(-1))
            return prefill, time.perf_counter() - t, torch.stack(out[:steps]).tolist()

    return run


def run_child(args):
    with open(args.ids_file) as f:
        rows_by_batch = {int(k): v for k, v in json.load(f).items()}
    make = {"gemmacpp": engine_gemmacpp, "transformers": engine_transformers}[args.child]
    run = make(args.model, args.threads[0])
    result = {}
    for B, rows in sorted(rows_by_batch.items()):
        run(rows[:2], 2)  # warm up: page the weights in
        best_p, best_d, ids = float("inf"), float("inf"), None
        for _ in range(args.rounds):
            p, d, ids = run(rows, args.steps)
            best_p, best_d = min(best_p, p), min(best_d, d)
        tokens = len(rows[0])
        result[B] = {"prefill": B * tokens / best_p, "decode": B * args.steps / best_d,
                     "ids": ids[:CHECK_STEPS]}
    print("RESULT " + json.dumps(result), flush=True)


def spawn(engine, threads, args, ids_file):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", engine, "--threads", str(threads),
           "--model", args.model, "--ids-file", ids_file, "--steps", str(args.steps),
           "--rounds", str(args.rounds)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return {int(k): v for k, v in json.loads(line[7:]).items()}
    print(f"{engine} with {threads} threads failed:\n{p.stdout[-2000:]}{p.stderr[-3000:]}")
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--engines", nargs="+", default=ENGINES, choices=ENGINES)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--rounds", type=int, default=2, help="runs of each measurement (best kept)")
    ap.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--ids-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return run_child(args)

    import gemmacpp as gc
    engines = [e for e in args.engines if e != "transformers" or _has_torch()]
    if "transformers" in engines and not os.path.exists(os.path.join(TF_CACHE, "model.pt")):
        print("converting the GGUF file for transformers once (a few minutes) ...", flush=True)
        convert_for_transformers(args.model)
    ids_file = os.path.join(os.path.expanduser("~/.cache/gemmacpp-bench"), "batched_ids.json")
    os.makedirs(os.path.dirname(ids_file), exist_ok=True)
    with open(ids_file, "w") as f:
        json.dump({B: prompts(args.model, B, args.tokens) for B in args.batch}, f)
    print(f"model {os.path.basename(args.model)}, SIMD target {gc.simd_target()}, "
          f"{args.tokens} prompt tokens and {args.steps} decode steps per sequence, gemmacpp from "
          f"{os.path.dirname(gc.__file__)}")
    results = {}
    for threads in args.threads:
        for engine in engines:
            results[(engine, threads)] = spawn(engine, threads, args, ids_file)
    print(f"\n| threads | batch | engine | prefill tok/s | decode tok/s | vs transformers (prefill, decode) |")
    print("|---|---|---|---|---|---|")
    for threads in args.threads:
        for B in args.batch:
            ref = (results.get(("transformers", threads)) or {}).get(B)
            for engine in engines:
                r = (results.get((engine, threads)) or {}).get(B)
                if r is None:
                    continue
                ratio = "" if ref is None or engine == "transformers" else \
                    f"{r['prefill'] / ref['prefill']:.2f}x, {r['decode'] / ref['decode']:.2f}x"
                print(f"| {threads} | {B} | {engine} | {r['prefill']:.0f} | {r['decode']:.1f} | {ratio} |")
    ids = {e: (results.get((e, args.threads[0])) or {}) for e in engines}
    if len(engines) > 1 and all(ids.values()):
        agree = all(ids[engines[0]][B]["ids"] == ids[e][B]["ids"] for e in engines for B in args.batch)
        print(f"\ngreedy tokens of the first {CHECK_STEPS} steps agree across engines: {agree}")


def _has_torch():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        print(f"skipping transformers: {e}")
        return False
    return True


if __name__ == "__main__":
    main()
