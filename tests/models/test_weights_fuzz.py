"""Bounded mutation fuzz of both weight parsers. A child process opens a few thousand mutated
GGUF and safetensors files (bit flips, bytes set, integer fields set to extremes, inserted,
deleted and duplicated ranges, truncations; numbers in safetensors headers replaced) and reads
every tensor and metadata value of those that parse. Each file must parse or raise ValueError;
the child must not crash. With atheris installed, a libFuzzer-driven run over the same seeds
follows (fixed -runs and -seed)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gemmacpp

gguf = pytest.importorskip("gguf")
st_numpy = pytest.importorskip("safetensors.numpy")

PYTHONPATH = os.pathsep.join([os.path.dirname(os.path.dirname(gemmacpp.__file__)),
                              os.environ.get("PYTHONPATH", "")])


def make_seeds(folder):
    rng = np.random.default_rng(1234)
    Q = gguf.GGMLQuantizationType
    w = gguf.GGUFWriter(str(folder / "seed.gguf"), "gemma3")
    w.add_uint32("gemma3.block_count", 2)
    w.add_float32("gemma3.rope.freq_base", 1e6)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_array("tokenizer.ggml.tokens", ["<pad>", "<bos>", "▁a", "b"])
    w.add_array("tokenizer.ggml.scores", [0.0, -1.5, -2.0, -3.0])
    w.add_key_value("n.nested", [[1, 2], [3]], gguf.GGUFValueType.ARRAY)
    w.add_tensor("token_embd.weight", rng.standard_normal((4, 8)).astype(np.float32))
    w.add_tensor("norm.weight", rng.standard_normal(8).astype(np.float16))
    w.add_tensor("q8", gguf.quants.quantize(rng.standard_normal((2, 32)).astype(np.float32), Q.Q8_0),
                 raw_dtype=Q.Q8_0)
    w.add_tensor("q4k", rng.integers(0, 256, (1, 144), dtype=np.uint8), raw_dtype=Q.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    st_numpy.save_file({"a": rng.standard_normal((3, 4)).astype(np.float32),
                        "b": rng.standard_normal(5).astype(np.float16),
                        "c": np.arange(3, dtype=np.int64)},
                       str(folder / "seed.safetensors"), metadata={"format": "pt"})


# Runs in the child: the seeded mutator.
MUTATOR = textwrap.dedent(r'''
    import os, random, re, struct, sys
    import numpy as np
    from gemmacpp import weights

    seed_path, out_dir, runs, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rnd = random.Random(seed)
    seed_bytes = open(seed_path, "rb").read()
    ext = os.path.splitext(seed_path)[1]
    EXTREMES = [0, 1, 2, 3, 4, 5, 31, 32, 255, 256, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
                2**62, 2**63 - 1, 2**63, 2**64 - 1]
    NUMBERS = [b"-1", b"0", b"1", b"7", b"18446744073709551615", b"18446744073709551616",
               b"9223372036854775808", b"1e999", b"2.5", b"-0", b"4294967296", b"99999999999"]

    def pos(data):
        # Headers are where the structure is: favour the first few hundred bytes.
        if not data:
            return 0
        hi = len(data) if rnd.random() < 0.3 else min(len(data), 400)
        return rnd.randrange(hi)

    def mutate(data):
        data = bytearray(data)
        for _ in range(rnd.randint(1, 3)):
            op = rnd.randrange(8)
            if op == 0 and data:                      # bit flips
                for _ in range(rnd.randint(1, 4)):
                    i = pos(data); data[i] ^= 1 << rnd.randrange(8)
            elif op == 1 and data:                    # bytes set to random / extreme values
                i = pos(data)
                for k in range(rnd.randint(1, 4)):
                    if i + k < len(data): data[i + k] = rnd.choice([0, 0xFF, 0x7F, 0x80, rnd.randrange(256)])
            elif op == 2 and len(data) >= 8:          # an integer field set to an extreme
                width = rnd.choice([4, 8])
                i = min(pos(data), len(data) - width)
                v = rnd.choice(EXTREMES) % (1 << (8 * width))
                data[i:i + width] = v.to_bytes(width, "little")
            elif op == 3:                             # inserted range
                i = pos(data); data[i:i] = os.urandom(rnd.randint(1, 16)) if rnd.random() < 0.5 else bytes(rnd.randint(1, 64))
            elif op == 4 and data:                    # deleted range
                i = pos(data); del data[i:i + rnd.randint(1, 32)]
            elif op == 5:                             # truncation
                del data[rnd.randrange(len(data) + 1):]
            elif op == 6 and data:                    # duplicated range
                i = pos(data); j = pos(data); data[j:j] = data[i:i + rnd.randint(1, 48)]
            elif op == 7 and ext == ".safetensors":   # a number in the JSON header replaced
                nums = [m.span() for m in re.finditer(rb"-?\d+", bytes(data[:600]))]
                if nums:
                    a, b = rnd.choice(nums); data[a:b] = rnd.choice(NUMBERS)
        return bytes(data)

    def exercise(path):
        try:
            f = weights.open(path)
        except ValueError:
            return "error"
        f.metadata
        for name in f:
            info = f.info(name)
            try:
                x = f[name]
            except NotImplementedError:   # a type id mutated into a known, unsupported type
                x = f.raw_bytes(name)
            a = np.asarray(x.data if hasattr(x, "data") else x)
            if a.size:                    # touch the first and last byte of the mapping
                b = a.reshape(-1).view(np.uint8) if a.dtype != np.bool_ else a.reshape(-1)
                int(b[0]); int(b[-1])
            assert a.nbytes == info.nbytes, (name, a.nbytes, info.nbytes)
        return "ok"

    counts = {"ok": 0, "error": 0}
    path = os.path.join(out_dir, "mutant" + ext)
    for k in range(runs):
        data = mutate(seed_bytes)
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            counts[exercise(path)] += 1
        except Exception as e:  # anything but ValueError is a bug: keep the input
            with open(os.path.join(out_dir, "crash" + ext), "wb") as fh:
                fh.write(data)
            print(f"run {k}: {type(e).__name__}: {e}", flush=True)
            sys.exit(3)
    print(counts["ok"], counts["error"])
''')


@pytest.mark.parametrize("seed_name,runs", [("seed.gguf", 6000), ("seed.safetensors", 5000)])
def test_mutation_fuzz(tmp_path, seed_name, runs):
    make_seeds(tmp_path)
    r = subprocess.run([sys.executable, "-c", MUTATOR, str(tmp_path / seed_name), str(tmp_path),
                        str(runs), "20261123"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    assert r.returncode == 0, f"child died ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    ok, errors = map(int, r.stdout.split())
    assert ok + errors == runs
    # The fuzz must reach both outcomes, or it is not exploring the parser.
    assert ok > runs // 50 and errors > runs // 4, (ok, errors)


ATHERIS = textwrap.dedent(r'''
    import os, sys
    import atheris
    from gemmacpp import weights  # C++ code: libFuzzer's mutations drive it, without coverage

    out_dir, ext = sys.argv[1], sys.argv[2]
    path = os.path.join(out_dir, "atheris" + ext)

    def one_input(data):
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            f = weights.open(path)
        except ValueError:
            return
        f.metadata
        for name in f:
            try:
                f[name]
            except NotImplementedError:
                f.raw_bytes(name)

    atheris.Setup([sys.argv[0]] + sys.argv[3:], one_input)
    atheris.Fuzz()
''')


@pytest.mark.parametrize("ext", [".gguf", ".safetensors"])
def test_atheris_fuzz(tmp_path, ext):
    pytest.importorskip("atheris")
    make_seeds(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed").write_bytes((tmp_path / ("seed" + ext)).read_bytes())
    r = subprocess.run([sys.executable, "-c", ATHERIS, str(tmp_path), ext, "-runs=5000",
                        "-seed=20261123", "-max_len=4096", str(corpus)],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    assert r.returncode == 0, f"atheris child failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "Done 5000 runs" in r.stderr, r.stderr[-2000:]
