"""The tensor layer, exercised through softcap (the simplest op): which arrays go in, what comes
out, zero-copy writes, strides, and DLPack in both of its forms."""
import ml_dtypes
import numpy as np
import pytest

import gemmacpp as gc
from util import assert_close, random

torch = pytest.importorskip("torch")


def ref(x, cap=3.0):
    return cap * np.tanh(np.asarray(x, np.float64) / cap)


def test_numpy_in_numpy_out(rng):
    x = random(rng, (5, 9))
    y = gc.ops.softcap(x, 3.0)
    assert type(y) is np.ndarray and y.dtype == np.float32
    assert_close(y, ref(x))


def test_bfloat16_numpy_round_trip(rng):
    x = random(rng, (3, 70), "bfloat16")
    y = gc.ops.softcap(x, 3.0)
    assert y.dtype == ml_dtypes.bfloat16
    assert_close(y, ref(x.astype(np.float64)), "bfloat16")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_torch_in_torch_out(rng, dtype):
    x = torch.from_numpy(random(rng, (4, 33))).to(dtype)
    y = gc.ops.softcap(x, 3.0)
    assert isinstance(y, torch.Tensor) and y.dtype == dtype and y.device.type == "cpu"
    assert_close(y, ref(x.float().numpy()), {torch.float32: "float32", torch.float16: "float16",
                                            torch.bfloat16: "bfloat16"}[dtype])


def test_torch_out_is_written_in_place_without_copies(rng):
    x = torch.from_numpy(random(rng, (8, 16)))
    expected = ref(x.numpy())
    assert gc.ops.softcap(x, 3.0, out=x) is x  # in place: the op wrote into torch's memory
    assert_close(x, expected)


def test_torch_strided_views_are_read_right(rng):
    base = torch.from_numpy(random(rng, (6, 10)))
    for view in (base.t(), base[:, 1::3], base[::2], base.t()[1:, ::2]):
        assert_close(gc.ops.softcap(view, 3.0), ref(view.numpy()))


def test_numpy_negative_and_zero_strides(rng):
    x = random(rng, (7, 5))
    assert_close(gc.ops.softcap(x[::-1, ::-2], 3.0), ref(x[::-1, ::-2]))
    b = np.broadcast_to(x[:1], (4, 5))  # stride 0
    assert_close(gc.ops.softcap(b, 3.0), ref(b))


def test_empty_and_scalar_arrays():
    assert gc.ops.softcap(np.zeros((0, 3), np.float32), 3.0).shape == (0, 3)
    y = gc.ops.softcap(np.array(2.0, np.float32), 3.0)
    assert y.shape == () and y == pytest.approx(3 * np.tanh(2 / 3), rel=1e-6)


def test_jax_in_jax_out(rng):
    jnp = pytest.importorskip("jax.numpy")
    x = random(rng, (3, 11))
    y = gc.ops.softcap(jnp.asarray(x), 3.0)
    assert type(y).__module__.split(".")[0] in ("jax", "jaxlib")
    assert_close(np.asarray(y), ref(x))


class LegacyProducer:
    """A producer that only speaks pre-1.0 DLPack (no max_version keyword)."""

    def __init__(self, tensor):
        self.t = tensor

    def __dlpack__(self, stream=None):
        return self.t.__dlpack__()

    def __dlpack_device__(self):
        return self.t.__dlpack_device__()


def test_legacy_dlpack_producer(rng):
    x = torch.from_numpy(random(rng, (2, 9)))
    y = gc.ops.softcap(LegacyProducer(x), 3.0)
    assert type(y) is np.ndarray  # unknown producer types get NumPy back
    assert_close(y, ref(x.numpy()))


def test_results_export_through_dlpack(rng):
    x = random(rng, (4, 4))
    t = gc._core.softcap(x, 3.0, None)  # the raw result object
    for consume in (np.from_dlpack, torch.from_dlpack):
        assert_close(np.asarray(consume(t)), ref(x))
    assert t.__dlpack_device__() == (1, 0)
    assert t.shape == (4, 4) and t.dtype == "float32" and t.device == "cpu"


def test_read_only_out_is_refused(rng):
    out = np.zeros((2, 3), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        gc.ops.softcap(np.ones((2, 3), np.float32), 3.0, out=out)


@pytest.mark.parametrize("bad", [None, [1.0, 2.0], "x", 3.0, object()])
def test_non_arrays_are_refused_by_name(bad):
    with pytest.raises(TypeError, match="softcap: x"):
        gc.ops.softcap(bad, 3.0)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.int64, np.bool_, np.complex64])
def test_unsupported_dtypes_are_named(dtype):
    with pytest.raises(TypeError, match="softcap: x"):
        gc.ops.softcap(np.ones(4, dtype), 3.0)


@pytest.mark.parametrize("bad_out, error, match", [
    (np.zeros((2, 4), np.float32), ValueError, "shape"),
    (np.zeros((2, 3), np.float16), TypeError, "dtype"),
    ([0.0] * 6, TypeError, "softcap: out"),
])
def test_bad_out(bad_out, error, match):
    with pytest.raises(error, match=match):
        gc.ops.softcap(np.ones((2, 3), np.float32), 3.0, out=bad_out)


@pytest.mark.gpu
def test_cuda_tensor_in_cuda_tensor_out(rng):
    x = torch.from_numpy(random(rng, (64, 1000))).cuda()
    y = gc.ops.softcap(x, 3.0)
    assert y.is_cuda and y.device == x.device
    assert_close(y.cpu(), ref(x.cpu().numpy()))


@pytest.mark.parametrize("dtype", [">f4", ">f2", ">i4", ">i8"])
def test_non_native_byte_order_is_refused(dtype):
    """A byte-swapped array would be read as native words (1.0 as 4.6e-41): refused by name."""
    a = np.ones(4, dtype)
    with pytest.raises(TypeError, match="byte order"):
        gc.ops.gelu_tanh(a) if a.dtype.kind == "f" else gc.ops.rope(np.ones((1, 4, 1, 8), np.float32), a)
    # Native order, spelled explicitly, is accepted.
    np.testing.assert_array_equal(gc.ops.softcap(np.ones(4, "<f4"), 1e30), np.ones(4, np.float32))
