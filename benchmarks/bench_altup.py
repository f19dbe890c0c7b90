"""gemmacpp's AltUp stream ops (altup_predict, altup_correct, altup_rescale: Gemma 3n) side by side
with transformers' arithmetic in PyTorch, on the CPU.

    PYTHONPATH=python python benchmarks/bench_altup.py [--threads N] [--quick]

Both get the router's logits [rows, N] and the coefficient weights; torch runs the module's own
sequence (tanh, the coefficient linear, the permuted matmul over the streams, the add) on float32
tensors, as Gemma3nTextAltUp.predict / .correct do after their router; altup_rescale against
Gemma3nTextModel's magnitude matching of streams 1..N-1 to stream 0. Shapes are E2B's (4 streams,
d 2048) and E4B's (d 2560), a decode step (1 row) and a prefill (512 rows). Times are the best
block medians (timing.py); ratio = torch / gemmacpp (> 1: faster).

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse

import torch

import bench_env
from timing import time_all

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402


def torch_predict(streams, logits, coefs):
    N = streams.shape[0]
    m = torch.tanh(logits)
    c = torch.nn.functional.linear(m, coefs).reshape(*m.shape[:-1], N, N).permute(0, 2, 1)
    pred = torch.matmul(streams.permute(1, 2, 0), c).permute(2, 0, 1)
    return (pred + streams).contiguous()


def torch_correct(pred, activated, logits, coefs):
    m = torch.tanh(logits)
    c = (torch.nn.functional.linear(m, coefs) + 1.0).permute(1, 0).unsqueeze(-1)
    innovation = (activated - pred[0]).repeat(pred.shape[0], 1, 1)
    return innovation * c + pred


def torch_rescale(streams):
    target = torch.mean(streams[0] ** 2, dim=-1, keepdim=True) ** 0.5
    eps = torch.tensor(1e-5)
    out = [streams[0]]
    for k in range(1, streams.shape[0]):
        magnitude = torch.sqrt(torch.maximum(torch.mean(streams[k] ** 2, dim=-1, keepdim=True), eps))
        out.append(streams[k] * target / magnitude)
    return torch.stack(out)


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
    print(f"{'op':<34}{'gemmacpp us':>12}{'torch us':>12}{'ratio':>8}")
    N = 4
    for d in [2048] if args.quick else [2048, 2560]:
        for rows in [1, 64] if args.quick else [1, 512]:
            g = torch.Generator().manual_seed(0)
            streams = torch.randn(N, rows, d, generator=g)
            activated = torch.randn(rows, d, generator=g)
            logits = torch.randn(rows, N, generator=g)
            pc, cc = torch.randn(N * N, N, generator=g) * 0.5, torch.randn(N, N, generator=g) * 0.5
            cases = {
                f"altup_predict [{N}, {rows}, {d}]": (lambda: gc.ops.altup_predict(streams, logits, pc),
                                                      lambda: torch_predict(streams, logits, pc)),
                f"altup_correct [{N}, {rows}, {d}]": (lambda: gc.ops.altup_correct(streams, activated, logits, cc),
                                                      lambda: torch_correct(streams, activated, logits, cc)),
                f"altup_rescale [{N}, {rows}, {d}]": (lambda: gc.ops.altup_rescale(streams),
                                                      lambda: torch_rescale(streams)),
            }
            for name, (ours, theirs) in cases.items():
                t = time_all({"ours": ours, "torch": theirs}, min_time)
                print(f"{name:<34}{t['ours'] * 1e6:>12.1f}{t['torch'] * 1e6:>12.1f}{t['torch'] / t['ours']:>8.2f}")


if __name__ == "__main__":
    main()
