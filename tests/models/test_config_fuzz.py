"""The metadata-to-config step under hostile values, in a child process: GGUF files and config.json
checkpoints whose sizes, counts and flags are zero, negative, huge, of the wrong type or missing
(a 300-byte gemma2 file with 46 blocks and no heads once killed gc.load with SIGFPE; a layer count
of 2**40 cost gigabytes before an error). Each load must succeed or raise a Python error that
names the problem; the child must not crash, and layer counts beyond the tensors present are
refused before any per-layer structure is built."""
import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
st_numpy = pytest.importorskip("safetensors.numpy")

from util import child_env  # noqa: E402

VT = gguf.GGUFValueType
# Values a hostile or broken converter could write for an integer key.
INTS = [0, 1, 2, 3, 4, 7, 8, 46, 62, 2**31 - 1, 2**32 - 1, 2**40, 2**62, 2**63 - 1, 2**64 - 1]
SIGNED = [-1, -(2**31), -(2**63)]


def write_gguf(path, arch, metadata, tensors):
    """metadata: key -> (value, GGUFValueType[, sub_type]) with the arch prefix already in the key."""
    w = gguf.GGUFWriter(str(path), arch)
    for key, spec in metadata.items():
        value, vt = spec[0], spec[1]
        if vt == VT.ARRAY:
            w.add_key_value(key, value, vt, sub_type=spec[2])
        else:
            w.add_key_value(key, value, vt)
    for name, array in tensors.items():
        w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def random_int_value(rnd):
    v = rnd.choice(INTS + SIGNED)
    if v < 0:
        return (v, VT.INT64 if v < -(2**31) else VT.INT32)
    return (v, VT.UINT64 if v >= 2**32 else VT.UINT32)


GGUF_INT_KEYS = ["block_count", "embedding_length", "feed_forward_length", "attention.head_count",
                 "attention.head_count_kv", "attention.key_length", "attention.key_length_swa",
                 "attention.sliding_window", "attention.sliding_window_pattern",
                 "embedding_length_per_layer_input", "attention.shared_kv_layers", "expert_count",
                 "expert_used_count", "expert_feed_forward_length"]
GGUF_FLOAT_KEYS = ["rope.freq_base", "rope.freq_base_swa", "attention.layer_norm_rms_epsilon",
                   "attn_logit_softcapping", "final_logit_softcapping", "rope.scaling.factor"]


def make_gguf_cases(folder, n, seed=0):
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    paths = []
    # The reported file: gemma2, 46 blocks, no heads.
    base = {"token_embd.weight": rng.standard_normal((4, 8)).astype(np.float32)}
    p = folder / "gemma2_46_heads0.gguf"
    write_gguf(p, "gemma2", {"gemma2.block_count": (46, VT.UINT32),
                             "gemma2.embedding_length": (8, VT.UINT32),
                             "gemma2.feed_forward_length": (16, VT.UINT32),
                             "gemma2.attention.head_count": (0, VT.UINT32)}, base)
    paths.append(p)
    for i in range(n):
        arch = rnd.choice(["gemma", "gemma2", "gemma3", "gemma4", "gemma-embedding"])
        meta = {}
        for key in GGUF_INT_KEYS:
            r = rnd.random()
            if r < 0.15:
                continue  # missing
            if r < 0.55:
                meta[f"{arch}.{key}"] = (rnd.choice([1, 2, 4, 8, 16]), VT.UINT32)  # plausible
            elif r < 0.9:
                meta[f"{arch}.{key}"] = random_int_value(rnd)
            elif r < 0.95:
                meta[f"{arch}.{key}"] = ("x", VT.STRING)
            else:
                meta[f"{arch}.{key}"] = ([rnd.choice([0, 1, 5]) for _ in range(rnd.randint(1, 5))],
                                         VT.ARRAY, VT.INT32)
        for key in GGUF_FLOAT_KEYS:
            if rnd.random() < 0.4:
                meta[f"{arch}.{key}"] = (rnd.choice([0.0, -1.0, 1e6, float("nan"), float("inf"), 1e-6]),
                                         VT.FLOAT32)
        if rnd.random() < 0.3:
            meta[f"{arch}.rope.scaling.type"] = (rnd.choice(["linear", "none", "yarn", ""]), VT.STRING)
        d = rnd.choice([0, 1, 8])
        tensors = {"token_embd.weight": rng.standard_normal((rnd.choice([1, 4]), d or 1)).astype(np.float32)}
        if rnd.random() < 0.5:
            tensors["blk.0.attn_norm.weight"] = np.ones(8, np.float32)
        if rnd.random() < 0.2:
            tensors["rope_freqs.weight"] = np.ones(rnd.choice([0, 1, 4]) or 1, np.float32)
        p = folder / f"case{i}.gguf"
        write_gguf(p, arch, meta, tensors)
        paths.append(p)
    return paths


