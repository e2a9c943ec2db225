"""Accuracy gates: what a variant costs against the torch fp32 reference, on held-out real text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from st_runtime import corpus
from st_runtime.errors import ParityError

from .tasks import Task, TorchAsRuntime, builtin_ir_task, builtin_rerank_task

# Default gates per precision; a variant that misses its gate is not written unless forced. Reduced precision also
# keeps >= 99.5 % of torch fp32's NDCG@10 on the built-in retrieval task (and on the user's task when one is given).
TASK_BOUND = 0.995
DEFAULT_GATES: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-5},
    "fp16": {"mean_cosine": 0.9999, "ndcg10_retention": TASK_BOUND},
    "bf16": {"mean_cosine": 0.9999, "ndcg10_retention": TASK_BOUND},
    "int8": {"mean_cosine": 0.99, "top10_overlap": 0.90, "ndcg10_retention": TASK_BOUND},
}
DEFAULT_GATES["int4"] = DEFAULT_GATES["int8"]  # int4 weights are held to the int8 gate
CROSS_ENCODER_GATES: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-5},
    "fp16": {"spearman": 0.999, "ndcg10_retention": TASK_BOUND},
    "bf16": {"spearman": 0.999, "ndcg10_retention": TASK_BOUND},
    "int8": {"spearman": 0.98, "top10_overlap": 0.90, "ndcg10_retention": TASK_BOUND},
}
CROSS_ENCODER_GATES["int4"] = CROSS_ENCODER_GATES["int8"]
USER_KEY = "user_retention"
# The fp32 fallback stops adding fp32 layers only when the *selection* split clears the gate by this much: the gate
# split is other text, and a variant that only just passes on one split misses on the other about half the time.
# Sized as about one standard error of each figure on the selection split's 100 queries / 200 passages.
SELECTION_MARGIN: dict[str, float] = {"mean_cosine": 0.001, "min_cosine": 0.002, "spearman": 0.002,
                                      "top10_overlap": 0.01, "active_overlap": 0.01, "ndcg10_retention": 0.002}
_AT_MOST_ONE = {"mean_cosine", "min_cosine", "spearman", "top10_overlap", "active_overlap"}
# Texts per split: (queries, passages) of the gate split are reported; the selection split drives the fp32 fallback.
SPLIT_SIZES = {"gate": (200, 400), "selection": (100, 200)}


@dataclass
class HeldOut:
    """Texts of one split (never used for calibration), their torch fp32 outputs, and the labelled tasks."""

    queries: list[str]
    passages: list[str]
    query_ref: np.ndarray
    passage_ref: np.ndarray
    split: str = "gate"
    tasks: list[tuple[str, Task]] = field(default_factory=list)


def held_out_texts(n_queries: int = 200, n_passages: int = 400, split: str = "gate") -> tuple[list[str], list[str]]:
    """Queries and passages of one split (default: the gate split, which neither calibration nor selection sees)."""
    return (corpus.queries(n_queries, seed=1001, split=split),
            corpus.passages(n_passages, seed=1002, split=split))


def calibration_texts(n: int = 300) -> list[str]:
    """Default calibration set: half queries, half passages, from the calibration split only."""
    return (corpus.queries(n // 2, seed=2001, split="calibration")
            + corpus.passages(n - n // 2, seed=2002, split="calibration"))


def gate_for(precision: str, exact: bool, kind: str, user_task: bool = False) -> dict[str, float]:
    """The default gate of a variant: exact fp32 by max abs; reduced precision by figures and task retention."""
    defaults = CROSS_ENCODER_GATES if kind == "cross-encoder" else DEFAULT_GATES
    key = "fp32" if precision == "fp32" and exact else precision
    gate = dict(defaults.get(key, defaults["int8"]))
    if user_task and "max_abs" not in gate:
        gate[USER_KEY] = TASK_BOUND
    return gate


def _task_figures(tasks: list[tuple[str, Task]], model: Any) -> dict[str, Any]:
    """Retention figures (flat, for gates) and each task's scores (under 'tasks'); several user tasks gate by the
    lowest retention among them."""
    out: dict[str, Any] = {"tasks": {}}
    for key, task in tasks:
        result = task.figures(model)
        if key == USER_KEY:
            kept = [out.get(key, float("inf")), result["retention"]]
            out[key] = float("nan") if any(np.isnan(kept)) else min(kept)
            out["tasks"][f"user:{task.kind}"] = result["task"]
            continue
        out[key] = result["retention"]
        for metric, kept in result["task"]["retention"].items():
            out[f"{metric.replace('@', '')}_retention"] = kept
        out["tasks"][key] = result["task"]
    return out


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


def with_margin(gate: dict[str, float]) -> dict[str, float]:
    """``gate`` tightened by ``SELECTION_MARGIN`` (bounds that cannot exceed 1 are capped there; ``max_abs`` halved):
    what the fp32 fallback demands of the selection split before it stops."""
    out = {}
    for name, bound in gate.items():
        if name == "max_abs":
            out[name] = bound / 2
        else:
            tight = bound + SELECTION_MARGIN.get(name, 0.0)
            out[name] = min(tight, 1.0) if name in _AT_MOST_ONE else tight
    return out


def describe(figures: dict[str, float], gate: dict[str, float]) -> str:
    shown = ", ".join(f"{k}={figures[k]:.4g}" for k in ("max_abs", "mean_cosine", "min_cosine", "spearman",
                                                          "active_overlap", "top10_overlap", "ndcg10_retention",
                                                          USER_KEY) if isinstance(figures.get(k), float))
    bounds = ", ".join(f"{k} {'<=' if k == 'max_abs' else '>='} {v:g}" for k, v in gate.items())
    return f"{shown} (gate: {bounds})"


def embedding_reference(st: Any, split: str = "gate", user_tasks: Sequence[Task] = ()) -> HeldOut:
    """torch fp32 outputs on one split's texts and the labelled tasks' fp32 scores: computed once per export."""
    n_queries, n_passages = SPLIT_SIZES[split]
    queries, passages = held_out_texts(n_queries, n_passages, split)
    adapter = TorchAsRuntime(st, getattr(st, "similarity_fn_name", None))
    tasks = [("ndcg10_retention", builtin_ir_task(split).set_reference(adapter))]
    tasks += [(USER_KEY, task.set_reference(adapter)) for task in user_tasks]
    return HeldOut(queries, passages, st.encode(queries, batch_size=32), st.encode(passages, batch_size=32),
                   split, tasks)


def measure_embedding_variant(held: HeldOut, bundle_dir: Path, variant: str) -> dict[str, Any]:
    from st_runtime import SentenceTransformer

    model = SentenceTransformer(bundle_dir, variant=variant, verify=False)
    figures: dict[str, Any] = embedding_figures(held, model.encode(held.queries), model.encode(held.passages))
    figures.update(_task_figures(held.tasks, model))
    if held.split == "gate":  # recorded with the reported figures; the selection split's only choose settings
        figures.update(batch_dependence(model, held.queries[:32] + held.passages[:32]))
    figures["split"] = held.split
    return figures


def batch_dependence(model: Any, texts: list[str]) -> dict[str, float]:
    """How much a text's vector depends on the batch it is in: each text alone vs in batches of 32.

    Recorded, not gated: dynamic int8 quantizes activations per call, so its vectors move with the batch.
    """
    alone = np.stack([model.encode(text) for text in texts])
    batched = model.encode(texts, batch_size=32)
    return {"batch_max_abs": float(np.abs(alone.astype(np.float64) - batched).max()),
            "batch_min_cosine": float(_cosines(alone, batched).min())}


def cross_encoder_reference(ce: Any, split: str = "gate", n_queries: int | None = None, docs_per_query: int = 20
                            ) -> dict[str, Any]:
    """torch fp32 logits on pairs of one split, and (single-label models) the reranking task's fp32 scores."""
    n_queries = n_queries or 20
    queries, passages = held_out_texts(n_queries, n_queries * docs_per_query, split)
    pairs = [(q, p) for qi, q in enumerate(queries) for p in passages[qi * docs_per_query:(qi + 1) * docs_per_query]]
    pairs = [(p[1].split(".")[0] if i % 3 == 0 else p[0], p[1]) for i, p in enumerate(pairs)]  # some related pairs
    import torch

    logits = np.asarray(ce.predict(pairs, activation_fn=torch.nn.Identity(), batch_size=32)).reshape(len(pairs), -1)
    tasks = []
    if logits.shape[1] == 1:
        tasks.append(("ndcg10_retention", builtin_rerank_task(split).set_reference(TorchAsRuntime(ce))))
    return {"pairs": pairs, "logits": logits, "groups": docs_per_query, "tasks": tasks, "split": split}


