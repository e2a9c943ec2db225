"""``InformationRetrievalEvaluator``: retrieve from a corpus for each query and score the ranking."""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

import numpy as np
from tqdm import trange

from ..errors import InputValidationError
from ..similarity import resolve_similarity_name
from .base import BaseEvaluator, epoch_text

logger = logging.getLogger(__name__)

_METRICS = ("accuracy@k", "precision@k", "recall@k", "ndcg@k", "mrr@k", "map@k")
_SCORE_BLOCK = 1 << 24  # score-matrix elements computed at once (64 MB of float32)


def top_k_per_row(scores: np.ndarray, k: int, tie_ranks: np.ndarray) -> list[np.ndarray]:
    """Column indices of the ``k`` best scores of each row, in no particular order.

    Ties at the k-th score are resolved by ascending ``tie_ranks`` (the corpus id order), which is the
    total order sentence-transformers uses, so the result does not depend on how the corpus is chunked.
    """
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    thresholds = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
    boundary_ties = (scores >= thresholds).sum(axis=1) > k
    out = list(part)
    for row in np.nonzero(boundary_ties)[0]:
        values, threshold = scores[row], thresholds[row, 0]
        above = np.nonzero(values > threshold)[0]
        tied = np.nonzero(values == threshold)[0]
        tied = tied[np.argsort(tie_ranks[tied], kind="stable")][: k - len(above)]
        out[row] = np.concatenate([above, tied])
    return out


