"""The mixture-of-experts layer of Gemma 4 26B-A4B (128 experts, top-8, D = 2816, expert FFN 704)
with random weights: gemmacpp against PyTorch on the CPU.

    python benchmarks/bench_moe.py [--experts E] [--tokens 1 8 64 512] [--threads N]

Each engine gets the same router logits [M, E] and computes the routing (softmax, top-k,
renormalise, per-expert scale) and the experts: gemmacpp is gc.ops.moe_route + gc.ops.moe;
"torch grouped" is a PyTorch loop over the experts that got tokens (index_select of their rows,
F.linear, gelu tanh, F.linear, index_add_); "hf" is transformers' Gemma4TextExperts fed the same
routing, with the implementation a loaded Gemma 4 model uses by default (grouped_mm) and with its
own eager loop. torch runs with as many threads as gemmacpp.

Expert weights: float32 ("f32"), and a Q4_K file's layouts: ffn_gate_up_exps Q4_K, and
ffn_down_exps, whose rows are 704 long (not a multiple of 256), in llama.cpp's fallback types:
Q5_0 for Q4_K ("q4_k") and Q8_0 for Q6_K ("q4_k+q8_0", the down projections Q4_K_M gives more
bits). torch has no GGML kernels: its columns always run the float32 weights. Every call routes a different set of logits
(cycling through a few), so that decode reads experts from memory, as a model does, not from the
cache. For one token, "bound" is the time to read the 8 chosen experts' bytes at the bandwidth
of a large np.copyto (read + write traffic) measured in the same run.

The float32 experts take 3 GB at the full shape (the Q4_K ones 0.46 GB more); --experts E keeps
the shape of each expert and holds E of them (the output says what was run).
"""
import argparse
import contextlib
import os
import sys

import numpy as np

import bench_env  # noqa: E402

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402
from gemmacpp.quant import QuantizedTensor  # noqa: E402
from bench_quant import random_quantized  # noqa: E402
from timing import copy_bandwidth, time_all  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # torch is optional: its columns are left empty
    torch = None

D, FF, TOP_K = 2816, 704, 8


def logit_sets(rng, m, e, count):
    """`count` router-logit arrays [m, e]; for one token, their top-k sets are disjoint (as far as
    e allows), so consecutive calls read different experts."""
    groups = e // TOP_K
    sets = []
    for i in range(count):
        lg = rng.standard_normal((m, e)).astype(np.float32)
        if m == 1:
            if i % groups == 0:
                perm = rng.permutation(e)
            lg[0, perm[(i % groups) * TOP_K:][:TOP_K]] += 10.0
        sets.append(lg)
    return sets


def cycling(fn, inputs):
    """A no-argument function that calls fn on the next of `inputs` each time."""
    state = {"i": 0}

    def call():
        args = inputs[state["i"] % len(inputs)]
        state["i"] += 1
        return fn(*args)
    return call


def torch_route(logits, k, scale):
    p = torch.softmax(logits, dim=-1, dtype=torch.float32)
    w, ids = torch.topk(p, k, dim=-1)
    w = w / w.sum(dim=-1, keepdim=True)
    return ids, w * scale[ids]


def torch_grouped(x, logits, scale, gate_up, down):
    """Routing, then the experts that got tokens, one at a time, on their gathered rows."""
    ids, w = torch_route(logits, TOP_K, scale)
    out = torch.zeros_like(x)
    flat = ids.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=gate_up.shape[0]).tolist()
    rows = order // TOP_K
    wsorted = w.reshape(-1)[order]
    start = 0
    for e, c in enumerate(counts):
        if c == 0:
            continue
        idx = rows[start:start + c]
        gate, up = F.linear(x.index_select(0, idx), gate_up[e]).chunk(2, dim=-1)
        y = F.linear(F.gelu(gate, approximate="tanh") * up, down[e])
        out.index_add_(0, idx, y * wsorted[start:start + c, None])
        start += c
    return out


def hf_experts(gate_up, down, implementation):
    """transformers' Gemma4TextExperts holding these weights (shared, not copied)."""
    from transformers.models.gemma4.configuration_gemma4 import Gemma4TextConfig
    from transformers.models.gemma4.modeling_gemma4 import Gemma4TextExperts
    cfg = Gemma4TextConfig(hidden_size=D, num_experts=gate_up.shape[0], top_k_experts=TOP_K,
                           enable_moe_block=True, moe_intermediate_size=FF)
    cfg._experts_implementation = implementation
    with torch.device("meta"):
        mod = Gemma4TextExperts(cfg)
    mod.gate_up_proj = torch.nn.Parameter(gate_up, requires_grad=False)
    mod.down_proj = torch.nn.Parameter(down, requires_grad=False)
    return mod


def expert_bytes(w):
    return (np.asarray(w.data).nbytes if isinstance(w, QuantizedTensor) else w.nbytes) // (
        w.shape[0])


def ms(t):
    return f"{'-':>8}" if t is None else f"{t * 1e3:8.2f}"


