"""How far activations="int8" moves the default model from the exact path, on a long text.

    python benchmarks/int8_distance.py [--model PATH] [--text FILE] [--chunk 256]

Both modes read the same token ids (the text tokenized by the model, BOS first), fed in chunks
through a cache so that no [T, vocab] array is ever whole. Per predicted token: KL(exact || int8)
of the next-token distributions (the exact path as the reference), whether the two argmaxes agree,
and each mode's negative log-likelihood of the actual next token, which gives the perplexities.
Default text: this repository's LICENSE (the Apache License 2.0, about 2,500 tokens).

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 uses this checkout's in-tree build
(bench_env.py).
"""
import argparse
import os

import numpy as np

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="GGUF file (default: the default model)")
    ap.add_argument("--text", default=os.path.join(HERE, "..", "LICENSE"))
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    gc.set_num_threads(args.threads)
    exact = gc.load(args.model)
    int8 = gc.load(exact.path, activations="int8")
    with open(args.text, encoding="utf-8") as f:
        ids = np.asarray(exact.to_tokens(f.read())[0], np.int64)
    T = len(ids)
    caches = [m.new_cache(1, T) for m in (exact, int8)]
    kl, agree, nll = [], [], {"float32": [], "int8": []}
    for t0 in range(0, T - 1, args.chunk):
        chunk = ids[None, t0:min(T - 1, t0 + args.chunk)]
        la = log_softmax(exact.forward(chunk, cache=caches[0])[0])
        lb = log_softmax(int8.forward(chunk, cache=caches[1])[0])
        nxt = ids[t0 + 1:t0 + 1 + chunk.shape[1]]
        kl.append((np.exp(la) * (la - lb)).sum(-1))
        agree.append(la.argmax(-1) == lb.argmax(-1))
        nll["float32"].append(-la[np.arange(len(nxt)), nxt])
        nll["int8"].append(-lb[np.arange(len(nxt)), nxt])
    kl, agree = np.concatenate(kl), np.concatenate(agree)
    ppl = {k: float(np.exp(np.concatenate(v).mean())) for k, v in nll.items()}
    print(f"model: {exact.path}\ntext: {os.path.relpath(args.text)} ({T} tokens, {T - 1} predicted)")
    print(f"mean KL(exact || int8) per token: {kl.mean():.2e} nats (max {kl.max():.2e})")
    print(f"top-1 agreement: {agree.mean() * 100:.2f} %")
    print(f"perplexity: exact {ppl['float32']:.3f}, int8 {ppl['int8']:.3f} "
          f"({(ppl['int8'] / ppl['float32'] - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    main()
