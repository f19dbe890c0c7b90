"""Defaults that the model and the evaluation code share, kept apart so that evaluation does not
import the model module (which imports evaluation for Model.loglikelihood)."""

DEFAULT_MAX_LEN = 8192  # new_cache's default length: enough for chat, small enough for memory
