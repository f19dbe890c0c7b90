"""gemmacpp.distributed on one machine: requests/s of a Ray pool of W workers x 1 thread against
one process with W threads, on the default model, and what the Ray path costs per request.

Scoring: the multiple-choice questions of tests/data/tasks/tiny_mc.jsonl ("Question: ...\\nAnswer:"
and " choice") repeated --repeat times, through Pool.loglikelihood and Model.loglikelihood (the
same batches; the script checks the results are equal bitwise). Generation (--generate): greedy
continuations of --max-new-tokens tokens of the questions. The Ray path's overhead is measured
against the work it wraps: a pool of one 1-thread worker against one process with one thread on
the same requests ((pool - process) / requests), and the fixed cost of a call (a one-request
call on the pool less the same call in one process: two round trips, tokenizing and scoring).

    python benchmarks/bench_distributed.py [--workers 2] [--repeat 4] [--rounds 2] [--generate]
    python benchmarks/bench_distributed.py --address auto    # a running cluster (ray start)

Starts a local Ray cluster unless --address is given (needs gemmacpp[ray]). Imports the
installed gemmacpp; GEMMACPP_BENCH_IN_TREE=1 times this checkout's in-tree build (bench_env.py;
the workers inherit it).
"""
import argparse
import json
import os
import time

import bench_env

bench_env.select_gemmacpp()
import gemmacpp as gc  # noqa: E402
from timing import best_of  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TASK = os.path.join(HERE, "..", "tests", "data", "tasks", "tiny_mc.jsonl")


def workload(repeat):
    with open(TASK) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    pairs, prompts = [], []
    for _ in range(repeat):
        for row in rows:
            ctx = f"Question: {row['question']}\nAnswer:"
            pairs += [(ctx, " " + c) for c in row["choices"]]
            prompts.append(ctx)
    return pairs, prompts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=4, help="copies of the question set")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each (best kept)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--generate", action="store_true", help="also time greedy generation")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--address", default=None, help="a running Ray cluster (default: start one)")
    args = ap.parse_args()

    import ray
    from gemmacpp.distributed import Pool
    from gemmacpp.generate import encode_prompt, generate_until
    start = time.perf_counter()
    if args.address:
        ray.init(address=args.address)
    else:  # the workers of a cluster started here import the gemmacpp this script imported
        root = os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__)))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in [root, os.environ.get("PYTHONPATH")] if p)
        ray.init(address="local", num_cpus=args.workers + 1, include_dashboard=False, log_to_driver=False)
    t_cluster = time.perf_counter() - start

    pairs, prompts = workload(args.repeat)
    W, n = args.workers, len(pairs)
    model = gc.load()
    print(f"{n} scoring requests ({len(set(c for c, _ in pairs))} distinct contexts), "
          f"{len(prompts)} prompts; {W} workers x 1 thread vs 1 process x {W} threads; best of "
          f"{args.rounds}; simd={gc.simd_target()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}\n")

    rows = []
    for label, workers, threads in [(f"Ray pool, {W} workers x 1 thread", W, 1),
                                    ("Ray pool, 1 worker x 1 thread", 1, 1)]:
        start = time.perf_counter()
        pool = Pool(workers=workers, threads=1)
        t_start = time.perf_counter() - start
        t, got = best_of(args.rounds, lambda: pool.loglikelihood(pairs, batch_size=args.batch_size,
                                                                progress=False))
        t_one, _ = best_of(args.rounds, lambda: pool.loglikelihood(pairs[:1], progress=False))
        t_gen = None
        if args.generate:
            t_gen, texts = best_of(args.rounds, lambda: pool.generate(
                prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                progress=False))
        pool.close()
        rows.append((label, workers, t, t_gen, got, t_one, t_start))

    local = []
    for threads in (W, 1):
        gc.set_num_threads(threads)
        t, got = best_of(args.rounds, lambda: model.loglikelihood(pairs, batch_size=args.batch_size))
        t_gen = None
        if args.generate:
            ids = [encode_prompt(model, p) for p in prompts]
            t_gen, _ = best_of(args.rounds, lambda: generate_until(
                model, ids, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size))
        t_one, _ = best_of(args.rounds, lambda: model.loglikelihood(pairs[:1]))
        local.append((f"1 process x {threads} threads", threads, t, t_gen, got, t_one))

    print(f"{'engine':34s} {'scoring s':>9s} {'req/s':>7s} {'gen s':>7s} {'prompts/s':>9s}")
    for name, _, t, t_gen, *_ in rows + local:
        gen = f"{t_gen:7.2f} {len(prompts) / t_gen:9.2f}" if t_gen else f"{'':7s} {'':9s}"
        print(f"{name:34s} {t:9.2f} {n / t:7.1f} {gen}")
    same = all(r[4] == local[0][4] for r in rows) and local[1][4] == local[0][4]
    pool_w, pool_1, proc_w, proc_1 = rows[0], rows[1], local[0], local[1]
    print(f"\nscoring: {W} workers x 1 thread / 1 process x {W} threads: "
          f"{proc_w[2] / pool_w[2]:.2f}x the requests/s; results bitwise equal: {same}")
    if args.generate:
        print(f"generation: {W} workers x 1 thread / 1 process x {W} threads: "
              f"{proc_w[3] / pool_w[3]:.2f}x the prompts/s")
    print(f"Ray path overhead: {(pool_1[2] - proc_1[2]) / n * 1e3:.2f} ms per request "
          f"(1 worker x 1 thread against 1 process x 1 thread); a call's round trips "
          f"{(pool_1[5] - proc_1[5]) * 1e3:.0f} ms (a one-request call on the pool, less in "
          f"one process); cluster start {t_cluster:.1f} s, pool start "
          f"{pool_w[6]:.1f} s ({W} workers, each loading the model)")
    ray.shutdown()


if __name__ == "__main__":
    main()
