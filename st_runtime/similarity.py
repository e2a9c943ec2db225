"""Similarity functions in numpy with sentence-transformers' definitions and return shapes."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .errors import InputValidationError


def _as_float(a) -> np.ndarray:
    """Float array as sentence-transformers scores it: ints and sub-float32 floats (float16) become float32, since
    a float16 matmul rounds nearby scores into ties (sentence-transformers >= 6 upcasts the same way)."""
    try:
        arr = np.asarray(a)
    except ValueError as exc:  # ragged lists
        raise InputValidationError(f"Embeddings must form a regular (n, dim) array: {exc}") from exc
    if arr.dtype.kind not in "fcbiu":
        raise InputValidationError(f"Embeddings must be numbers, got an array of {arr.dtype}.")
    if arr.dtype.kind != "f" or arr.dtype.itemsize < 4:
        arr = arr.astype(np.float32)
    return arr


def _as_2d(a) -> np.ndarray:
    arr = _as_float(a)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputValidationError(f"Expected embeddings of shape (n, dim) or (dim,), got shape {arr.shape}.")
    return arr


def normalize_embeddings(embeddings: np.ndarray) -> np.ndarray:
    """L2-normalize rows like torch.nn.functional.normalize (eps 1e-12), keeping the dtype."""
    norms = np.linalg.norm(embeddings, ord=2, axis=-1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(embeddings.dtype, copy=False)


def cos_sim(a, b) -> np.ndarray:
    """Cosine similarity matrix, shape (len(a), len(b))."""
    return normalize_embeddings(_as_2d(a)) @ normalize_embeddings(_as_2d(b)).T


def dot_score(a, b) -> np.ndarray:
    """Dot-product matrix, shape (len(a), len(b))."""
    return _as_2d(a) @ _as_2d(b).T


def euclidean_sim(a, b) -> np.ndarray:
    """Negative Euclidean distance matrix."""
    a, b = _as_2d(a), _as_2d(b)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    squared = (a64 * a64).sum(1)[:, None] + (b64 * b64).sum(1)[None, :] - 2 * (a64 @ b64.T)
    return -np.sqrt(np.maximum(squared, 0)).astype(np.result_type(a, b))


def manhattan_sim(a, b) -> np.ndarray:
    """Negative Manhattan (L1) distance matrix."""
    a, b = _as_2d(a), _as_2d(b)
    out = np.empty((len(a), len(b)), dtype=np.result_type(a, b))
    step = max(1, 2_000_000 // max(1, len(b) * a.shape[1]))  # bound the (rows, len(b), dim) temporary
    for start in range(0, len(a), step):
        out[start : start + step] = -np.abs(a[start : start + step, None, :] - b[None, :, :]).sum(-1)
    return out


def pairwise_dot_score(a, b) -> np.ndarray:
    return (_as_float(a) * _as_float(b)).sum(-1)


def pairwise_cos_sim(a, b) -> np.ndarray:
    return pairwise_dot_score(normalize_embeddings(_as_float(a)), normalize_embeddings(_as_float(b)))


def pairwise_euclidean_sim(a, b) -> np.ndarray:
    return -np.linalg.norm(_as_float(a) - _as_float(b), axis=-1)


def pairwise_manhattan_sim(a, b) -> np.ndarray:
    return -np.abs(_as_float(a) - _as_float(b)).sum(-1)


SIMILARITY: dict[str, Callable] = {
    "cosine": cos_sim,
    "dot": dot_score,
    "euclidean": euclidean_sim,
    "manhattan": manhattan_sim,
}
PAIRWISE: dict[str, Callable] = {
    "cosine": pairwise_cos_sim,
    "dot": pairwise_dot_score,
    "euclidean": pairwise_euclidean_sim,
    "manhattan": pairwise_manhattan_sim,
}
_ALIASES = {"cos_sim": "cosine", "dot_score": "dot", "dot_product": "dot", "euclidean_sim": "euclidean",
            "manhattan_sim": "manhattan"}


def resolve_similarity_name(name: str | None) -> str:
    """Canonical similarity name ('cosine', 'dot', 'euclidean', 'manhattan'); None means cosine, as in ST."""
    if name is None:
        return "cosine"
    value = getattr(name, "value", name)
    value = _ALIASES.get(value, value)
    if value not in SIMILARITY:
        raise InputValidationError(f"Unknown similarity function {name!r}; choose one of {sorted(SIMILARITY)}.")
    return value


def similarity_names() -> Sequence[str]:
    return tuple(SIMILARITY)
