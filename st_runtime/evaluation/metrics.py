"""Correlation and ranking metrics in numpy, with the definitions scipy and scikit-learn use.

sentence-transformers' evaluators call ``scipy.stats.pearsonr`` / ``spearmanr`` and scikit-learn's
``ndcg_score`` / ``average_precision_score``; these functions give the same values (ties included)
without either library.
"""

from __future__ import annotations

import numpy as np


def _vector(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}.")
    return arr


def pearson(x, y) -> float:
    """Pearson's r as ``scipy.stats.pearsonr(x, y)[0]`` (float64; nan when either input is constant)."""
    x, y = _vector(x, "x"), _vector(y, "y")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}.")
    if len(x) < 2:
        raise ValueError("Pearson correlation needs at least two values.")
    xm, ym = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(xm), np.linalg.norm(ym)
    if nx == 0 or ny == 0:
        return float("nan")
    return float(np.clip(np.dot(xm / nx, ym / ny), -1.0, 1.0))


def rankdata(values) -> np.ndarray:
    """Ranks starting at 1, ties given their average rank (``scipy.stats.rankdata(method='average')``)."""
    arr = _vector(values, "values")
    order = np.argsort(arr, kind="mergesort")
    sorted_values = arr[order]
    new_group = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    group_id = np.cumsum(new_group) - 1
    starts = np.nonzero(new_group)[0]
    ends = np.r_[starts[1:], len(arr)]
    average = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(arr), dtype=np.float64)
    ranks[order] = average[group_id]
    return ranks


def spearman(x, y) -> float:
    """Spearman's rho as ``scipy.stats.spearmanr(x, y)[0]``: Pearson's r of the average ranks."""
    return pearson(rankdata(x), rankdata(y))


def average_precision(y_true, y_score) -> float:
    """``sklearn.metrics.average_precision_score`` for binary relevance: precision at each distinct score
    threshold (tied scores form one threshold), weighted by the recall gained there."""
    relevant = np.asarray(y_true).astype(bool)
    scores = np.asarray(y_score)
    if not relevant.any():
        return 0.0  # scikit-learn warns and returns 0 (recall is undefined)
    order = np.argsort(scores, kind="mergesort")[::-1]
    scores, relevant = scores[order], relevant[order]
    last_of_group = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    tps = np.cumsum(relevant)[last_of_group].astype(np.float64)
    fps = (last_of_group + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    gained = np.diff(np.r_[0.0, recall])
    return float(max(0.0, np.sum(gained * precision)))


def _discount(n: int, k: int | None) -> np.ndarray:
    discount = 1 / (np.log(np.arange(n) + 2) / np.log(2))
    if k is not None:
        discount[k:] = 0
    return discount


def _tie_averaged_dcg(y_true: np.ndarray, y_score: np.ndarray, discount_cumsum: np.ndarray) -> float:
    _, inverse, counts = np.unique(-y_score, return_inverse=True, return_counts=True)
    ranked = np.zeros(len(counts))
    np.add.at(ranked, inverse.reshape(-1), y_true)
    ranked /= counts
    groups = np.cumsum(counts) - 1
    discount_sums = np.empty(len(counts))
    discount_sums[0] = discount_cumsum[groups[0]]
    discount_sums[1:] = np.diff(discount_cumsum[groups])
    return float((ranked * discount_sums).sum())


def ndcg(y_true, y_score, k: int | None = None) -> float:
    """``sklearn.metrics.ndcg_score([y_true], [y_score], k=k)`` for one ranking: tied scores share the
    average gain of their group; 0 when nothing is relevant."""
    gains = np.asarray(y_true, dtype=np.float64)
    scores = np.asarray(y_score)
    if len(gains) == 0:
        return 0.0
    discount = _discount(len(gains), k)
    ideal = float(discount.dot(np.sort(gains)[::-1]))
    if ideal == 0:
        return 0.0
    return _tie_averaged_dcg(gains, scores, np.cumsum(discount)) / ideal


def reciprocal_rank(y_true, y_score, k: int) -> float:
    """1 / rank of the first relevant item among the top ``k``, ordered as sentence-transformers orders
    them (``np.argsort(scores)[::-1]``); 0 when none is there."""
    ranking = np.argsort(np.asarray(y_score))[::-1]
    for rank, index in enumerate(ranking[:k]):
        if y_true[index]:
            return 1 / (rank + 1)
    return 0
