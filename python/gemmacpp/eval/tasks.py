"""Local JSONL tasks, the data of `python -m gemmacpp eval` and `python -m gemmacpp score`.

One JSON object a line. Multiple choice (scored by log-likelihood; metrics acc and acc_norm):
    {"question": "What do bees make?", "choices": ["milk", "honey"], "answer": 1}
    {"context": "Bees make", "choices": ["milk", "honey"], "answer": "honey"}
  "question" becomes the prompt "Question: ...\\nAnswer:"; "context" is used as it is. Each choice
  is scored as the continuation " " + choice (the harness's target delimiter); acc picks the
  highest sum of log-probs, acc_norm the highest per character of the choice (the harness's
  acc_norm).
Generation (greedy until a stop string; metric exact_match after stripping whitespace):
    {"prompt": "The capital of France is", "answer": "Paris"}   ("question" works too; "answer"
  may be a list of accepted answers)
Scoring (`score`): {"text": ...} lines get their whole log-likelihood (loglikelihood_rolling),
{"context": ..., "continuation": ...} lines the log-likelihood of the continuation.
"""
from __future__ import annotations

import functools
import json
import math

from ..generate import generate_until
from .scoring import encode_text, encode_pair


def read_jsonl(path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not JSON: {e}") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{n}: expected a JSON object")
                rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no examples")
    return rows


def _prompt(row: dict, n: int) -> str:
    if "context" in row:
        return row["context"]
    if "question" in row:
        return f"Question: {row['question']}\nAnswer:" if "choices" in row else row["question"]
    if "prompt" in row:
        return row["prompt"]
    raise ValueError(f"example {n}: needs a 'question', 'context' or 'prompt'")


def _answer_index(row: dict, n: int) -> int:
    a, choices = row.get("answer"), row["choices"]
    if isinstance(a, str) and a in choices:
        return choices.index(a)
    if isinstance(a, int) and not isinstance(a, bool) and 0 <= a < len(choices):
        return a
    raise ValueError(f"example {n}: 'answer' must be a choice or its index, got {a!r}")


def evaluate(model, rows, *, max_new_tokens: int = 32, until=("\n",), max_length=None,
             batch_size: int = 16, progress=None) -> dict:
    """Metrics and per-example records of a task's rows (multiple choice and generation rows
    may be mixed); model: a Model or a gemmacpp.distributed.Pool. progress: a callable given the number of requests done."""
    mc = [(n, r) for n, r in enumerate(rows) if "choices" in r]
    gen = [(n, r) for n, r in enumerate(rows) if "choices" not in r]
    samples = [None] * len(rows)
    metrics = {}
    if mc:
        requests, owners = [], []
        for n, row in mc:
            prompt, answer = _prompt(row, n), _answer_index(row, n)
            for choice in row["choices"]:
                requests.append((prompt, " " + choice))
                owners.append(n)
        scores = model.loglikelihood(requests, batch_size=batch_size, max_length=max_length,
                                      progress=progress)
        acc = acc_norm = 0
        at = 0
        for n, row in mc:
            k = len(row["choices"])
            lls = [s for s, _ in scores[at:at + k]]
            norm = [s / max(1, len(c)) for s, c in zip(lls, row["choices"])]
            pred, pred_norm = _argmax(lls), _argmax(norm)
            answer = _answer_index(row, n)
            acc += pred == answer
            acc_norm += pred_norm == answer
            samples[n] = {"type": "multiple_choice", "answer": answer, "prediction": pred,
                          "prediction_norm": pred_norm, "loglikelihoods": lls, "correct": pred == answer}
            at += k
        metrics["acc"] = acc / len(mc)
        metrics["acc_norm"] = acc_norm / len(mc)
    if gen:
        tok = model.tokenizer
        prompts = [encode_text(tok, _prompt(r, n)) for n, r in gen]  # with BOS, as is
        # A gemmacpp.distributed.Pool runs the same batches on its workers.
        run = getattr(model, "generate_until", None) or functools.partial(generate_until, model)
        texts = run(prompts, max_new_tokens=max_new_tokens, stops=list(until), batch_size=batch_size,
                    progress=progress)
        hits = 0
        for (n, row), text in zip(gen, texts):
            if "answer" not in row:
                raise ValueError(f"example {n}: a generation example needs an 'answer'")
            answers = row["answer"] if isinstance(row["answer"], list) else [row["answer"]]
            ok = text.strip() in [str(a).strip() for a in answers]
            hits += ok
            samples[n] = {"type": "generation", "answer": row["answer"], "output": text, "correct": ok}
        metrics["exact_match"] = hits / len(gen)
    return {"metrics": metrics, "counts": {"multiple_choice": len(mc), "generation": len(gen)},
            "samples": samples}


def n_requests(rows) -> int:
    """How many requests evaluate() makes of rows (for a progress bar's total)."""
    return sum(len(r["choices"]) if "choices" in r else 1 for r in rows)


def score(model, rows, *, max_length=None, batch_size: int = 16, progress=None) -> list[dict]:
    """Per row: logprob and token count, plus is-greedy for a (context, continuation) row or
    perplexity and bits per byte for a text."""
    texts = [(n, r) for n, r in enumerate(rows) if "text" in r]
    pairs = [(n, r) for n, r in enumerate(rows) if "text" not in r]
    for n, r in pairs:
        if "context" not in r or "continuation" not in r:
            raise ValueError(f"line {n + 1}: needs 'text', or 'context' and 'continuation'")
    out = [None] * len(rows)
    tok = model.tokenizer
    if texts:
        lls = model.loglikelihood_rolling([r["text"] for _, r in texts], max_length=max_length,
                                          batch_size=batch_size, progress=progress)
        for (n, r), ll in zip(texts, lls):
            ntok = len(tok.encode(r["text"], add_bos=False))
            nbytes = len(r["text"].encode("utf-8"))
            out[n] = {"logprob": ll, "tokens": ntok,
                      "perplexity": math.exp(-ll / ntok) if ntok else None,
                      "bits_per_byte": -ll / nbytes / math.log(2) if nbytes else None}
    if pairs:
        reqs = [(r["context"], r["continuation"]) for _, r in pairs]
        scored = model.loglikelihood(reqs, max_length=max_length, batch_size=batch_size,
                                     progress=progress)
        for (n, r), (ll, greedy) in zip(pairs, scored):
            out[n] = {"logprob": ll, "greedy": greedy,
                      "tokens": len(encode_pair(tok, r["context"], r["continuation"])[1])}
    return out


def _argmax(xs) -> int:
    return max(range(len(xs)), key=lambda i: xs[i])
