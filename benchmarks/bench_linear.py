"""linear (x @ weight.T) on Gemma shapes: gemmacpp against torch and NumPy on the CPU.

    python benchmarks/bench_linear.py [--quick] [--threads N] [--all-targets]

Matrix-vector (M = 1, decode) and matrix-matrix (M = 512, prefill) on the projections of
Gemma 3 270M (d_model 640, ffn 2048, vocab 262144) and Gemma 2 2B (d_model 2304, ffn 9216), with
float32 and bfloat16 weights. torch runs torch.nn.functional.linear with the same thread count:
for bfloat16 weights both its bfloat16 linear (x cast to bfloat16, as torch requires) and its
float32 linear on a float32 copy of the weights are timed. For the matrix-vector rows, GB/s counts
the weight bytes read once, and "copy" compares it with the read+write traffic of a large
np.copyto measured in this run (the memory bandwidth a streaming kernel can hope for).

--all-targets: instead, gemmacpp's linear alone (float32, bfloat16 and float16 weights;
matrix-vector GB/s, matrix-matrix GFLOP/s for M = 8, a small batch, and M = 512) on each SIMD
target this CPU supports, a column per target, and the kernels on which the dispatched target is
more than 10% behind a lesser one (bench_env.py). With --quick the M = 512 rows take the two 270M
shapes only.

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import contextlib

import ml_dtypes
import numpy as np

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402
from timing import copy_bandwidth, time_all  # noqa: E402

try:
    import torch
except ImportError:  # torch is optional: its columns are left empty
    torch = None

MATVEC_SHAPES = [  # (N, K, what)
    (2048, 640, "270M mlp up"),
    (640, 2048, "270M mlp down"),
    (262144, 640, "270M tied head"),
    (9216, 2304, "2B mlp up"),
]
MATMUL_SHAPES = [
    (2048, 640, "270M mlp up"),
    (640, 2048, "270M mlp down"),
    (32768, 640, "270M head slice"),
    (9216, 2304, "2B mlp up"),
]


def fmt_ms(t):
    return f"{'-':>9}" if t is None else f"{t * 1e3:9.3f}"


def run(shapes, m, args, copy_gbs):
    rng = np.random.default_rng(0)
    matvec = m == 1
    hdr = (f"{'shape N x K':>15} {'what':<22} {'w':<5} {'gc ms':>9} {'GFLOP/s':>8}"
           + (f" {'GB/s':>6} {'copy':>5}" if matvec else "")
           + f" {'torch ms':>9} {'torch f32':>9} {'numpy':>9} {'torch/gc':>8}")
    print(hdr)
    print("-" * len(hdr))
    for n, k, what in shapes:
        if args.quick and n * k > 64 << 20:
            n = 32768  # the full head needs ~1 GB per copy; --quick times a slice
            what += " (slice)"
        x = rng.standard_normal((m, k), dtype=np.float32)
        w32 = (rng.standard_normal((n, k), dtype=np.float32) * 0.05).astype(np.float32)
        for wname in ("f32", "bf16"):
            w = w32 if wname == "f32" else w32.astype(ml_dtypes.bfloat16)
            # Every library allocates its result (out= costs gemmacpp ~8 us more per call today).
            fns = {"gc": lambda: gc.ops.linear(x, w)}
            if torch is not None:
                xt, wt32 = torch.from_numpy(x), torch.from_numpy(w32)
                fns["torch32"] = lambda: torch.nn.functional.linear(xt, wt32)
                if wname == "bf16":
                    wtb, xtb = wt32.to(torch.bfloat16), xt.to(torch.bfloat16)
                    fns["torch"] = lambda: torch.nn.functional.linear(xtb, wtb)
            if wname == "f32":
                fns["numpy"] = lambda: np.matmul(x, w32.T)
            with torch.inference_mode() if torch is not None else contextlib.nullcontext():
                t = time_all(fns, args.min_time)
            t_gc, t_torch32, t_np = t["gc"], t.get("torch32"), t.get("numpy")
            t_torch = t.get("torch", t_torch32)
            gflops = 2.0 * m * n * k / t_gc / 1e9
            line = f"{f'{n} x {k}':>15} {what:<22} {wname:<5} {fmt_ms(t_gc)} {gflops:8.1f}"
            if matvec:
                gbs = w.nbytes / t_gc / 1e9
                line += f" {gbs:6.1f} {gbs / copy_gbs:5.2f}"
            ratio = f"{t_torch / t_gc:8.2f}" if t_torch else "       -"
            line += f" {fmt_ms(t_torch)} {fmt_ms(t_torch32)} {fmt_ms(t_np)} {ratio}"
            print(line, flush=True)
            del w


def run_all_targets(args):
    rng = np.random.default_rng(0)
    wdtypes = {"f32": np.float32, "bf16": ml_dtypes.bfloat16, "f16": np.float16}

    def seconds(fn):
        return time_all({"gc": fn}, args.min_time / 2, rounds=1, pause=0.05)["gc"]

    # M = 8: a small batch (batched decode), where packing the weights outweighs the FMAs.
    for m, shapes in ((1, MATVEC_SHAPES), (8, MATMUL_SHAPES), (512, MATMUL_SHAPES)):
        matvec = m == 1
        print(f"\nmatrix-vector, M = 1" if matvec else f"\nmatrix-matrix, M = {m}")
        table = bench_env.TargetTable(f"{'shape N x K':>15} {'what':<22} {'w':<5}", 44,
                                      "GB/s" if matvec else "GFLOP/s")
        if args.quick and m == 512:
            shapes = shapes[:2]
        for n, k, what in shapes:
            if n * k > 64 << 20:
                n, what = 32768, what + " (slice)"
            x = rng.standard_normal((m, k), dtype=np.float32)
            w32 = rng.standard_normal((n, k), dtype=np.float32) * 0.05
            for wname, dt in wdtypes.items():
                w = w32.astype(dt)
                t = bench_env.per_target_seconds(lambda: gc.ops.linear(x, w), seconds,
                                                 rounds=1 if m == 512 else 2)
                table.row(f"{f'{n} x {k}':>15} {what:<22} {wname:<5}",
                          {name: (w.nbytes if matvec else 2.0 * m * n * k) / s / 1e9
                           for name, s in t.items()})
        table.summary()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short timings, head shape sliced")
    p.add_argument("--threads", type=int, default=0, help="threads (default: all available)")
    bench_env.add_all_targets_argument(p)
    args = p.parse_args()
    args.min_time = 0.1 if args.quick else 0.5
    if args.threads:
        gc.set_num_threads(args.threads)
    threads = gc.get_num_threads()
    print(bench_env.gemmacpp_origin())
    if args.all_targets:
        print(f"threads: {threads}")
        return run_all_targets(args)
    if torch is not None:
        torch.set_num_threads(threads)
    copy_gbs = copy_bandwidth(args.min_time)
    print(f"threads: {threads}   torch: {torch.__version__ if torch else 'absent'}   "
          f"numpy: {np.__version__}   memory copy (read+write): {copy_gbs:.1f} GB/s")
    print("torch ms: torch's linear with the same weight dtype (bf16: x cast to bf16); "
          "torch f32: float32 weights; numpy: x @ w.T in float32; torch/gc > 1: gemmacpp faster\n")
    print("matrix-vector, M = 1")
    run(MATVEC_SHAPES, 1, args, copy_gbs)
    print("\nmatrix-matrix, M = 512")
    run(MATMUL_SHAPES, 512, args, copy_gbs)


if __name__ == "__main__":
    main()
