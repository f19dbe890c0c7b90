"""Scoring and evaluation: log-likelihoods (model.loglikelihood, model.loglikelihood_rolling),
local JSONL tasks (the `python -m gemmacpp eval` command) and the lm-evaluation-harness backend
(gemmacpp.eval.lm_eval_backend, imported on demand: it needs lm_eval)."""
from .scoring import (encode_pair, encode_text, loglikelihood, loglikelihood_rolling, rolling_windows,
                      score_tokens)

__all__ = ["encode_pair", "encode_text", "loglikelihood", "loglikelihood_rolling", "rolling_windows",
           "score_tokens"]
