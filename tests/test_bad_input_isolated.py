"""Garbage into every public op and entry point, in a child process: each call must either work or
raise a Python error (TypeError, ValueError, NotImplementedError; MemoryError for sizes that fit
no machine; OSError for paths). A crash of the interpreter (segfault, abort, SIGFPE) fails this
test instead of taking the whole test run down with it."""
import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(r"""
    import itertools, random
    import numpy as np, ml_dtypes
    import gemmacpp as gc

    rng = np.random.default_rng(0)
    pick = random.Random(0)

    def arrays():
        shapes = [(), (0,), (1,), (3,), (2, 0, 4), (1, 3, 0), (2, 3), (1, 4, 2, 8), (2, 5, 4, 8),
                  (1, 1, 1, 1), (2, 3, 4, 5, 6)]
        dtypes = [np.float32, np.float16, ml_dtypes.bfloat16, np.float64, np.int32, np.int64,
                  np.bool_, np.uint8]
        for shape in shapes:
            for dtype in dtypes:
                a = rng.standard_normal(shape).astype(dtype)
                yield a
                if a.ndim >= 2:
                    yield a.swapaxes(0, -1)
        yield from [None, 3, 2.5, "text", [1.0, 2.0], [[1.0]], object()]

    pool = list(arrays())
    from gemmacpp.quant import QuantizedTensor
    experts = pool + [QuantizedTensor(np.zeros(4 * 34, np.uint8), "Q8_0", (2, 2, 32)),
                      QuantizedTensor(np.zeros(7, np.uint8), "Q4_K", (1, 1, 256))]
    # Shapes whose byte counts overflow 64 bits, over empty or tiny data.
    quantized = [QuantizedTensor(np.zeros(n, np.uint8), q, shape)
                 for n in (0, 34)
                 for q, shape in [("Q8_0", (2**32, 2**36)), ("Q8_0", (2**60, 256)),
                                  ("Q4_K", (2**62, 2**40)), ("Q8_0", (1, 32)), ("Q8_0", (0, 32))]]
    ops = {
        "attention": lambda a, b, c: gc.ops.attention(a, b, c, causal=pick.random() < 0.5,
                                                      window=pick.choice([None, 0, 1, 4, -3])),
        "softcap": lambda a, b, c: gc.ops.softcap(a, pick.choice([1.0, 0.0, -1.0])),
        "rms_norm": lambda a, b, c: gc.ops.rms_norm(a, b),
        "rope": lambda a, b, c: gc.ops.rope(a, b),
        "gelu_tanh": lambda a, b, c: gc.ops.gelu_tanh(a),
        "geglu": lambda a, b, c: gc.ops.geglu(a, b),
        "linear": lambda a, b, c: gc.ops.linear(a, b, bias=c if pick.random() < 0.3 else None),
        "out": lambda a, b, c: gc.ops.softcap(a, 1.0, out=b),
        "moe_route": lambda a, b, c: gc.ops.moe_route(
            a, pick.choice([0, 1, 2, 5]), per_expert_scale=b if pick.random() < 0.3 else None),
        "moe": lambda a, b, c: gc.ops.moe(a, b, c, pick.choice(experts), pick.choice(experts)),
        "layer_norm": lambda a, b, c: gc.ops.layer_norm(a, b, c if pick.random() < 0.5 else None),
        "rg_lru": lambda a, b, c: gc.ops.rg_lru(a, b, c, pick.choice(pool),
                                                h0=pick.choice(pool) if pick.random() < 0.3 else None),
        "conv1d_temporal": lambda a, b, c: gc.ops.conv1d_temporal(
            a, b, c if pick.random() < 0.5 else None,
            state=pick.choice(pool) if pick.random() < 0.3 else None),
        "dequantize": lambda a, b, c: gc.ops.dequantize(pick.choice(quantized)),
        "quantized_linear": lambda a, b, c: gc.ops.linear(a, pick.choice(quantized)),
        "sae_encode": lambda a, b, c: gc.ops.sae_encode(
            a, b, c if pick.random() < 0.5 else None, k=pick.choice([None, 0, 1, 3, -1]),
            dense=pick.random() < 0.5),
        "sae_decode": lambda a, b, c: gc.ops.sae_decode(a, b, c if pick.random() < 0.5 else None),
    }
    calls = 0
    for name, op in ops.items():
        for _ in range(400):
            args = [pick.choice(pool) for _ in range(3)]
            try:
                op(*args)
            except (TypeError, ValueError, NotImplementedError):
                pass
            calls += 1
    print("calls", calls)
""")


def test_garbage_inputs_raise_python_errors_not_crashes():
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"child died ({proc.returncode}):\n{proc.stderr[-3000:]}"
    assert "calls 6800" in proc.stdout


