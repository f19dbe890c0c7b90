"""gc.load(..., activations="int8"): tiny quantized Gemma 3 GGUF files (test_gemma_gguf's writer)
run with every quantized projection's input rounded to int8 per block. The logits stay close to
the exact path's (the bound below), rows do not depend on the batch, greedy generation runs, and
bad values are refused by name."""
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")

import gemmacpp as gc  # noqa: E402
from gemmacpp.generate import generate_ids  # noqa: E402
from test_gemma_gguf import K_QUANT_SIZES, VOCAB, random_model, write_gguf  # noqa: E402

# The int8 rounding moves each input of a projection by at most 1/254 of its block's max |x|.
# Through these five-layer random models it moved the logits by at most 2.0 % (Q4_K), 4.1 % (Q8_0)
# and 3.1 % (Q4_0) of max |logit|, with mean KL(exact || int8) per token 1.1e-3, 2.4e-4 and
# 1.9e-4 nats. The bounds are twice to five times that; a wrong block, scale or min in any
# projection moves the logits by tens of percent.
MAX_REL_DIFF = 0.08
MAX_MEAN_KL = 5e-3


def log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@pytest.fixture(scope="module", params=["Q4_K", "Q8_0", "Q4_0"])
def gguf_path(request, tmp_path_factory):
    qtype = request.param
    model = random_model("gemma3", **(K_QUANT_SIZES if qtype.endswith("_K") else {}))
    path = tmp_path_factory.mktemp("int8") / f"gemma3-{qtype}.gguf"
    write_gguf(model, "gemma3", qtype, path)
    return path


def tokens(b, t, seed=7):
    return np.random.default_rng(seed).integers(0, VOCAB, size=(b, t))


def test_int8_logits_close_to_exact_path(gguf_path):
    exact, int8 = gc.load(gguf_path), gc.load(gguf_path, activations="int8")
    assert exact.activations == "float32" and int8.activations == "int8"
    ids = tokens(2, 19)
    a, b = exact.forward(ids), int8.forward(ids)
    rel = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
    print(f"{gguf_path.name}: max |int8 - exact| / max |exact| = {rel:.2e}")
    assert 0 < rel <= MAX_REL_DIFF, rel  # close, and really the other arithmetic
    la, lb = log_softmax(a), log_softmax(b)
    kl = float((np.exp(la) * (la - lb)).sum(-1).mean())
    assert kl <= MAX_MEAN_KL, kl
    # The rounding is per row of activations: a fresh load in the default mode is exact again.
    np.testing.assert_array_equal(gc.load(gguf_path, activations="float32").forward(ids), a)


def test_int8_rows_do_not_depend_on_the_batch(gguf_path):
    m = gc.load(gguf_path, activations="int8")
    ids = tokens(3, 11, seed=3)
    batched = m.forward(ids)
    for i in range(3):
        np.testing.assert_array_equal(m.forward(ids[i:i + 1]), batched[i:i + 1])


def test_int8_decode_equals_prefill(gguf_path):
    # Token by token through a cache (one row per matrix product: the matrix-vector kernels)
    # against one forward of the whole sequence (many rows: the matrix-matrix kernels), and a
    # lone last row (last_only): bitwise the same logits.
    m = gc.load(gguf_path, activations="int8")
    ids = [int(t) for t in tokens(1, 9, seed=5)[0]]
    alone = m.forward([ids])[0]
    cache = m.new_cache(batch=1, max_len=16)
    for t, tok in enumerate(ids):
        np.testing.assert_array_equal(m.forward([tok], cache=cache)[0, 0], alone[t])
    np.testing.assert_array_equal(m.forward([ids], last_only=True)[0, 0], alone[-1])


def test_int8_greedy_generation_runs(gguf_path):
    m = gc.load(gguf_path, activations="int8")
    out = list(generate_ids(m, [2, 5, 9, 11], max_new_tokens=6))
    assert len(out) == 6 and all(0 <= t < VOCAB for t in out)
    # Greedy ids equal the argmax of a full forward over the growing sequence.
    seq = [2, 5, 9, 11]
    for t in out:
        assert t == int(np.argmax(m.forward(np.array([seq]))[0, -1]))
        seq.append(t)


def test_bad_activations_are_refused(gguf_path):
    with pytest.raises(ValueError, match=r"load: activations must be 'float32' .* or 'int8'.*got 'int4'"):
        gc.load(gguf_path, activations="int4")
    with pytest.raises(TypeError, match=r"load: activations must be 'float32' or 'int8', got None"):
        gc.load(gguf_path, activations=None)
