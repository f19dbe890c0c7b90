"""Text embeddings: gemmacpp's EmbeddingModel.embed against sentence-transformers' encode on the same
EmbeddingGemma-shaped checkpoint, side by side in one process.

    python benchmarks/bench_embed.py [--model FOLDER] [--texts 1000] [--tokens 8 512]
                                     [--threads 2] [--batch-size 32] [--rounds 1]

The checkpoint is a sentence-transformers folder: --model (e.g. a real embeddinggemma-300m), or
by default random weights of EmbeddingGemma-300M's shape (Gemma 3, d 768, 24 layers, 3 heads,
head_dim 256, window 512, vocabulary 262144, dense 768 -> 3072 -> 768, float32), written once to
~/.cache/gemmacpp-bench with the tests' tiny character tokenizer (speed depends on token counts,
not on which tokens). The texts are random words cut to lengths spread evenly over --tokens, each
under the "document" prompt. Both engines run with the same threads (torch.set_num_threads) and
their own batching (sorted by length, --batch-size); texts/s and tokens/s are the best of
--rounds, and the largest difference between the two engines' embeddings is printed.
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

import bench_env

bench_env.select_gemmacpp()

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.expanduser("~/.cache/gemmacpp-bench/embeddinggemma-300m-random")
PROMPTS = {"query": "task: search result | query: ", "document": "title: none | text: "}


def build_random(folder):
    """EmbeddingGemma-300M's shapes with random weights, as a sentence-transformers folder."""
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as M
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    import tiny_lm
    torch.manual_seed(0)
    cfg = transformers.Gemma3TextConfig(
        vocab_size=262144, hidden_size=768, intermediate_size=1152, num_hidden_layers=24,
        num_attention_heads=3, num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256,
        sliding_window=512, use_bidirectional_attention=True, max_position_embeddings=2048,
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})
    model = transformers.Gemma3TextModel(cfg).eval()
    hf = folder + ".hf"  # the Transformer module's source; saving the pipeline copies it
    model.save_pretrained(hf)
    tj = tiny_lm.tokenizer_json()
    tj["post_processor"]["single"].append({"SpecialToken": {"id": "<eos>", "type_id": 0}})
    tj["post_processor"]["special_tokens"]["<eos>"] = {"id": "<eos>", "ids": [1], "tokens": ["<eos>"]}
    with open(os.path.join(hf, "tokenizer.json"), "w") as f:
        json.dump(tj, f)
    d = cfg.hidden_size
    dense = [M.Dense(d, 4 * d, bias=False, activation_function=torch.nn.Identity()),
             M.Dense(4 * d, d, bias=False, activation_function=torch.nn.Identity())]
    st = SentenceTransformer(modules=[M.Transformer(hf, max_seq_length=2048), M.Pooling(d, "mean"), *dense,
                                      M.Normalize()], prompts=PROMPTS)
    st.save(folder + ".tmp")
    os.replace(folder + ".tmp", folder)
    shutil.rmtree(hf)


def make_texts(n, lo, hi, seed=0):
    """n texts of random words whose lengths in characters (about tokens for the tiny tokenizer;
    fewer tokens than characters for a real one) are spread evenly over [lo, hi]."""
    words = ("the cat sat on a mat while an old dog slept in the sun and birds sang songs of the "
             "river city market bread salt grain wool learning library").split()
    rng = np.random.default_rng(seed)
    out = []
    for length in np.linspace(lo, hi, n).astype(int):
        text = ""
        while len(text) < length:
            text += str(rng.choice(words)) + " "
        out.append(text[:length].strip() or "a")
    rng.shuffle(out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a sentence-transformers folder (default: random weights, built once)")
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--tokens", type=int, nargs=2, default=[8, 512], metavar=("MIN", "MAX"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer
    import gemmacpp as gc

    folder = args.model
    if folder is None:
        folder = CACHE
        if not os.path.exists(folder):
            print(f"writing EmbeddingGemma-300M-shaped random weights to {folder} (once) ...", flush=True)
            build_random(folder)
    torch.set_num_threads(args.threads)
    gc.set_num_threads(args.threads)
    model = gc.load(folder)
    st = SentenceTransformer(folder)
    texts = make_texts(args.texts, *args.tokens)
    n_tokens = int(sum(model.tokenize([t], task="document")[1][0] for t in texts))
    print(f"{os.path.basename(folder)}: {len(texts)} texts, {n_tokens} tokens with their prompt; "
          f"{args.threads} threads; gemmacpp SIMD target {gc.simd_target()}, torch {torch.__version__}")

    def run_gc():
        return model.embed(texts, task="document", batch_size=args.batch_size, progress=False)

    def run_st():
        return st.encode(texts, prompt_name="document", batch_size=args.batch_size, normalize_embeddings=True)

    best = {}
    outs = {}
    for _ in range(args.rounds):
        for name, fn in (("gemmacpp", run_gc), ("sentence-transformers", run_st)):
            time.sleep(0.2)
            t = time.perf_counter()
            outs[name] = fn()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
    print(f"\n| engine | s | texts/s | tokens/s |")
    print("|---|---|---|---|")
    for name, s in best.items():
        print(f"| {name} | {s:.1f} | {len(texts) / s:.1f} | {n_tokens / s:.0f} |")
    ratio = best["sentence-transformers"] / best["gemmacpp"]
    diff = float(np.max(np.abs(outs["gemmacpp"] - outs["sentence-transformers"])))
    print(f"\ngemmacpp / sentence-transformers: {ratio:.2f}x; largest difference of the embeddings {diff:.2e}")


if __name__ == "__main__":
    main()
