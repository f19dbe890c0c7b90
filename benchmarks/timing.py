"""Timing shared by the benchmark scripts: interleaved blocks of calls, and the memory-copy
bandwidth that streaming kernels are measured against."""
import statistics
import time

import numpy as np


def timeit(fn, min_time, min_reps=3):
    """Median seconds of fn() over at least min_reps runs and about min_time seconds."""
    return time_all({"fn": fn}, min_time, min_reps)["fn"]


def time_all(fns, min_time, min_reps=3, rounds=2, pause=0.2):
    """Seconds per call of each function: the median over a block of consecutive calls (about
    min_time seconds), blocks taken in turn for `rounds` rounds, and the best block kept. Blocks,
    not single calls, alternate, with a pause before each: torch's (OpenMP) and NumPy's (OpenBLAS)
    worker threads spin for a while after a call and would steal the cores from whatever ran
    next; rounds even out a load that changes (the machine may be shared)."""
    best = {}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(pause)  # let the previous library's spinning workers go to sleep
            fn()  # warm up (page in, allocate, wake the pool)
            times, start = [], time.perf_counter()
            while len(times) < min_reps or (time.perf_counter() - start < min_time / rounds
                                             and len(times) < 200):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            best[name] = min(best.get(name, float("inf")), statistics.median(times))
    return best


def copy_bandwidth(min_time):
    """GB/s of read + write traffic for a 256 MiB np.copyto (beyond any cache)."""
    src = np.ones(64 << 20, np.float32)
    dst = np.empty_like(src)
    return 2 * src.nbytes / timeit(lambda: np.copyto(dst, src), min_time) / 1e9


def best_of(rounds, fn):
    """(fastest seconds of `rounds` calls of fn, the last call's result): for whole workloads that
    run long enough to time once per round."""
    times, result = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result
