import numpy as np
import pytest

import gemmacpp as gc
from util import assert_close, random, to_f64


def softcap_ref(x, cap):
    return cap * np.tanh(to_f64(x) / cap)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 17), (2, 5, 129), (40000,)])
def test_matches_reference(rng, dtype, shape):
    x = random(rng, shape, dtype, scale=40.0)
    y = gc.ops.softcap(x, 30.0)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert_close(y, softcap_ref(x, 30.0), dtype)


def test_saturates_and_keeps_sign():
    x = np.array([-1e6, -50.0, 0.0, 50.0, 1e6], np.float32)
    y = gc.ops.softcap(x, 50.0)
    assert_close(y, softcap_ref(x, 50.0))
    assert y[0] == pytest.approx(-50.0) and y[-1] == pytest.approx(50.0)


def test_strided_input_is_read_right(rng):
    x = random(rng, (6, 40))[::2, ::3]
    assert_close(gc.ops.softcap(x, 5.0), softcap_ref(x, 5.0))


def test_out_written_in_place(rng):
    x = random(rng, (4, 33))
    out = np.full_like(x, np.nan)
    assert gc.ops.softcap(x, 5.0, out=out) is out
    assert_close(out, softcap_ref(x, 5.0))


def test_strided_out(rng):
    x = random(rng, (4, 10))
    buf = np.zeros((4, 20), np.float32)
    gc.ops.softcap(x, 5.0, out=buf[:, ::2])
    assert_close(buf[:, ::2], softcap_ref(x, 5.0))
    assert np.all(buf[:, 1::2] == 0)


def test_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(random(rng, (3, 50), scale=10.0)).to(torch.bfloat16)
    y = gc.ops.softcap(x, 4.0)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.bfloat16
    assert_close(y, softcap_ref(x, 4.0), "bfloat16")


@pytest.mark.parametrize("cap", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_cap(cap):
    with pytest.raises(ValueError, match="cap"):
        gc.ops.softcap(np.ones(3, np.float32), cap)
