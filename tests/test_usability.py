"""Small frictions a new user meets: hub ids resolved from the local Hugging Face cache (offline),
the dtype spellings gemmacpp.load accepts, progress=True, a short cache repr, one-line CLI errors
(--debug for the traceback), and optional packages whose absence names the extra to install."""
import os
import subprocess
import sys

import numpy as np
import pytest
from util import child_env

pytest.importorskip("transformers")

import tiny_lm

import gemmacpp as gc


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tiny_lm"))
    tiny_lm.build_checkpoint(folder)
    return folder


def fake_hub_cache(root, repo, files_from, revision="main", commit="0123abcd"):
    """A Hugging Face hub cache laid out as huggingface_hub writes it: refs/<revision> holds the
    commit, snapshots/<commit>/ the files (symlinks into blobs/ there; copies are enough here)."""
    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / revision).write_text(commit)
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True)
    for name in os.listdir(files_from):
        os.symlink(os.path.join(files_from, name), snap / name)
    return snap


def test_hub_id_loads_from_the_local_cache(checkpoint, tmp_path, monkeypatch):
    snap = fake_hub_cache(tmp_path / "hub", "google/tiny-gemma", checkpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    m = gc.load("google/tiny-gemma")
    assert m.path == str(snap)
    np.testing.assert_array_equal(m.forward([2, 5, 7]), gc.load(checkpoint).forward([2, 5, 7]))
    assert gc.load("google/tiny-gemma@0123abcd").path == str(snap)  # a commit
    with pytest.raises(FileNotFoundError, match="not in the local cache .*hf download google/other"):
        gc.load("google/other")
    with pytest.raises(FileNotFoundError, match="no such checkpoint: './google/tiny-gemma'"):
        gc.load("./google/tiny-gemma")  # a path, not an id


def test_hub_id_of_a_gguf_repo_with_one_file(tmp_path, monkeypatch):
    files = tmp_path / "files"
    files.mkdir()
    os.symlink(gc.loader.default_model_path(), files / "model-q4_k_m.gguf")
    snap = fake_hub_cache(tmp_path / "hub", "someone/gemma-gguf", str(files))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert gc.load("someone/gemma-gguf").path == str(snap / "model-q4_k_m.gguf")


@pytest.mark.parametrize("dtype", [None, "float32", "fp32", "f32", "auto", np.float32, "torch.float32"])
def test_float32_dtype_spellings(checkpoint, dtype):
    assert gc.load(checkpoint, dtype=dtype).config["vocab_size"] == tiny_lm.VOCAB_SIZE


def test_torch_dtypes(checkpoint):
    torch = pytest.importorskip("torch")
    gc.load(checkpoint, dtype=torch.float32)
    with pytest.raises(NotImplementedError, match="float32 only"):
        gc.load(checkpoint, dtype=torch.bfloat16)


@pytest.mark.parametrize("dtype, error", [("bf16", NotImplementedError), ("bfloat16", NotImplementedError),
                                          ("half", NotImplementedError), ("int8", ValueError),
                                          ("floaty", ValueError)])
def test_other_dtypes_are_named_errors(checkpoint, dtype, error):
    with pytest.raises(error, match=f"dtype '{dtype}'"):
        gc.load(checkpoint, dtype=dtype)


def test_progress_true_shows_a_bar(checkpoint, capfd):
    pytest.importorskip("tqdm")
    m = gc.load(checkpoint)
    reqs = [("The cat", " is here"), ("A dog", " ran")]
    assert m.loglikelihood(reqs, progress=True) == m.loglikelihood(reqs)
    assert "2/2" in capfd.readouterr().err
    m.loglikelihood_rolling(["the cat is here"], progress=True)
    done = []
    m.loglikelihood(reqs, progress=done.append)  # a callable gets the counts
    assert sum(done) == 2
    with pytest.raises(TypeError, match="progress"):
        m.loglikelihood(reqs, progress="yes")


def test_cache_repr_is_short(checkpoint):
    m = gc.load(checkpoint)
    _, cache = m.run_with_cache([2, 5, 7, 9])
    text = repr(cache)
    assert len(text) < 300 and str(cache) == text
    assert text.startswith(f"ActivationCache({len(cache)} activations")
    import pickle  # a cache holding its model still pickles, as its arrays
    back = pickle.loads(pickle.dumps(cache))
    assert type(back) is type(cache) and list(back) == list(cache) and back.model is None


def test_cli_errors_are_one_line_unless_debug(tmp_path):
    missing = str(tmp_path / "nowhere.gguf")
    run = lambda *a: subprocess.run([sys.executable, "-m", "gemmacpp", *a], capture_output=True,
                                    text=True, env=child_env(), timeout=300)
    proc = run("generate", "hi", "--model", missing)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: FileNotFoundError: no such checkpoint: {missing!r} (run with --debug for the traceback)"]
    proc = run("--debug", "generate", "hi", "--model", missing)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.parametrize("module, code, extra", [
    ("PIL", "import importlib; importlib.import_module('gemmacpp.vision.preprocess')._pil()", "vision"),
    ("tqdm", "from gemmacpp import _extras; _extras.progress_bar(True, 3, 'x', 'y')", "eval"),
    ("lm_eval", "import gemmacpp.eval.lm_eval_backend", "eval"),
])
def test_missing_optional_package_names_the_extra(module, code, extra):
    script = (f"import sys; sys.modules[{module!r}] = None\n"
              f"try:\n    {code}\nexcept ImportError as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=child_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'"{extra}" extra: pip install ".[{extra}]"' in proc.stdout, proc.stdout
