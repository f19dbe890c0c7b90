"""The quantized matrix-vector products of one decode step of the default model, per matrix kind.

    python benchmarks/bench_quant_step.py [--threads N] [--steps S] [--activations int8]

Gemma 3 270M Q4_K_M's matrices (random blocks of the file's types and shapes: 18 layers of q, k,
v, o, gate, up, down and the 262144 x 640 Q8_0 head, 246 MB) multiplied by one row in a decode
step's order, so that each matrix streams from memory as in decode (the step is 8x the L3). Each
kind's ms per step, its GB/s over the bytes read, and the step's total against the bytes at
np.copyto bandwidth ("bound", as bench_generate.py's): the kernels' share of a decode step
without attention, norms or Python. Times are the best of `--rounds` runs of `--steps` steps.

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import collections
import time

import numpy as np

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402
from bench_quant import ALL_LAYOUTS, random_quantized  # noqa: E402
from timing import copy_bandwidth  # noqa: E402

# (kind, type, N, K) of one layer; "v" and "down" alternate between two types layer by layer, as
# in the file (v: Q5_0 / Q8_0, down: Q6_K / Q4_K).
LAYER = [("q", "Q5_0", 1024, 640), ("k", "Q5_0", 256, 640), ("v", ("Q8_0", "Q5_0"), 256, 640),
         ("o", "Q4_K", 640, 1024), ("gate", "Q5_0", 2048, 640), ("up", "Q5_0", 2048, 640),
         ("down", ("Q6_K", "Q4_K"), 640, 2048)]
LAYERS = 18
HEAD = ("head", "Q8_0", 262144, 640)


def step_matrices(rng):
    mats = []
    for layer in range(LAYERS):
        for kind, qtype, n, k in LAYER:
            qtype = qtype[layer % 2] if isinstance(qtype, tuple) else qtype
            mats.append((f"{kind} {qtype}", random_quantized(rng, qtype, n, k)))
    kind, qtype, n, k = HEAD
    mats.append((f"{kind} {qtype}", random_quantized(rng, qtype, n, k)))
    return mats


def nbytes(qt):
    bv, bb, _ = ALL_LAYOUTS[qt.qtype]
    return qt.shape[0] * qt.shape[1] // bv * bb


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--activations", choices=["float32", "int8"], default="float32")
    args = ap.parse_args()
    gc.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    mats = step_matrices(rng)
    xs = {k: rng.standard_normal((1, k)).astype(np.float32) for k in {qt.shape[1] for _, qt in mats}}
    kw = {} if args.activations == "float32" else {"activations": args.activations}
    copy_gbs = copy_bandwidth(0.5)
    print(bench_env.gemmacpp_origin())
    print(f"threads: {args.threads}; activations: {args.activations}; np.copyto bandwidth: "
          f"{copy_gbs:.1f} GB/s")
    for name, qt in mats:  # warm up: page the weights in
        gc.ops.linear(xs[qt.shape[1]], qt, **kw)
    best = None
    for _ in range(args.rounds):
        spent = collections.defaultdict(float)
        for _ in range(args.steps):
            for name, qt in mats:
                x = xs[qt.shape[1]]
                t = time.perf_counter()
                gc.ops.linear(x, qt, **kw)
                spent[name] += time.perf_counter() - t
        if best is None or sum(spent.values()) < sum(best.values()):
            best = spent
    size = collections.defaultdict(int)
    for name, qt in mats:
        size[name] += nbytes(qt)
    total_s = sum(best.values()) / args.steps
    total_b = sum(size.values())
    print(f"{'kind':12s} {'ms/step':>8s} {'GB/s':>6s}")
    for name in sorted(best, key=lambda n: -best[n]):
        s = best[name] / args.steps
        print(f"{name:12s} {s * 1e3:8.3f} {size[name] / s / 1e9:6.1f}")
    print(f"{'step':12s} {total_s * 1e3:8.3f} {total_b / total_s / 1e9:6.1f}   "
          f"({total_b / 1e6:.0f} MB; bound {total_b / (copy_gbs * 1e9) * 1e3:.2f} ms, "
          f"{total_b / (copy_gbs * 1e9) / total_s:.2f} of it)")


if __name__ == "__main__":
    main()
