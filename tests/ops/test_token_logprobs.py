import numpy as np
import pytest

import gemmacpp as gc


def token_logprobs_ref(logits, targets):
    """float64 log-softmax at the targets, and NumPy's argmax."""
    z = np.asarray(logits, np.float64)
    m = z.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, which the op must give too
        lse = m[..., 0] + np.log(np.exp(z - m).sum(axis=-1))
    t = np.asarray(targets)
    return np.take_along_axis(z, t[..., None], axis=-1)[..., 0] - lse, np.asarray(logits).argmax(-1)


@pytest.mark.parametrize("shape", [(1,), (5,), (1, 7), (3, 17), (4, 40000), (2, 70001), (2, 3, 33),
                                   (1, 262144)])
def test_matches_reference(rng, shape):
    logits = (rng.standard_normal(shape) * 8).astype(np.float32)
    targets = rng.integers(0, shape[-1], size=shape[:-1])
    logp, argmax = gc.ops.token_logprobs(logits, targets)
    ref_logp, ref_argmax = token_logprobs_ref(logits, targets)
    assert logp.dtype == np.float64 and argmax.dtype == np.int64 and logp.shape == shape[:-1]
    np.testing.assert_allclose(logp, ref_logp, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(argmax, ref_argmax)


def test_int32_targets_and_strided_rows(rng):
    logits = rng.standard_normal((6, 3, 1000)).astype(np.float32)[::2, 1, ::1]
    targets = rng.integers(0, 1000, size=3).astype(np.int32)
    logp, argmax = gc.ops.token_logprobs(logits, targets)
    ref_logp, ref_argmax = token_logprobs_ref(logits, targets)
    np.testing.assert_allclose(logp, ref_logp, rtol=1e-13)
    np.testing.assert_array_equal(argmax, ref_argmax)


def test_ties_take_the_first_index_across_chunks():
    # The maximum appears in the first chunk of 32768 and again in a later one.
    logits = np.zeros((2, 100000), np.float32)
    logits[0, [50000, 99999]] = 3.0
    logits[1, [7, 40000]] = 3.0
    _, argmax = gc.ops.token_logprobs(logits, np.zeros(2, np.int64))
    assert argmax.tolist() == [50000, 7]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_logits_give_nan_as_the_formula_does(bad):
    logits = np.zeros((3, 70000), np.float32)
    logits[0, 12345] = bad
    logits[1, 69999] = bad
    logp, argmax = gc.ops.token_logprobs(logits, np.array([0, 1, 2]))
    ref_logp, ref_argmax = token_logprobs_ref(logits, np.array([0, 1, 2]))
    np.testing.assert_array_equal(logp, ref_logp)  # NaN where the reference has NaN
    np.testing.assert_array_equal(argmax, ref_argmax)
    assert np.isnan(logp[0]) == (bad != -np.inf)


def test_empty_rows():
    logp, argmax = gc.ops.token_logprobs(np.zeros((0, 9), np.float32), np.zeros(0, np.int64))
    assert logp.shape == (0,) and argmax.shape == (0,)


@pytest.mark.parametrize("logits, targets, error, match", [
    (np.zeros((2, 5), np.float64), np.zeros(2, np.int64), TypeError, "logits must be float32"),
    (np.zeros((2, 5), np.float32), np.zeros(2, np.float32), TypeError, "targets must be int32"),
    (np.zeros((2, 5), np.float32), np.zeros(3, np.int64), ValueError, "targets"),
    (np.zeros((2, 5), np.float32), np.array([0, 5]), ValueError, r"targets\[1\] = 5"),
    (np.zeros((2, 5), np.float32), np.array([-1, 0]), ValueError, r"targets\[0\] = -1"),
    (np.zeros((2, 0), np.float32), np.zeros(2, np.int64), ValueError, "empty vocabulary"),
    (np.array(1.0, np.float32), np.array(0), ValueError, "at least 1 dimension"),
])
def test_bad_input_is_named(logits, targets, error, match):
    with pytest.raises(error, match=match):
        gc.ops.token_logprobs(logits, targets)
