"""Pooling, Dense and Normalize in numpy, with sentence-transformers' definitions (for graphs that stop at the
transformer, such as the ``onnx/model.onnx`` that ST's ``backend="onnx"`` writes)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .errors import BundleError

MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Identity": lambda x: x,
    "Tanh": np.tanh,
    "ReLU": lambda x: np.maximum(x, 0),
    "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "GELU": lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))),
}


def _erf(x: np.ndarray) -> np.ndarray:
    from math import erf

    return np.vectorize(erf, otypes=[x.dtype])(x)


def exclude_prompt(mask: np.ndarray, prompt_length: int) -> np.ndarray:
    """Zero the first ``prompt_length`` real tokens of each row (after any left padding), as ST does."""
    if not prompt_length:
        return mask
    first_real = mask.argmax(axis=1)[:, None]
    positions = np.arange(mask.shape[1])[None, :]
    return mask * (positions >= first_real + prompt_length)


def pool(tokens: np.ndarray, mask: np.ndarray, modes: Sequence[str], prompt_length: int = 0) -> np.ndarray:
    """Sentence embeddings (batch, len(modes) * hidden) from token embeddings (batch, seq, hidden)."""
    original = mask
    mask = exclude_prompt(mask, prompt_length)
    m = mask[:, :, None].astype(tokens.dtype)
    parts = []
    for mode in modes:
        if mode == "cls":
            parts.append(tokens[np.arange(len(tokens)), mask.argmax(axis=1)])
        elif mode == "max":
            parts.append(np.where(m > 0, tokens, -np.inf).max(axis=1))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (tokens * m).sum(axis=1)
            count = np.maximum(m.sum(axis=1), 1e-9)
            parts.append((total / (count if mode == "mean" else np.sqrt(count))).astype(tokens.dtype))
        elif mode == "weightedmean":
            weights = np.arange(1, tokens.shape[1] + 1, dtype=tokens.dtype)[None, :] - original.argmax(axis=1)[:, None]
            wm = m * weights[:, :, None]
            parts.append(((tokens * wm).sum(axis=1) / np.maximum(wm.sum(axis=1), 1e-9)).astype(tokens.dtype))
        elif mode == "lasttoken":
            seq = tokens.shape[1]
            flipped = mask[:, ::-1]
            last = np.where(flipped.max(axis=1) == 0, seq - 1, flipped.argmax(axis=1))
            index = seq - last - 1
            parts.append((tokens * m)[np.arange(len(tokens)), index])
        else:
            raise BundleError(
                f"Unknown pooling mode {mode!r} in the folder's Pooling config; st-runtime runs {MODES}. Fix "
                "1_Pooling/config.json, or export the model with `st-runtime export`."
            )
    return np.concatenate(parts, axis=-1)


class Dense:
    """``y = activation(x @ W.T + b)`` with weights read from the module's safetensors file."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, activation: str) -> None:
        if activation not in ACTIVATIONS:
            raise BundleError(
                f"Dense activation {activation!r} is not supported without torch; supported: {sorted(ACTIVATIONS)}. "
                "Export the model with `st-runtime export` instead (the graph then holds the activation)."
            )
        if weight.ndim != 2 or (bias is not None and bias.shape != (weight.shape[0],)):
            raise BundleError(
                f"Dense weights have shapes {weight.shape} / {None if bias is None else bias.shape}; expected "
                "(out, in) and (out,). Re-save the model with sentence-transformers."
            )
        self.weight_t = np.ascontiguousarray(weight.T.astype(np.float32))
        self.bias = None if bias is None else bias.astype(np.float32)
        self.activation = ACTIVATIONS[activation]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.weight_t
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y).astype(np.float32, copy=False)
