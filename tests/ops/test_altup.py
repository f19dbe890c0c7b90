"""altup_predict, altup_correct and altup_rescale (Gemma 3n's AltUp streams) against float64
references of transformers' Gemma3nTextAltUp.predict / .correct, given the router's logits, and of
Gemma3nTextModel's magnitude matching of the spread and gathered streams."""
import numpy as np
import pytest

import gemmacpp as gc
from util import DEVICES, assert_close, on_device, on_every_target_and_thread_count, random, to_f64


def predict_ref(streams, logits, coefs):
    h, m = to_f64(streams), np.tanh(to_f64(logits))
    N = h.shape[0]
    c = (m @ to_f64(coefs).T).reshape(*m.shape[:-1], N, N)  # [..., k, n]
    return h + np.einsum("...kn,n...d->k...d", c, h)


def correct_ref(pred, activated, logits, coefs):
    p, m = to_f64(pred), np.tanh(to_f64(logits))
    c = m @ to_f64(coefs).T + 1.0  # [..., N]
    innovation = to_f64(activated) - p[0]
    return p + np.moveaxis(c, -1, 0)[..., None] * innovation[None]


def rescale_ref(streams, eps=1e-5):
    h = to_f64(streams)
    target = np.sqrt((h[0] ** 2).mean(-1, keepdims=True))
    magnitude = np.sqrt(np.maximum((h[1:] ** 2).mean(-1, keepdims=True), eps))
    return np.concatenate([h[:1], h[1:] * target / magnitude])


def inputs(rng, N, rows, d):
    streams = random(rng, (N, *rows, d))
    logits = random(rng, (*rows, N), scale=2.0)
    pred_coefs = random(rng, (N * N, N), scale=0.5)
    corr_coefs = random(rng, (N, N), scale=0.5)
    activated = random(rng, (*rows, d))
    return streams, logits, pred_coefs, corr_coefs, activated


# d up to 9000: several column chunks per row (the kernel splits a row into tasks).
SHAPES = [(1, (1,), 1), (2, (3,), 7), (3, (2, 5), 33), (4, (1,), 2048), (4, (7,), 9000), (7, (4,), 130),
          (16, (3,), 65), (4, (), 40)]


@pytest.mark.parametrize("N,rows,d", SHAPES)
def test_predict_matches_reference(rng, N, rows, d):
    streams, logits, coefs, _, _ = inputs(rng, N, rows, d)
    y = gc.ops.altup_predict(streams, logits, coefs)
    assert y.shape == streams.shape and y.dtype == np.float32
    assert_close(y, predict_ref(streams, logits, coefs))


@pytest.mark.parametrize("N,rows,d", SHAPES)
def test_correct_matches_reference(rng, N, rows, d):
    pred, logits, _, coefs, activated = inputs(rng, N, rows, d)
    y = gc.ops.altup_correct(pred, activated, logits, coefs)
    assert y.shape == pred.shape and y.dtype == np.float32
    assert_close(y, correct_ref(pred, activated, logits, coefs))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("N,rows,d", [(4, (3,), 2048), (3, (2, 5), 33), (16, (1,), 300)])
def test_on_each_device(rng, device, N, rows, d):
    streams, logits, pc, cc, activated = inputs(rng, N, rows, d)
    s, lg, p, c, a = (on_device(t, device) for t in (streams, logits, pc, cc, activated))
    assert_close(gc.ops.altup_predict(s, lg, p), predict_ref(streams, logits, pc))
    assert_close(gc.ops.altup_correct(s, a, lg, c), correct_ref(streams, activated, logits, cc))
    assert_close(gc.ops.altup_rescale(s), rescale_ref(streams))


@pytest.mark.parametrize("N,rows,d", SHAPES)
def test_rescale_matches_reference(rng, N, rows, d):
    streams = inputs(rng, N, rows, d)[0] * np.float32(3.0)
    streams[1:] *= rng.uniform(0.1, 10.0, size=(N - 1,) + (1,) * (streams.ndim - 1)).astype(np.float32)
    y = gc.ops.altup_rescale(streams)
    assert y.shape == streams.shape and y.dtype == np.float32
    assert_close(y, rescale_ref(streams))
    assert np.array_equal(y[0], streams[0])


def test_rescale_clamps_small_magnitudes(rng):
    # A stream of (nearly) zeros is divided by sqrt(eps), not by its own tiny magnitude.
    streams = random(rng, (3, 4, 64))
    streams[1] = 0.0
    streams[2] *= np.float32(1e-4)
    assert_close(gc.ops.altup_rescale(streams), rescale_ref(streams))
    assert_close(gc.ops.altup_rescale(streams, eps=1e-2), rescale_ref(streams, 1e-2))
    assert np.all(gc.ops.altup_rescale(streams)[1] == 0.0)


