"""numpy ports of sentence-transformers' retrieval utilities (``sentence_transformers.util``).

Same names, arguments, defaults and return structures; scores come back as Python floats and ids as
Python ints. Ties are broken deterministically in favour of the lower index (torch leaves them unspecified).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .errors import InputValidationError
from .similarity import cos_sim, dot_score, normalize_embeddings

ScoreFunction = Callable[[Any, Any], np.ndarray]

__all__ = ["community_detection", "paraphrase_mining", "paraphrase_mining_embeddings", "semantic_search"]


def _to_array(a: Any) -> np.ndarray:
    """Embeddings as a float numpy array (lists of arrays are stacked, Python floats become float32)."""
    try:
        if isinstance(a, (list, tuple)) and len(a) and all(isinstance(x, np.ndarray) for x in a):
            arr = np.stack(a)
        else:
            arr = np.asarray(a)
    except ValueError as exc:
        raise InputValidationError(f"Embeddings must form a regular (n, dim) array: {exc}") from exc
    if arr.dtype.kind not in "fbiu":
        raise InputValidationError(f"Embeddings must be numbers, got an array of {arr.dtype}.")
    if arr.dtype.kind != "f" or arr.dtype.itemsize < 4:  # ints, bools, float16: score in float32
        arr = arr.astype(np.float32)
    return arr


def _to_batch(a: Any) -> np.ndarray:
    arr = _to_array(a)
    if arr.ndim == 1:
        return arr.reshape(0, 0) if arr.size == 0 else arr[None, :]
    if arr.ndim != 2:
        raise InputValidationError(f"Expected embeddings of shape (n, dim) or (dim,), got shape {arr.shape}.")
    return arr


def _check_ints(where: str, **values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InputValidationError(f"{where}: {name} must be an integer, got {value!r}.")


def _check_score_function(where: str, score_function: Any) -> None:
    if not callable(score_function):
        raise InputValidationError(f"{where}: score_function must be callable (e.g. util.cos_sim), got {score_function!r}.")


def _scores(score_function: ScoreFunction, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    scores = np.asarray(score_function(a, b))
    if scores.shape != (len(a), len(b)):
        raise InputValidationError(
            f"score_function returned shape {scores.shape}, expected {(len(a), len(b))} (a score matrix)."
        )
    return scores


def _sort_desc(values: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the first ``k`` entries by decreasing value, ties by increasing id."""
    order = np.lexsort((ids, -values), axis=-1)[:, :k]
    return np.take_along_axis(values, order, 1), np.take_along_axis(ids, order, 1)