class InformationRetrievalEvaluator(BaseEvaluator):
    """Torch-free twin of ``sentence_transformers.evaluation.InformationRetrievalEvaluator``.

    ``queries`` (qid -> text), ``corpus`` (cid -> text), ``relevant_docs`` (qid -> set of cids). Queries
    are embedded with ``model.encode_query`` and the corpus with ``model.encode_document`` (in chunks of
    ``corpus_chunk_size``); every query's top hits under each score function (default: the model's
    similarity) give ``<fn>_accuracy@k``, ``_precision@k``, ``_recall@k``, ``_ndcg@k``, ``_mrr@k`` and
    ``_map@k``, with ST's tie order (score descending, then corpus id ascending). ``score_functions``
    maps names to callables ``(query_embeddings, corpus_embeddings) -> (n_queries, n_docs)`` numpy scores.
    """

    def __init__(
        self,
        queries: Mapping[str, str],
        corpus: Mapping[str, str],
        relevant_docs: Mapping[str, set],
        corpus_chunk_size: int = 50000,
        mrr_at_k: list[int] = [10],  # noqa: B006 - same defaults as sentence-transformers, never mutated
        ndcg_at_k: list[int] = [10],  # noqa: B006
        accuracy_at_k: list[int] = [1, 3, 5, 10],  # noqa: B006
        precision_recall_at_k: list[int] = [1, 3, 5, 10],  # noqa: B006
        map_at_k: list[int] = [100],  # noqa: B006
        show_progress_bar: bool = False,
        batch_size: int = 32,
        name: str = "",
        write_csv: bool = True,
        truncate_dim: int | None = None,
        score_functions: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] | None = None,
        main_score_function: Any = None,
        query_prompt: str | None = None,
        query_prompt_name: str | None = None,
        corpus_prompt: str | None = None,
        corpus_prompt_name: str | None = None,
    ) -> None:
        super().__init__()
        self.queries_ids = [qid for qid in queries if qid in relevant_docs and len(relevant_docs[qid]) > 0]
        if not self.queries_ids:
            raise InputValidationError("No query has relevant documents: relevant_docs must map query ids to "
                                       "non-empty sets of corpus ids.")
        if not corpus:
            raise InputValidationError("The corpus is empty.")
        self.queries = [queries[qid] for qid in self.queries_ids]
        self.corpus_ids = list(corpus.keys())
        self.corpus = [corpus[cid] for cid in self.corpus_ids]
        order = sorted(range(len(self.corpus_ids)), key=self.corpus_ids.__getitem__)
        self._corpus_id_ranks = np.empty(len(order), dtype=np.int64)
        self._corpus_id_ranks[order] = np.arange(len(order))
        self.relevant_docs = relevant_docs
        self.corpus_chunk_size = corpus_chunk_size
        self.mrr_at_k, self.ndcg_at_k, self.accuracy_at_k = list(mrr_at_k), list(ndcg_at_k), list(accuracy_at_k)
        self.precision_recall_at_k, self.map_at_k = list(precision_recall_at_k), list(map_at_k)
        self.show_progress_bar = show_progress_bar
        self.batch_size = batch_size
        self.name = name
        self.write_csv = write_csv
        self.truncate_dim = truncate_dim
        self.score_functions = dict(score_functions) if score_functions else None
        self.main_score_function = resolve_similarity_name(main_score_function) if main_score_function else None
        self.query_prompt, self.query_prompt_name = query_prompt, query_prompt_name
        self.corpus_prompt, self.corpus_prompt_name = corpus_prompt, corpus_prompt_name
        self.csv_file = "Information-Retrieval_evaluation" + (f"_{name}" if name else "") + "_results.csv"

    def _embed(self, model: Any, texts: list[str], task: str) -> np.ndarray:
        encode = model.encode_query if task == "query" else model.encode_document
        prompt_name, prompt = ((self.query_prompt_name, self.query_prompt) if task == "query"
                               else (self.corpus_prompt_name, self.corpus_prompt))
        return encode(texts, prompt_name=prompt_name, prompt=prompt, batch_size=self.batch_size,
                      show_progress_bar=self.show_progress_bar, truncate_dim=self.truncate_dim)

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1,
                 corpus_embeddings: np.ndarray | None = None) -> dict[str, float]:
        truncated = f" (truncated to {self.truncate_dim})" if self.truncate_dim is not None else ""
        logger.info(f"Information Retrieval Evaluation of the model on the {self.name} dataset"
                    f"{epoch_text(epoch, steps)}{truncated}:")
        score_functions = self.score_functions or {model.similarity_fn_name: model.similarity}
        names = sorted(score_functions)
        scores = self.compute_metrics(model, score_functions, corpus_embeddings)

        if self.write_csv:
            headers, row = ["epoch", "steps"], [epoch, steps]
            for fn in names:
                for metric, ks, label in (("accuracy@k", self.accuracy_at_k, "Accuracy"),
                                          ("precision_recall", self.precision_recall_at_k, None),
                                          ("mrr@k", self.mrr_at_k, "MRR"), ("ndcg@k", self.ndcg_at_k, "NDCG"),
                                          ("map@k", self.map_at_k, "MAP")):
                    for k in ks:
                        if label is None:
                            headers += [f"{fn}-Precision@{k}", f"{fn}-Recall@{k}"]
                            row += [scores[fn]["precision@k"][k], scores[fn]["recall@k"][k]]
                        else:
                            headers.append(f"{fn}-{label}@{k}")
                            row.append(scores[fn][metric][k])
            self.append_csv(output_path, self.csv_file, headers, row)

        top_ndcg = max(self.ndcg_at_k)
        if self.main_score_function is None:
            best = max(((fn, scores[fn]["ndcg@k"][top_ndcg]) for fn in names), key=lambda item: item[1])[0]
            self.primary_metric = f"{best}_ndcg@{top_ndcg}"
        else:
            self.primary_metric = f"{self.main_score_function}_ndcg@{top_ndcg}"
        metrics = {
            f"{fn}_{metric.replace('@k', f'@{k}')}": value
            for fn, values in scores.items()
            for metric, per_k in values.items()
            for k, value in per_k.items()
        }
        return self.prefix_name_to_metrics(metrics, self.name)

    def search(self, model: Any, score_functions: Mapping[str, Callable],
               corpus_embeddings: np.ndarray | None = None) -> dict[str, list[list[tuple[float, str]]]]:
        """For each score function and query: the best ``max_k`` (score, corpus_id) hits, best first."""
        max_k = max(max(ks) for ks in (self.mrr_at_k, self.ndcg_at_k, self.accuracy_at_k,
                                        self.precision_recall_at_k, self.map_at_k))
        query_embeddings = self._embed(model, self.queries, "query")
        hits: dict[str, list[list[tuple[float, str]]]] = {fn: [[] for _ in self.queries] for fn in score_functions}
        for start in trange(0, len(self.corpus), self.corpus_chunk_size, desc="Corpus Chunks",
                            disable=not self.show_progress_bar):
            end = min(start + self.corpus_chunk_size, len(self.corpus))
            if corpus_embeddings is None:
                chunk = self._embed(model, self.corpus[start:end], "document")
            else:
                chunk = corpus_embeddings[start:end]
            ranks = self._corpus_id_ranks[start:end]
            top_k = min(max_k, end - start)
            rows_per_block = max(1, _SCORE_BLOCK // max(1, end - start))
            for fn, score_function in score_functions.items():
                for q0 in range(0, _rows(query_embeddings), rows_per_block):
                    block = np.asarray(score_function(query_embeddings[q0 : q0 + rows_per_block], chunk))
                    for offset, idx in enumerate(top_k_per_row(block, top_k, ranks)):
                        query_hits = hits[fn][q0 + offset]
                        values = block[offset, idx].tolist()
                        query_hits.extend(zip(values, (self.corpus_ids[start + i] for i in idx.tolist())))
                        query_hits.sort(key=lambda hit: (-hit[0], hit[1]))
                        del query_hits[max_k:]
        return hits

    def compute_metrics(self, model: Any, score_functions: Mapping[str, Callable],
                        corpus_embeddings: np.ndarray | None = None) -> dict[str, dict[str, dict[int, float]]]:
        hits = self.search(model, score_functions, corpus_embeddings)
        logger.info(f"Queries: {len(self.queries)}")
        logger.info(f"Corpus: {len(self.corpus)}\n")
        scores = {fn: self.ranking_metrics(hits[fn]) for fn in score_functions}
        for fn in sorted(scores):
            logger.info(f"Score-Function: {fn}")
            for metric in _METRICS:
                for k, value in scores[fn][metric].items():
                    label = metric.replace("@k", f"@{k}").capitalize()
                    logger.info(f"{label}: {value * 100:.2f}%" if metric in _METRICS[:3] else f"{label}: {value:.4f}")
        return scores

    def ranking_metrics(self, results: list[list[tuple[float, str]]]) -> dict[str, dict[int, float]]:
        """Accuracy, precision, recall, NDCG, MRR and MAP at each k, averaged over the queries."""
        per_query: dict[str, dict[int, list[float]]] = {
            "accuracy@k": {k: [] for k in self.accuracy_at_k},
            "precision@k": {k: [] for k in self.precision_recall_at_k},
            "recall@k": {k: [] for k in self.precision_recall_at_k},
            "ndcg@k": {k: [] for k in self.ndcg_at_k},
            "mrr@k": {k: [] for k in self.mrr_at_k},
            "map@k": {k: [] for k in self.map_at_k},
        }
        for qid, query_hits in zip(self.queries_ids, results):
            relevant = self.relevant_docs[qid]
            is_hit = [cid in relevant for _, cid in sorted(query_hits, key=lambda hit: (-hit[0], hit[1]))]
            for k in self.accuracy_at_k:
                per_query["accuracy@k"][k].append(1.0 if any(is_hit[:k]) else 0.0)
            for k in self.precision_recall_at_k:
                correct = sum(is_hit[:k])
                per_query["precision@k"][k].append(correct / k)
                per_query["recall@k"][k].append(correct / len(relevant))
            for k in self.mrr_at_k:
                per_query["mrr@k"][k].append(next((1.0 / (r + 1) for r, h in enumerate(is_hit[:k]) if h), 0.0))
            for k in self.ndcg_at_k:
                dcg = _dcg(is_hit, k)
                per_query["ndcg@k"][k].append(dcg / _dcg([True] * len(relevant), k))
            for k in self.map_at_k:
                correct, precision_sum = 0, 0.0
                for rank, hit in enumerate(is_hit[:k]):
                    if hit:
                        correct += 1
                        precision_sum += correct / (rank + 1)
                per_query["map@k"][k].append(precision_sum / min(k, len(relevant)))
        out: dict[str, dict[int, float]] = {}
        for metric, per_k in per_query.items():
            if metric in ("accuracy@k", "mrr@k"):
                # ST sums these and divides by the number of queries; the others are np.mean.
                out[metric] = {k: sum(v) / len(self.queries) for k, v in per_k.items()}
            else:
                out[metric] = {k: float(np.mean(v)) for k, v in per_k.items()}
        return out

    def get_config_dict(self) -> dict[str, Any]:
        keys = ("truncate_dim", "query_prompt", "query_prompt_name", "corpus_prompt", "corpus_prompt_name")
        return {key: getattr(self, key) for key in keys if getattr(self, key) is not None}


def _rows(embeddings: Any) -> int:
    """Number of embeddings in a 2-D array, a sparse matrix (no len()) or a list of multi-vector arrays."""
    shape = getattr(embeddings, "shape", None)
    return int(shape[0]) if shape is not None else len(embeddings)


def _dcg(is_relevant: list[bool], k: int) -> float:
    dcg = 0.0
    for i in range(min(len(is_relevant), k)):
        dcg += is_relevant[i] / np.log2(i + 2)
    return float(dcg)
