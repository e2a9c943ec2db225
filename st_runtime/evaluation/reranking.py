"""``CrossEncoderRerankingEvaluator``: rerank each query's documents with a cross-encoder and score the order."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputValidationError
from .base import BaseEvaluator, epoch_text
from .metrics import average_precision, ndcg, reciprocal_rank

logger = logging.getLogger(__name__)


class CrossEncoderRerankingEvaluator(BaseEvaluator):
    """Torch-free twin of ``sentence_transformers.cross_encoder.evaluation.CrossEncoderRerankingEvaluator``.

    ``samples``: dicts with ``query``, ``positive`` (list of relevant texts) and either ``negative`` (list)
    or ``documents`` (a first-stage ranking that includes the positives). Returns ``map``,
    ``mrr@{at_k}`` and ``ndcg@{at_k}`` of the reranked lists; with ``documents`` also ``base_map``,
    ``base_mrr@{at_k}``, ``base_ndcg@{at_k}`` of the given order. ``always_rerank_positives`` as in ST:
    positives missing from ``documents`` are added before reranking. Samples without any positive count
    as 0. ``primary_metric`` is ``ndcg@{at_k}`` (prefixed with ``name``).
    """

    def __init__(
        self,
        samples: Sequence[Mapping[str, Any]] | Mapping[Any, Mapping[str, Any]],
        at_k: int = 10,
        always_rerank_positives: bool = True,
        name: str = "",
        prompt_name: str | None = None,
        batch_size: int = 64,
        show_progress_bar: bool = False,
        write_csv: bool = True,
        mrr_at_k: int | None = None,
    ) -> None:
        super().__init__()
        if prompt_name is not None:
            raise InputValidationError("st-runtime cross-encoders have no prompts; leave prompt_name=None.")
        self.samples = list(samples.values()) if isinstance(samples, Mapping) else list(samples)
        if not self.samples:
            raise InputValidationError("CrossEncoderRerankingEvaluator needs at least one sample.")
        for index, sample in enumerate(self.samples):
            if "query" not in sample or "positive" not in sample:
                raise InputValidationError(f"Sample {index} needs a 'query' and a 'positive' key.")
            if ("negative" in sample) == ("documents" in sample):
                raise InputValidationError(f"Sample {index} needs exactly one of 'negative' and 'documents'.")
        self.at_k = mrr_at_k if mrr_at_k is not None else at_k
        self.always_rerank_positives = always_rerank_positives
        self.name = name
        self.prompt_name = prompt_name
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self.write_csv = write_csv
        self.csv_file = "CrossEncoderRerankingEvaluator" + (f"_{name}" if name else "") + f"_results_@{self.at_k}.csv"
        self.csv_headers = ["epoch", "steps", "MAP", f"MRR@{self.at_k}", f"NDCG@{self.at_k}"]
        self.primary_metric = f"ndcg@{self.at_k}"

    def compute_metrics(self, y_true: Sequence[int], y_pred: np.ndarray) -> tuple[float, float, float]:
        """(MRR@k, NDCG@k, average precision) of one ranking, as ST computes them with scikit-learn."""
        return reciprocal_rank(y_true, y_pred, self.at_k), ndcg(y_true, y_pred, k=self.at_k), \
            average_precision(y_true, y_pred)

    def _prepare(self):
        base: list[tuple[float, float, float]] = []
        pairs: list[list[str]] = []
        layout: list[tuple[list[int], int] | None] = []
        for sample in self.samples:
            query, positive = sample["query"], sample["positive"]
            if isinstance(positive, str):
                positive = [positive]
            positive = list(positive)
            documents = sample.get("documents")
            if documents:
                base_relevant = [int(doc in positive) for doc in documents]
                if sum(base_relevant) == 0:
                    base.append((0, 0, 0))
                else:
                    base_relevant += [1] * (len(positive) - sum(base_relevant))
                    base.append(self.compute_metrics(base_relevant, np.array(range(len(base_relevant), 0, -1))))
                if self.always_rerank_positives:
                    docs = positive + [doc for doc in documents if doc not in positive]
                    relevant = [1] * len(positive) + [0] * (len(docs) - len(positive))
                else:
                    docs = list(documents)
                    relevant = [int(doc in positive) for doc in documents]
            else:
                docs = positive + list(sample.get("negative") or [])
                relevant = [1] * len(positive) + [0] * (len(docs) - len(positive))
            if sum(relevant) == 0:
                layout.append(None)
                continue
            layout.append((relevant, len(docs)))
            pairs.extend([query, doc] for doc in docs)
        return base, pairs, layout

    def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1,
                 steps: int = -1) -> dict[str, float]:
        logger.info(f"CrossEncoderRerankingEvaluator: Evaluating the model on the {self.name} dataset"
                    f"{epoch_text(epoch, steps)}:")
        base, pairs, layout = self._prepare()
        if pairs:
            predicted = np.asarray(model.predict(pairs, batch_size=self.batch_size, convert_to_numpy=True,
                                                 show_progress_bar=self.show_progress_bar))
        else:
            predicted = np.array([])

        per_sample, offset = [], 0
        for item in layout:
            if item is None:
                per_sample.append((0, 0, 0))
                continue
            relevant, count = item
            per_sample.append(self.compute_metrics(relevant, predicted[offset : offset + count]))
            offset += count
        mean_mrr, mean_ndcg, mean_ap = (float(np.mean([s[i] for s in per_sample])) for i in range(3))
        metrics: dict[str, float] = {"map": mean_ap, f"mrr@{self.at_k}": mean_mrr, f"ndcg@{self.at_k}": mean_ndcg}
        if base:
            base_mrr, base_ndcg, base_ap = (float(np.mean([s[i] for s in base])) for i in range(3))
            metrics.update({"base_map": base_ap, f"base_mrr@{self.at_k}": base_mrr,
                            f"base_ndcg@{self.at_k}": base_ndcg})
            logger.info(f"MAP: {base_ap * 100:.2f} -> {mean_ap * 100:.2f}   MRR@{self.at_k}: "
                        f"{base_mrr * 100:.2f} -> {mean_mrr * 100:.2f}   NDCG@{self.at_k}: "
                        f"{base_ndcg * 100:.2f} -> {mean_ndcg * 100:.2f}")
        else:
            logger.info(f"MAP: {mean_ap * 100:.2f}   MRR@{self.at_k}: {mean_mrr * 100:.2f}   "
                        f"NDCG@{self.at_k}: {mean_ndcg * 100:.2f}")
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        if self.write_csv:
            self.append_csv(output_path, self.csv_file, self.csv_headers, [epoch, steps, mean_ap, mean_mrr, mean_ndcg])
        return metrics

    def get_config_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"at_k": self.at_k}
        if self.samples and "documents" in self.samples[0]:
            config["always_rerank_positives"] = self.always_rerank_positives
        return config
