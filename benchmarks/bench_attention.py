"""gemmacpp attention vs torch's CPU scaled_dot_product_attention and a NumPy reference.

Gemma shapes (B=1, 8 query heads, 4 KV heads, head_dim 256), float32, causal:
prefill T = 512, 2048, 4096 with window 512 / 4096 and softcap 50 off / on, and decode (one query
against 4096 keys). torch has no window or softcap option: windows use an explicit boolean
attn_mask, softcap an explicit score path (q k^T * scale, tanh cap, mask, softmax, @ v).
GFLOP/s counts only visible (query, key) pairs, 4 * head_dim flops each. For decode the script
also times a plain memory copy and a read-only pass of the same number of bytes and prints the
achieved fraction of those bandwidths; all of these are timed cold (caches flushed first).

Packed sequences (cu_seqlens), Gemma 3 270M's attention shape (4 query heads, 1 KV head,
head_dim 256, window 512), float32, causal: 8 and 32 sequences of 64 tokens, prefill (64 queries
over 64 keys each) and decode (1 query over 64..128 keys each), timed as one varlen call, a Python
loop of one gc.ops.attention call per sequence, and a loop of torch's
scaled_dot_product_attention per sequence (medians of interleaved blocks, timing.py).

    python benchmarks/bench_attention.py [--quick] [--threads N] [--repeat N] [--no-numpy]
                                         [--varlen-only] [--decode-only] [--all-targets]

--decode-only: only the decode table by group size: one query (8 query heads, head_dim 256,
float32) over 64 to 4096 cached keys with 1, 2, 4 and 8 query heads per KV head, K and V warm in
the caches (a model's decode step at short contexts), microseconds per call.

--all-targets: instead, gemmacpp alone on each SIMD target this CPU supports, GFLOP/s (visible
pairs, as above) a column per target, for the prefill cases up to T = 2048 (T = 512 with
--quick), the decode cases (timed cold), warm decode over a quarter of their keys by query heads
per KV head (1, 2, 4, 8) and the packed-sequence calls; and the cases on which the
dispatched target is more than 10% behind a lesser one (bench_env.py).

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import os
import time

import numpy as np
import torch

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402
from timing import time_all  # noqa: E402

B, HQ, HKV, D = 1, 8, 4, 256


def min_time(fn, repeat, warmup=1):
    return min_times([fn], repeat, warmup)[0]


def min_times(fns, repeat, warmup=1, before=None):
    """Best wall time of each function over `repeat` rounds. The functions take turns within a
    round, so that load from other processes on a shared machine hits them alike. `before`, when
    given, runs (untimed) before each timed call."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            if before is not None:
                before()
            if len(fns) > 1:
                time.sleep(0.005)  # let the other library's worker threads stop spinning
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def visible_mask(Tq, Tk, window, q_start):
    p = q_start + np.arange(Tq)[:, None]
    j = np.arange(Tk)[None, :]
    m = j <= p
    if window is not None:
        m &= p - j < window
    return m


