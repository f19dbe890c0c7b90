"""Sparse autoencoders: encode + decode of 1,000 tokens by gemmacpp against sae-lens (PyTorch) in
the same process with the same number of threads, and the cost of one attached SAE on a forward
of the default model (Gemma 3 270M Q4_K_M).

    python benchmarks/bench_sae.py [--quick] [--threads N] [--tokens 1000] [--no-model]

SAEs: random JumpReLU weights (float32, as Gemma Scope ships them) of Gemma Scope 2's 270M width
(16k features, d = 640) and Gemma Scope's 2B width (65k features, d = 2304), thresholds set so
that about 64 features fire per token (Gemma Scope's L0 range). Both libraries reconstruct x:
decode(encode(x)). gemmacpp: the fused encode (GEMM tiles with bias and threshold in the
epilogue, sparse rows out) and the sparse decode (only the active rows of W_dec); sae-lens:
JumpReLUSAE.encode / decode under torch.no_grad (dense matmuls), on the same arrays
(torch.from_numpy, no copies). Reported: ms per 1,000 tokens (best block's median, blocks of
calls alternating, benchmarks/timing.py), and sae-lens / gemmacpp.

Model overhead: a forward of --model-tokens tokens (last_only, as bench_hooks.py) plain, with a
16k JumpReLU SAE spliced at blocks.6.hook_resid_post (its reconstruction replacing the residual
stream), with it spliced with the error term while run_with_cache records its features (the
error term alone, with nothing reading the SAE, skips the SAE: that forward is the plain one),
variants alternating one call per round; fastest call (median).

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import os
import statistics
import time

import numpy as np

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402
from timing import time_all  # noqa: E402

L0 = 64


def random_sae(rng, d, width, calibration):
    W_enc = (rng.standard_normal((d, width), dtype=np.float32) / np.float32(np.sqrt(d)))
    W_dec = np.ascontiguousarray(W_enc.T) * np.float32(0.5)
    b_enc = np.zeros(width, np.float32)
    b_dec = np.zeros(d, np.float32)
    pre = calibration @ W_enc
    thr = np.full(width, np.quantile(pre, 1 - L0 / width), np.float32)
    name = f"{ {16384: '16k', 65536: '65k'}.get(width, width)} x {d}"  # Gemma Scope's widths
    return gc.sae.SAE(W_enc, W_dec, b_enc, b_dec, threshold=thr, name=name)


def saelens_twin(sae, torch):
    """A sae-lens JumpReLUSAE sharing sae's arrays."""
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig
    sl = JumpReLUSAE(JumpReLUSAEConfig(d_in=sae.d_in, d_sae=sae.d_sae, apply_b_dec_to_input=False))
    for name in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"):
        setattr(sl, name, torch.nn.Parameter(torch.from_numpy(getattr(sae, name)), requires_grad=False))
    return sl.eval()


