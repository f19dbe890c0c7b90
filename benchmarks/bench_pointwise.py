"""gemmacpp's pointwise ops (rms_norm, rope, gelu_tanh, geglu) side by side with PyTorch on the CPU.

    PYTHONPATH=python python benchmarks/bench_pointwise.py [--threads N] [--quick]

Both libraries run with the same thread count. Torch gets its idiomatic form of each op (a fused
F.rms_norm; the Hugging Face rotate-half RoPE with its cos/sin computed in the same call, as a model
layer does; F.gelu(approximate="tanh")). Times are medians; ratio = torch / gemmacpp (> 1: faster).

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import time

import numpy as np
import torch

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402


def median_time(fn, min_time=0.2, max_reps=2000):
    fn()  # warm up (allocations, thread pool start)
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < 5 or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def torch_rope(x, pos, base):
    d = x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    freqs = pos.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos()[None, :, None, :].to(x.dtype), emb.sin()[None, :, None, :].to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def cases(quick):
    dtypes = [torch.float32, torch.bfloat16]
    rows = [1, 512] if not quick else [1, 64]
    for dt in dtypes:
        for t in rows:
            for d in [2304, 3584]:
                x = torch.randn(t, d).to(dt)
                w = (torch.randn(d) * 0.1).to(dt)
                w1 = 1 + w
                yield (f"rms_norm [{t}, {d}]", dt, lambda x=x, w=w: gc.ops.rms_norm(x, w),
                       lambda x=x, w1=w1, d=d: torch.nn.functional.rms_norm(x, (d,), w1, 1e-6))
        for t in rows:
            x = torch.randn(1, t, 8, 256).to(dt)
            pos = torch.arange(t, dtype=torch.int64) + 1000
            yield (f"rope [1, {t}, 8, 256]", dt, lambda x=x, p=pos: gc.ops.rope(x, p),
                   lambda x=x, p=pos: torch_rope(x, p, 10000.0))
        for t in rows:
            g, u = torch.randn(t, 9216).to(dt), torch.randn(t, 9216).to(dt)
            gelu = torch.nn.functional.gelu
            yield (f"gelu_tanh [{t}, 9216]", dt, lambda g=g: gc.ops.gelu_tanh(g),
                   lambda g=g: gelu(g, approximate="tanh"))
            yield (f"geglu [{t}, 9216]", dt, lambda g=g, u=u: gc.ops.geglu(g, u),
                   lambda g=g, u=u: gelu(g, approximate="tanh") * u)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="0: as many as gemmacpp uses by default")
    ap.add_argument("--quick", action="store_true", help="smaller shapes, for a smoke run")
    args = ap.parse_args()
    if args.threads:
        gc.set_num_threads(args.threads)
    threads = gc.get_num_threads()
    torch.set_num_threads(threads)
    print(f"threads={threads} simd={gc.simd_target()} torch={torch.__version__}")
    print(f"{'op':<26}{'dtype':<10}{'gemmacpp us':>12}{'torch us':>12}{'ratio':>8}")
    for name, dt, ours, theirs in cases(args.quick):
        a, b = median_time(ours), median_time(theirs)
        dname = str(dt).replace("torch.", "")
        print(f"{name:<26}{dname:<10}{a * 1e6:>12.1f}{b * 1e6:>12.1f}{b / a:>8.2f}")


if __name__ == "__main__":
    main()
