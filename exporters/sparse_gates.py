"""Accuracy gates of SparseEncoder variants: values, top-k active-dimension overlap and dot-product retrieval."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from st_runtime.errors import ParityError

from .gates import describe, held_out_texts, passes, topk_overlap

SPARSE_GATES: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-5},
    "fp16": {"active_overlap": 0.95, "top10_overlap": 0.95},
    "bf16": {"active_overlap": 0.95, "top10_overlap": 0.95},
    "int8": {"active_overlap": 0.90, "top10_overlap": 0.90},
}
ACTIVE_K = 32  # the top-32 dimensions of each embedding are compared


@dataclass
class SparseHeldOut:
    queries: list[str]
    passages: list[str]
    query_ref: np.ndarray  # dense (n, dimension)
    passage_ref: np.ndarray


def _dense(t: Any) -> np.ndarray:
    return t.to_dense().float().numpy() if getattr(t, "is_sparse", False) else np.asarray(t, dtype=np.float32)


def sparse_reference(st: Any, n_queries: int = 100, n_passages: int = 200) -> SparseHeldOut:
    queries, passages = held_out_texts(n_queries, n_passages)
    return SparseHeldOut(queries, passages, _dense(st.encode_query(queries, batch_size=32)),
                         _dense(st.encode_document(passages, batch_size=32)))


def active_overlap(ref: np.ndarray, cand: np.ndarray, k: int = ACTIVE_K) -> float:
    """Mean |top-k active dims(ref) ∩ top-k(candidate)| / |top-k(ref)| (only dims active in the reference count)."""
    scores = []
    for r, c in zip(ref, cand):
        kk = min(k, int((r != 0).sum()))
        if kk == 0:
            scores.append(1.0 if not (c != 0).any() else 0.0)
            continue
        top_r = set(np.argsort(-r, kind="stable")[:kk].tolist())
        top_c = set(np.argsort(-c, kind="stable")[:kk].tolist())
        scores.append(len(top_r & top_c) / kk)
    return float(np.mean(scores))


def sparse_figures(held: SparseHeldOut, queries: np.ndarray, passages: np.ndarray) -> dict[str, float]:
    ref = np.concatenate([held.query_ref, held.passage_ref]).astype(np.float64)
    cand = np.concatenate([queries, passages]).astype(np.float64)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cos = np.where(norms > 0, (ref * cand).sum(1) / np.maximum(norms, 1e-30), 1.0)
    return {
        "max_abs": float(np.abs(ref - cand).max()),
        "mean_cosine": float(cos.mean()),
        "min_cosine": float(cos.min()),
        "active_overlap": active_overlap(ref, cand),
        "top10_overlap": topk_overlap(held.query_ref @ held.passage_ref.T, queries @ passages.T),
        "texts": float(len(ref)),
    }


def measure_sparse_variant(held: SparseHeldOut, bundle_dir: Path, variant: str) -> dict[str, float]:
    from st_runtime.sparse_encoder import SparseEncoder

    model = SparseEncoder(bundle_dir, variant=variant, verify=False)
    return sparse_figures(held, model.encode_query(held.queries, convert_to_sparse_tensor=False),
                          model.encode_document(held.passages, convert_to_sparse_tensor=False))


def check_sparse_variant(model: Any, bundle_dir: Path, variant: str, gate: dict[str, float]) -> dict[str, float]:
    """Re-measure one variant against its recorded gate (``st-runtime validate``)."""
    figures = measure_sparse_variant(sparse_reference(model), bundle_dir, variant)
    if gate and not passes(figures, gate):
        raise ParityError(f"Variant {variant!r} no longer meets its gate: {describe(figures, gate)}")
    return figures
