"""Every op test runs once per SIMD target that this build compiled and this CPU supports
(gc._core.simd_targets_supported(), e.g. AVX3, AVX2, SSE4, SCALAR), not only on the one that
dispatch picks: a kernel that is wrong, or falls back to a slow generic path, on one vector width
shows up on a machine that has it, whichever target the machine's users get. The target is the
first part of each test's id (test_x[AVX2-...]); dispatch goes back to the best target after
each test. The CUDA variants of the tests run once, under the best target."""
import pytest

import gemmacpp as gc

TARGETS = gc._core.simd_targets_supported()


@pytest.fixture(autouse=True, params=TARGETS)
def simd_target(request):
    gc._core.set_simd_target(request.param)
    try:
        yield request.param
    finally:
        gc._core.set_simd_target(None)


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        lesser = params.get("simd_target", TARGETS[0]) != TARGETS[0]
        (drop if "gpu" in item.keywords and lesser else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
