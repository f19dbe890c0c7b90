"""Process-wide settings: threads and devices."""
from . import _core


def set_num_threads(n: int) -> None:
    """Use n threads for CPU kernels (0: as many as this process may use). Results do not
    depend on n: work is split the same way whatever it is."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    return _core.get_num_threads()


def devices() -> list:
    """Devices gemmacpp can run on: ["cpu"], plus "cuda:N" for each visible GPU when this build
    has the CUDA backend."""
    return list(_core.devices())


def simd_target() -> str:
    """The SIMD instruction set the CPU kernels use on this machine (e.g. "AVX2")."""
    return _core.simd_target()
