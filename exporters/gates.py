"""Accuracy gates: what a variant costs against the torch fp32 reference, on held-out real text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from st_runtime import corpus
from st_runtime.errors import ParityError

# Default gates per precision; a variant that misses its gate is not written unless forced.
DEFAULT_GATES: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-5},
    "fp16": {"mean_cosine": 0.9999},
    "bf16": {"mean_cosine": 0.9999},
    "int8": {"mean_cosine": 0.99, "top10_overlap": 0.90},
}
CROSS_ENCODER_GATES: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-5},
    "fp16": {"spearman": 0.999},
    "bf16": {"spearman": 0.999},
    "int8": {"spearman": 0.98, "top10_overlap": 0.90},
}


@dataclass
class HeldOut:
    """Held-out evaluation texts (never used for calibration) and their torch fp32 reference outputs."""

    queries: list[str]
    passages: list[str]
    query_ref: np.ndarray
    passage_ref: np.ndarray


def held_out_texts(n_queries: int = 200, n_passages: int = 400) -> tuple[list[str], list[str]]:
    """Queries and passages from seeds the calibration corpus never uses."""
    return corpus.queries(n_queries, seed=1001), corpus.passages(n_passages, seed=1002)


def calibration_texts(n: int = 300) -> list[str]:
    """Default calibration set: half queries, half passages, from other seeds than the held-out set."""
    return corpus.queries(n // 2, seed=2001) + corpus.passages(n - n // 2, seed=2002)


def _rank(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values))
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _rank(np.ravel(a)), _rank(np.ravel(b))
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denominator) if denominator else 1.0


def topk_overlap(ref_scores: np.ndarray, cand_scores: np.ndarray, k: int = 10) -> float:
    """Mean |top-k(ref) ∩ top-k(candidate)| / k over the rows of two score matrices."""
    k = min(k, ref_scores.shape[1])
    ref_top = np.argsort(-ref_scores, axis=1)[:, :k]
    cand_top = np.argsort(-cand_scores, axis=1)[:, :k]
    return float(np.mean([len(set(r) & set(c)) / k for r, c in zip(ref_top, cand_top)]))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return np.where(norms > 0, (a64 * b64).sum(1) / np.maximum(norms, 1e-30), 1.0)


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def embedding_figures(held: HeldOut, query_emb: np.ndarray, passage_emb: np.ndarray) -> dict[str, float]:
    """max abs, mean/min cosine, Spearman of pair similarities, top-10 retrieval overlap vs the reference."""
    ref = np.concatenate([held.query_ref, held.passage_ref])
    cand = np.concatenate([query_emb, passage_emb])
    cos = _cosines(ref, cand)
    n = len(held.passage_ref)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, n, 2000), rng.integers(0, n, 2000)
    ref_pairs = (_unit(held.passage_ref)[i] * _unit(held.passage_ref)[j]).sum(1)
    cand_pairs = (_unit(passage_emb)[i] * _unit(passage_emb)[j]).sum(1)
    return {
        "max_abs": float(np.abs(ref.astype(np.float64) - cand).max()),
        "mean_cosine": float(cos.mean()),
        "min_cosine": float(cos.min()),
        "spearman": spearman(ref_pairs, cand_pairs),
        "top10_overlap": topk_overlap(_unit(held.query_ref) @ _unit(held.passage_ref).T,
                                      _unit(query_emb) @ _unit(passage_emb).T),
        "texts": float(len(ref)),
    }


def passes(figures: dict[str, float], gate: dict[str, float]) -> bool:
    """max_abs is an upper bound; every other figure a lower bound."""
    for name, bound in gate.items():
        value = figures.get(name, float("nan"))
        if not np.isfinite(value) or (value > bound if name == "max_abs" else value < bound):
            return False
    return True


def describe(figures: dict[str, float], gate: dict[str, float]) -> str:
    shown = ", ".join(f"{k}={figures[k]:.4g}" for k in ("max_abs", "mean_cosine", "min_cosine", "spearman",
                                                          "active_overlap", "top10_overlap") if k in figures)
    bounds = ", ".join(f"{k} {'<=' if k == 'max_abs' else '>='} {v:g}" for k, v in gate.items())
    return f"{shown} (gate: {bounds})"


def embedding_reference(st: Any, n_queries: int = 200, n_passages: int = 400) -> HeldOut:
    queries, passages = held_out_texts(n_queries, n_passages)
    return HeldOut(queries, passages, st.encode(queries, batch_size=32), st.encode(passages, batch_size=32))


def measure_embedding_variant(held: HeldOut, bundle_dir: Path, variant: str) -> dict[str, float]:
    from st_runtime import SentenceTransformer

    model = SentenceTransformer(bundle_dir, variant=variant, verify=False)
    figures = embedding_figures(held, model.encode(held.queries), model.encode(held.passages))
    figures.update(batch_dependence(model, held.queries[:32] + held.passages[:32]))
    return figures


def batch_dependence(model: Any, texts: list[str]) -> dict[str, float]:
    """How much a text's vector depends on the batch it is in: each text alone vs in batches of 32.

    Recorded, not gated: dynamic int8 quantizes activations per call, so its vectors move with the batch.
    """
    alone = np.stack([model.encode(text) for text in texts])
    batched = model.encode(texts, batch_size=32)
    return {"batch_max_abs": float(np.abs(alone.astype(np.float64) - batched).max()),
            "batch_min_cosine": float(_cosines(alone, batched).min())}


def cross_encoder_reference(ce: Any, n_queries: int = 20, docs_per_query: int = 20) -> dict[str, Any]:
    queries, passages = held_out_texts(n_queries, n_queries * docs_per_query)
    pairs = [(q, p) for qi, q in enumerate(queries) for p in passages[qi * docs_per_query:(qi + 1) * docs_per_query]]
    pairs = [(p[1].split(".")[0] if i % 3 == 0 else p[0], p[1]) for i, p in enumerate(pairs)]  # some related pairs
    import torch

    logits = np.asarray(ce.predict(pairs, activation_fn=torch.nn.Identity(), batch_size=32)).reshape(len(pairs), -1)
    return {"pairs": pairs, "logits": logits, "groups": docs_per_query}


def measure_cross_encoder_variant(reference: dict[str, Any], bundle_dir: Path, variant: str) -> dict[str, float]:
    from st_runtime import CrossEncoder

    model = CrossEncoder(bundle_dir, variant=variant, verify=False)
    ours = np.asarray(model.predict(reference["pairs"], activation_fn="identity")).reshape(len(reference["pairs"]), -1)
    ref = reference["logits"]
    g = reference["groups"]
    first = ref[:, 0].reshape(-1, g), ours[:, 0].reshape(-1, g)
    return {
        "max_abs": float(np.abs(ref - ours).max()),
        "spearman": float(np.mean([spearman(a, b) for a, b in zip(*first)])),
        "top10_overlap": topk_overlap(*first, k=min(10, g // 2)),
        "pairs": float(len(ref)),
    }


def check_variant(model: Any, bundle_dir: Path, variant: str, kind: str, gate: dict[str, float]) -> dict[str, float]:
    """Re-measure one variant against its recorded gate (used by ``st-runtime validate``)."""
    if kind == "cross-encoder":
        figures = measure_cross_encoder_variant(cross_encoder_reference(model), bundle_dir, variant)
    else:
        figures = measure_embedding_variant(embedding_reference(model), bundle_dir, variant)
    if gate and not passes(figures, gate):
        raise ParityError(f"Variant {variant!r} no longer meets its gate: {describe(figures, gate)}")
    return figures
