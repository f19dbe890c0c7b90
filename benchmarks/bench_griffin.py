"""Griffin (RecurrentGemma) kernels and decoding, against PyTorch eager and transformers on the CPU.

    python benchmarks/bench_griffin.py [--quick] [--threads N] [--decode-layers N] [--no-decode]

1. Kernels on RecurrentGemma 2B widths (W = 2560): rg_lru (x, gate_x, gate_a read, y written)
   and conv1d_temporal (x read, y written; K = 4). GB/s counts that traffic once; "of copy" divides
   it by the read + write bandwidth of a large np.copyto measured in this run. "cpu" repeats that
   ratio in CPU seconds (process time, all threads) per byte instead of wall seconds: on a shared,
   oversubscribed machine wall times mostly measure the neighbours. The PyTorch eager
   scan is the same maths as whole-tensor torch ops plus a Python loop over time (how transformers
   runs it); the conv's torch peer is F.conv1d (depthwise, causal padding). The "layer" rows put
   transformers' RecurrentGemmaRglru (block-diagonal gate projections + the scan) beside
   gemmacpp's gates (one gc.ops.linear per head) + rg_lru.
2. Decode tokens/s of a random model with the 2B's shapes (d 2560, 10 heads, MQA, lru 2560, MLP
   7680, vocab 256000, window 2048) but only --decode-layers layers (default 3: one recurrent,
   recurrent, attention group; memory and time allow no more on a small machine), float32
   weights, greedy, against transformers' RecurrentGemmaForCausalLM.generate with its cache.
Times: median of blocks of calls, blocks of each contender interleaved (benchmarks/timing.py).

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import os
import tempfile
import time

import numpy as np

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402
from timing import copy_bandwidth, time_all  # noqa: E402

import torch  # noqa: E402

W, HEADS = 2560, 10


def cpu_seconds(fn, reps=3, rounds=3):
    """Least process (CPU) time per call over a few rounds of reps calls, all threads counted."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(reps):
            fn()
        best = min(best, (time.process_time() - start) / reps)
    return best


def copy_cpu_bandwidth():
    """GB/s of read + write traffic per CPU second of a 256 MiB np.copyto."""
    src = np.ones(64 << 20, np.float32)
    dst = np.empty_like(src)
    return 2 * src.nbytes / cpu_seconds(lambda: np.copyto(dst, src)) / 1e9


def torch_eager_scan(x, gx, ga, p, c=8.0):
    """RG-LRU as transformers computes it: gates over whole tensors, then a loop over time."""
    log_a = -c * torch.sigmoid(ga) * torch.nn.functional.softplus(p)
    a = torch.exp(log_a)
    mult = torch.sqrt(1 - torch.exp(2 * log_a))
    mult[:, 0] = 1.0
    a = a.clone()
    a[:, 0] = 0.0
    nx = x * torch.sigmoid(gx) * mult
    h = torch.zeros(x.shape[0], x.shape[2], dtype=torch.float32)
    y = torch.empty_like(x)
    for t in range(x.shape[1]):
        h = a[:, t] * h + nx[:, t]
        y[:, t] = h
    return y, h


