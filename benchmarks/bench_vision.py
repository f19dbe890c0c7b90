"""Images per second of a so400m-shaped SigLIP encoder (width 1152, depth 27, 16 heads, MLP 4304,
patch 14; random weights written as safetensors to a temporary folder), gemmacpp against
transformers' SiglipVisionModel on the CPU, both float32 activations, same thread count.
--dtype bfloat16 stores the weights as bfloat16 (as Gemma 3 and PaliGemma ship them); gemmacpp
reads them in place and computes in float32. transformers then runs them as float32 too, unless
--reference-dtype auto, which loads the checkpoint as `from_pretrained` does by default
(dtype="auto": the stored dtype, so bfloat16 arithmetic): the out-of-the-box comparison, not a
like-for-like one.
--layers N builds a shallower encoder (the per-layer cost is the same; 27 layers at 896 px take
minutes on two cores). --parts also times each op of one encoder layer at the image's token
count, both engines (transformers runs them as torch ops: linear, scaled_dot_product_attention,
gelu, layer_norm), with GFLOP/s, to show where the time goes.

    PYTHONPATH=python python benchmarks/bench_vision.py --sizes 224 896 --batch 1 --layers 27
    PYTHONPATH=python python benchmarks/bench_vision.py --sizes 896 --layers 2 --parts
    PYTHONPATH=python python benchmarks/bench_vision.py --dtype bfloat16 --reference-dtype auto

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import tempfile

import numpy as np
import torch
import transformers

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402
from timing import time_all  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[224])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--layers", type=int, default=27)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="stored weight dtype (activations are float32 in both)")
    ap.add_argument("--reference-dtype", choices=["float32", "auto"], default="float32",
                    help="transformers' arithmetic: float32, or the checkpoint's own dtype, as "
                         "from_pretrained loads it by default")
    ap.add_argument("--min-time", type=float, default=4.0)
    ap.add_argument("--parts", action="store_true", help="also time each op of one layer")
    args = ap.parse_args()
    torch.set_num_threads(gc.get_num_threads())
    print(f"threads {gc.get_num_threads()}, simd {gc.simd_target()}, weights {args.dtype}, "
          f"transformers dtype {args.reference_dtype}, {args.layers} layers, batch {args.batch}")
    print("| image | patches | gemmacpp img/s | transformers img/s (arithmetic) | ratio |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        cfg = transformers.SiglipVisionConfig(hidden_size=1152, intermediate_size=4304,
                                              num_hidden_layers=args.layers, num_attention_heads=16,
                                              image_size=size, patch_size=14, vision_use_head=False)
        torch.manual_seed(0)
        ref = transformers.SiglipVisionModel(cfg).eval()
        with tempfile.TemporaryDirectory() as folder:
            ref.to(getattr(torch, args.dtype)).save_pretrained(folder)
            if args.reference_dtype == "auto":
                ref = transformers.SiglipVisionModel.from_pretrained(folder).eval()
            else:
                ref = ref.float()
            model = gc.load(folder)
            px = np.random.default_rng(0).uniform(-1, 1, (args.batch, 3, size, size)).astype(np.float32)
            tpx = torch.from_numpy(px)

            def run_torch():
                with torch.inference_mode():
                    ref(pixel_values=tpx)

            t = time_all({"gemmacpp": lambda: model.encode_image(px, preprocess=False),
                          "transformers": run_torch}, args.min_time, min_reps=2, rounds=1)
        g, h = args.batch / t["gemmacpp"], args.batch / t["transformers"]
        arith = str(ref.dtype).removeprefix("torch.")
        print(f"| {size} | {(size // 14) ** 2} | {g:.4g} | {h:.4g} ({arith}) | {g / h:.2f}x |",
              flush=True)
    if args.parts:
        for size in args.sizes:
            time_parts(args.batch * (size // 14) ** 2, args.min_time)


def time_parts(T, min_time, d=1152, F=4304, H=16):
    """Each op of one encoder layer over T tokens (one image's patches times the batch, attention
    over one sequence of T), gemmacpp against the torch op transformers calls. GFLOP counts
    multiply-adds as 2; attention 4 T^2 d (QK^T and PV)."""
    D = d // H
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, d), dtype=np.float32)
    mid = rng.standard_normal((T, F), dtype=np.float32)
    w_sq, w_up, w_down = (rng.standard_normal(s, dtype=np.float32) * 0.03
                          for s in ((d, d), (F, d), (d, F)))
    b_d, b_f, ln_w = np.zeros(d, np.float32), np.zeros(F, np.float32), np.ones(d, np.float32)
    q, k, v = (rng.standard_normal((1, T, H, D), dtype=np.float32) for _ in range(3))
    t = {name: torch.from_numpy(a) for name, a in dict(
        x=x, mid=mid, w_sq=w_sq, w_up=w_up, w_down=w_down, b_d=b_d, b_f=b_f, ln_w=ln_w).items()}
    tq, tk, tv = (torch.from_numpy(a).transpose(1, 2) for a in (q, k, v))  # [1, H, T, D] views
    F_ = torch.nn.functional
    parts = [  # name, count per layer, GFLOP, gemmacpp, torch
        ("q/k/v/out linear", 4, 2 * T * d * d, lambda: gc.ops.linear(x, w_sq, bias=b_d),
         lambda: F_.linear(t["x"], t["w_sq"], t["b_d"])),
        ("fc1 linear", 1, 2 * T * d * F, lambda: gc.ops.linear(x, w_up, bias=b_f),
         lambda: F_.linear(t["x"], t["w_up"], t["b_f"])),
        ("fc2 linear", 1, 2 * T * d * F, lambda: gc.ops.linear(mid, w_down, bias=b_d),
         lambda: F_.linear(t["mid"], t["w_down"], t["b_d"])),
        ("attention", 1, 4 * T * T * d, lambda: gc.ops.attention(q, k, v, causal=False),
         lambda: F_.scaled_dot_product_attention(tq, tk, tv)),
        ("gelu_tanh", 1, 0, lambda: gc.ops.gelu_tanh(mid),
         lambda: F_.gelu(t["mid"], approximate="tanh")),
        ("layer_norm", 2, 0, lambda: gc.ops.layer_norm(x, ln_w, b_d),
         lambda: F_.layer_norm(t["x"], (d,), t["ln_w"], t["b_d"])),
    ]
    print(f"\nOne layer at {T} tokens (ms per call, GFLOP/s; 'x n': calls per layer)")
    print("| op | gemmacpp ms | GFLOP/s | transformers (torch) ms | GFLOP/s | ratio |")
    print("|---|---|---|---|---|---|")
    total = [0.0, 0.0]
    for name, n, flops, g, h in parts:
        with torch.inference_mode():
            tm = time_all({"g": g, "h": h}, min_time / 2, min_reps=2, rounds=1)
        total[0] += n * tm["g"]
        total[1] += n * tm["h"]
        rate = lambda s: f"{flops / s / 1e9:.1f}" if flops else "-"
        print(f"| {name} x {n} | {tm['g'] * 1e3:.1f} | {rate(tm['g'])} | {tm['h'] * 1e3:.1f} | "
              f"{rate(tm['h'])} | {tm['h'] / tm['g']:.2f}x |", flush=True)
    print(f"| sum | {total[0] * 1e3:.0f} | | {total[1] * 1e3:.0f} | | {total[1] / total[0]:.2f}x |")


if __name__ == "__main__":
    main()
