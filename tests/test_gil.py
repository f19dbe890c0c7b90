"""Kernels release the GIL: Python threads keep running while one computes."""
import threading
import time

import numpy as np

import gemmacpp as gc


def test_python_runs_while_a_kernel_computes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 2048), dtype=np.float32)
    w = rng.standard_normal((4096, 2048), dtype=np.float32)
    gc.ops.linear(x, w)  # warm up
    start = time.perf_counter()
    gc.ops.linear(x, w)
    alone = time.perf_counter() - start

    done = threading.Event()
    ticks = 0

    def compute():
        for _ in range(3):
            gc.ops.linear(x, w)
        done.set()

    worker = threading.Thread(target=compute)
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    # Held GIL: the loop above would barely run (a few ticks per switch interval at best).
    # Released: it ticks about once a millisecond for the ~3 x `alone` seconds of compute.
    assert ticks >= max(5, 0.2 * 3 * alone / 0.001), (ticks, alone)
