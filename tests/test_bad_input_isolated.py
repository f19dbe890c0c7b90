"""Garbage into every op, in a child process: each call must either work or raise TypeError,
ValueError or NotImplementedError. A crash of the interpreter (segfault, abort) fails this test
instead of taking the whole test run down with it."""
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(r"""
    import itertools, random
    import numpy as np, ml_dtypes
    import gemmacpp as gc

    rng = np.random.default_rng(0)
    pick = random.Random(0)

    def arrays():
        shapes = [(), (0,), (1,), (3,), (2, 0, 4), (2, 3), (1, 4, 2, 8), (2, 5, 4, 8), (1, 1, 1, 1),
                  (2, 3, 4, 5, 6)]
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
    assert "calls 4000" in proc.stdout
