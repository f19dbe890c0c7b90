"""A model used as a careless or hostile caller would: hooks that keep their arrays, caches shared
between forwards, threads, files swapped under a loaded model, wrong argument types. Each gets a
named Python error or the right answer, never freed memory, silently wrong numbers or a crash
(cases that could crash run in a child process)."""
import os
import shutil
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import gemmacpp as gc
from util import child_env

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import tiny_lm
    folder = tmp_path_factory.mktemp("tiny")
    tiny_lm.build_checkpoint(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def model(tiny):
    return gc.load(tiny)


def run_child(code, *args, timeout=300):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=child_env())
    assert proc.returncode == 0, f"child died ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


# ---- hook arrays never point at freed memory (issue 19, item 4) ----

def test_kept_hook_arrays_stay_valid_after_the_forward(tiny):
    out = run_child(r"""
        import sys
        import numpy as np
        import gemmacpp as gc
        m = gc.load(sys.argv[1])
        tokens = [2, 5, 6, 7, 8, 9]
        kept, seen = [], []
        def keep(a, name):
            kept.append(a)
            kept.append(a[0, 1:])          # a slice of it too
            seen.append(a.copy())
        try:
            with m.hooks({"blocks.0.hook_resid_post": keep}):
                m.forward(tokens)
        except ValueError as e:
            assert "kept a reference" in str(e)
        class Carry(Exception):
            pass
        def carry(a, name):
            seen.append(a.copy())
            raise Carry(a)
        try:
            with m.hooks({"blocks.1.hook_mlp_out": carry}):
                m.forward(tokens)
        except Carry as e:
            kept.append(e.args[0])
        # Later forwards reuse (and free) the buffers the forward had: a view of them would
        # now read other values, and writing through it would corrupt the heap.
        for _ in range(5):
            m.forward([[3, 4, 5, 6, 7, 8, 9, 10] * 8] * 4)
        assert np.array_equal(kept[0], seen[0]), "a kept hook array changed after its forward"
        assert np.array_equal(kept[1], seen[0][0, 1:])
        assert np.array_equal(kept[2], seen[1]), "an array carried by an exception changed"
        for a in kept:
            a[...] = 1e30                  # writes must land in memory the array owns
        for _ in range(3):
            m.forward([[3, 4, 5, 6, 7, 8, 9, 10] * 8] * 4)
        print("ok")
    """, tiny)
    assert "ok" in out


def test_hook_edits_still_reach_the_model(model):
    base = model.forward([2, 5, 6, 7])

    def zero(a, name):
        a[...] = 0

    with model.hooks({"blocks.2.hook_resid_post": zero}):
        edited = model.forward([2, 5, 6, 7])
    normalized = model.run_with_cache([2, 5, 6, 7], names="ln_final.hook_normalized")[1]
    assert not np.array_equal(base, edited)
    with model.hooks({"blocks.2.hook_resid_post": zero}):
        again = model.run_with_cache([2, 5, 6, 7], names="blocks.2.hook_resid_post")[1]
    assert not again["blocks.2.hook_resid_post"].any()
    assert normalized["ln_final.hook_normalized"].any()


def test_a_hook_that_resizes_its_array_is_a_value_error(model):
    def shrink(a, name):
        a.resize((1,), refcheck=False)

    with model.hooks({"blocks.0.hook_resid_pre": shrink}):
        with pytest.raises(ValueError, match="resize"):
            model.forward([2, 5, 6])


# ---- caches (items 5, 11, 12) ----

def test_a_huge_cache_is_a_memory_error_before_touching_pages(tiny):
    out = run_child(r"""
        import os, resource, sys
        import gemmacpp as gc
        m = gc.load(sys.argv[1])
        if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # ASan maps terabytes of shadow
            resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            m.new_cache(10**9)
        except MemoryError as e:
            print("MemoryError", e)
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print("grew_kib", grew)
    """, tiny)
    assert "MemoryError new_cache" in out and "GiB" in out, out
    assert int(out.split("grew_kib")[1]) < 200_000, out


def test_a_cache_in_use_by_a_forward_is_refused(model):
    cache = model.new_cache(1, 64)
    errors = []

    def reenter(a, name):
        try:
            model.forward([7], cache=cache)
        except ValueError as e:
            errors.append(str(e))
        try:
            cache.reset()
        except ValueError as e:
            errors.append(str(e))

    with model.hooks({"blocks.0.hook_resid_pre": reenter}):
        model.forward([2, 5, 6], cache=cache)
    assert len(errors) == 2 and all("in use" in e for e in errors), errors
    assert cache.lengths == [3]
    # The cache is intact: continuing it equals a full forward.
    full = model.forward([2, 5, 6, 7])
    step = model.forward([7], cache=cache)
    np.testing.assert_allclose(step[0, -1], full[0, -1], rtol=1e-5, atol=1e-5)


