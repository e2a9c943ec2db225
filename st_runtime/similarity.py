"""Similarity functions in numpy with sentence-transformers' definitions and return shapes."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .errors import InputValidationError


def checked_similarity_fn_name(value: Any, allowed: Sequence[str], owner: str,
                               aliases: Mapping[str, str] | None = None,
                               hints: Mapping[str, str] | None = None) -> str:
    """``value`` (a name, or an enum member with ``.value``) after ``aliases``, if it is one of ``allowed``; otherwise an
    InputValidationError naming ``owner``'s choices (plus ``hints[value]`` when there is one)."""
    value = getattr(value, "value", value)
    if aliases:
        value = aliases.get(value, value)
    if value not in allowed:
        hint = hints.get(value, "") if hints and isinstance(value, str) else ""
        raise InputValidationError(f"{owner} supports similarity_fn_name in {allowed}, got {value!r}.{hint}")
    return value


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
    embeddings = np.asarray(embeddings)
    if embeddings.dtype.kind != "f":
        embeddings = _as_float(embeddings)
    norms = np.linalg.norm(embeddings, ord=2, axis=-1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(embeddings.dtype, copy=False)


def _matrix_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_2d(a), _as_2d(b)
    if a.shape[1] != b.shape[1]:
        raise InputValidationError(f"Embeddings of dimension {a.shape[1]} and {b.shape[1]} cannot be compared.")
    return a, b


def _row_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_float(a), _as_float(b)
    if a.shape != b.shape or a.ndim not in (1, 2):
        raise InputValidationError(
            f"Pairwise similarity needs two arrays of the same shape (n, dim), got {a.shape} and {b.shape}."
        )
    return a, b


def cos_sim(a, b) -> np.ndarray:
    """Cosine similarity matrix, shape (len(a), len(b))."""
    a, b = _matrix_pair(a, b)
    return normalize_embeddings(a) @ normalize_embeddings(b).T


def dot_score(a, b) -> np.ndarray:
    """Dot-product matrix, shape (len(a), len(b))."""
    a, b = _matrix_pair(a, b)
    return a @ b.T


def euclidean_sim(a, b) -> np.ndarray:
    """Negative Euclidean distance matrix."""
    a, b = _matrix_pair(a, b)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    squared = (a64 * a64).sum(1)[:, None] + (b64 * b64).sum(1)[None, :] - 2 * (a64 @ b64.T)
    return -np.sqrt(np.maximum(squared, 0)).astype(np.result_type(a, b))


def manhattan_sim(a, b) -> np.ndarray:
    """Negative Manhattan (L1) distance matrix."""
    a, b = _matrix_pair(a, b)
    out = np.empty((len(a), len(b)), dtype=np.result_type(a, b))
    step = max(1, 2_000_000 // max(1, len(b) * a.shape[1]))  # bound the (rows, len(b), dim) temporary
    for start in range(0, len(a), step):
        out[start : start + step] = -np.abs(a[start : start + step, None, :] - b[None, :, :]).sum(-1)
    return out


def pairwise_dot_score(a, b) -> np.ndarray:
    """Row-by-row dot product of two equal-shape embedding sets."""
    a, b = _row_pair(a, b)
    return (a * b).sum(-1)


def pairwise_cos_sim(a, b) -> np.ndarray:
    """Row-by-row cosine similarity."""
    a, b = _row_pair(a, b)
    return (normalize_embeddings(a) * normalize_embeddings(b)).sum(-1)


def pairwise_euclidean_sim(a, b) -> np.ndarray:
    """Row-by-row negative Euclidean distance."""
    a, b = _row_pair(a, b)
    return -np.linalg.norm(a - b, axis=-1)


def pairwise_manhattan_sim(a, b) -> np.ndarray:
    """Row-by-row negative Manhattan distance."""
    a, b = _row_pair(a, b)
    return -np.abs(a - b).sum(-1)


def pairwise_angle_sim(x, y) -> np.ndarray:
    """Absolute AnglE similarity ``|cos + sin|`` after L2 normalization, dimensions i and i + D/2 paired (as
    sentence-transformers defines it; an odd dimension is padded with a zero)."""
    x, y = _row_pair(x, y)
    if x.ndim != 2:
        raise InputValidationError(f"pairwise_angle_sim needs two (n, dim) arrays, got shape {x.shape}.")
    if x.shape[1] % 2:
        x, y = np.pad(x, ((0, 0), (0, 1))), np.pad(y, ((0, 0), (0, 1)))
    x, y = normalize_embeddings(x), normalize_embeddings(y)
    half = x.shape[1] // 2
    cosines = (x * y).sum(1)
    sines = (x[:, half:] * y[:, :half] - x[:, :half] * y[:, half:]).sum(1)
    return np.abs(cosines + sines)


def truncate_embeddings(embeddings, truncate_dim: int | None) -> np.ndarray:
    """The first ``truncate_dim`` dimensions (Matryoshka); None keeps all."""
    if truncate_dim is not None and (isinstance(truncate_dim, bool) or not isinstance(truncate_dim, int)
                                     or truncate_dim < 1):
        raise InputValidationError(f"truncate_dim must be a positive integer or None, got {truncate_dim!r}.")
    return np.asarray(embeddings)[..., :truncate_dim]


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
    if not isinstance(value, str):
        raise InputValidationError(f"Unknown similarity function {name!r}; choose one of {sorted(SIMILARITY)}.")
    value = _ALIASES.get(value, value)
    if value not in SIMILARITY:
        raise InputValidationError(f"Unknown similarity function {name!r}; choose one of {sorted(SIMILARITY)}.")
    return value


def similarity_names() -> Sequence[str]:
    return tuple(SIMILARITY)