def measure_cross_encoder_variant(reference: dict[str, Any], bundle_dir: Path, variant: str) -> dict[str, Any]:
    from st_runtime import CrossEncoder

    model = CrossEncoder(bundle_dir, variant=variant, verify=False)
    ours = np.asarray(model.predict(reference["pairs"], activation_fn="identity")).reshape(len(reference["pairs"]), -1)
    ref = reference["logits"]
    g = reference["groups"]
    first = ref[:, 0].reshape(-1, g), ours[:, 0].reshape(-1, g)
    figures: dict[str, Any] = {
        "max_abs": float(np.abs(ref - ours).max()),
        "spearman": float(np.mean([spearman(a, b) for a, b in zip(*first)])),
        "top10_overlap": topk_overlap(*first, k=min(10, g // 2)),
        "pairs": float(len(ref)),
    }
    figures.update(_task_figures(reference["tasks"], model))
    figures["split"] = reference["split"]
    return figures


def check_variant(model: Any, bundle_dir: Path, variant: str, kind: str, gate: dict[str, float]) -> dict[str, Any]:
    """Re-measure one variant on the gate split against its recorded gate (used by ``st-runtime validate``).

    A user task given at export is not stored in the bundle, so its bound is not re-checked here.
    """
    if kind == "cross-encoder":
        figures = measure_cross_encoder_variant(cross_encoder_reference(model), bundle_dir, variant)
    else:
        figures = measure_embedding_variant(embedding_reference(model), bundle_dir, variant)
    gate = {k: v for k, v in gate.items() if k != USER_KEY}
    if gate and not passes(figures, gate):
        raise ParityError(f"Variant {variant!r} no longer meets its gate: {describe(figures, gate)}")
    return figures