# Inputs that once killed the interpreter, each named before it runs so that a crash says which.
# Every case must return or raise TypeError, ValueError, NotImplementedError or MemoryError.
TARGETED = textwrap.dedent(r"""
    import sys
    import numpy as np
    import gemmacpp as gc
    from numpy.lib.stride_tricks import as_strided
    from gemmacpp.quant import QuantizedTensor

    def huge(*shape):  # a zero-stride array of any shape over one float
        return as_strided(np.zeros(1, np.float32), shape, (0,) * len(shape))

    f32 = lambda *s: np.ones(s, np.float32)
    cases = {
        "linear output [2**40, 2**24]": lambda: gc.ops.linear(huge(2**40, 8), huge(2**24, 8)),
        "linear output [2**33, 2**31]": lambda: gc.ops.linear(huge(2**33, 8), huge(2**31, 8)),
        "dequantize (2**32, 2**36)": lambda: gc.ops.dequantize(
            QuantizedTensor(np.zeros(0, np.uint8), "Q8_0", (2**32, 2**36))),
        "dequantize (2**60, 256)": lambda: gc.ops.dequantize(
            QuantizedTensor(np.zeros(0, np.uint8), "Q8_0", (2**60, 256))),
        "quantized linear (2**60, 256)": lambda: gc.ops.linear(
            f32(1, 256), QuantizedTensor(np.zeros(0, np.uint8), "Q4_K", (2**60, 256))),
        "moe experts (2**40, 2**30, 32)": lambda: gc.ops.moe(
            f32(1, 32), np.zeros((1, 1), np.int32), f32(1, 1),
            QuantizedTensor(np.zeros(0, np.uint8), "Q8_0", (2**40, 2**30, 32)),
            QuantizedTensor(np.zeros(0, np.uint8), "Q8_0", (2**40, 32, 2**29))),
        "rg_lru width 0": lambda: gc.ops.rg_lru(f32(1, 3, 0), f32(1, 3, 0), f32(1, 3, 0), f32(0)),
        "rg_lru batch 0": lambda: gc.ops.rg_lru(f32(0, 3, 4), f32(0, 3, 4), f32(0, 3, 4), f32(4)),
        "rg_lru time 0": lambda: gc.ops.rg_lru(f32(1, 0, 4), f32(1, 0, 4), f32(1, 0, 4), f32(4)),
        "conv1d_temporal width 0": lambda: gc.ops.conv1d_temporal(f32(1, 3, 0), f32(4, 0)),
        "conv1d_temporal time 0": lambda: gc.ops.conv1d_temporal(f32(1, 0, 4), f32(4, 4)),
        "softcap [2**62, 4] zero-stride": lambda: gc.ops.softcap(huge(2**62, 4), 1.0),
        "geglu [2**40, 2**30] zero-stride": lambda: gc.ops.geglu(huge(2**40, 2**30), huge(2**40, 2**30)),
    }
    for name, case in cases.items():
        print("case", name, flush=True)
        try:
            case()
        except (TypeError, ValueError, NotImplementedError, MemoryError) as e:
            print("   ", type(e).__name__, str(e)[:200], flush=True)
    print("done", len(cases))
""")


def test_targeted_crash_cases_raise_python_errors():
    proc = subprocess.run([sys.executable, "-c", TARGETED], capture_output=True, text=True,
                          timeout=600)
    last = [line for line in proc.stdout.splitlines() if line.startswith("case")][-1:]
    assert proc.returncode == 0, f"child died ({proc.returncode}) in {last}:\n{proc.stderr[-3000:]}"
    assert "done" in proc.stdout


# Garbage into every public entry point of a loaded model, the tokenizer and the file readers.
ENTRY_POINTS = textwrap.dedent(r"""
    import random, sys
    import numpy as np
    import gemmacpp as gc
    from gemmacpp import weights

    pick = random.Random(0)
    m = gc.load(sys.argv[1])
    tok = m.tokenizer
    cache = m.new_cache(2, 32)
    garbage = [None, 0, -1, 2**63, 2**64, 2.5, float("nan"), True, "", "text", "ab\ud800", b"bytes",
               [], [[]], [1, 2], [[1], [2, 3]], [2.7, 3.1], [-5], [10**9], [[1, 2], "x"], {}, {5: 1},
               np.zeros((2, 0), np.int64), np.ones((2, 3), np.float32), np.ones((1, 2, 3), np.int64),
               np.array([1, 2], ">i8"), object(), cache, lambda *a: None]
    g = lambda: pick.choice(garbage)
    calls = {
        "forward": lambda: m.forward(g(), cache=pick.choice([None, g()]), lengths=pick.choice([None, g()]),
                                     last_only=pick.choice([False, g()])),
        "run_with_cache": lambda: m.run_with_cache(g(), names=pick.choice([None, g()])),
        "new_cache": lambda: m.new_cache(g(), g()),
        "generate": lambda: m.generate(g(), max_new_tokens=pick.choice([1, g()]),
                                       temperature=pick.choice([0.0, g()]), top_k=pick.choice([None, g()]),
                                       top_p=pick.choice([None, g()]), seed=pick.choice([None, g()]),
                                       stop=pick.choice([None, g()])),
        "loglikelihood": lambda: m.loglikelihood(pick.choice([g(), [(g(), g())]]),
                                                 batch_size=pick.choice([1, g()]),
                                                 max_length=pick.choice([None, g()])),
        "loglikelihood_rolling": lambda: m.loglikelihood_rolling(pick.choice([g(), [g()]]),
                                                                 max_length=pick.choice([None, g()])),
        "hooks": lambda: m.hooks({g() if pick.random() < 0.5 else "hook_embed": g()}).__enter__(),
        "encode": lambda: tok.encode(g(), add_bos=pick.choice([True, g()])),
        "decode": lambda: tok.decode(g()),
        "select": lambda: cache.select(g()),
        "load": lambda: gc.load(g()),
        "weights.open": lambda: weights.open(g()),
    }
    n = 0
    for name, call in calls.items():
        for _ in range(60):
            try:
                call()
            except (TypeError, ValueError, NotImplementedError, MemoryError, OSError):
                pass
            n += 1
    print("calls", n)
""")


def test_garbage_into_entry_points_raises_python_errors(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    sys.path.insert(0, os.path.dirname(__file__))
    import tiny_lm
    tiny_lm.build_checkpoint(str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", ENTRY_POINTS, str(tmp_path)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"child died ({proc.returncode}):\n{proc.stderr[-3000:]}"
    assert "calls 720" in proc.stdout