def test_two_threads_on_one_cache_never_interleave(model):
    cache = model.new_cache(1, 4096)
    errors, done = [], []
    barrier = threading.Barrier(2)

    def work():
        barrier.wait()
        for _ in range(20):
            try:
                model.forward([3] * 16, cache=cache)
                done.append(1)
            except ValueError as e:
                assert "in use" in str(e)
                errors.append(1)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.lengths == [16 * len(done)]
    # Nothing interleaved: continuing the cache equals one forward of everything it was given.
    full = model.forward([3] * (16 * len(done)) + [4])
    np.testing.assert_allclose(model.forward([4], cache=cache)[0, -1], full[0, -1], rtol=1e-4, atol=1e-4)


def test_a_cache_of_another_model_is_refused(tiny, tmp_path):
    import tiny_lm
    tiny_lm.build_checkpoint(str(tmp_path), sliding_window=4)  # same layer count, other windows
    other = gc.load(str(tmp_path))
    cache = gc.load(tiny).new_cache(1, 64)
    with pytest.raises(ValueError, match="other layers"):
        other.forward([2, 5], cache=cache)


# ---- per-thread hook registrations (item 10) ----

def test_hooks_and_recordings_are_per_thread(model):
    tokens_a, tokens_b = [2, 5, 6, 7, 8], [2, 9, 10]
    clean_a = model.forward(tokens_a)
    barrier = threading.Barrier(2)
    results = {}

    def edit_thread():
        def zero(a, name):
            a[...] = 0
        with model.hooks({"blocks.1.hook_resid_post": zero}):
            barrier.wait()
            for _ in range(10):
                results.setdefault("edited", []).append(model.forward(tokens_b))

    def record_thread():
        barrier.wait()
        for _ in range(10):
            logits, acts = model.run_with_cache(tokens_a, names="blocks.1.hook_resid_post")
            results.setdefault("recorded", []).append((logits, acts["blocks.1.hook_resid_post"]))

    threads = [threading.Thread(target=edit_thread), threading.Thread(target=record_thread)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for logits, act in results["recorded"]:
        assert act.shape[1] == len(tokens_a)          # its own forward's activation
        assert act.any()                              # not zeroed by the other thread's hook
        np.testing.assert_array_equal(logits, clean_a)
    assert len(results["edited"]) == 10


# ---- files (items 13, 15, 17) ----

def test_the_tokenizer_is_read_at_load(tiny, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny, folder)
    m = gc.load(str(folder))
    with open(folder / "tokenizer.json", "w") as f:
        f.write("{}")                                  # replaced after loading
    assert m.tokenizer.encode("the") == gc.load(tiny).tokenizer.encode("the")


def test_loading_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    out = run_child(r"""
        import sys
        import gemmacpp as gc
        try:
            gc.load(sys.argv[1])
        except ValueError as e:
            print("refused", e)
        from gemmacpp import weights
        try:
            weights.open(sys.argv[1])
        except ValueError as e:
            print("refused", e)
    """, fifo, timeout=60)
    refusals = [line for line in out.splitlines() if line.startswith("refused")]
    assert len(refusals) == 2 and all("regular file" in line for line in refusals), out


def test_mmap_false_reads_the_weights_into_memory(tiny, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny, folder)
    m = gc.load(str(folder), mmap=False)
    expected = m.forward([2, 5, 6])
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4096:] = bytes(4096)                          # overwrite the file's last tensor bytes
    with open(weights, "r+b") as f:
        f.write(data)
        f.truncate(len(data) // 2)                      # and cut it in half
    np.testing.assert_array_equal(m.forward([2, 5, 6]), expected)
    with pytest.raises(TypeError, match="mmap"):
        gc.load(str(folder), mmap="no")


# ---- arguments (items 14, 16) ----

@pytest.mark.parametrize("call, error, match", [
    (lambda m: m.loglikelihood_rolling("text"), TypeError, "texts must be a list"),
    (lambda m: m.generate([2.7, 65.2], max_new_tokens=2), TypeError, r"prompt\[0\]"),
    (lambda m: m.loglikelihood([([2.7, 5.0], [6])]), TypeError, "context"),
    (lambda m: m.loglikelihood([([2, 5], [6.2])]), TypeError, "continuation"),
    (lambda m: m.generate(b"hello", max_new_tokens=2), TypeError, "prompt"),
    (lambda m: m.loglikelihood([("ab", "c")], max_length=0), ValueError, "max_length"),
    (lambda m: m.loglikelihood_rolling(["ab"], max_length=0), ValueError, "max_length"),
    (lambda m: m.loglikelihood([("ab", "c")], batch_size=0), ValueError, "batch_size"),
    (lambda m: m.loglikelihood([("ab", "c")], batch_size=-3), ValueError, "batch_size"),
    (lambda m: m.new_cache(1, 2**63), ValueError, "max_len"),
    (lambda m: m.new_cache(2.5), TypeError, "batch"),
    (lambda m: m.generate("ab", max_new_tokens=2**63 - 1), ValueError, "max_new_tokens"),
    (lambda m: m.generate("ab", temperature=float("nan")), ValueError, "temperature"),
    (lambda m: m.generate("ab", temperature=1.0, top_k=2.5), TypeError, "top_k"),
    (lambda m: m.generate("ab", stop=5), TypeError, "stop"),
    (lambda m: m.generate("ab\ud800", max_new_tokens=2), ValueError, "prompt is not valid Unicode"),
    (lambda m: m.hooks({5: lambda a, n: None}), TypeError, "hook names"),
    (lambda m: gc.load(3), TypeError, "source"),
])
def test_bad_arguments_are_named_errors(model, call, error, match):
    with pytest.raises(error, match=match):
        call(model)


def test_bytes_paths_load(tiny):
    assert gc.load(os.fsencode(tiny)).config["num_layers"] == 3


def test_torch_tensors_that_require_grad_are_read(model):
    torch = pytest.importorskip("torch")
    x = torch.randn(3, 8, requires_grad=True)
    w = torch.randn(4, 8, requires_grad=True)
    y = np.asarray(gc.ops.linear(x, w))
    np.testing.assert_allclose(y, (x @ w.T).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_command_line_errors_are_one_line(tiny, tmp_path):
    task = tmp_path / "task.jsonl"
    task.write_text('{"question": "a", "choices": ["b", "c"], "answer": 0}\n' * 10)
    for argv in (["eval", str(task), "--model", tiny, "--limit", "-1"],
                 ["eval", str(task), "--model", tiny, "--batch-size", "0"],
                 ["score", str(tmp_path / "missing.jsonl"), "--model", tiny],
                 ["generate", "hi", "--model", str(tmp_path / "missing")]):
        proc = subprocess.run([sys.executable, "-m", "gemmacpp", *argv], capture_output=True,
                              text=True, timeout=300, env=child_env())
        # 2: argparse refused an argument; 1: the command failed (a missing file)
        assert proc.returncode == (2 if argv[0] == "eval" else 1), (argv, proc.stderr)
        assert "Traceback" not in proc.stderr and "error" in proc.stderr, (argv, proc.stderr)


# ---- NaN propagates (item 9) ----

def test_a_nan_written_into_the_keys_propagates_through_the_cache(model):
    def poison(k, name):
        k[:, 1] = np.nan  # [B, T, kv_heads, head_dim]: the keys of position 1

    cache = model.new_cache(1, 64)
    with model.hooks({"blocks.1.attn.hook_k": poison}):
        logits, acts = model.run_with_cache([2, 5, 6, 7], cache=cache, names="blocks.1.attn.hook_z")
    z = acts["blocks.1.attn.hook_z"][0]
    assert np.isfinite(z[0]).all() and np.isnan(z[1:]).all()  # the rows that see key 1
    assert np.isnan(logits[0, 1:]).all()
    # The NaN sits in the cache: the next token, run without hooks, sees it (layer 1 is global).
    assert np.isnan(model.forward([8], cache=cache)).all()


# ---- tokenizer memory is bounded by its pieces (item 7) ----

def test_a_tokenizer_with_one_huge_id_is_refused_cheaply(tmp_path):
    import json

    import tiny_lm
    spec = tiny_lm.tokenizer_json()
    spec["model"]["vocab"]["\u2581zz"] = 2**26  # one piece far past the others
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    assert os.path.getsize(tmp_path / "tokenizer.json") < 8000
    out = run_child(r"""
        import os, resource, sys
        if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # ASan maps terabytes of shadow
            resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from gemmacpp.tokenizer import Tokenizer
        try:
            Tokenizer.from_hf(sys.argv[1])
        except ValueError as e:
            print("refused", e)
    """, tmp_path)
    assert "refused" in out and "67108864" in out, out
