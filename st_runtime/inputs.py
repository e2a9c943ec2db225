"""Checks on what callers pass in: text batches, text pairs, batch sizes."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputTypeError, InputValidationError


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def text_batch(inputs: Any) -> tuple[list[str], bool]:
    """Return (texts, was_single): a str becomes a batch of one; anything but strings is refused."""
    if isinstance(inputs, str):
        return [inputs], True
    if isinstance(inputs, np.ndarray):
        inputs = inputs.tolist()
    if isinstance(inputs, (bytes, bytearray)) or not hasattr(inputs, "__iter__") or isinstance(inputs, dict):
        raise InputTypeError(
            f"encode() takes a string or a list of strings, got {_describe(inputs)}. Decode bytes with .decode('utf-8')."
        )
    texts = list(inputs)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            fix = " Decode bytes first with .decode('utf-8')." if isinstance(text, (bytes, bytearray)) else ""
            raise InputTypeError(f"Input at index {index} is {_describe(text)}, not a string; every input must be str.{fix}")
    return texts, False


def pair_batch(inputs: Any) -> tuple[list[tuple[str, str]], bool]:
    """Return (pairs, was_single) for cross-encoder inputs: one (a, b) pair or a list of pairs of strings."""
    if isinstance(inputs, (tuple, list)) and len(inputs) == 2 and all(isinstance(x, str) for x in inputs):
        return [(inputs[0], inputs[1])], True
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, (list, tuple)):
        raise InputTypeError(f"predict() takes a pair [text_a, text_b] or a list of pairs, got {_describe(inputs)}.")
    pairs = []
    for index, pair in enumerate(inputs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(x, str) for x in pair):
            raise InputTypeError(
                f"Input at index {index} is {_describe(pair)}; each input must be a pair of two strings (query, passage)."
            )
        pairs.append((pair[0], pair[1]))
    return pairs, False


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputValidationError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)