def kernel_rows(quick, bw, cpu_bw):
    rng = np.random.default_rng(0)
    shapes = [(1, 512, W), (1, 4096, W), (8, 1024, W)] if not quick else [(1, 256, W), (1, 1024, W)]
    print(f"\n{'op':<34}{'gemmacpp ms':>12}{'GB/s':>8}{'of copy':>9}{'cpu':>6}{'torch ms':>10}"
          f"{'ratio':>8}")

    def row(name, t, nbytes, fn, t_torch=None):
        cpu = nbytes / cpu_seconds(fn) / 1e9 / cpu_bw
        tail = f"{t_torch * 1e3:>10.2f}{t_torch / t:>8.1f}" if t_torch else ""
        print(f"{name:<34}{t * 1e3:>12.2f}{nbytes / t / 1e9:>8.2f}{nbytes / t / 1e9 / bw:>9.0%}"
              f"{cpu:>6.0%}{tail}")

    for B, T, Wd in shapes:
        x, gx, ga = (rng.standard_normal((B, T, Wd)).astype(np.float32) for _ in range(3))
        p = rng.uniform(-8, 2, Wd).astype(np.float32)
        tx, tgx, tga, tp = (torch.from_numpy(v) for v in (x, gx, ga, p))
        times = time_all({"gc": lambda: gc.ops.rg_lru(x, gx, ga, p),
                          "torch": lambda: torch_eager_scan(tx, tgx, tga, tp)}, 1.0 if not quick else 0.3)
        ours = lambda: gc.ops.rg_lru(x, gx, ga, p)
        row(f"rg_lru [{B}, {T}, {Wd}] f32", times["gc"], 4 * x.nbytes, ours, times["torch"])
        xb, gxb, gab = (v.astype(gc_bf16()) for v in (x, gx, ga))
        ours = lambda: gc.ops.rg_lru(xb, gxb, gab, p)
        t = time_all({"gc": ours}, 1.0 if not quick else 0.3)["gc"]
        row(f"rg_lru [{B}, {T}, {Wd}] bf16", t, 4 * xb.nbytes, ours)
        w = rng.standard_normal((4, Wd)).astype(np.float32)
        bias = rng.standard_normal(Wd).astype(np.float32)
        tw = torch.from_numpy(w.T.copy())[:, None, :]
        tb = torch.from_numpy(bias)
        conv_torch = lambda: torch.nn.functional.conv1d(tx.transpose(1, 2), tw, tb, padding=3,
                                                        groups=Wd)[..., :T].transpose(1, 2)
        ours = lambda: gc.ops.conv1d_temporal(x, w, bias)
        times = time_all({"gc": ours, "torch": conv_torch}, 1.0 if not quick else 0.3)
        row(f"conv1d_temporal [{B}, {T}, {Wd}] f32", times["gc"], 2 * x.nbytes, ours, times["torch"])


def gc_bf16():
    import ml_dtypes
    return ml_dtypes.bfloat16


def layer_rows(quick):
    from transformers import RecurrentGemmaConfig
    from transformers.models.recurrent_gemma.modeling_recurrent_gemma import RecurrentGemmaRglru
    cfg = RecurrentGemmaConfig(hidden_size=W, lru_width=W, num_attention_heads=HEADS)
    layer = RecurrentGemmaRglru(cfg).eval()
    bw = W // HEADS
    with torch.no_grad():
        for prm in layer.parameters():
            prm.normal_(0, 0.05)
    wx = [np.ascontiguousarray(layer.input_gate_weight[h].detach().numpy().T) for h in range(HEADS)]
    wa = [np.ascontiguousarray(layer.recurrent_gate_weight[h].detach().numpy().T) for h in range(HEADS)]
    bx, ba = layer.input_gate_bias.detach().numpy(), layer.recurrent_gate_bias.detach().numpy()
    p = layer.recurrent_param.detach().numpy()
    rng = np.random.default_rng(1)
    print(f"\n{'RG-LRU layer (gates + scan)':<34}{'gemmacpp ms':>12}{'transformers ms':>16}{'ratio':>8}")
    for B, T in ([(1, 1), (1, 512), (1, 2048)] if not quick else [(1, 1), (1, 256)]):
        x = rng.standard_normal((B, T, W)).astype(np.float32)
        tx, pos = torch.from_numpy(x), torch.arange(T)[None].expand(B, T)
        gx = np.empty_like(x)
        ga = np.empty_like(x)

        def ours():
            for h in range(HEADS):
                s = slice(h * bw, (h + 1) * bw)
                gc.ops.linear(x[..., s], wx[h], bias=bx[h], out=gx[..., s])
                gc.ops.linear(x[..., s], wa[h], bias=ba[h], out=ga[..., s])
            return gc.ops.rg_lru(x, gx, ga, p)

        def theirs():
            layer.recurrent_states = None
            with torch.no_grad():
                return layer(tx, pos)

        ref = theirs().numpy()
        err = np.abs(ours()[0] - ref).max() / np.abs(ref).max()
        assert err < 1e-4, err
        t = time_all({"gc": ours, "hf": theirs}, 1.0 if not quick else 0.3)
        print(f"{f'[{B}, {T}, {W}] f32':<34}{t['gc'] * 1e3:>12.2f}{t['hf'] * 1e3:>16.2f}"
              f"{t['hf'] / t['gc']:>8.1f}")


