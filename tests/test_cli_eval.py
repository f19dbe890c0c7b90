"""`python -m gemmacpp score` and `python -m gemmacpp eval` on a tiny random model (subprocesses).

The numbers the commands print and write must be the library's: model.loglikelihood(_rolling)
for scores, argmax over choices for accuracy, greedy generation for exact match (the task's
answers are made from the model's own greedy outputs for half of the examples, so exact match is
known: 0.5).
"""
import json
import math
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import gemmacpp as gc
from util import child_env

import tiny_lm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = os.path.join(REPO, "tests", "data", "tasks")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("tiny_lm"))
    tiny_lm.build_checkpoint(folder)
    return folder


def run_cli(*args):
    env = child_env()
    proc = subprocess.run([sys.executable, "-m", "gemmacpp", *args], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_eval_multiple_choice(checkpoint, tmp_path):
    task = os.path.join(TASKS, "tiny_mc.jsonl")
    out = tmp_path / "mc.json"
    proc = run_cli("eval", task, "--model", checkpoint, "--output", str(out), "--batch-size", "3")
    res = json.loads(out.read_text())
    rows = [json.loads(l) for l in open(task)]
    m = gc.load(checkpoint)
    correct = correct_norm = 0
    for row, sample in zip(rows, res["samples"], strict=True):
        prompt = f"Question: {row['question']}\nAnswer:"
        lls = [s for s, _ in m.loglikelihood([(prompt, " " + c) for c in row["choices"]])]
        assert sample["loglikelihoods"] == pytest.approx(lls, rel=1e-6)
        correct += max(range(len(lls)), key=lls.__getitem__) == row["answer"]
        norm = [s / len(c) for s, c in zip(lls, row["choices"])]
        correct_norm += max(range(len(lls)), key=norm.__getitem__) == row["answer"]
    assert res["metrics"]["acc"] == pytest.approx(correct / len(rows))
    assert res["metrics"]["acc_norm"] == pytest.approx(correct_norm / len(rows))
    assert res["counts"] == {"multiple_choice": len(rows), "generation": 0}
    assert "acc_norm" in proc.stdout and f"{res['metrics']['acc']:.4f}" in proc.stdout
    assert "eval" in proc.stderr  # the progress bar


def test_eval_generation_exact_match(checkpoint, tmp_path):
    m = gc.load(checkpoint)
    prompts = ["The cat sat on the", "One, two, three,", "A, B, C,", "It is the end of"]
    rows = []
    for i, p in enumerate(prompts):
        greedy = m.generate(p, max_new_tokens=6, stop=["\n", "."])
        rows.append({"prompt": p, "answer": [greedy.strip()] if i % 2 == 0 else "no such answer"})
    task = tmp_path / "gen.jsonl"
    task.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "gen.json"
    run_cli("eval", str(task), "--model", checkpoint, "--output", str(out), "--max-new-tokens", "6",
            "--until", "\n", "--until", ".")
    res = json.loads(out.read_text())
    assert res["metrics"] == {"exact_match": 0.5}
    assert [s["correct"] for s in res["samples"]] == [True, False, True, False]


def test_score_texts_and_pairs(checkpoint, tmp_path):
    m = gc.load(checkpoint)
    doc = "It was the best of times, it was the worst of times, it was the age of wisdom."
    rows = [{"text": doc}, {"context": "The cat sat on the", "continuation": " mat."}, {"text": "The end."}]
    data = tmp_path / "score.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "score.json"
    proc = run_cli("score", str(data), "--model", checkpoint, "--max-length", "16", "--output", str(out))
    res = json.loads(out.read_text())["results"]
    rolling = m.loglikelihood_rolling([doc, "The end."], max_length=16)
    (pair, greedy), = m.loglikelihood([("The cat sat on the", " mat.")])
    assert res[0]["logprob"] == pytest.approx(rolling[0], rel=1e-6)
    assert res[2]["logprob"] == pytest.approx(rolling[1], rel=1e-6)
    assert res[1]["logprob"] == pytest.approx(pair, rel=1e-6) and res[1]["greedy"] == greedy
    ntok = len(m.tokenizer.encode(doc, add_bos=False))
    assert res[0]["tokens"] == ntok
    assert res[0]["perplexity"] == pytest.approx(math.exp(-rolling[0] / ntok))
    assert f"{rolling[0]:.4f}" in proc.stdout


def test_bad_task_file(checkpoint, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x", "choices": ["a", "b"], "answer": 5}\n')
    env = child_env()
    proc = subprocess.run([sys.executable, "-m", "gemmacpp", "eval", str(bad), "--model", checkpoint],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0 and "answer" in proc.stderr
