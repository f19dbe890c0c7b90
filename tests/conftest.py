import zlib
import numpy as np
import pytest

import gemmacpp as gc


@pytest.fixture
def rng(request):
    """A generator seeded by the test's name: reproducible, different per test."""
    seed = zlib.crc32(request.node.nodeid.encode())  # not hash(): str hashes change per process
    return np.random.default_rng(seed)


def pytest_collection_modifyitems(config, items):
    if any(d.startswith("cuda") for d in gc.devices()):
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
