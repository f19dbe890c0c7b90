"""Command line: `python -m gemmacpp generate PROMPT|score FILE|eval TASK|info [PATH]|demo`."""
import argparse
import os
import sys
import time

import numpy as np

import gemmacpp as gc

from . import weights
from .eval import tasks
from .generate import Timings, generate


def _count(lo: int):
    """An argparse type: an integer >= lo."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        return value
    return parse


def cmd_info(args) -> int:
    if getattr(args, "path", None):  # `info PATH`: a weight file's metadata and tensor table
        print(weights.describe(weights.open(args.path)))
        return 0
    print(f"gemmacpp {gc.__version__}")
    print(f"devices:      {', '.join(gc.devices())}")
    print(f"CPU SIMD:     {gc.simd_target()} (compiled: {', '.join(gc._core.simd_targets_compiled())})")
    print(f"CPU threads:  {gc.get_num_threads()}")
    print(f"CUDA backend: {'compiled in' if gc._core.cuda_compiled else 'not built'}")
    return 0


def _attention_reference(q, k, v, window):
    """float64 causal sliding-window attention, the textbook way (for the demo's check)."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    b, t, hq, d = q.shape
    g = hq // k.shape[2]
    k, v = np.repeat(k, g, axis=2), np.repeat(v, g, axis=2)
    s = np.einsum("bihd,bjhd->bhij", q, k) / np.sqrt(d)
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    s = np.where((j <= i) & (i - j < window), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhij,bjhd->bihd", p, v)


def cmd_demo(args) -> int:
    """The ops on Gemma-shaped inputs, checked against float64 NumPy and timed."""
    cmd_info(args)
    rng = np.random.default_rng(0)
    t, hq, hkv, d, window = args.tokens, 8, 4, 256, 512
    print(f"\nGemma-3-style local attention layer: T={t}, {hq} query / {hkv} KV heads, "
          f"head_dim {d}, window {window}")
    q = rng.standard_normal((1, t, hq, d), dtype=np.float32)
    k = rng.standard_normal((1, t, hkv, d), dtype=np.float32)
    v = rng.standard_normal((1, t, hkv, d), dtype=np.float32)
    positions = np.arange(t)
    q = gc.ops.rope(gc.ops.rms_norm(q, np.zeros(d, np.float32)), positions, base=10000.0)
    k = gc.ops.rope(gc.ops.rms_norm(k, np.zeros(d, np.float32)), positions, base=10000.0)
    start = time.perf_counter()
    out = gc.ops.attention(q, k, v, causal=True, window=window)
    elapsed = time.perf_counter() - start
    ref = _attention_reference(q, k, v, window)
    err = np.abs(out - ref).max() / np.abs(ref).max()
    print(f"attention: {elapsed * 1e3:.1f} ms, max error vs float64 reference {err:.2e}")
    gate = rng.standard_normal((t, 2048), dtype=np.float32)
    up = rng.standard_normal((t, 2048), dtype=np.float32)
    w = (rng.standard_normal((640, 2048)) * 0.02).astype(np.float32)
    start = time.perf_counter()
    y = gc.ops.linear(gc.ops.geglu(gate, up), w)
    elapsed = time.perf_counter() - start
    g64 = gate.astype(np.float64)
    ref = (0.5 * g64 * (1 + np.tanh(np.sqrt(2 / np.pi) * (g64 + 0.044715 * g64**3))) * up) @ w.T
    err = np.abs(y - ref).max() / np.abs(ref).max()
    print(f"MLP down(geglu(gate, up)): {elapsed * 1e3:.1f} ms, max error {err:.2e}")
    logits = rng.standard_normal((4, 262144), dtype=np.float32) * 40
    capped = gc.ops.softcap(logits, 30.0)
    print(f"final-logit softcap 30: max |logit| {np.abs(logits).max():.1f} -> {np.abs(capped).max():.2f}")
    return 0


def cmd_generate(args) -> int:
    """Streams a continuation of the prompt, then prefill and decode speeds."""
    model = gc.load(args.model, threads=args.threads)
    timings = Timings()
    prompt = [{"role": "user", "content": args.prompt}] if args.chat else args.prompt
    for piece in generate(model, prompt, max_new_tokens=args.max_new_tokens,
                          temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          seed=args.seed, timings=timings):
        sys.stdout.write(piece)
        sys.stdout.flush()
    pre = timings.prefill_tokens / timings.prefill_s if timings.prefill_s else 0.0
    dec = timings.decode_tokens / timings.decode_s if timings.decode_s else 0.0
    print(f"\n[prefill {timings.prefill_tokens} tokens: {pre:.1f} tok/s, "
          f"decode {timings.decode_tokens} tokens: {dec:.1f} tok/s, {gc.get_num_threads()} threads]")
    return 0


def _progress(total, desc: str):
    """A tqdm bar on stderr (a no-op stand-in when tqdm is missing)."""
    try:
        from tqdm import tqdm
    except ImportError:
        class _Quiet:
            def update(self, n=1): pass
            def close(self): pass
        return _Quiet()
    return tqdm(total=total, desc=desc, unit="req", file=sys.stderr)


def _write_json(path, obj) -> None:
    import json
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def cmd_score(args) -> int:
    """Log-likelihoods of the texts or (context, continuation) pairs of a JSONL file."""
    rows = tasks.read_jsonl(args.file)
    model = gc.load(args.model, threads=args.threads)
    bar = _progress(None, "scoring (requests and windows)")
    start = time.perf_counter()
    results = tasks.score(model, rows, max_length=args.max_length, batch_size=args.batch_size,
                          progress=bar.update)
    bar.close()
    elapsed = time.perf_counter() - start
    print(f"{'#':>4} {'tokens':>7} {'logprob':>12}  detail")
    for n, r in enumerate(results):
        detail = (f"greedy={r['greedy']}" if "greedy" in r else
                  f"ppl={r['perplexity']:.3f} bits/byte={r['bits_per_byte']:.4f}" if r["tokens"] else "")
        print(f"{n:>4} {r['tokens']:>7} {r['logprob']:>12.4f}  {detail}")
    print(f"[{len(rows)} rows in {elapsed:.2f} s]")
    if args.output:
        _write_json(args.output, {"model": model.path, "file": args.file, "results": results})
    return 0


def cmd_eval(args) -> int:
    """A local JSONL task: multiple choice by log-likelihood, generation by exact match."""
    rows = tasks.read_jsonl(args.task)
    if args.limit is not None:
        rows = rows[:args.limit]
    if args.ray is not None:  # the requests run on Ray workers, each holding the model
        from . import distributed
        model = distributed.Pool(args.model, workers=args.workers, threads=args.threads or 1,
                                 address=None if args.ray == "local" else args.ray)
    else:
        model = gc.load(args.model, threads=args.threads)
    bar = _progress(tasks.n_requests(rows), "eval")
    start = time.perf_counter()
    try:
        res = tasks.evaluate(model, rows, max_new_tokens=args.max_new_tokens, until=args.until,
                             max_length=args.max_length, batch_size=args.batch_size,
                             progress=bar.update)
    finally:
        if args.ray is not None:
            model.close()
    bar.close()
    elapsed = time.perf_counter() - start
    counts = res["counts"]
    print(f"{'task':<28} {'examples':>8}  {'metric':<12} {'value':>7}")
    for metric, value in res["metrics"].items():
        n = counts["multiple_choice" if metric.startswith("acc") else "generation"]
        print(f"{os.path.basename(args.task):<28} {n:>8}  {metric:<12} {value:>7.4f}")
    print(f"[{len(rows)} examples in {elapsed:.2f} s]")
    if args.output:
        _write_json(args.output, {"model": model.path, "task": args.task, "seconds": elapsed, **res})
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gemmacpp", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the full traceback (default: one line)")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="what this build of gemmacpp found (devices, SIMD, threads); "
                                       "with PATH, a weight file's metadata and tensors")
    info.add_argument("path", nargs="?", help="a .gguf/.safetensors file or checkpoint folder")
    demo = sub.add_parser("demo", help="run the kernels on Gemma shapes, check and time them")
    demo.add_argument("--tokens", type=_count(1), default=1024)
    gen = sub.add_parser("generate", help="continue a prompt with a model (default: Gemma 3 270M), "
                                          "streaming the text, then prefill/decode tokens/s")
    gen.add_argument("prompt")
    gen.add_argument("--model", default=None, help="a .gguf file or HF checkpoint (default: the "
                                                   "gemmacpp[model] Gemma 3 270M Q4_K_M)")
    gen.add_argument("--chat", action="store_true", help="send the prompt as a user turn in Gemma's "
                     "chat format (for instruction-tuned checkpoints)")
    gen.add_argument("--max-new-tokens", type=_count(0), default=64)
    gen.add_argument("--temperature", type=float, default=0.0)
    gen.add_argument("--top-k", type=int, default=None)
    gen.add_argument("--top-p", type=float, default=None)
    gen.add_argument("--seed", type=int, default=None)
    gen.add_argument("--threads", type=_count(0), default=None)
    score = sub.add_parser("score", help="log-likelihood of each line of a JSONL file: {\"text\": ...} "
                                         "(whole text) or {\"context\": ..., \"continuation\": ...}")
    score.add_argument("file")
    ev = sub.add_parser("eval", help="evaluate on a local JSONL task: multiple choice ({\"question\", "
                                     "\"choices\", \"answer\"}) or generation ({\"prompt\", \"answer\"})")
    ev.add_argument("task")
    ev.add_argument("--max-new-tokens", type=_count(0), default=32, help="generation examples (default 32)")
    ev.add_argument("--until", action="append", default=None,
                    help="a stop string for generation examples (repeatable; default: newline)")
    ev.add_argument("--limit", type=_count(0), default=None, help="only the first N examples")
    ev.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                    help="run on Ray workers (gemmacpp[ray]): a cluster's address (e.g. auto, "
                         "host:6379), or none to start one on this machine")
    ev.add_argument("--workers", type=_count(1), default=2,
                    help="with --ray: how many workers (each with --threads threads, default 1)")
    for p in (score, ev):
        p.add_argument("--model", default=None, help="a .gguf file or HF checkpoint (default: the "
                                                     "gemmacpp[model] Gemma 3 270M Q4_K_M)")
        p.add_argument("--output", default=None, help="write the results to this JSON file")
        p.add_argument("--batch-size", type=_count(1), default=16)
        p.add_argument("--max-length", type=_count(1), default=None,
                       help="the scoring window (default 8192)")
        p.add_argument("--threads", type=_count(0), default=None)
    args = parser.parse_args(argv)
    if args.command == "eval" and args.until is None:
        args.until = ["\n"]
    command = {"info": cmd_info, "demo": cmd_demo, "generate": cmd_generate, "score": cmd_score,
               "eval": cmd_eval}[args.command]
    if args.debug:
        return command(args)
    try:
        return command(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # one line for the user; --debug shows where
        message = " ".join(str(e).split("\n"))
        print(f"error: {type(e).__name__}: {message} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