def ratio(a, b):
    return f"{'-':>6}" if a is None or b is None else f"{a / b:6.2f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experts", type=int, default=128, help="experts held (default 128)")
    p.add_argument("--tokens", type=int, nargs="+", default=[1, 8, 64, 512])
    p.add_argument("--weights", nargs="+", default=["f32", "q4_k", "q4_k+q8_0"],
                   choices=["f32", "q4_k", "q4_k+q8_0"])
    p.add_argument("--threads", type=int, default=0, help="threads (0: all this process may use)")
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--no-hf", action="store_true", help="skip transformers' experts module")
    args = p.parse_args()
    e = args.experts
    if e < TOP_K:
        p.error(f"--experts must be at least top-k = {TOP_K}")
    gc.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(gc.get_num_threads())
    rng = np.random.default_rng(0)
    copy_gbs = copy_bandwidth(args.min_time)

    # float32 experts (torch always uses them), and the Q4_K file's layout.
    gate_up = rng.standard_normal((e, 2 * FF, D), dtype=np.float32)
    gate_up *= D ** -0.5
    down = rng.standard_normal((e, D, FF), dtype=np.float32)
    down *= FF ** -0.5
    scale = (1.0 + 0.1 * rng.standard_normal(e)).astype(np.float32)
    stacks = {"f32": (gate_up, down)}
    if any(w.startswith("q4_k") for w in args.weights):
        qgu = QuantizedTensor(random_quantized(rng, "Q4_K", e * 2 * FF, D).data, "Q4_K",
                              (e, 2 * FF, D))
        for name, down_type in (("q4_k", "Q5_0"), ("q4_k+q8_0", "Q8_0")):
            if name in args.weights:
                qdn = random_quantized(rng, down_type, e * D, FF)
                stacks[name] = (qgu, QuantizedTensor(qdn.data, down_type, (e, D, FF)))
    print(f"MoE layer, {e} experts{' (of 128: --experts)' if e != 128 else ''}, top-{TOP_K}, "
          f"D = {D}, F = {FF}; gemmacpp threads {gc.get_num_threads()}, SIMD target "
          f"{gc.simd_target()}; torch {torch.__version__ if torch else '-'}; np.copyto "
          f"{copy_gbs:.1f} GB/s")
    print("weights: f32 = float32 experts; q4_k = gate_up Q4_K + down Q5_0; q4_k+q8_0 = gate_up "
          "Q4_K + down Q8_0 (torch columns: float32)\n")

    hf = hfe = None
    if torch is not None:
        tgu, tdn, tscale = torch.from_numpy(gate_up), torch.from_numpy(down), torch.from_numpy(scale)
        if not args.no_hf:
            hf, hfe = hf_experts(tgu, tdn, "grouped_mm"), hf_experts(tgu, tdn, "eager")

    hdr = (f"{'tokens':>6} {'weights':<9} {'gc ms':>8} {'torch ms':>8} {'hf ms':>8}"
           f" {'hf eager':>8} {'torch/gc':>8} {'hf/gc':>6} {'bound':>8} {'gc/bound':>8}")
    print(hdr)
    print("-" * len(hdr))
    for m in args.tokens:
        sets = logit_sets(rng, m, e, 16)
        xs = [rng.standard_normal((m, D), dtype=np.float32) for _ in sets]
        fns = {}
        if torch is not None:
            t_in = [(torch.from_numpy(x), torch.from_numpy(lg)) for x, lg in zip(xs, sets)]
            fns["torch"] = cycling(lambda x, lg: torch_grouped(x, lg, tscale, tgu, tdn), t_in)
            for name, mod in (("hf", hf), ("hfe", hfe)):
                if mod is not None:
                    fns[name] = cycling(
                        lambda x, lg, mod=mod: mod(x, *torch_route(lg, TOP_K, tscale)), t_in)
        for wname in args.weights:
            gu, dn = stacks[wname]
            fns[wname] = cycling(
                lambda x, lg, gu=gu, dn=dn: gc.ops.moe(
                    x, *gc.ops.moe_route(lg, TOP_K, per_expert_scale=scale), gu, dn),
                list(zip(xs, sets)))
        if m == 1:  # the copy bandwidth of the bound, measured beside the engines
            src = np.ones(64 << 20, np.float32)
            dst = np.empty_like(src)
            fns["copy"] = lambda: np.copyto(dst, src)
        # All engines in one call: their blocks of calls alternate, under the same load.
        with torch.inference_mode() if torch is not None else contextlib.nullcontext():
            t = time_all(fns, args.min_time)
        if m == 1:
            copy_gbs = 2 * src.nbytes / t["copy"] / 1e9
            print(f"{'':>6} (np.copyto during these runs: {copy_gbs:.1f} GB/s)")
        best_hf = min((t[n] for n in ("hf", "hfe") if n in t), default=None)
        for wname in args.weights:
            gu, dn = stacks[wname]
            bound = None
            if m == 1:
                bound = TOP_K * (expert_bytes(gu) + expert_bytes(dn)) / (copy_gbs * 1e9)
            print(f"{m:>6} {wname:<9} {ms(t[wname])} {ms(t.get('torch'))} {ms(t.get('hf'))}"
                  f" {ms(t.get('hfe'))} {ratio(t.get('torch'), t[wname]):>8}"
                  f" {ratio(best_hf, t[wname])} {ms(bound)} {ratio(t[wname], bound):>8}",
                  flush=True)
        if torch is not None and m == args.tokens[0]:
            with torch.inference_mode():
                ref = torch_grouped(*t_in[0], tscale, tgu, tdn).numpy()
            y = gc.ops.moe(xs[0], *gc.ops.moe_route(sets[0], TOP_K, per_expert_scale=scale),
                           gate_up, down)
            print(f"{'':>6} (f32: gemmacpp vs torch grouped, max abs diff / max|ref| = "
                  f"{np.abs(y - ref).max() / np.abs(ref).max():.1e})")
    print("\nhf/gc: the faster of transformers' grouped_mm and eager paths over gemmacpp.")


if __name__ == "__main__":
    main()
