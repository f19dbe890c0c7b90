"""safetensors reader: files written by the `safetensors` package (NumPy and torch writers, so
bfloat16 too) read back bit for bit, zero copy; sharded checkpoints through their index; and
malformed headers (built here) raise ValueError naming the problem."""
import json
import struct

import ml_dtypes
import numpy as np
import pytest

st_numpy = pytest.importorskip("safetensors.numpy")

from gemmacpp import weights  # noqa: E402


def sample(rng):
    return {
        "model.embed_tokens.weight": rng.standard_normal((11, 8)).astype(np.float32),
        "model.layers.0.mlp.up_proj.weight": rng.standard_normal((6, 8)).astype(np.float16),
        "model.norm.weight": rng.standard_normal(8).astype(np.float32),
        "scalar": np.array(3.5, np.float32),
        "empty": np.zeros((0, 4), np.float32),
        "ints": rng.integers(-5, 5, (2, 3)).astype(np.int32),
        "longs": rng.integers(-5, 5, 4).astype(np.int64),
        "bytes": rng.integers(0, 255, 5).astype(np.uint8),
        "flags": np.array([True, False, True]),
        "doubles": rng.standard_normal(3),
        "3d": rng.standard_normal((2, 3, 4)).astype(np.float32),
    }


def check(f, tensors):
    assert sorted(f.names()) == sorted(tensors) and len(f) == len(tensors)
    for name, expected in tensors.items():
        got = f[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        assert not got.flags.writeable
        assert got.tobytes() == expected.tobytes(), name
        info = f.info(name)
        assert info.nbytes == expected.nbytes and info.type == expected.dtype.name
        raw = open(info.file, "rb").read()[info.offset:info.offset + info.nbytes]
        assert raw == expected.tobytes()


def test_roundtrip_numpy_writer(tmp_path, rng):
    tensors = sample(rng)
    path = tmp_path / "model.safetensors"
    st_numpy.save_file(tensors, str(path), metadata={"format": "pt", "note": "ünïcode"})
    f = weights.open(path)
    assert f.format == "safetensors"
    assert f.metadata == {"format": "pt", "note": "ünïcode"}
    check(f, tensors)
    assert "model.norm.weight" in f and "nope" not in f
    # A folder with model.safetensors opens the same file.
    g = weights.open(tmp_path)
    check(g, tensors)


def test_bfloat16_from_torch_writer(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    g = torch.Generator().manual_seed(0)
    t = {"w": torch.randn(5, 7, generator=g, dtype=torch.bfloat16),
         "h": torch.randn(3, generator=g, dtype=torch.float16)}
    path = tmp_path / "bf.safetensors"
    st_torch.save_file(t, str(path))
    f = weights.open(path)
    w = f["w"]
    assert w.dtype == np.dtype(ml_dtypes.bfloat16) and w.shape == (5, 7)
    assert np.array_equal(w.view(np.uint16), t["w"].view(torch.int16).numpy().view(np.uint16))
    assert np.array_equal(w.astype(np.float32), t["w"].float().numpy())
    assert f.info("w").type == "bfloat16"


def test_zero_copy_and_lifetime(tmp_path, rng):
    tensors = sample(rng)
    path = tmp_path / "m.safetensors"
    st_numpy.save_file(tensors, str(path))
    f = weights.open(path)
    a, b = f["3d"], f["3d"]
    assert np.shares_memory(a, b)
    del f
    import gc
    gc.collect()
    assert a.tobytes() == tensors["3d"].tobytes()


def write_shards(tmp_path, rng, n_shards=3):
    tensors = sample(rng)
    names = list(tensors)
    weight_map = {}
    for k in range(n_shards):
        shard = f"model-{k + 1:05d}-of-{n_shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[k::n_shards]}
        st_numpy.save_file(part, str(tmp_path / shard), metadata={"format": "pt"})
        weight_map.update({n: shard for n in part})
    index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())},
             "weight_map": weight_map}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    return tensors, index


def test_sharded_checkpoint(tmp_path, rng):
    tensors, index = write_shards(tmp_path, rng)
    for path in (tmp_path, tmp_path / "model.safetensors.index.json"):
        f = weights.open(path)
        check(f, tensors)
        assert f.metadata["total_size"] == index["metadata"]["total_size"]
        assert f.metadata["format"] == "pt"
        assert {f.info(n).file.rsplit("/", 1)[-1] for n in f} == set(index["weight_map"].values())


def test_sharded_errors(tmp_path, rng):
    tensors, index = write_shards(tmp_path, rng)
    idx = tmp_path / "model.safetensors.index.json"
    bad = dict(index, weight_map=dict(index["weight_map"], ghost="model-00001-of-00003.safetensors"))
    idx.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="'ghost'.*no such tensor"):
        weights.open(tmp_path)
    bad = dict(index, weight_map={"x": "../model-00001-of-00003.safetensors"})
    idx.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="must be a file name"):
        weights.open(tmp_path)
    bad = dict(index, weight_map={"x": "missing.safetensors"})
    idx.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="cannot open"):
        weights.open(tmp_path)
    idx.write_text(json.dumps({"metadata": {}}))
    with pytest.raises(ValueError, match="weight_map"):
        weights.open(tmp_path)
    idx.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        weights.open(tmp_path)
    # The same tensor in two shards.
    st_numpy.save_file({"model.norm.weight": np.ones(8, np.float32), "other": np.ones(1, np.float32)},
                       str(tmp_path / "dup.safetensors"))
    wm = dict(index["weight_map"])
    wm["other"] = "dup.safetensors"
    idx.write_text(json.dumps({"weight_map": wm}))
    with pytest.raises(ValueError, match="appears twice"):
        weights.open(tmp_path)


