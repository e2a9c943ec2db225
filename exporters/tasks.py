"""Labelled tasks a variant is judged by: the built-in retrieval task, the user's own IR / STS data, reranking.

Every score is computed by ``st_runtime.evaluation``'s evaluators (the torch-free twins of sentence-transformers'
own), on the torch fp32 model and on each variant alike; a variant's figure is its retention, variant / fp32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from st_runtime import corpus
from st_runtime.errors import InputValidationError
from st_runtime.evaluation import InformationRetrievalEvaluator
from st_runtime.evaluation.embedding_similarity import EmbeddingSimilarityEvaluator
from st_runtime.evaluation.reranking import CrossEncoderRerankingEvaluator
from st_runtime.similarity import SIMILARITY, resolve_similarity_name

IR_METRICS = ("ndcg@10", "mrr@10", "recall@10")
# Sizes of the built-in task per split (queries, documents). The selection split decides which layers stay fp32, so
# it is as large as the gate: with 100 queries it accepted a MiniLM dynamic-int8 fallback at NDCG@10 retention 1.012
# that the gate split then measured at 0.986 (a 100-query NDCG moves by about 1 % when a few rankings flip).
TASK_SIZES = {"selection": (250, 400), "gate": (250, 400)}
RERANK_QUERIES = {"selection": 30, "gate": 60}
RERANK_DEPTH = 10


class CalibrationOverlapError(InputValidationError):
    """Calibration texts overlap the texts a variant is evaluated on, so its figures would be optimistic."""


class TorchAsRuntime:
    """A torch SentenceTransformer / CrossEncoder seen through the runtime's interface (numpy out, our similarity),
    so the same evaluator code scores the torch reference and every variant."""

    def __init__(self, model: Any, similarity_fn_name: str | None = None) -> None:
        self.model = model
        self.similarity_fn_name = resolve_similarity_name(similarity_fn_name)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return SIMILARITY[self.similarity_fn_name](a, b)

    def _encode(self, method: str, texts: list[str], prompt_name=None, prompt=None, truncate_dim=None, **_: Any):
        kwargs = {"prompt_name": prompt_name, "prompt": prompt} if (prompt_name or prompt) else {}
        out = getattr(self.model, method)(list(texts), batch_size=32, convert_to_numpy=True,
                                          truncate_dim=truncate_dim, **kwargs)
        return np.asarray(out, dtype=np.float32)

    def encode(self, texts, **kwargs):
        return self._encode("encode", texts, **{k: kwargs.get(k) for k in ("prompt_name", "prompt", "truncate_dim")})

    def encode_query(self, texts, **kwargs):
        return self._encode("encode_query", texts, **kwargs)

    def encode_document(self, texts, **kwargs):
        return self._encode("encode_document", texts, **kwargs)

    def predict(self, pairs, **_: Any):
        import torch

        scores = self.model.predict([list(p) for p in pairs], batch_size=32, activation_fn=torch.nn.Identity(),
                                    convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float64).reshape(len(pairs), -1)[:, 0]


def retention(value: float, reference: float) -> float:
    """variant / fp32 (1.0 when fp32 scores 0: nothing to lose); NaN when either is not finite (fails any gate)."""
    if not math.isfinite(value) or not math.isfinite(reference):
        return float("nan")
    return float(value / reference) if reference > 0 else 1.0


@dataclass
class Task:
    """One labelled task with its torch fp32 scores: ``evaluate(model)`` returns the figures for ``model``."""

    name: str
    kind: str  # "ir", "sts" or "rerank"
    evaluator: Any
    metrics: Sequence[str]
    primary: str
    size: dict[str, int] = field(default_factory=dict)
    reference: dict[str, float] = field(default_factory=dict)

    def scores(self, model: Any) -> dict[str, float]:
        raw = self.evaluator(model)
        out = {}
        for metric in self.metrics:
            key = next((k for k in raw if k == metric), None) or next(
                (k for k in raw if k.endswith("_" + metric) or k.startswith(metric + "_")), None)
            out[metric] = float(raw[key]) if key is not None else float("nan")
        return out

    def set_reference(self, torch_model: Any) -> "Task":
        self.reference = self.scores(torch_model)
        return self

    def figures(self, model: Any) -> dict[str, Any]:
        """{'retention': primary metric retention, 'task': {name, sizes, torch_fp32, variant, retention per metric}}."""
        ours = self.scores(model)
        kept = {m: retention(ours[m], self.reference[m]) for m in self.metrics}
        return {"retention": kept[self.primary],
                "task": {"name": self.name, "kind": self.kind, "primary": self.primary, **self.size,
                         "torch_fp32": dict(self.reference), "variant": ours, "retention": kept}}


def _ir_task(name: str, queries: dict, documents: dict, qrels: dict) -> Task:
    evaluator = InformationRetrievalEvaluator(queries, documents, qrels, write_csv=False, mrr_at_k=[10],
                                              ndcg_at_k=[10], accuracy_at_k=[10], precision_recall_at_k=[10],
                                              map_at_k=[100])
    return Task(name, "ir", evaluator, IR_METRICS, "ndcg@10",
                {"queries": len(evaluator.queries), "documents": len(evaluator.corpus)})


def builtin_ir_task(split: str) -> Task:
    """Docstring summary line -> rest of the docstring, from the split's standard-library modules."""
    n_queries, n_docs = TASK_SIZES[split]
    queries, documents, qrels = corpus.retrieval_task(split, n_queries, n_docs)
    return _ir_task(f"stdlib-docstrings ({split} split)", queries, documents, qrels)


