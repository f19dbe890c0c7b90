"""Shared test helpers: dtype handling and the closeness criterion against float64 references."""
import ml_dtypes
import numpy as np
import pytest

DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}

# Max abs error allowed, relative to the largest |reference| value: float32 must match the float64
# reference to 1e-5; half types are judged against the rounding of their own format (the
# reference is computed from the same rounded inputs, so only output rounding and float32
# arithmetic remain).
# The device axis of the op tests: "cuda" runs only where gemmacpp sees a GPU (conftest.py skips
# tests marked gpu otherwise) and torch has CUDA (on_device skips otherwise).
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def on_device(a, device):
    """A NumPy array as an op input on `device`: the array itself on "cpu", a torch tensor of the
    same dtype and values on "cuda"."""
    if device == "cpu":
        return a
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    a = np.ascontiguousarray(a)
    if a.dtype == DTYPES["bfloat16"]:  # torch.from_numpy does not take ml_dtypes' bfloat16
        return torch.from_numpy(a.astype(np.float32)).to(device, torch.bfloat16)
    return torch.from_numpy(a).to(device)


RTOL = {"float32": 1e-5, "float16": 2.0**-10, "bfloat16": 2.0**-7}

# The SIMD targets (tests/ops/conftest.py runs the op tests on each) whose multiply-add is fused,
# one rounding; on the others (SSE4, SCALAR) it rounds the product and then the sum.
FMA_TARGETS = {"AVX3_DL", "AVX3", "AVX2"}


def to_f64(a) -> np.ndarray:
    """Any array (NumPy incl. bfloat16, torch, JAX) as a float64 NumPy array."""
    if hasattr(a, "detach"):  # torch
        a = a.detach().cpu().float().numpy()
    return np.asarray(a).astype(np.float64)


def random(rng, shape, dtype="float32", scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(DTYPES[dtype])


def assert_close(actual, reference, dtype="float32", rtol=None):
    actual, reference = to_f64(actual), np.asarray(reference, dtype=np.float64)
    assert actual.shape == reference.shape, (actual.shape, reference.shape)
    assert np.all(np.isfinite(actual)), "non-finite values in the result"
    rtol = RTOL[dtype] if rtol is None else rtol
    scale = max(np.abs(reference).max(initial=0.0), 1e-30)
    err = np.abs(actual - reference).max(initial=0.0)
    assert err <= rtol * scale, f"max abs error {err:.3g} > {rtol:.3g} * {scale:.3g} ({dtype})"


def child_env(**extra) -> dict:
    """os.environ for a child Python that imports the same gemmacpp as this process (the source
    tree's python/ in a dev build, site-packages in an installed one)."""
    import os

    import gemmacpp
    root = os.path.dirname(os.path.dirname(os.path.abspath(gemmacpp.__file__)))
    path = os.pathsep.join(p for p in [root, os.environ.get("PYTHONPATH")] if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


def on_every_target_and_thread_count(fn, threads=(1, 2)) -> list:
    """fn()'s results under every SIMD target this CPU supports and each thread count, in that
    order (to compare their bits); dispatch and the thread count are restored after."""
    import gemmacpp as gc

    saved, target = gc.get_num_threads(), gc.simd_target()
    results = []
    try:
        for t in gc._core.simd_targets_supported():
            gc._core.set_simd_target(t)
            for n in threads:
                gc.set_num_threads(n)
                results.append(fn())
    finally:
        gc.set_num_threads(saved)
        gc._core.set_simd_target(target)
    return results