def torch_fn(q, k, v, window, softcap, q_start):
    """torch on [B, H, T, D] views; GQA through enable_gqa."""
    Tq, Tk = q.shape[2], k.shape[2]
    scale = D**-0.5
    mask = torch.from_numpy(visible_mask(Tq, Tk, window, q_start))
    global_causal = window is None or window >= q_start + Tq
    if softcap is None:
        if Tq == 1 and global_causal:
            return lambda: torch.nn.functional.scaled_dot_product_attention(
                q, k, v, enable_gqa=True)
        if global_causal and q_start == 0:
            return lambda: torch.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=True, enable_gqa=True)
        return lambda: torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, enable_gqa=True)

    kr = k.repeat_interleave(HQ // HKV, dim=1)
    vr = v.repeat_interleave(HQ // HKV, dim=1)

    def explicit():
        s = (q @ kr.transpose(-1, -2)) * scale
        s = softcap * torch.tanh(s / softcap)
        s = s.masked_fill(~mask, float("-inf"))
        return torch.softmax(s, dim=-1) @ vr
    return explicit


def numpy_fn(q, k, v, window, softcap, q_start):
    """The plain float32 NumPy path on [B, T, H, D] arrays, one head at a time."""
    Tq, Tk = q.shape[1], k.shape[1]
    mask = visible_mask(Tq, Tk, window, q_start)
    scale = np.float32(D**-0.5)

    def run():
        out = np.empty_like(q)
        for h in range(HQ):
            kh, vh = k[0, :, h // (HQ // HKV)], v[0, :, h // (HQ // HKV)]
            s = (q[0, :, h] @ kh.T) * scale
            if softcap is not None:
                s = softcap * np.tanh(s / softcap)
            s = np.where(mask, s, -np.inf)
            s = np.exp(s - s.max(-1, keepdims=True))
            out[0, :, h] = (s / s.sum(-1, keepdims=True)) @ vh
        return out
    return run


def varlen_table(rng, min_time):
    """One varlen call against per-sequence calls of the plain op and of torch, for many short
    sequences: the case where one parallel region per sequence leaves threads idle."""
    hq, hkv, d, window = 4, 1, 256, 512  # Gemma 3 270M
    print(f"\npacked sequences (cu_seqlens), float32, Hq={hq} Hkv={hkv} D={d}, window={window}, "
          f"causal; ms per batch")
    hdr = (f"{'case':<34}{'varlen':>9}{'gc loop':>9}{'torch loop':>12}"
           f"{'loop/varlen':>13}{'torch/varlen':>14}")
    print(hdr)
    print("-" * len(hdr))
    for phase in ("prefill", "decode"):
        for n in (8, 32):
            lens_k = [64] * n if phase == "prefill" else [int(t) for t in rng.integers(64, 129, n)]
            lens_q = [64] * n if phase == "prefill" else [1] * n
            cu_q, cu_k = np.cumsum([0] + lens_q), np.cumsum([0] + lens_k)
            q = rng.standard_normal((cu_q[-1], hq, d), dtype=np.float32)
            k = rng.standard_normal((cu_k[-1], hkv, d), dtype=np.float32)
            v = rng.standard_normal((cu_k[-1], hkv, d), dtype=np.float32)
            seqs = [(slice(cu_q[s], cu_q[s + 1]), slice(cu_k[s], cu_k[s + 1])) for s in range(n)]
            out_varlen, out_loop = np.empty_like(q), np.empty_like(q)

            def varlen():
                gc.ops.attention(q, k, v, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, window=window,
                                 out=out_varlen)

            def loop():
                for rq, rk in seqs:
                    gc.ops.attention(q[None, rq], k[None, rk], v[None, rk], window=window,
                                     out=out_loop[None, rq])

            # torch: [1, H, T, D] views; the window is wider than any sequence, so plain causal
            # (prefill, square) or no mask (decode: the query is the last key) is the same mask.
            tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
            views = [(tq[rq].transpose(0, 1)[None], tk[rk].transpose(0, 1)[None],
                      tv[rk].transpose(0, 1)[None]) for rq, rk in seqs]
            causal = phase == "prefill"

            def torch_loop():
                return [torch.nn.functional.scaled_dot_product_attention(
                    a, b, c, is_causal=causal, enable_gqa=True) for a, b, c in views]

            varlen()
            loop()
            assert np.array_equal(out_varlen.view(np.uint32), out_loop.view(np.uint32))
            want = np.concatenate([t[0].transpose(0, 1).numpy() for t in torch_loop()])
            err = np.abs(out_varlen - want).max()
            assert err < 1e-4, f"varlen {phase} n={n}: gemmacpp and torch differ by {err}"
            with torch.inference_mode():
                t = time_all({"varlen": varlen, "loop": loop, "torch": torch_loop}, min_time)
            name = (f"prefill {n} x (64 q, 64 k)" if phase == "prefill"
                    else f"decode {n} x (1 q, 64..128 k)")
            print(f"{name:<34}{t['varlen'] * 1e3:>9.3f}{t['loop'] * 1e3:>9.3f}"
                  f"{t['torch'] * 1e3:>12.3f}{t['loop'] / t['varlen']:>12.2f}x"
                  f"{t['torch'] / t['varlen']:>13.2f}x")


def decode_table(rng, repeat):
    """Decode (one query) by query heads per KV head: the K tiles a step reads are shared by the
    query heads of a KV head, so the per-key work outside the FMAs weighs most with few heads."""
    hq, d = 8, 256
    print(f"\ndecode, float32, Hq={hq} D={d}, one query at the last of Tk positions, warm; "
          f"us per call (min of {repeat * 20})")
    groups = (1, 2, 4, 8)
    hdr = f"{'Tk':>6}" + "".join(f"{f'G={g} us':>11}{'GFLOP/s':>9}" for g in groups)
    print(hdr)
    print("-" * len(hdr))
    for tk in (64, 160, 512, 1024, 4096):
        line = f"{tk:>6}"
        for g in groups:
            hkv = hq // g
            q = rng.standard_normal((1, 1, hq, d), dtype=np.float32)
            k = rng.standard_normal((1, tk, hkv, d), dtype=np.float32)
            v = rng.standard_normal((1, tk, hkv, d), dtype=np.float32)
            out = np.empty_like(q)
            fn = lambda: gc.ops.attention(q, k, v, out=out)  # noqa: E731
            t = min_time(fn, repeat * 20, warmup=3)
            line += f"{t * 1e6:>11.1f}{tk * hq * 4 * d / t / 1e9:>9.1f}"
        print(line)


def all_targets(args, rng, repeat):
    """gemmacpp's attention on every SIMD target, GFLOP/s of visible pairs."""
    evict = torch.empty(96 << 20 >> 2, dtype=torch.float32)
    cold = lambda: evict.fill_(1.0)  # noqa: E731
    table = bench_env.TargetTable(f"{'case':<40}", 40, "GFLOP/s")

    def case(name, q, k, v, pairs, before=None, **kw):
        out = np.empty_like(q)
        fn = lambda: gc.ops.attention(q, k, v, out=out, **kw)  # noqa: E731
        t = bench_env.per_target_seconds(
            fn, lambda f: min_times([f], repeat, before=before)[0], rounds=1)
        table.row(name, {n: pairs * 4 * q.shape[-1] / s / 1e9 for n, s in t.items()})

    def dense(Tq, Tk):
        return [rng.standard_normal((B, T, H, D), dtype=np.float32)
                for T, H in ((Tq, HQ), (Tk, HKV), (Tk, HKV))]

    lengths = (512,) if args.quick else (512, 2048)
    for T in lengths:
        for window in (512, 4096):
            for softcap in (None, 50.0):
                q, k, v = dense(T, T)
                pairs = int(visible_mask(T, T, window, 0).sum()) * HQ * B
                name = f"prefill T={T} window={window}" + (f" softcap={softcap:g}" if softcap
                                                           else "")
                case(name, q, k, v, pairs, window=window, softcap=softcap)
    Tk = 1024 if args.quick else 4096
    for softcap in (None, 50.0):
        q, k, v = dense(1, Tk)
        case(f"decode Tk={Tk}" + (f" softcap={softcap:g}" if softcap else "") + " (cold)",
             q, k, v, Tk * HQ * B, before=cold, softcap=softcap, q_start=Tk - 1)
    for g in (1, 2, 4, 8):  # decode_table's warm decode, by query heads per KV head
        q = rng.standard_normal((1, 1, HQ, D), dtype=np.float32)
        k, v = (rng.standard_normal((1, Tk // 4, HQ // g, D), dtype=np.float32) for _ in range(2))
        case(f"decode Tk={Tk // 4} G={g} (warm)", q, k, v, Tk // 4 * HQ)
    hq, hkv, d, window = 4, 1, 256, 512  # Gemma 3 270M, as varlen_table
    for phase in ("prefill", "decode"):
        for n in (8, 32):
            lens_k = [64] * n if phase == "prefill" else [int(t) for t in rng.integers(64, 129, n)]
            lens_q = [64] * n if phase == "prefill" else [1] * n
            cu_q, cu_k = np.cumsum([0] + lens_q), np.cumsum([0] + lens_k)
            q = rng.standard_normal((cu_q[-1], hq, d), dtype=np.float32)
            k = rng.standard_normal((cu_k[-1], hkv, d), dtype=np.float32)
            v = rng.standard_normal((cu_k[-1], hkv, d), dtype=np.float32)
            pairs = hq * sum(lq * (lq + 1) // 2 if phase == "prefill" else lk
                             for lq, lk in zip(lens_q, lens_k))
            name = (f"varlen prefill {n} x (64 q, 64 k)" if phase == "prefill"
                    else f"varlen decode {n} x (1 q, 64..128 k)")
            case(name, q, k, v, pairs, cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, window=window)
    table.summary()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats (smoke run)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--no-numpy", action="store_true", help="skip the NumPy reference")
    ap.add_argument("--varlen-only", action="store_true", help="only the packed-sequence table")
    ap.add_argument("--decode-only", action="store_true",
                    help="only the decode table by query heads per KV head")
    bench_env.add_all_targets_argument(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gc.set_num_threads(args.threads)
    repeat = args.repeat or (2 if args.quick else 5)
    rng = np.random.default_rng(0)
    print(bench_env.gemmacpp_origin())
    print(f"threads={args.threads}, SIMD target {gc.simd_target()}")
    if args.all_targets:
        return all_targets(args, rng, args.repeat or (2 if args.quick else 3))
    if args.varlen_only:
        return varlen_table(rng, 0.3 if args.quick else 1.0)
    if args.decode_only:
        return decode_table(rng, repeat)

    if args.quick:
        prefill = [(512, 512, None), (512, 512, 50.0)]
        decode_tk = [1024]
    else:
        prefill = [(T, w, c) for T in (512, 2048, 4096) for w in (512, 4096) for c in (None, 50.0)]
        decode_tk = [4096]

    print(f"attention, float32, B={B} Hq={HQ} Hkv={HKV} D={D}, causal, threads={args.threads}, "
          f"min of {repeat}; torch {torch.__version__}, gemmacpp {gc.__version__}")
    hdr = (f"{'case':<34}{'gemmacpp ms':>12}{'GFLOP/s':>9}{'torch ms':>10}{'GFLOP/s':>9}"
           f"{'vs torch':>9}{'numpy ms':>10}")
    print(hdr)
    print("-" * len(hdr))

    # Decode reads every byte of K and V once: time it from memory, not from a cache that the
    # previous call (or torch's) left warm, by writing over a buffer larger than the L3 first.
    evict = torch.empty(96 << 20 >> 2, dtype=torch.float32)
    cold = lambda: evict.fill_(1.0)  # noqa: E731

    def row(name, Tq, Tk, window, softcap, q_start, before=None):
        q = rng.standard_normal((B, Tq, HQ, D), dtype=np.float32)
        k = rng.standard_normal((B, Tk, HKV, D), dtype=np.float32)
        v = rng.standard_normal((B, Tk, HKV, D), dtype=np.float32)
        pairs = int(visible_mask(Tq, Tk, window, q_start).sum()) * HQ * B
        gflop = pairs * 4 * D / 1e9
        out = np.empty_like(q)
        run_gc = lambda: gc.ops.attention(q, k, v, window=window, softcap=softcap,  # noqa: E731
                                          q_start=q_start, out=out)
        tq, tk, tv = (torch.from_numpy(a).transpose(1, 2) for a in (q, k, v))
        fn = torch_fn(tq, tk, tv, window, softcap, q_start)
        run_gc()
        err = np.abs(out - fn().transpose(1, 2).numpy()).max()
        assert err < 1e-4, f"{name}: gemmacpp and torch differ by {err}"
        with torch.inference_mode():
            t_gc, t_torch = min_times([run_gc, fn], repeat, before=before)
        t_np = float("nan")
        if not args.no_numpy:
            t_np = min_time(numpy_fn(q, k, v, window, softcap, q_start), max(1, repeat // 2), 0)
            time.sleep(0.5)  # OpenBLAS threads spin for a while after a call
        print(f"{name:<34}{t_gc * 1e3:>12.3f}{gflop / t_gc:>9.1f}{t_torch * 1e3:>10.3f}"
              f"{gflop / t_torch:>9.1f}{t_torch / t_gc:>8.2f}x{t_np * 1e3:>10.2f}")
        return t_gc

    for T, window, softcap in prefill:
        name = f"prefill T={T} window={window}" + (f" softcap={softcap:g}" if softcap else "")
        row(name, T, T, window, softcap, 0)

    for Tk in decode_tk:
        kv_bytes = 2 * B * Tk * HKV * D * 4
        # A copy (torch, multithreaded: reads kv_bytes, writes as many) and a read-only pass
        # (sum) of the same bytes, also from memory.
        src = torch.ones(kv_bytes // 4, dtype=torch.float32)
        dst = torch.empty_like(src)
        copy, read = (lambda: dst.copy_(src)), (lambda: src.sum())
        t_copy, t_read = min_times([copy, read], max(repeat, 5) * 2, warmup=2, before=cold)
        for window, softcap in ((None, None), (None, 50.0)):
            name = f"decode Tk={Tk}" + (f" softcap={softcap:g}" if softcap else "")
            t = row(name, 1, Tk, window, softcap, Tk - 1, before=cold)
            bw = kv_bytes / t
            print(f"{'':<34}K+V read {kv_bytes / 2**20:.0f} MiB: {bw / 1e9:.1f} GB/s = "
                  f"{bw * t_copy / kv_bytes:.0%} of a copy of the same bytes "
                  f"({kv_bytes / t_copy / 1e9:.1f} GB/s read), {bw * t_read / kv_bytes:.0%} of a "
                  f"read-only pass ({kv_bytes / t_read / 1e9:.1f} GB/s)")

    decode_table(rng, repeat)
    varlen_table(rng, 0.3 if args.quick else 1.0)


if __name__ == "__main__":
    main()
