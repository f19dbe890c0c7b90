"""Images per second of a so400m-shaped SigLIP encoder (width 1152, depth 27, 16 heads, MLP 4304,
patch 14; random weights written as safetensors to a temporary folder), gemmacpp against
transformers' SiglipVisionModel on the CPU, both float32 activations, same thread count.

    PYTHONPATH=python python benchmarks/bench_vision.py --sizes 224 896 --batch 1 --layers 27
"""
import argparse
import tempfile

import numpy as np
import torch
import transformers

import gemmacpp as gc
from timing import time_all


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[224])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--layers", type=int, default=27)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                    help="stored weight dtype (activations are float32 in both)")
    ap.add_argument("--min-time", type=float, default=4.0)
    args = ap.parse_args()
    torch.set_num_threads(gc.get_num_threads())
    print(f"threads {gc.get_num_threads()}, simd {gc.simd_target()}, weights {args.dtype}, "
          f"{args.layers} layers, batch {args.batch}")
    print("| image | patches | gemmacpp img/s | transformers img/s | ratio |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        cfg = transformers.SiglipVisionConfig(hidden_size=1152, intermediate_size=4304,
                                              num_hidden_layers=args.layers, num_attention_heads=16,
                                              image_size=size, patch_size=14, vision_use_head=False)
        torch.manual_seed(0)
        ref = transformers.SiglipVisionModel(cfg).eval()
        with tempfile.TemporaryDirectory() as folder:
            ref.to(getattr(torch, args.dtype)).save_pretrained(folder)
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
        print(f"| {size} | {(size // 14) ** 2} | {g:.3f} | {h:.3f} | {g / h:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
