"""gemmacpp CUDA attention vs torch on one NVIDIA GPU (builds nothing: run it against an installed
or in-tree CUDA build of gemmacpp, with a CUDA build of torch).

Prefill: bfloat16, B=1, 8 query heads, 4 KV heads (GQA), head_dim 128 and 256, T = 1k..16k, causal,
sliding windows 4096 and 1024, softcap 50. Baselines: torch SDPA with the flash and the cuDNN
backends (causal, no window, no softcap: SDPA has neither), and FlexAttention with a soft-capping
score_mod and a sliding-window block mask. TFLOP/s counts only visible (query, key) pairs, 4 *
head_dim flops each, and is also given as a fraction of the measured bf16 matmul peak.
Decode: one to eight queries against a KV cache of 4k..32k positions; GB/s of K and V read, and
the fraction of a measured device-to-device copy's bandwidth (read + write).
Every gemmacpp result is checked against torch (float32 math) before it is timed.

    python benchmarks/bench_attention_cuda.py [--quick]

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import sys

B, HQ, HKV = 1, 8, 4


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer shapes, for a smoke run")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("bench_attention_cuda: needs torch (a CUDA build); it is not installed")
    import bench_env
    bench_env.select_gemmacpp()
    import gemmacpp as gc
    if not torch.cuda.is_available():
        sys.exit("bench_attention_cuda: torch sees no CUDA device; this benchmark needs a GPU")
    if not any(d.startswith("cuda") for d in gc.devices()):
        sys.exit("bench_attention_cuda: this gemmacpp build has no CUDA backend or sees no GPU "
                 f"(gc.devices() = {gc.devices()}); build with -DGEMMACPP_CUDA=ON")
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}")
    peak = matmul_peak(torch)
    copy_gbs = copy_bandwidth(torch)
    print(f"bf16 matmul peak (8192^3 torch.matmul): {peak:.0f} TFLOP/s; "
          f"device copy: {copy_gbs:.0f} GB/s\n")
    prefill(torch, gc, peak, args.quick)
    decode(torch, gc, copy_gbs, args.quick)


def cuda_time(torch, fn, min_ms=200.0, warmup=3):
    """Median milliseconds of fn() measured with CUDA events over about min_ms."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    reps = max(3, min(200, int(min_ms / max(start.elapsed_time(end), 1e-3))))
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def matmul_peak(torch):
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = cuda_time(torch, lambda: a @ b)
    return 2 * 8192**3 / ms / 1e9


def copy_bandwidth(torch):
    src = torch.empty(1 << 30, device="cuda", dtype=torch.uint8)
    dst = torch.empty_like(src)
    ms = cuda_time(torch, lambda: dst.copy_(src))
    return 2 * src.numel() / ms / 1e6


def visible_pairs(Tq, Tk, window):
    """(query, key) pairs a causal mask with an optional window lets through, queries at the end."""
    total = 0
    for i in range(Tq):
        p = Tk - Tq + i
        total += min(p + 1, window) if window else p + 1
    return total


def reference(torch, q, k, v, window, softcap):
    """float32 attention in torch ([B, T, H, D] layout), for checking only."""
    qf, kf, vf = (t.float().transpose(1, 2) for t in (q, k, v))
    g = q.shape[2] // k.shape[2]
    kf, vf = kf.repeat_interleave(g, 1), vf.repeat_interleave(g, 1)
    s = qf @ kf.transpose(-1, -2) * q.shape[-1] ** -0.5
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    Tq, Tk = q.shape[1], k.shape[1]
    p = torch.arange(Tq, device=q.device)[:, None] + (Tk - Tq)
    j = torch.arange(Tk, device=q.device)[None, :]
    vis = j <= p
    if window:
        vis &= p - j < window
    s = s.masked_fill(~vis, float("-inf"))
    return (torch.softmax(s, -1) @ vf).transpose(1, 2)


def check(torch, got, want, what):
    err = (got.float() - want).abs().max().item()
    scale = want.abs().max().item()
    ok = err <= 2.0**-7 * scale
    if not ok:
        print(f"  MISMATCH {what}: max abs error {err:.3g} vs max |ref| {scale:.3g}")
    return ok


