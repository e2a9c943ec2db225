"""Torch-free evaluators with sentence-transformers' arguments, metric names and values.

``EmbeddingSimilarityEvaluator`` (STS: Pearson / Spearman), ``InformationRetrievalEvaluator`` (accuracy,
precision, recall, MRR, NDCG, MAP at k) and ``CrossEncoderRerankingEvaluator`` (MAP, MRR@k, NDCG@k) take
st-runtime models (anything with ``encode`` / ``encode_query`` / ``encode_document`` / ``similarity``, or
``predict`` for the reranker) and need neither torch, scipy nor scikit-learn.
"""

from __future__ import annotations

from .base import BaseEvaluator
from .embedding_similarity import EmbeddingSimilarityEvaluator
from .information_retrieval import InformationRetrievalEvaluator
from .reranking import CrossEncoderRerankingEvaluator

__all__ = [
    "BaseEvaluator",
    "CrossEncoderRerankingEvaluator",
    "EmbeddingSimilarityEvaluator",
    "InformationRetrievalEvaluator",
]