def test_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="neither"):
        weights.open(tmp_path)


# --- headers built by hand, to break any part of them ---------------------------------------

def build(header, data=b"", *, length=None, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def good_header():
    return {"__metadata__": {"format": "pt"},
            "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
            "b": {"dtype": "BF16", "shape": [4], "data_offsets": [16, 24]}}


def write(tmp_path, data):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(data)
    return p


def test_handbuilt_file_reads(tmp_path):
    data = np.arange(4, dtype=np.float32).tobytes() + np.arange(4).astype(ml_dtypes.bfloat16).tobytes()
    f = weights.open(write(tmp_path, build(good_header(), data)))
    assert f["a"].tolist() == [[0, 1], [2, 3]]
    assert f["b"].astype(np.float32).tolist() == [0, 1, 2, 3]


def test_every_truncation_is_a_clear_error(tmp_path):
    data = build(good_header(), bytes(24))
    for n in range(len(data)):
        with pytest.raises(ValueError, match="bad.safetensors"):
            weights.open(write(tmp_path, data[:n]))


def tensor(**fields):
    t = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    t.update(fields)
    return {"t": t}


BAD = {
    "header past end": (dict(length=10**6), "runs past the end of the file"),
    "huge header length": (dict(length=2**64 - 1), "runs past the end of the file"),
    "not json": (dict(raw_header=b"{\"t\": "), "invalid JSON"),
    "trailing comma": (dict(raw_header=b"{\"a\": 1,}"), "invalid JSON"),
    "bad utf-8": (dict(raw_header=b"{\"\xff\": 1}"), "invalid UTF-8"),
    "duplicate key": (dict(raw_header=b'{"t": {}, "t": {}}'), "duplicate key"),
    "deep nesting": (dict(raw_header=b"[" * 100 + b"]" * 100), "nesting too deep"),
    "not an object": (dict(raw_header=b"[1, 2]"), "not a JSON object"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_header(tmp_path, case):
    kwargs, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        weights.open(write(tmp_path, build(good_header(), bytes(24), **kwargs)))


BAD_TENSORS = {
    "unknown dtype": (tensor(dtype="F33"), 'unknown dtype "F33"'),
    "lowercase dtype": (tensor(dtype="f32"), 'unknown dtype "f32"'),
    "unsupported dtype": (tensor(dtype="F8_E4M3", shape=[8]), "not supported"),
    "dtype not a string": (tensor(dtype=4), "dtype"),
    "no shape": ({"t": {"dtype": "F32", "data_offsets": [0, 8]}}, "shape"),
    "negative dim": (tensor(shape=[-2]), "non-negative integer"),
    "fractional dim": (tensor(shape=[2.0]), "non-negative integer"),
    "numel overflow": (tensor(shape=[2**40, 2**40]), "overflows"),
    "bytes overflow": (tensor(shape=[2**62]), "overflows"),
    "huge dim": (tensor(shape=[2**64 + 5]), "non-negative integer"),
    "three offsets": (tensor(data_offsets=[0, 4, 8]), "[begin, end]"),
    "end before begin": (tensor(data_offsets=[8, 0]), "end before they begin"),
    "past the data": (tensor(data_offsets=[0, 8000], shape=[2000]), "past the end of the data section"),
    "huge offsets": (tensor(data_offsets=[2**63, 2**63 + 8]), "past the end of the data section"),
    "wrong size": (tensor(shape=[3]), "needs 12"),
    "overlap": ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                 "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, "overlap"),
    "metadata not strings": ({"__metadata__": {"n": 3}}, "is not a string"),
    "metadata not object": ({"__metadata__": [1]}, "not an object"),
    "tensor not object": ({"t": [1]}, "not a JSON object"),
}


@pytest.mark.parametrize("case", list(BAD_TENSORS))
def test_bad_tensor_entries(tmp_path, case):
    header, message = BAD_TENSORS[case]
    with pytest.raises(ValueError, match="bad.safetensors") as e:
        weights.open(write(tmp_path, build(header, bytes(24))))
    assert message in str(e.value)


def test_json_escapes_and_padding(tmp_path):
    # Names may use any JSON escape; writers pad the header with spaces.
    header = b'{"na\\u00efve\\ud83d\\ude00\\n": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}   '
    f = weights.open(write(tmp_path, build(None, np.float32(7).tobytes(), raw_header=header)))
    assert f.names() == ["na\u00efve\U0001f600\n"]
    assert f["na\u00efve\U0001f600\n"].tolist() == [7.0]