def builtin_rerank_task(split: str) -> Task:
    """Rerank each query's top-{RERANK_DEPTH} lexical (tf-idf) candidates from the built-in retrieval task."""
    n_queries, n_docs = TASK_SIZES[split]
    queries, documents, qrels = corpus.retrieval_task(split, n_queries, n_docs)
    ids = list(documents)
    ranked = _tfidf_top(list(queries.values())[: RERANK_QUERIES[split]], [documents[i] for i in ids], RERANK_DEPTH)
    samples = []
    for (qid, query), top in zip(list(queries.items()), ranked):
        samples.append({"query": query, "positive": [documents[c] for c in qrels[qid]],
                        "documents": [documents[ids[j]] for j in top]})
    evaluator = CrossEncoderRerankingEvaluator(samples, at_k=10, write_csv=False, batch_size=32)
    return Task(f"stdlib-docstrings rerank top-{RERANK_DEPTH} ({split} split)", "rerank", evaluator,
                ("ndcg@10", "mrr@10", "map"), "ndcg@10", {"queries": len(samples), "depth": RERANK_DEPTH})


def _tfidf_top(queries: list[str], documents: list[str], k: int) -> list[list[int]]:
    """Indices of each query's ``k`` best documents by tf-idf cosine (a plain lexical first stage)."""
    tokenized = [corpus._WORD.findall(d.lower()) for d in documents]
    vocab: dict[str, int] = {}
    for words in tokenized:
        for w in words:
            vocab.setdefault(w, len(vocab))
    df = np.zeros(len(vocab))
    for words in tokenized:
        df[[vocab[w] for w in set(words)]] += 1
    idf = np.log((1 + len(documents)) / (1 + df)) + 1

    def vectors(texts: list[list[str]]) -> np.ndarray:
        out = np.zeros((len(texts), len(vocab)))
        for row, words in enumerate(texts):
            for w in words:
                if w in vocab:
                    out[row, vocab[w]] += 1
        out *= idf
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    scores = vectors([corpus._WORD.findall(q.lower()) for q in queries]) @ vectors(tokenized).T
    return [list(np.argsort(-row, kind="stable")[:k]) for row in scores]


def user_ir_task(queries_path: str, corpus_path: str, qrels_path: str) -> Task:
    """The user's retrieval data, in the formats ``st-runtime evaluate --ir`` reads."""
    from st_runtime.evaluation import data

    queries, documents, qrels = data.read_texts(queries_path), data.read_texts(corpus_path), data.read_qrels(qrels_path)
    task = _ir_task(f"user IR ({queries_path})", queries, documents, qrels)
    task.name = f"user IR ({queries_path}, {corpus_path}, {qrels_path})"
    return task


def user_sts_task(path: str) -> Task:
    """The user's scored sentence pairs (``st-runtime evaluate --sts`` format); primary metric Spearman."""
    from st_runtime.evaluation import data

    s1, s2, scores = data.read_sts(path)
    evaluator = EmbeddingSimilarityEvaluator(s1, s2, scores, write_csv=False)
    return Task(f"user STS ({path})", "sts", evaluator, ("spearman", "pearson"), "spearman", {"pairs": len(s1)})


def task_texts(task: Task) -> list[str]:
    """Every text a task embeds or scores (for the calibration overlap check)."""
    ev = task.evaluator
    if isinstance(ev, InformationRetrievalEvaluator):
        return list(ev.queries) + list(ev.corpus)
    if isinstance(ev, EmbeddingSimilarityEvaluator):
        return list(ev.sentences1) + list(ev.sentences2)
    texts = []
    for sample in ev.samples:
        texts += [sample["query"], *sample["positive"], *sample.get("documents", []), *sample.get("negative", [])]
    return texts


def check_no_overlap(calibration: Sequence, evaluated: Sequence[str], what: str) -> None:
    """Raise CalibrationOverlapError when a calibration text shares a text or an 8-word sequence with ``evaluated``."""
    flat = [t for item in calibration for t in ((item,) if isinstance(item, str) else tuple(item))]
    owner: dict[str, str] = {}
    for text in evaluated:
        for gram in corpus.word_ngrams(text):
            owner.setdefault(gram, text)
    hits = []
    for text in flat:
        shared = next((g for g in corpus.word_ngrams(text) if g in owner), None)
        if shared is not None:
            hits.append((text, shared))
    if hits:
        examples = "; ".join(f"{t[:60]!r} (shares {g!r})" for t, g in hits[:3])
        raise CalibrationOverlapError(
            f"{len(hits)} of {len(flat)} calibration texts overlap {what} (same text or an 8-word sequence), so "
            f"the figures measured there would be better than what unseen text gets: {examples}. Remove those "
            "texts from the calibration file, or evaluate on other data."
        )
