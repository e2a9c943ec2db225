"""Sparse embeddings in numpy / scipy.sparse with sentence-transformers' SparseEncoder definitions.

scipy is the ``sparse`` extra, not a base dependency (it is 143 MB of a runtime-only install): it is imported on
first use, and a missing scipy raises ``BackendNotInstalledError`` naming ``pip install "st-runtime[sparse]"``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Sequence

import numpy as np

from .errors import BackendNotInstalledError, InputValidationError
from .similarity import SIMILARITY as DENSE_SIMILARITY
from .similarity import PAIRWISE as DENSE_PAIRWISE

SCIPY_HINT = 'pip install "st-runtime[sparse]"'


def scipy_sparse() -> ModuleType:
    """``scipy.sparse``, imported now; ``BackendNotInstalledError`` naming the extra when scipy is missing."""
    try:
        import scipy.sparse
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"Sparse embeddings (SparseEncoder, its CSR results and sparse scoring) need scipy, which the base "
            f"install leaves out: {SCIPY_HINT}") from exc
    return scipy.sparse


class _LazyScipySparse:
    """Stands for ``scipy.sparse`` in this module and the SparseEncoder: imports it at the first attribute used."""

    def __getattr__(self, name: str) -> Any:
        return getattr(scipy_sparse(), name)


sp = _LazyScipySparse()


def check_max_active_dims(value: Any) -> int | None:
    """None or a positive int (sentence-transformers raises for 0, negatives, bools and floats too)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputValidationError(
            f"max_active_dims must be a positive integer or None, got {value!r}: it is the number of non-zero "
            "dimensions kept per embedding (the largest by absolute value)."
        )
    return int(value)


def keep_top_k(dense: np.ndarray, k: int | None, by_abs: bool = True) -> np.ndarray:
    """Zero all but the ``k`` largest entries of each row (by absolute value, as select_max_active_dims)."""
    if k is None or k >= dense.shape[-1]:
        return dense
    keys = np.abs(dense) if by_abs else dense
    top = np.argpartition(-keys, k - 1, axis=-1)[..., :k]
    out = np.zeros_like(dense)
    np.put_along_axis(out, top, np.take_along_axis(dense, top, axis=-1), axis=-1)
    return out


def topk_relu(latents: np.ndarray, k: int) -> np.ndarray:
    """SparseAutoEncoder.top_k at inference: keep each row's k largest latents, then ReLU."""
    return np.maximum(keep_top_k(latents, k, by_abs=False), 0).astype(latents.dtype, copy=False)


def as_csr(embeddings: Any) -> sp.csr_array:
    """A 2-D CSR array from CSR/COO rows, a list of rows, or a dense array (1-D becomes one row)."""
    if isinstance(embeddings, (list, tuple)):
        if not embeddings:
            raise InputValidationError("Expected at least one sparse embedding, got an empty list.")
        return sp.vstack([as_csr(row) for row in embeddings], format="csr")
    if sp.issparse(embeddings):
        if embeddings.ndim == 1:
            return sp.csr_array(embeddings.reshape(1, -1))
        return sp.csr_array(embeddings)
    arr = np.asarray(embeddings)
    if arr.dtype.kind not in "fc":
        arr = arr.astype(np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputValidationError(f"Expected sparse embeddings of shape (n, dim) or (dim,), got shape {arr.shape}.")
    return sp.csr_array(arr)


def _dense_rows(a: Any) -> np.ndarray:
    return as_csr(a).toarray()


def dot_score(a: Any, b: Any) -> np.ndarray:
    """Dot-product matrix (len(a), len(b)) of sparse embeddings, as a dense float32 array."""
    return np.asarray((as_csr(a) @ as_csr(b).T).toarray(), dtype=np.float32)


def _row_norms(m: sp.csr_array) -> np.ndarray:
    return np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())


def cos_sim(a: Any, b: Any) -> np.ndarray:
    """Cosine similarity matrix of sparse embeddings (zero rows give 0, as torch's normalize with eps 1e-12)."""
    a, b = as_csr(a), as_csr(b)
    dots = (a @ b.T).toarray()
    norms = np.maximum(_row_norms(a), 1e-12)[:, None] * np.maximum(_row_norms(b), 1e-12)[None, :]
    return (dots / norms).astype(np.float32)


