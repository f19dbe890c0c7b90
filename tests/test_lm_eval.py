"""The lm-evaluation-harness backend ("gemmacpp") against the harness's own `hf` backend.

Both run a small random Gemma 3 checkpoint (tests/tiny_lm.py, float32) on the local tasks in
tests/data/tasks (multiple choice, generation until stop strings, whole-document perplexity), with
max_length 32 so that long requests are truncated and long documents windowed. Every metric and
every per-sample response (log-likelihoods, is-greedy flags, generated text) must agree. Skipped
when lm_eval is not installed (the eval extra: pip install ".[eval]").
"""
import json
import os
import subprocess
import sys

import pytest
from util import child_env

lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

import tiny_lm

import gemmacpp.eval.lm_eval_backend  # noqa: F401  (registers "gemmacpp")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ["gemmacpp_tiny_mc", "gemmacpp_tiny_gen", "gemmacpp_tiny_docs"]
REL = 1e-5


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tiny_lm"))
    tiny_lm.build_checkpoint(folder)
    return folder


@pytest.fixture
def in_repo(monkeypatch):
    # The task files name their data relative to the repository root; no hub access.
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def evaluate(model, model_args):
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(model=model, model_args=model_args, tasks=TASKS, batch_size=4,
                                   task_manager=TaskManager(include_path="tests/data/tasks", include_defaults=False),
                                   log_samples=True)


def close(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= REL * max(1.0, abs(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a == b


def test_same_metrics_and_responses_as_hf_backend(checkpoint, in_repo):
    ours = evaluate("gemmacpp", f"path={checkpoint},max_length=32")
    ref = evaluate("hf", f"pretrained={checkpoint},dtype=float32,max_length=32,device=cpu")
    for task in TASKS:
        got, want = ours["results"][task], ref["results"][task]
        metrics = [k for k in want if "," in k and not k.endswith("_stderr,none")]
        assert metrics, want
        for k in metrics:
            assert close(got[k], want[k]), (task, k, got[k], want[k])
        for a, b in zip(ours["samples"][task], ref["samples"][task], strict=True):
            assert a["doc_id"] == b["doc_id"]
            assert close(a["resps"], b["resps"]), (task, a["resps"], b["resps"])
    # The generation task's stop strings were hit and cut (not only max_gen_toks).
    gens = [s["resps"][0][0] for s in ours["samples"]["gemmacpp_tiny_gen"]]
    assert any(len(g) < 12 for g in gens), gens


def test_lm_eval_cli_with_the_backend(checkpoint, in_repo, tmp_path):
    out = tmp_path / "results"
    env = child_env()
    proc = subprocess.run(
        [sys.executable, "-m", "gemmacpp.eval.lm_eval_backend", "run", "--model", "gemmacpp",
         "--model_args", f"path={checkpoint},max_length=32", "--tasks", "gemmacpp_tiny_mc",
         "--include_path", "tests/data/tasks", "--limit", "2", "--output_path", str(out)],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = list(out.rglob("results_*.json"))
    assert len(files) == 1, list(out.rglob("*"))
    results = json.loads(files[0].read_text())["results"]["gemmacpp_tiny_mc"]
    assert 0.0 <= results["acc,none"] <= 1.0
    assert "gemmacpp_tiny_mc" in proc.stdout