def bench_saes(args, torch, have_saelens):
    rng = np.random.default_rng(0)
    rows = []
    for d, width in ((640, 16384), (2304, 65536)):
        if args.quick and width > 16384:
            width = 16384
        x = (rng.standard_normal((args.tokens, d), dtype=np.float32))
        sae = random_sae(rng, d, width, x[:256])
        acts = sae.encode(x)
        fns = {"gemmacpp": lambda: sae.decode(sae.encode(x))}
        if have_saelens:
            sl = saelens_twin(sae, torch)
            xt = torch.from_numpy(x)

            def saelens():
                with torch.no_grad():
                    return sl.decode(sl.encode(xt))
            fns["sae-lens"] = saelens
            with torch.no_grad():  # agreement: which features fire, and their values
                theirs = sl.encode(xt).numpy()
            ours = acts.to_dense()
            both = (theirs != 0) & (ours != 0)
            flips = int(np.count_nonzero((theirs != 0) != (ours != 0)))
            err = (flips, float(np.abs(theirs[both] - ours[both]).max() / np.abs(theirs).max()))
            del theirs, ours, both
        t = time_all(fns, args.min_time)
        per = 1000 / args.tokens * 1e3
        row = {"sae": sae.name, "l0": float(np.mean(acts.l0())),
               "gc": t["gemmacpp"] * per, "sl": t.get("sae-lens", float("nan")) * per}
        if have_saelens:
            row["err"] = err
        # the parts: encode (sparse out) and decode (sparse in)
        parts = time_all({"enc": lambda: sae.encode(x), "dec": lambda: sae.decode(acts)}, args.min_time / 2)
        row["enc"], row["dec"] = parts["enc"] * per, parts["dec"] * per
        rows.append(row)
        print(f"  {row['sae']}: L0 {row['l0']:.0f}, gemmacpp {row['gc']:.1f} ms (encode {row['enc']:.1f}, "
              f"decode {row['dec']:.2f}), sae-lens {row['sl']:.1f} ms, "
              f"sae-lens/gemmacpp {row['sl'] / row['gc']:.2f}x"
              + (f"; {row['err'][0]} of {acts.nnz} features on one side of a threshold only "
                 f"(float rounding), others within {row['err'][1]:.1e}" if "err" in row else ""),
              flush=True)
        del sae, acts, fns
    return rows


def bench_model(args):
    model = gc.load()
    d = model.config["hidden_size"]
    rng = np.random.default_rng(1)
    T = args.model_tokens
    toks = rng.integers(10, model.config["vocab_size"], size=(1, T))
    hook = "blocks.6.hook_resid_post"
    calib = model.run_with_cache(toks[:, :64], names=hook, last_only=True)[1][hook][0]
    sae = random_sae(rng, d, 16384, calib).at(hook)

    def spliced():
        with model.saes([sae]):
            model.forward(toks, last_only=True)

    def error_term_read():
        with model.saes([sae], error_term=True):
            model.run_with_cache(toks, names=f"{hook}.sae.hook_sae_acts_post", last_only=True)

    def error_term_alone():
        with model.saes([sae], error_term=True):
            model.forward(toks, last_only=True)

    fns = {"plain forward": lambda: model.forward(toks, last_only=True),
           "SAE spliced (reconstruction)": spliced,
           "SAE spliced + error term, features recorded": error_term_read,
           "SAE attached with error term, nothing reading it": error_term_alone}
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(args.rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    base = min(times["plain forward"])
    base_med = statistics.median(times["plain forward"])
    print(f"  default model, {T} tokens, last_only, 16k JumpReLU SAE at {hook}:")
    out = []
    for k, ts in times.items():
        best, med = min(ts) * 1e3, statistics.median(ts) * 1e3
        extra = "" if k == "plain forward" else \
            f"{100 * (min(ts) / base - 1):+.1f}% ({100 * (statistics.median(ts) / base_med - 1):+.1f}%)"
        out.append((k, best, med, extra))
        print(f"    {k:50s} {best:8.1f} ms ({med:.1f})  {extra}", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="16k SAEs only, short timing")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--model-tokens", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--no-model", action="store_true", help="skip the default-model overhead")
    args = ap.parse_args()
    args.min_time = 0.5 if args.quick else 3.0
    if args.quick:
        args.rounds = 2
    gc.set_num_threads(args.threads)
    try:
        import torch
        torch.set_num_threads(args.threads)
        import sae_lens  # noqa: F401
        have = True
    except ImportError:
        torch, have = None, False
        print("sae-lens (or torch) is not installed: gemmacpp only")
    print(f"{gc.get_num_threads()} threads, SIMD target {gc.simd_target()}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ""))
    print(f"encode + decode per 1,000 tokens ({args.tokens} tokens per call):")
    bench_saes(args, torch, have)
    if not args.no_model:
        try:
            bench_model(args)
        except ImportError as e:
            print(f"default model not available ({e}): skipped")


if __name__ == "__main__":
    main()