def prefill(torch, gc, peak, quick):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        flex = torch.compile(flex_attention)
    except ImportError:
        flex = None
    Ts = [1024, 4096] if quick else [1024, 2048, 4096, 8192, 16384]
    configs = [("causal", None, None), ("window 4096", 4096, None), ("window 1024", 1024, None),
               ("softcap 50", None, 50.0)]
    print("prefill, bfloat16, TFLOP/s (fraction of matmul peak)")
    print(f"{'D':>4} {'T':>6} {'mask':<12} {'gemmacpp':>16} {'sdpa flash':>11} "
          f"{'sdpa cudnn':>11} {'flex':>8}")
    for D in (128, 256):
        for T in Ts:
            q = torch.randn(B, T, HQ, D, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(B, T, HKV, D, device="cuda", dtype=torch.bfloat16)
            v = torch.randn(B, T, HKV, D, device="cuda", dtype=torch.bfloat16)
            qh, kh, vh = (t.transpose(1, 2).contiguous() for t in (q, k, v))  # torch's layout
            for name, window, softcap in configs:
                if window and window >= T:
                    continue
                flops = 4 * D * B * HQ * visible_pairs(T, T, window)
                tflops = lambda ms: flops / ms / 1e9  # noqa: E731
                run = lambda: gc.ops.attention(q, k, v, window=window, softcap=softcap)  # noqa
                if T <= 4096:  # the float32 reference needs T^2 * heads * 4 bytes
                    ok = check(torch, run(), reference(torch, q, k, v, window, softcap),
                               f"D={D} T={T} {name}")
                    if not ok:
                        continue
                ours = tflops(cuda_time(torch, run))
                cells = [f"{ours:7.1f} ({ours / peak:4.0%})"]
                for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION):
                    if window or softcap:
                        cells.append("-")
                        continue
                    def sdpa(backend=backend, kv=(kh, vh), gqa=True):
                        with sdpa_kernel(backend):
                            return F.scaled_dot_product_attention(qh, *kv, is_causal=True,
                                                                  enable_gqa=gqa)
                    # KV heads repeated up front where a backend does not take GQA itself.
                    kv_rep = tuple(t.repeat_interleave(HQ // HKV, 1) for t in (kh, vh))
                    rep = lambda backend=backend: sdpa(backend, kv_rep, False)  # noqa: E731
                    for fn in (sdpa, rep):
                        try:
                            cells.append(f"{tflops(cuda_time(torch, fn)):.1f}")
                            break
                        except RuntimeError:  # the backend does not take this shape
                            continue
                    else:
                        cells.append("n/a")
                if flex is None:
                    cells.append("n/a")
                else:
                    def mask_mod(b, h, qi, kj, window=window):
                        m = kj <= qi
                        return m & (qi - kj < window) if window else m
                    bm = create_block_mask(mask_mod, None, None, T, T, device="cuda")
                    def score_mod(s, b, h, qi, kj, softcap=softcap):
                        return softcap * torch.tanh(s / softcap)
                    sm = score_mod if softcap else None
                    fl = lambda: flex(qh, kh, vh, score_mod=sm, block_mask=bm,  # noqa: E731
                                      enable_gqa=True)
                    cells.append(f"{tflops(cuda_time(torch, fl)):.1f}")
                print(f"{D:>4} {T:>6} {name:<12} {cells[0]:>16} {cells[1]:>11} {cells[2]:>11} "
                      f"{cells[3]:>8}")
    print()


def decode(torch, gc, copy_gbs, quick):
    print("decode, bfloat16, KV cache read bandwidth")
    print(f"{'D':>4} {'Tk':>6} {'Tq':>3} {'GB/s':>8} {'of copy':>8}")
    for D in (128, 256):
        for Tk in ([4096] if quick else [4096, 16384, 32768]):
            k = torch.randn(B, Tk, HKV, D, device="cuda", dtype=torch.bfloat16)
            v = torch.randn(B, Tk, HKV, D, device="cuda", dtype=torch.bfloat16)
            for Tq in (1, 8):
                q = torch.randn(B, Tq, HQ, D, device="cuda", dtype=torch.bfloat16)
                run = lambda: gc.ops.attention(q, k, v)  # noqa: E731
                if not check(torch, run(), reference(torch, q, k, v, None, None),
                             f"decode D={D} Tk={Tk} Tq={Tq}"):
                    continue
                gbs = (k.numel() + v.numel()) * 2 / cuda_time(torch, run) / 1e6
                print(f"{D:>4} {Tk:>6} {Tq:>3} {gbs:8.0f} {gbs / copy_gbs:8.0%}")


if __name__ == "__main__":
    main()
