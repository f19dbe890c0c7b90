"""The cost of hooks on the default model (Gemma 3 270M Q4_K_M): a plain forward of one sequence
against the same forward that captures every residual stream (hook_embed and each block's
hook_resid_post, copied out: run_with_cache), one no-op hook (a Python call that reads nothing),
a no-op hook on every hook point but the attention scores and patterns (each hook gets an owning
copy of its activation, copied back after the call: this row is the cost of those copies and of
the Python calls), run_with_cache of those same points, and, for reference, capturing everything
(all hook points, attention patterns included, which switches every layer to the plain attention
path that materialises them).

    python benchmarks/bench_hooks.py [--quick] [--tokens 32,512] [--threads N]

Measured for each token count twice: with logits for every position (the head, 262144 x 640,
dominates the time) and with last_only=True (the head for the last position only), where the
overhead shows most. Target (issue 5): capturing every residual stream costs under 10% extra at
512 tokens.

The variants run in turn, one call each per round; the figure is each variant's fastest call
(and the median beside it), and its ratio to the plain forward's. On a shared machine the
fastest call is the steadiest estimate of what the work itself costs; medians move with the
other load.

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import os

import numpy as np

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402
import time  # noqa: E402

RESIDUALS = ["hook_embed", "blocks.*.hook_resid_post"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="64 tokens, short timing (smoke run)")
    ap.add_argument("--tokens", default="32,512", help="comma-separated sequence lengths")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-everything", action="store_true", help="skip capturing every hook point")
    ap.add_argument("--rounds", type=int, default=8, help="rounds of one call per variant")
    ap.add_argument("--heads", default="all,last", help="all: logits for every position; last: last_only")
    args = ap.parse_args()
    lengths = [64] if args.quick else [int(t) for t in args.tokens.split(",")]
    rounds = 2 if args.quick else args.rounds
    gc.set_num_threads(args.threads)
    model = gc.load()
    names = model.hook_names()
    n_streams = len([n for n in names if n == "hook_embed" or n.endswith("hook_resid_post")])
    # Every point but the scores and patterns, whose hooks switch attention to its plain path.
    copied = [n for n in names if not n.endswith(("hook_scores", "hook_pattern"))]
    print(f"default model {os.path.basename(model.path)}, {gc.get_num_threads()} threads")

    def noop(activation, name):
        return None

    rows = []
    for T in lengths:
        toks = np.random.default_rng(0).integers(10, model.config["vocab_size"], size=(1, T))
        for last_only in [h == "last" for h in args.heads.split(",")]:
            fns = {
                "plain forward": lambda: model.forward(toks, last_only=last_only),
                f"capture {n_streams} residual streams": lambda: model.run_with_cache(
                    toks, names=RESIDUALS, last_only=last_only),
            }

            def one_noop():
                with model.hooks({"blocks.8.hook_resid_post": noop}):
                    model.forward(toks, last_only=last_only)

            def every_noop():
                with model.hooks({n: noop for n in copied}):
                    model.forward(toks, last_only=last_only)
            fns["one no-op hook"] = one_noop
            fns[f"no-op hook on {len(copied)} points"] = every_noop
            fns[f"capture {len(copied)} points"] = lambda: model.run_with_cache(
                toks, names=copied, last_only=last_only)
            if not args.no_everything:
                fns["capture every hook point"] = lambda: model.run_with_cache(toks, last_only=last_only)
            for fn in fns.values():  # warm up (page in the weights, allocate)
                fn()
            times = {name: [] for name in fns}
            for _ in range(rounds):
                for name, fn in fns.items():
                    t = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t)
            base, base_med = min(times["plain forward"]), float(np.median(times["plain forward"]))
            head = ("last_only" if last_only else "all logits")
            for name, ts in times.items():
                med = float(np.median(ts))
                rows.append((T, head, name, min(ts), min(ts) / base, med, med / base_med))

    print(f"\n{'tokens':>6} {'head':<11} {'variant':<32} {'min ms':>9} {'ratio':>6} {'median ms':>10} {'ratio':>6}")
    for T, head, name, t, ratio, med, med_ratio in rows:
        print(f"{T:>6} {head:<11} {name:<32} {t * 1e3:9.1f} {ratio:6.2f} {med * 1e3:10.1f} {med_ratio:6.2f}")


if __name__ == "__main__":
    main()