def pairwise_dot_score(a: Any, b: Any) -> np.ndarray:
    a, b = as_csr(a), as_csr(b)
    return np.asarray(a.multiply(b).sum(axis=1), dtype=np.float32).ravel()


def pairwise_cos_sim(a: Any, b: Any) -> np.ndarray:
    a, b = as_csr(a), as_csr(b)
    norms = np.maximum(_row_norms(a), 1e-12) * np.maximum(_row_norms(b), 1e-12)
    return (np.asarray(a.multiply(b).sum(axis=1)).ravel() / norms).astype(np.float32)


def _dense_fn(fn: Callable) -> Callable:
    return lambda a, b: fn(_dense_rows(a), _dense_rows(b))


SIMILARITY: dict[str, Callable] = {"dot": dot_score, "cosine": cos_sim,
                                   "euclidean": _dense_fn(DENSE_SIMILARITY["euclidean"]),
                                   "manhattan": _dense_fn(DENSE_SIMILARITY["manhattan"])}
PAIRWISE: dict[str, Callable] = {"dot": pairwise_dot_score, "cosine": pairwise_cos_sim,
                                 "euclidean": _dense_fn(DENSE_PAIRWISE["euclidean"]),
                                 "manhattan": _dense_fn(DENSE_PAIRWISE["manhattan"])}


def sparsity(embeddings: Any) -> dict[str, float]:
    """Mean active dimensions and mean sparsity ratio, as SparseEncoder.sparsity."""
    m = as_csr(embeddings)
    rows, cols = m.shape
    if rows == 0 or cols == 0:
        return {"active_dims": 0.0, "sparsity_ratio": 1.0}
    m.eliminate_zeros()
    active = float(np.diff(m.indptr).astype(np.float32).mean())
    return {"active_dims": active, "sparsity_ratio": 1.0 - active / cols}


def intersection(embeddings_1: Any, embeddings_2: Any) -> sp.csr_array:
    """Element-wise product of one embedding with one or many, keeping positive entries (SparseEncoder.intersection).

    Shape follows ``embeddings_2``: 1-D in, 1-D out; (n, dim) in, (n, dim) out.
    """
    one = as_csr(embeddings_1)
    if one.shape[0] != 1:
        raise InputValidationError(f"embeddings_1 must be one embedding (1-D), got shape {one.shape}.")
    was_1d = getattr(embeddings_2, "ndim", 2) == 1 or (isinstance(embeddings_2, np.ndarray) and embeddings_2.ndim == 1)
    many = as_csr(embeddings_2)
    if one.shape[1] != many.shape[1]:
        raise InputValidationError(
            f"Vocab dimension mismatch: embeddings_1 has {one.shape[1]}, embeddings_2 has {many.shape[1]}.")
    product = sp.csr_array(many.multiply(one))
    product.data[product.data <= 0] = 0
    product.eliminate_zeros()
    return sp.csr_array(product[0]) if was_1d else product


def decode(embeddings: Any, id_to_token: Callable[[int], str | None], top_k: int | None = None
           ) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
    """(token, weight) pairs by descending weight per embedding; a 1-D input gives one list."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k <= 0):
        raise InputValidationError(f"top_k must be a positive integer, got {top_k}.")
    was_1d = getattr(embeddings, "ndim", 2) == 1
    m = as_csr(embeddings)
    m.eliminate_zeros()
    results = []
    for row in range(m.shape[0]):
        start, stop = m.indptr[row], m.indptr[row + 1]
        values, tokens = m.data[start:stop], m.indices[start:stop]
        order = np.argsort(-values, kind="stable")
        if top_k is not None:
            order = order[:top_k]
        results.append([(id_to_token(int(tokens[i])) or "", float(values[i])) for i in order])
    return results[0] if was_1d else results


def rows_to_csr(rows: Sequence[sp.csr_array], dimension: int) -> sp.csr_array:
    """Stack per-input CSR rows (1, dim) into an (n, dim) CSR array."""
    if not rows:
        return sp.csr_array((0, dimension), dtype=np.float32)
    return sp.csr_array(sp.vstack(rows, format="csr"))
