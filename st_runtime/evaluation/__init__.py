"""Torch-free evaluators with sentence-transformers' arguments, metric names and values.

``EmbeddingSimilarityEvaluator`` (STS: Pearson / Spearman), ``InformationRetrievalEvaluator`` (accuracy,
precision, recall, MRR, NDCG, MAP at k) and ``CrossEncoderRerankingEvaluator`` (MAP, MRR@k, NDCG@k) take
st-runtime models (anything with ``encode`` / ``encode_query`` / ``encode_document`` / ``similarity``, or
``predict`` for the reranker) and need neither torch, scipy nor scikit-learn. ``SparseInformationRetrievalEvaluator``
(dot over scipy.sparse rows, plus active dims and FLOPS) and ``MultiVectorInformationRetrievalEvaluator`` (MaxSim)
serve the other two families.
"""

from __future__ import annotations

from .base import BaseEvaluator
from .embedding_similarity import EmbeddingSimilarityEvaluator
from .families_retrieval import MultiVectorInformationRetrievalEvaluator, SparseInformationRetrievalEvaluator
from .information_retrieval import InformationRetrievalEvaluator
from .reranking import CrossEncoderRerankingEvaluator

__all__ = [
    "BaseEvaluator",
    "CrossEncoderRerankingEvaluator",
    "EmbeddingSimilarityEvaluator",
    "InformationRetrievalEvaluator",
    "MultiVectorInformationRetrievalEvaluator",
    "SparseInformationRetrievalEvaluator",
]
