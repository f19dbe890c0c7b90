"""gemmacpp's gaussian_topk (Gemma 3n's activation sparsity) side by side with transformers'
Gemma3nTextMLP._gaussian_topk in PyTorch, on the CPU.

    PYTHONPATH=python python benchmarks/bench_gaussian_topk.py [--threads N] [--quick]

Torch runs the module's sequence (torch.mean, torch.std(unbiased=False), the cutoff, relu) on the
gate [rows, F]; F is E2B's FFN width (8192) and E4B's (16384); a decode step (1 row) and a
prefill (512 rows); float32 (the model's activations) and bfloat16. Times are the best block
medians (timing.py); ratio = torch / gemmacpp (> 1: faster).

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse

import torch

import bench_env
from timing import time_all

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402

Z95 = 1.6448536  # Normal(0, 1).icdf(0.95)


def torch_topk(x, z):
    mean = torch.mean(x, dim=-1, keepdim=True)
    std = torch.std(x, dim=-1, keepdim=True, unbiased=False)
    return torch.nn.functional.relu(x - (mean + std * z))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="0: as many as gemmacpp uses by default")
    ap.add_argument("--quick", action="store_true", help="fewer shapes and shorter timing, a smoke run")
    args = ap.parse_args()
    if args.threads:
        gc.set_num_threads(args.threads)
    threads = gc.get_num_threads()
    torch.set_num_threads(threads)
    min_time = 0.1 if args.quick else 0.5
    print(f"threads={threads} simd={gc.simd_target()} torch={torch.__version__}")
    print(f"{'op':<30}{'dtype':<10}{'gemmacpp us':>12}{'torch us':>12}{'ratio':>8}")
    for dt in [torch.float32] if args.quick else [torch.float32, torch.bfloat16]:
        for F in [8192] if args.quick else [8192, 16384]:
            for rows in [1, 64] if args.quick else [1, 512]:
                x = torch.randn(rows, F, generator=torch.Generator().manual_seed(0)).to(dt)
                t = time_all({"ours": lambda: gc.ops.gaussian_topk(x, Z95), "torch": lambda: torch_topk(x, Z95)},
                             min_time)
                name = f"gaussian_topk [{rows}, {F}]"
                dname = str(dt).replace("torch.", "")
                print(f"{name:<30}{dname:<10}{t['ours'] * 1e6:>12.1f}{t['torch'] * 1e6:>12.1f}"
                      f"{t['torch'] / t['ours']:>8.2f}")


if __name__ == "__main__":
    main()
