"""Argument checks for the public Python entry points: each bad value becomes one TypeError or
ValueError that names the argument, instead of a pybind11 signature dump, a NumPy-internal
message, or a silent conversion (a float id truncated, bytes read as ids, a str scored character
by character)."""
from __future__ import annotations

import math
import numbers

import numpy as np

# Positions and counts beyond this are no real request (and would overflow int64 size products).
MAX_COUNT = 1 << 40


def integer(value, name: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """value as an int: a Python or NumPy integer (not a bool, not a float), within [lo, hi]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in [{lo}, {hi}]" if lo is not None else f"<= {hi}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return value


def optional_integer(value, name: str, **bounds) -> int | None:
    return None if value is None else integer(value, name, **bounds)


def number(value, name: str) -> float:
    """value as a finite float (a Python or NumPy real, not a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def text(value, name: str) -> str:
    """value as a str that encodes to UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{name} is not valid Unicode: {e.reason} at position {e.start} "
                         f"({value[e.start:e.end]!r})") from None
    return value


def token_ids(value, name: str) -> list[int]:
    """value as a list of int token ids: a sequence or 1-d array of integers. bytes, str and
    floats are refused (they would otherwise pass as ids: bytes as their byte values, floats
    truncated)."""
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"{name}: expected token ids (a list of ints), got {type(value).__name__}")
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or (value.size and value.dtype.kind not in "iu"):
            raise TypeError(f"{name}: expected a 1-d integer array of token ids, got "
                            f"{value.dtype} {value.shape}")
        return [int(t) for t in value]
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{name}: expected token ids (a list of ints), got "
                        f"{type(value).__name__}") from None
    return [integer(t, f"{name}[{i}]") for i, t in enumerate(items)]


def text_or_ids(value, name: str):
    """A str (checked as text) or token ids."""
    return text(value, name) if isinstance(value, str) else token_ids(value, name)