def test_in_place_as_the_model_runs_them(rng):
    streams, logits, pc, cc, activated = inputs(rng, 4, (6,), 300)
    want_p = predict_ref(streams, logits, pc)
    assert gc.ops.altup_predict(streams, logits, pc, out=streams) is streams
    assert_close(streams, want_p)
    want_c = correct_ref(streams, activated, logits, cc)
    assert gc.ops.altup_correct(streams, activated, logits, cc, out=streams) is streams
    assert_close(streams, want_c)
    want_r = rescale_ref(streams)
    assert gc.ops.altup_rescale(streams, out=streams) is streams
    assert_close(streams, want_r)


def test_strided_inputs_and_out(rng):
    streams, logits, pc, cc, activated = inputs(rng, 3, (4,), 80)
    s = np.repeat(streams, 2, axis=-1)[..., ::2]
    a = np.repeat(activated, 2, axis=-1)[..., ::2]
    lg = np.repeat(logits, 2, axis=0)[::2]
    buf = np.zeros((3, 4, 160), np.float32)
    gc.ops.altup_predict(s, lg, pc.T.copy().T, out=buf[..., ::2])
    assert_close(buf[..., ::2], predict_ref(streams, logits, pc))
    assert np.all(buf[..., 1::2] == 0)
    assert_close(gc.ops.altup_correct(s, a, lg, cc.T.copy().T), correct_ref(streams, activated, logits, cc))
    assert_close(gc.ops.altup_rescale(s), rescale_ref(streams))


def test_torch_in_torch_out(rng):
    torch = pytest.importorskip("torch")
    streams, logits, pc, cc, activated = (torch.from_numpy(a) for a in inputs(rng, 4, (2, 3), 64))
    p = gc.ops.altup_predict(streams, logits, pc)
    assert isinstance(p, torch.Tensor) and p.shape == streams.shape
    assert_close(p, predict_ref(streams, logits, pc))
    c = gc.ops.altup_correct(p, activated, logits, cc)
    assert isinstance(c, torch.Tensor)
    assert_close(c, correct_ref(p, activated, logits, cc))


def test_same_bits_for_any_thread_count_and_target(rng):
    # Products and sums round separately on every target (no fused multiply-add), so the bits
    # depend neither on the thread count nor on the SIMD target.
    streams, logits, pc, cc, activated = inputs(rng, 4, (5,), 9000)
    results = on_every_target_and_thread_count(lambda: (
        gc.ops.altup_predict(streams, logits, pc),
        gc.ops.altup_correct(streams, activated, logits, cc),
        gc.ops.altup_rescale(streams)))
    for got in results[1:]:
        assert all(np.array_equal(g, w) for g, w in zip(got, results[0]))


def test_bad_input_names_the_problem(rng):
    streams, logits, pc, cc, activated = inputs(rng, 4, (3,), 8)
    with pytest.raises(TypeError, match="altup_predict: streams must be float32"):
        gc.ops.altup_predict(streams.astype(np.float16), logits, pc)
    with pytest.raises(TypeError, match="altup_correct: coefs must be float32"):
        gc.ops.altup_correct(streams, activated, logits, cc.astype(np.float64))
    with pytest.raises(ValueError, match="altup_predict: router_logits"):
        gc.ops.altup_predict(streams, logits[:, :3], pc)
    with pytest.raises(ValueError, match="altup_predict: coefs"):
        gc.ops.altup_predict(streams, logits, cc)
    with pytest.raises(ValueError, match="altup_correct: coefs"):
        gc.ops.altup_correct(streams, activated, logits, pc)
    with pytest.raises(ValueError, match="altup_correct: activated"):
        gc.ops.altup_correct(streams, activated[:, :4], logits, cc)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        gc.ops.altup_predict(streams[:, 0, 0], logits[0], pc)
    with pytest.raises(ValueError, match="17 streams"):
        gc.ops.altup_predict(random(rng, (17, 2, 4)), random(rng, (2, 17)), random(rng, (289, 17)))
    with pytest.raises(ValueError, match="out"):
        gc.ops.altup_predict(streams, logits, pc, out=np.zeros((4, 3, 9), np.float32))
    with pytest.raises(TypeError, match="altup_rescale: streams must be float32"):
        gc.ops.altup_rescale(streams.astype(np.float64))
    with pytest.raises(ValueError, match="altup_rescale: streams must be"):
        gc.ops.altup_rescale(streams[:, 0, 0])
    for eps in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="altup_rescale: eps"):
            gc.ops.altup_rescale(streams, eps=eps)