HF_INT_KEYS = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "num_key_value_heads", "head_dim", "intermediate_size", "sliding_window",
               "sliding_window_pattern", "lru_width", "conv1d_width", "attention_window_size",
               "query_pre_attn_scalar", "hidden_size_per_layer_input", "num_kv_shared_layers",
               "vocab_size_per_layer_input"]


def make_hf_cases(folder, n, seed=1):
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        model_type = rnd.choice(["gemma", "gemma2", "gemma3_text", "gemma4_text", "recurrent_gemma",
                                 "gemma3", "siglip_vision_model", "embedding_gemma2_text"])
        cfg = {"model_type": model_type}
        for key in HF_INT_KEYS:
            r = rnd.random()
            if r < 0.2:
                continue
            if r < 0.6:
                cfg[key] = rnd.choice([1, 2, 4, 8, 16])
            elif r < 0.9:
                cfg[key] = rnd.choice([0, 3, 46, 62, 2**31, 2**40 - 1, 2**40, 2**53, 2**63, -1, 2.5])
            else:
                cfg[key] = rnd.choice(["x", None, [], {}, True])
        if model_type == "gemma3":
            cfg["text_config"] = {k: cfg.pop(k) for k in list(cfg) if k != "model_type"}
            cfg["vision_config"] = {"num_hidden_layers": rnd.choice([1, 2**40 - 1])}
        if rnd.random() < 0.2:
            cfg["layer_types"] = rnd.choice([["full_attention"] * rnd.randint(0, 3), "x", [1, 2]])
        d = folder / f"hf{i}"
        d.mkdir()
        (d / "config.json").write_text(json.dumps(cfg))
        st_numpy.save_file({"model.embed_tokens.weight": rng.standard_normal((4, 8)).astype(np.float32),
                            "model.norm.weight": np.ones(8, np.float32)},
                           str(d / "model.safetensors"))
        paths.append(d)
    return paths


CHILD = textwrap.dedent(r"""
    import os, resource, sys
    # A config believed without checks once grew to gigabytes: 2 GiB of address space is plenty
    # for these tiny checkpoints, and anything past it is a MemoryError (a failure here too).
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # ASan maps terabytes of shadow
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    import gemmacpp as gc
    loaded = refused = 0
    for path in sys.argv[1:]:
        print("case", path, flush=True)
        try:
            gc.load(path)
            loaded += 1
        except (ValueError, TypeError, NotImplementedError) as e:
            refused += 1
            assert str(e), path
    print("loaded", loaded, "refused", refused)
""")


def run_child(paths):
    proc = subprocess.run([sys.executable, "-c", CHILD, *map(str, paths)], capture_output=True,
                          text=True, timeout=600, env=child_env())
    last = [line for line in proc.stdout.splitlines() if line.startswith("case")][-1:]
    assert proc.returncode == 0, f"child died ({proc.returncode}) at {last}:\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_gguf_metadata_fuzz_never_crashes(tmp_path):
    out = run_child(make_gguf_cases(tmp_path, 300))
    assert "loaded" in out


def test_hf_config_fuzz_never_crashes(tmp_path):
    out = run_child(make_hf_cases(tmp_path, 200))
    assert "loaded" in out


def test_gemma2_27b_rule_with_no_heads_is_a_value_error(tmp_path):
    import gemmacpp as gc
    path = make_gguf_cases(tmp_path, 0)[0]
    assert os.path.getsize(path) < 1000
    out = run_child([path])
    assert "refused 1" in out
    with pytest.raises(ValueError, match="head_count|num_attention_heads"):
        gc.load(path)
    # The command line says so in one line, without a traceback.
    proc = subprocess.run([sys.executable, "-m", "gemmacpp", "generate", "hi", "--model", str(path)],
                          capture_output=True, text=True, timeout=300, env=child_env())
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "ValueError" in proc.stderr


@pytest.mark.parametrize("count", [2**40, 2**40 - 1, 10**6])
def test_layer_counts_beyond_the_tensors_present_are_refused(tmp_path, count):
    import gemmacpp as gc
    rng = np.random.default_rng(0)
    p = tmp_path / "big.gguf"
    write_gguf(p, "gemma3", {"gemma3.block_count": (count, VT.UINT64),
                             "gemma3.embedding_length": (8, VT.UINT32),
                             "gemma3.feed_forward_length": (16, VT.UINT32),
                             "gemma3.attention.head_count": (2, VT.UINT32)},
               {"token_embd.weight": rng.standard_normal((4, 8)).astype(np.float32)})
    with pytest.raises(ValueError, match="tensors"):
        gc.load(p)
    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({
        "model_type": "gemma3_text", "hidden_size": 8, "num_hidden_layers": min(count, 2**40 - 1),
        "num_attention_heads": 2, "intermediate_size": 16, "head_dim": 4}))
    st_numpy.save_file({"model.embed_tokens.weight": rng.standard_normal((4, 8)).astype(np.float32)},
                       str(d / "model.safetensors"))
    with pytest.raises(ValueError, match="tensors"):
        gc.load(d)
