"""linear with GGML block-quantized weights on Gemma shapes, against dense linear.

    python benchmarks/bench_quant.py [--quick] [--threads N] [--all-targets] [--activations int8]

Matrix-vector (M = 1, decode) on the projections of Gemma 3 270M (d_model 640, ffn 2048, vocab
262144) and Gemma 2 2B (d_model 2304, ffn 9216) for Q4_K, Q6_K, Q8_0 and Q5_0 weights (the
default Q4_K_M file stores its K = 640 matrices as Q5_0 and Q8_0: the K-quants need K % 256 == 0,
so they are left out there), beside gemmacpp's dense bf16 and f32 linear and torch's f32 linear
on the same shape. GB/s counts the weight bytes read once (the quantized bytes for quantized
weights), and "copy" compares it with the read+write traffic of a large np.copyto measured in
this run. Matrix-matrix (M = 512, prefill): GFLOP/s of the quantized path (each task decodes its
weight rows once into float32 rows and runs the same dot-product tiles as decode over them, so
that a row's result does not depend on M) beside the dense ones.

--all-targets: instead, every GGML type's quantized linear (matrix-vector GB/s, matrix-matrix
GFLOP/s for M = 8, a small batch, and M = 512) on each SIMD target this CPU supports, a column per target, and the kernels on which the
dispatched target is more than 10% behind a lesser one (bench_env.py). The head is a 32768-row
slice there, and with --quick the 2B M = 512 shape is left out (a second or so per call on the
SCALAR target).

--activations int8: the quantized kernels run in the int8-activation mode (x rounded to int8 per
block, integer block products: gc.ops.linear(..., activations="int8")), in every table above;
the dense columns stay float32.

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse

import ml_dtypes
import numpy as np

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402
from gemmacpp.quant import QuantizedTensor  # noqa: E402
from timing import copy_bandwidth, time_all  # noqa: E402

try:
    import torch
except ImportError:  # torch is optional: its column is left empty
    torch = None

# values per block, bytes per block, offsets of the float16 scale fields
LAYOUT = {"Q8_0": (32, 34, [0]), "Q5_0": (32, 22, [0]), "Q4_K": (256, 144, [0, 2]),
          "Q6_K": (256, 210, [208])}
# --all-targets times every type.
ALL_LAYOUTS = dict(LAYOUT, **{
    "Q4_0": (32, 18, [0]), "Q4_1": (32, 20, [0, 2]), "Q5_1": (32, 24, [0, 2]),
    "Q2_K": (256, 84, [80, 82]), "Q3_K": (256, 110, [108]), "Q5_K": (256, 176, [0, 2])})
SHAPES = [  # (N, K, what)
    (2048, 640, "270M mlp up"),
    (640, 2048, "270M mlp down"),
    (262144, 640, "270M tied head"),
    (9216, 2304, "2B mlp up"),
]
MATMUL_SHAPES = [(2048, 640, "270M mlp up"), (640, 2048, "270M mlp down"),
                 (9216, 2304, "2B mlp up")]


def random_quantized(rng, qtype, n, k):
    """Random blocks (random bytes, small finite float16 scales): timing ignores the values."""
    bv, bb, f16 = ALL_LAYOUTS[qtype]
    nb = n * (k // bv)
    raw = rng.integers(0, 256, (nb, bb), dtype=np.uint8)
    for o in f16:
        raw[:, o:o + 2] = np.full(nb, 0.01, np.float16).view(np.uint8).reshape(nb, 2)
    return QuantizedTensor(raw.reshape(-1), qtype, (n, k))


def ms(t):
    return f"{'-':>8}" if t is None else f"{t * 1e3:8.3f}"


def run_matvec(args, copy_gbs, rng):
    hdr = (f"{'N x K':>13} {'what':<20} {'weight':<6} {'ms':>8} {'GB/s':>6} {'copy':>5}"
           f" {'gc f32 ms':>9} {'gc bf16 ms':>10} {'torch f32':>9}")
    print(hdr)
    print("-" * len(hdr))
    for n, k, what in SHAPES:
        if args.quick and n * k > 64 << 20:
            n, what = 32768, what + " (slice)"  # the full head is ~1 GB as float32
        x = rng.standard_normal((1, k), dtype=np.float32)
        w32 = rng.standard_normal((n, k), dtype=np.float32) * 0.05
        wbf = w32.astype(ml_dtypes.bfloat16)
        dense = {"f32": lambda: gc.ops.linear(x, w32), "bf16": lambda: gc.ops.linear(x, wbf)}
        if torch is not None:
            xt, wt = torch.from_numpy(x), torch.from_numpy(w32)
            dense["torch"] = lambda: torch.nn.functional.linear(xt, wt)
        with torch.inference_mode() if torch is not None else _null():
            td = time_all(dense, args.min_time, pause=0.1)
        for qtype in LAYOUT:
            if k % LAYOUT[qtype][0]:
                continue
            qt = random_quantized(rng, qtype, n, k)
            t = time_all({"q": lambda: gc.ops.linear(x, qt, activations=args.activations)}, args.min_time, pause=0.1)["q"]
            gbs = qt.data.nbytes / t / 1e9
            print(f"{f'{n} x {k}':>13} {what:<20} {qtype:<6} {ms(t)} {gbs:6.1f}"
                  f" {gbs / copy_gbs:5.2f} {ms(td['f32']):>9} {ms(td['bf16']):>10}"
                  f" {ms(td.get('torch')):>9}", flush=True)


def run_matmul(args, rng, m=512):
    hdr = (f"{'N x K':>13} {'what':<20} {'weight':<6} {'ms':>8} {'GFLOP/s':>8}"
           f" {'gc f32':>8} {'gc bf16':>8} {'torch f32':>9}")
    print(hdr)
    print("-" * len(hdr))
    for n, k, what in MATMUL_SHAPES:
        x = rng.standard_normal((m, k), dtype=np.float32)
        w32 = rng.standard_normal((n, k), dtype=np.float32) * 0.05
        wbf = w32.astype(ml_dtypes.bfloat16)
        dense = {"f32": lambda: gc.ops.linear(x, w32), "bf16": lambda: gc.ops.linear(x, wbf)}
        if torch is not None:
            xt, wt = torch.from_numpy(x), torch.from_numpy(w32)
            dense["torch"] = lambda: torch.nn.functional.linear(xt, wt)
        with torch.inference_mode() if torch is not None else _null():
            td = time_all(dense, args.min_time, rounds=1, pause=0.1)
        flop = 2.0 * m * n * k
        gf = {name: flop / t / 1e9 for name, t in td.items()}
        for qtype in LAYOUT:
            if k % LAYOUT[qtype][0]:
                continue
            qt = random_quantized(rng, qtype, n, k)
            t = time_all({"q": lambda: gc.ops.linear(x, qt, activations=args.activations)}, args.min_time, rounds=1, pause=0.1)["q"]
            print(f"{f'{n} x {k}':>13} {what:<20} {qtype:<6} {ms(t)} {flop / t / 1e9:8.1f}"
                  f" {gf['f32']:8.1f} {gf['bf16']:8.1f} {gf.get('torch', float('nan')):9.1f}",
                  flush=True)


def run_all_targets(args, rng):
    """Every type's quantized linear on every SIMD target, GB/s (M = 1) and GFLOP/s (M = 512)."""
    order = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]

    def seconds(fn):
        return time_all({"q": fn}, args.min_time / 2, rounds=1, pause=0.05)["q"]

    print("matrix-vector, M = 1")
    table = bench_env.TargetTable(f"{'N x K':>13} {'what':<20} {'weight':<6}", 42, "GB/s")
    for n, k, what in SHAPES:
        if n * k > 64 << 20:
            n, what = 32768, what + " (slice)"  # the full head is ~1 GB as float32
        x = rng.standard_normal((1, k), dtype=np.float32)
        for qtype in order:
            if k % ALL_LAYOUTS[qtype][0]:
                continue
            qt = random_quantized(rng, qtype, n, k)
            t = bench_env.per_target_seconds(lambda: gc.ops.linear(x, qt, activations=args.activations), seconds)
            table.row(f"{f'{n} x {k}':>13} {what:<20} {qtype:<6}",
                      {name: qt.data.nbytes / s / 1e9 for name, s in t.items()})
    table.summary()

    # M = 8: a small batch (batched decode), where dequantizing and packing the weights
    # outweighs the FMAs; M = 512: prefill.
    for m in (8, 512):
        print(f"\nmatrix-matrix, M = {m}")
        table = bench_env.TargetTable(f"{'N x K':>13} {'what':<20} {'weight':<6}", 42, "GFLOP/s")
        for n, k, what in MATMUL_SHAPES[:2] if args.quick and m == 512 else MATMUL_SHAPES:
            x = rng.standard_normal((m, k), dtype=np.float32)
            for qtype in order:
                if k % ALL_LAYOUTS[qtype][0]:
                    continue
                qt = random_quantized(rng, qtype, n, k)
                t = bench_env.per_target_seconds(lambda: gc.ops.linear(x, qt, activations=args.activations), seconds,
                                                 rounds=2 if m == 8 else 1)
                table.row(f"{f'{n} x {k}':>13} {what:<20} {qtype:<6}",
                          {name: 2.0 * m * n * k / s / 1e9 for name, s in t.items()})
        table.summary()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="shorter timings, a slice of the head")
    p.add_argument("--threads", type=int, default=0, help="threads (0: all this process may use)")
    p.add_argument("--min-time", type=float, default=None)
    p.add_argument("--activations", choices=["float32", "int8"], default="float32",
                   help="the quantized kernels' activation mode (gc.ops.linear's activations)")
    bench_env.add_all_targets_argument(p)
    args = p.parse_args()
    args.min_time = args.min_time or (0.4 if args.quick else 1.5)
    gc.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(gc.get_num_threads())
    rng = np.random.default_rng(0)
    print(bench_env.gemmacpp_origin())
    print(f"quantized kernels: activations={args.activations}")
    if args.all_targets:
        print(f"gemmacpp threads: {gc.get_num_threads()}\n")
        return run_all_targets(args, rng)
    copy_gbs = copy_bandwidth(args.min_time)
    print(f"gemmacpp threads: {gc.get_num_threads()}; np.copyto bandwidth: {copy_gbs:.1f} GB/s\n")
    print("matrix-vector, M = 1 (GB/s over the weight bytes read once)")
    run_matvec(args, copy_gbs, rng)
    print("\nmatrix-matrix, M = 512 (GFLOP/s)")
    run_matmul(args, rng)


if __name__ == "__main__":
    main()
