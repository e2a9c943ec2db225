"""Accuracy gates of MultiVectorEncoder variants: per-token values and MaxSim top-10 retrieval overlap."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .gates import held_out_texts, topk_overlap

MULTI_VECTOR_GATES: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-5},
    "fp16": {"top10_overlap": 0.95},
    "bf16": {"top10_overlap": 0.95},
    "int8": {"top10_overlap": 0.90},
}


@dataclass
class MultiVectorHeldOut:
    queries: list[str]
    passages: list[str]
    query_ref: list[np.ndarray]
    passage_ref: list[np.ndarray]
    scores: np.ndarray  # torch MaxSim (queries x passages)


def multi_vector_reference(st: Any, split: str = "gate", n_queries: int = 50, n_passages: int = 200
                           ) -> MultiVectorHeldOut:
    from st_runtime.multi_vector_encoder import maxsim

    queries, passages = held_out_texts(n_queries, n_passages, split)
    q = [t.float().numpy() for t in st.encode_query(queries, batch_size=32)]
    d = [t.float().numpy() for t in st.encode_document(passages, batch_size=32)]
    return MultiVectorHeldOut(queries, passages, q, d, maxsim(q, d, st.similarity_fn_name == "meanmaxsim"))


def measure_multi_vector_variant(held: MultiVectorHeldOut, bundle_dir: Path, variant: str) -> dict[str, float]:
    from st_runtime.multi_vector_encoder import MultiVectorEncoder

    model = MultiVectorEncoder(bundle_dir, variant=variant, verify=False)
    q, d = model.encode_query(held.queries), model.encode_document(held.passages)
    worst = 0.0
    for ref, ours in zip(held.query_ref + held.passage_ref, q + d):
        if ref.shape != ours.shape:
            return {"max_abs": float("inf"), "top10_overlap": 0.0}
        if ref.size:
            worst = max(worst, float(np.abs(ref.astype(np.float64) - ours).max()))
    return {"max_abs": worst, "top10_overlap": topk_overlap(held.scores, model.similarity(q, d)),
            "texts": float(len(q) + len(d))}


def check_multi_vector_variant(model: Any, bundle_dir: Path, variant: str, gate: dict[str, float]) -> dict[str, float]:
    """Re-measure one variant against its recorded gate (``st-runtime validate``)."""
    from st_runtime.errors import ParityError

    from .gates import describe, passes

    figures = measure_multi_vector_variant(multi_vector_reference(model), bundle_dir, variant)
    if gate and not passes(figures, gate):
        raise ParityError(f"Variant {variant!r} no longer meets its gate: {describe(figures, gate)}")
    return figures