def _topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a (rows, n) score matrix, sorted by decreasing score, ties to the lower column."""
    rows, n = scores.shape
    k = max(0, min(k, n))
    if k == 0:
        return scores[:, :0], np.zeros((rows, 0), dtype=np.int64)
    if k == n:
        idx = np.broadcast_to(np.arange(n, dtype=np.int64), scores.shape)
        return _sort_desc(scores, idx, k)
    idx = np.argpartition(scores, n - k, axis=1)[:, n - k :].astype(np.int64)
    values = np.take_along_axis(scores, idx, 1)
    # argpartition picks arbitrarily among values tied at the k-th place; redo those rows stably
    tied = np.nonzero((scores >= values.min(1, keepdims=True)).sum(1) > k)[0]
    if len(tied):
        idx[tied] = np.argsort(-scores[tied], axis=1, kind="stable")[:, :k]
        values[tied] = np.take_along_axis(scores[tied], idx[tied], 1)
    return _sort_desc(values, idx, k)


def semantic_search(
    query_embeddings: Any,
    corpus_embeddings: Any,
    query_chunk_size: int = 100,
    corpus_chunk_size: int = 500000,
    top_k: int = 10,
    score_function: ScoreFunction = cos_sim,
) -> list[list[dict[str, int | float]]]:
    """Top-k corpus entries for each query: one list per query of {"corpus_id", "score"}, best first."""
    for name, value in (("top_k", top_k), ("query_chunk_size", query_chunk_size),
                        ("corpus_chunk_size", corpus_chunk_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if name == "top_k" else 1):
            raise InputValidationError(
                f"semantic_search: {name} must be a {'non-negative' if name == 'top_k' else 'positive'} integer, got "
                f"{value!r} (sentence-transformers raises for a negative top_k too)."
            )
    _check_score_function("semantic_search", score_function)
    queries = _to_batch(query_embeddings)
    corpus = _to_batch(corpus_embeddings)
    if queries.size and corpus.size and queries.shape[1] != corpus.shape[1]:
        raise InputValidationError(f"Query dimension {queries.shape[1]} differs from corpus dimension {corpus.shape[1]}.")
    n_queries, n_corpus = len(queries), len(corpus)
    k = max(0, min(top_k, n_corpus))
    best_values = np.empty((n_queries, 0), dtype=np.float32)
    best_ids = np.empty((n_queries, 0), dtype=np.int64)
    if k > 0 and n_queries > 0:
        # cos_sim would renormalize every corpus chunk per query chunk: normalize once, then dot
        normalize = score_function is cos_sim
        if normalize:
            queries = normalize_embeddings(queries)
        for c_start in range(0, n_corpus, corpus_chunk_size):
            chunk = corpus[c_start : c_start + corpus_chunk_size]
            if normalize:
                chunk = normalize_embeddings(chunk)
            chunk_values, chunk_ids = [], []
            for q_start in range(0, n_queries, query_chunk_size):
                query_chunk = queries[q_start : q_start + query_chunk_size]
                scores = dot_score(query_chunk, chunk) if normalize else _scores(score_function, query_chunk, chunk)
                values, ids = _topk(scores, k)
                chunk_values.append(values)
                chunk_ids.append(ids + c_start)
            best_values, best_ids = _sort_desc(
                np.concatenate([best_values, np.concatenate(chunk_values, 0)], 1),
                np.concatenate([best_ids, np.concatenate(chunk_ids, 0)], 1),
                k,
            )
    return [
        [{"corpus_id": int(i), "score": float(s)} for s, i in zip(row_values, row_ids)]
        for row_values, row_ids in zip(best_values.tolist(), best_ids.tolist())
    ]


def paraphrase_mining(
    model: Any,
    sentences: list[str],
    show_progress_bar: bool = False,
    batch_size: int = 32,
    query_chunk_size: int = 5000,
    corpus_chunk_size: int = 100000,
    max_pairs: int = 500000,
    top_k: int = 100,
    score_function: ScoreFunction = cos_sim,
    truncate_dim: int | None = None,
    prompt_name: str | None = None,
    prompt: str | None = None,
) -> list[list[float | int]]:
    """Encode ``sentences`` with ``model`` and return the most similar pairs as [score, i, j] (i < j), best first."""
    embeddings = model.encode(
        sentences,
        show_progress_bar=show_progress_bar,
        batch_size=batch_size,
        truncate_dim=truncate_dim,
        prompt_name=prompt_name,
        prompt=prompt,
    )
    return paraphrase_mining_embeddings(
        embeddings,
        query_chunk_size=query_chunk_size,
        corpus_chunk_size=corpus_chunk_size,
        max_pairs=max_pairs,
        top_k=top_k,
        score_function=score_function,
    )


def paraphrase_mining_embeddings(
    embeddings: Any,
    query_chunk_size: int = 5000,
    corpus_chunk_size: int = 100000,
    max_pairs: int = 500000,
    top_k: int = 100,
    score_function: ScoreFunction = cos_sim,
) -> list[list[float | int]]:
    """Most similar pairs [score, i, j] (i < j) among ``embeddings``: up to ``top_k`` neighbours per entry,
    at most ``max_pairs`` pairs, best first. ``score_function`` is assumed symmetric (first-seen score is kept).
    """
    _check_ints("paraphrase_mining_embeddings", query_chunk_size=query_chunk_size,
                corpus_chunk_size=corpus_chunk_size, max_pairs=max_pairs, top_k=top_k)
    _check_score_function("paraphrase_mining_embeddings", score_function)
    if query_chunk_size < 1 or corpus_chunk_size < 1:
        raise InputValidationError("paraphrase_mining_embeddings: chunk sizes must be positive.")
    embeddings = _to_batch(embeddings)
    if embeddings.size == 0:
        embeddings = np.empty((0, 0), dtype=np.float32)
    n = len(embeddings)
    keep_k = max(0, min(top_k + 1, n))
    pair_keys = np.empty(0, dtype=np.int64)  # i * n + j of the pairs kept so far (i < j)
    pair_scores = np.empty(0, dtype=np.float64)
    if n < 2 or keep_k == 0 or max_pairs <= 0 or top_k <= 0:
        return []
    for q_start in range(0, n, query_chunk_size):
        queries = embeddings[q_start : q_start + query_chunk_size]
        # each query's top_k + 1 over all corpus chunks, so candidates don't depend on corpus_chunk_size
        values = np.empty((len(queries), 0), dtype=np.float64)
        ids = np.empty((len(queries), 0), dtype=np.int64)
        for c_start in range(0, n, corpus_chunk_size):
            scores = _scores(score_function, queries, embeddings[c_start : c_start + corpus_chunk_size])
            chunk_values, chunk_ids = _topk(scores, keep_k)
            values, ids = _sort_desc(
                np.concatenate([values, chunk_values], 1), np.concatenate([ids, chunk_ids + c_start], 1), keep_k
            )
        # drop self-matches, then keep each query's first top_k neighbours
        rows = np.arange(q_start, q_start + len(queries), dtype=np.int64)[:, None]
        mask = ids != rows
        mask &= np.cumsum(mask, axis=1) <= top_k
        i, j = np.broadcast_to(rows, ids.shape)[mask], ids[mask]
        keys = np.concatenate([pair_keys, np.minimum(i, j) * n + np.maximum(i, j)])
        scores = np.concatenate([pair_scores, values[mask].astype(np.float64)])
        # a pair seen from both sides keeps its first score; then keep the best max_pairs
        keys, first = np.unique(keys, return_index=True)
        scores = scores[first]
        order = np.lexsort((keys, -scores))[:max_pairs]
        pair_keys, pair_scores = keys[order], scores[order]
    return [[float(s), int(key // n), int(key % n)] for s, key in zip(pair_scores.tolist(), pair_keys.tolist())]


def community_detection(
    embeddings: Any,
    threshold: float = 0.75,
    min_community_size: int = 10,
    batch_size: int = 1024,
    show_progress_bar: bool = False,
) -> list[list[int]]:
    """Fast community detection: groups of at least ``min_community_size`` entries whose cosine similarity to a
    central entry is >= ``threshold``. Largest first; each community lists its center first.
    """
    _check_ints("community_detection", min_community_size=min_community_size, batch_size=batch_size)
    if batch_size < 1:
        raise InputValidationError(f"community_detection: batch_size must be positive, got {batch_size}.")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) or np.isnan(threshold):
        raise InputValidationError(f"community_detection: threshold must be a number, got {threshold!r}.")
    embeddings = _to_batch(embeddings)
    if embeddings.size == 0:
        return []
    n = len(embeddings)
    if n < min_community_size:
        return []
    embeddings = normalize_embeddings(embeddings)
    threshold = np.asarray(threshold, dtype=embeddings.dtype)
    starts = range(0, n, batch_size)
    if show_progress_bar:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="Finding clusters")
    extracted: list[tuple[int, np.ndarray]] = []
    for start in starts:
        cos_scores = embeddings[start : start + batch_size] @ embeddings.T
        close = cos_scores >= threshold
        for row in np.nonzero(close.sum(1) >= min_community_size)[0]:
            members = np.nonzero(close[row])[0]
            order = np.argsort(-cos_scores[row, members], kind="stable")  # most similar first
            extracted.append((start + int(row), members[order]))

    # largest candidate first; then drop members already claimed by an earlier community
    extracted.sort(key=lambda x: len(x[1]), reverse=True)
    used = np.zeros(n, dtype=bool)
    communities: list[list[int]] = []
    for center, members in extracted:
        if used[center]:
            continue
        free = members[~used[members]]
        if len(free) >= min_community_size:
            community = [center] + free[free != center].tolist()
            communities.append(community)
            used[community] = True
    return sorted(communities, key=len, reverse=True)
