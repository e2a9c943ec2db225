"""Information retrieval for the sparse and multi-vector families, as sentence-transformers'
``SparseInformationRetrievalEvaluator`` and ``MultiVectorInformationRetrievalEvaluator`` compute it.

Both reuse ``InformationRetrievalEvaluator``'s search and metrics (``<fn>_ndcg@10``, ...) with the model's own
similarity: dot (or the sparse model's similarity_fn_name) over ``scipy.sparse`` rows, MaxSim / MeanMaxSim over
per-token arrays. The sparse one adds ST's ``query_active_dims``, ``query_sparsity_ratio``, ``corpus_active_dims``,
``corpus_sparsity_ratio`` and ``avg_flops``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .information_retrieval import InformationRetrievalEvaluator


class SparseInformationRetrievalEvaluator(InformationRetrievalEvaluator):
    """Torch-free twin of ``sentence_transformers.sparse_encoder.evaluation.SparseInformationRetrievalEvaluator``;
    ``max_active_dims`` (None: the model's) applies to queries and documents."""

    def __init__(self, *args: Any, max_active_dims: int | None = None, **kwargs: Any) -> None:
        if kwargs.get("truncate_dim") is not None:
            from ..errors import InputValidationError

            raise InputValidationError("truncate_dim does not apply to sparse embeddings; use max_active_dims.")
        super().__init__(*args, **kwargs)
        self.csv_file = self.csv_file.replace("Information-Retrieval", "Sparse-Information-Retrieval")
        self.max_active_dims = max_active_dims
        self._reset_stats()

    def _reset_stats(self) -> None:
        self._stats: dict[str, list[tuple[dict[str, float], int]]] = {"query": [], "corpus": []}
        self._counts: dict[str, np.ndarray] = {}

    def _embed(self, model: Any, texts: list[str], task: str):
        encode = model.encode_query if task == "query" else model.encode_document
        prompt_name, prompt = ((self.query_prompt_name, self.query_prompt) if task == "query"
                               else (self.corpus_prompt_name, self.corpus_prompt))
        embeddings = encode(texts, prompt_name=prompt_name, prompt=prompt, batch_size=self.batch_size,
                            show_progress_bar=self.show_progress_bar, max_active_dims=self.max_active_dims)
        self._record(model, embeddings, "query" if task == "query" else "corpus")
        return embeddings

    def _record(self, model: Any, embeddings: Any, prefix: str) -> None:
        from ..sparse import as_csr

        matrix = as_csr(embeddings)
        matrix.eliminate_zeros()
        self._stats[prefix].append((model.sparsity(matrix), matrix.shape[0]))
        counts = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)
        self._counts[prefix] = self._counts[prefix] + counts if prefix in self._counts else counts

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1,
                 corpus_embeddings: Any = None) -> dict[str, float]:
        self._reset_stats()
        if corpus_embeddings is not None:
            self._record(model, corpus_embeddings, "corpus")
        metrics = super().__call__(model, output_path, epoch, steps, corpus_embeddings)
        stats: dict[str, float] = {}
        for prefix, records in self._stats.items():
            for key in ("active_dims", "sparsity_ratio"):
                if prefix == "query":  # ST: a plain mean over encode calls; the corpus weighted by chunk size
                    stats[f"{prefix}_{key}"] = sum(r[key] for r, _ in records) / len(records)
                else:
                    stats[f"{prefix}_{key}"] = sum(r[key] * n for r, n in records) / sum(n for _, n in records)
        rows = {prefix: sum(n for _, n in records) for prefix, records in self._stats.items()}
        stats["avg_flops"] = float(np.dot(self._counts["query"] / rows["query"],
                                          self._counts["corpus"] / rows["corpus"]))
        metrics.update(self.prefix_name_to_metrics(stats, self.name))
        return metrics

    def get_config_dict(self) -> dict[str, Any]:
        config = super().get_config_dict()
        if self.max_active_dims is not None:
            config["max_active_dims"] = self.max_active_dims
        return config


class MultiVectorInformationRetrievalEvaluator(InformationRetrievalEvaluator):
    """Torch-free twin of ``sentence_transformers.multi_vector_encoder.evaluation.
    MultiVectorInformationRetrievalEvaluator``: MaxSim (or the model's MeanMaxSim) over per-token embeddings."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("truncate_dim", None)  # as ST: MultiVectorEncoder.encode takes no truncate_dim
        super().__init__(*args, **kwargs)

    def _embed(self, model: Any, texts: list[str], task: str):
        encode = model.encode_query if task == "query" else model.encode_document
        prompt_name, prompt = ((self.query_prompt_name, self.query_prompt) if task == "query"
                               else (self.corpus_prompt_name, self.corpus_prompt))
        return encode(texts, prompt_name=prompt_name, prompt=prompt, batch_size=self.batch_size,
                      show_progress_bar=self.show_progress_bar)