def decode_rows(layers, new_tokens):
    from transformers import RecurrentGemmaConfig, RecurrentGemmaForCausalLM
    from gemmacpp.generate import Timings, generate_ids
    cfg = RecurrentGemmaConfig(num_hidden_layers=layers, vocab_size=256000, hidden_size=W,
                               intermediate_size=3 * 2 * W, num_attention_heads=HEADS,
                               num_key_value_heads=1, lru_width=W, attention_window_size=2048,
                               conv1d_width=4)
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = RecurrentGemmaForCausalLM(cfg).eval()
    prompt = list(np.random.default_rng(2).integers(3, 256000, 16))
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, safe_serialization=True)
        m = gc.load(folder)
        print(f"\ndecode, random 2B-shaped model with {layers} of 26 layers, f32 weights, "
              f"prompt {len(prompt)}, {new_tokens} new tokens (greedy)")
        # gemmacpp: the decode loop's own timer (prefill excluded).
        tm = Timings()
        ours = list(generate_ids(m, prompt, max_new_tokens=new_tokens, timings=tm))
        tm = Timings()
        ours = list(generate_ids(m, prompt, max_new_tokens=new_tokens, timings=tm))
        gc_tps = tm.decode_tokens / tm.decode_s
        ids = torch.tensor([prompt])

        def hf(n):
            start = time.perf_counter()
            with torch.no_grad():
                out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
            return time.perf_counter() - start, out[0, len(prompt):].tolist()

        hf(2)  # warm up
        t1, _ = hf(1)
        tn, theirs = hf(new_tokens)
        hf_tps = (new_tokens - 1) / (tn - t1)  # prefill and the first token subtracted
        same = sum(a == b for a, b in zip(ours, theirs))
        print(f"{'gemmacpp tokens/s':<34}{gc_tps:>10.2f}")
        print(f"{'transformers tokens/s':<34}{hf_tps:>10.2f}")
        print(f"{'ratio':<34}{gc_tps / hf_tps:>10.2f}   (greedy ids agreeing: {same}/{new_tokens})")
        del m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller shapes, for a smoke run")
    ap.add_argument("--threads", type=int, default=0, help="0: gemmacpp's default")
    ap.add_argument("--decode-layers", type=int, default=3)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--no-decode", action="store_true")
    args = ap.parse_args()
    if args.decode_layers < 3:  # transformers' generate needs an attention block in its cache
        ap.error("--decode-layers must be >= 3 (recurrent, recurrent, attention)")
    if args.threads:
        gc.set_num_threads(args.threads)
    threads = gc.get_num_threads()
    torch.set_num_threads(threads)
    bw = copy_bandwidth(1.0 if not args.quick else 0.3)
    cpu_bw = copy_cpu_bandwidth()
    print(f"threads={threads} simd={gc.simd_target()} torch={torch.__version__} "
          f"copy={bw:.2f} GB/s (read + write), {cpu_bw:.2f} GB per CPU second; "
          f"load average {os.getloadavg()[0]:.1f}")
    kernel_rows(args.quick, bw, cpu_bw)
    layer_rows(args.quick)
    if not args.no_decode:
        decode_rows(args.decode_layers, args.decode_tokens if not args.quick else 8)


if __name__ == "__main__":
    main()
