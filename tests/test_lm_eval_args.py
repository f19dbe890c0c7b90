"""The lm-evaluation-harness backend's arguments: lm-eval's conventions (pretrained=), strictness
(unknown keys, devices and dtypes it cannot honour, missing checkpoints are errors, never the
default model) and the "lm_eval.models" entry point (tests/test_usability.py: the extra named
when lm_eval is missing).
Skipped when lm_eval is not installed (the eval extra: pip install ".[eval]")."""
import json
import os
import subprocess
import sys
import tomllib

import pytest
from util import child_env

pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

import tiny_lm

from gemmacpp.eval.lm_eval_backend import GemmaCppLM

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tiny_lm"))
    tiny_lm.build_checkpoint(folder)
    return folder


def test_pretrained_is_the_checkpoint_and_path_its_alias(checkpoint):
    lm = GemmaCppLM(pretrained=checkpoint, batch_size=2, device="cpu", dtype="float32")
    assert lm.model.path == checkpoint
    assert GemmaCppLM(path=checkpoint).model.path == checkpoint
    with pytest.raises(ValueError, match="two checkpoints"):
        GemmaCppLM(pretrained=checkpoint, path=checkpoint + "/other")


def test_unknown_model_args_are_named(checkpoint):
    with pytest.raises(TypeError, match=r"unknown model_args \['max_new_tokens', 'trust_remote_code'\]"):
        GemmaCppLM(pretrained=checkpoint, trust_remote_code=True, max_new_tokens=3)


def test_missing_checkpoint_is_an_error_not_the_default_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        GemmaCppLM(pretrained=str(tmp_path / "gemma-2-9b"))
    with pytest.raises(FileNotFoundError, match="not in the local cache"):
        GemmaCppLM(pretrained="google/no-such-model-here")


@pytest.mark.parametrize("kw, error, match", [
    (dict(device="cuda:0"), NotImplementedError, "device 'cuda:0'"),
    (dict(device="mps"), NotImplementedError, "device 'mps'"),
    (dict(dtype="bfloat16"), NotImplementedError, "dtype 'bfloat16'"),
    (dict(dtype="int4"), ValueError, "dtype 'int4'"),
])
def test_unsupported_device_and_dtype_are_named(checkpoint, kw, error, match):
    with pytest.raises(error, match=match):
        GemmaCppLM(pretrained=checkpoint, **kw)


def test_entry_point_is_declared_and_loads_the_backend():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    target = project["entry-points"]["lm_eval.models"]["gemmacpp"]
    from importlib.metadata import EntryPoint
    assert EntryPoint("gemmacpp", target, "lm_eval.models").load() is GemmaCppLM


# A child that does what lm-eval's plugin discovery does (an installed package's "lm_eval.models"
# entry points become lazy registry entries) without importing gemmacpp itself, then runs
# lm-eval's own command line.
DISCOVER_AND_RUN = """
import sys, tomllib
from importlib.metadata import EntryPoint
import lm_eval.models
from lm_eval.api.registry import model_registry
from lm_eval.__main__ import cli_evaluate
with open(sys.argv[1], "rb") as f:
    eps = tomllib.load(f)["project"]["entry-points"]["lm_eval.models"]
for name, target in eps.items():
    model_registry.register(name, target=EntryPoint(name, target, "lm_eval.models"))
assert "gemmacpp.eval.lm_eval_backend" not in sys.modules
sys.argv = ["lm_eval", *sys.argv[2:]]
cli_evaluate()
"""


def run_cli(model_args, tmp_path, *extra):
    out = tmp_path / "results"
    args = [*extra, "--model", "gemmacpp", "--model_args", model_args, "--tasks", "gemmacpp_tiny_mc",
            "--include_path", "tests/data/tasks", "--limit", "2", "--output_path", str(out)]
    proc = subprocess.run([sys.executable, "-c", DISCOVER_AND_RUN, "pyproject.toml", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env=child_env(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1"))
    return proc, out


def test_lm_eval_cli_through_the_entry_point_with_pretrained(checkpoint, tmp_path):
    proc, out = run_cli(f"pretrained={checkpoint},max_length=32", tmp_path, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = list(out.rglob("results_*.json"))
    assert len(files) == 1, list(out.rglob("*"))
    results = json.loads(files[0].read_text())
    assert 0.0 <= results["results"]["gemmacpp_tiny_mc"]["acc,none"] <= 1.0


@pytest.mark.parametrize("device, error", [
    ("cpu", "no such checkpoint"),
    # lm-eval's CLI asks for cuda:0 when --device is not given: named, never a silent CPU run.
    (None, "pass --device cpu"),
])
def test_lm_eval_cli_fails_on_a_missing_checkpoint_or_device(tmp_path, device, error):
    extra = ["--device", device] if device else []
    proc, out = run_cli(f"pretrained={tmp_path / 'gemma-2-9b'},dtype=float32", tmp_path, *extra)
    assert proc.returncode != 0
    assert error in proc.stderr
    assert not list(out.rglob("results_*.json"))


@pytest.mark.parametrize("kw, match", [
    (dict(max_length=0), r"max_length=0 must be positive"),
    (dict(max_length="-5"), r"max_length='-5' must be positive"),
    (dict(max_gen_toks=0), r"max_gen_toks=0 must be positive"),
    (dict(batch_size=0), r"batch_size=0 must be positive"),
    (dict(batch_size=-2), r"batch_size=-2 must be positive"),
    (dict(batch_size="2.5"), r"batch_size='2.5' is not a whole number"),
])
def test_sizes_must_be_positive_never_silently_the_default(checkpoint, kw, match):
    with pytest.raises(ValueError, match=match):
        GemmaCppLM(pretrained=checkpoint, **kw)
    lm = GemmaCppLM(pretrained=checkpoint, max_length="64", batch_size="auto:4")
    assert (lm.max_length, lm.batch_size) == (64, 16)
