"""Results go back as the kind of array that came in: NumPy for NumPy, and through DLPack for
torch, JAX and CuPy, on the same device, without copies."""
import importlib

import numpy as np

from . import _core


def bfloat16() -> np.dtype:
    """NumPy's bfloat16 (ml_dtypes'), imported on first use: importing ml_dtypes registers its
    ufunc loops, about half of `import gemmacpp`'s time, and most programs never need it."""
    import ml_dtypes
    return np.dtype(ml_dtypes.bfloat16)


# The `from_dlpack` to use for arrays whose type lives in these top-level modules.
_FROM_DLPACK = {
    "torch": ("torch", "from_dlpack"),
    "jax": ("jax.dlpack", "from_dlpack"),
    "jaxlib": ("jax.dlpack", "from_dlpack"),
    "cupy": ("cupy", "from_dlpack"),
}


def to_numpy(t: "_core.Tensor") -> np.ndarray:
    a = np.asarray(t)  # buffer protocol: no copy, keeps `t` alive
    if t.dtype == "bfloat16":
        a = a.view(bfloat16())
    return a


def like(template, t: "_core.Tensor"):
    """`t` as the same kind of array as `template`."""
    if isinstance(template, np.ndarray):
        return to_numpy(t)
    root = type(template).__module__.split(".")[0]
    target = _FROM_DLPACK.get(root)
    if target is None:
        return to_numpy(t) if t.device == "cpu" else t
    module = importlib.import_module(target[0])
    return getattr(module, target[1])(t)


def result(template, out, t):
    """What an op returns: `out` when the caller gave one (the op wrote into it), else `t` as the
    kind of array `template` is."""
    if out is not None:
        return out
    return like(template, t)
