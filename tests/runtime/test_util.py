"""st_runtime.util's numpy retrieval/similarity helpers against sentence_transformers.util on the same data."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
torch = pytest.importorskip("torch")

from sentence_transformers import util as st_util  # noqa: E402

from st_runtime import util  # noqa: E402

TOL = 1e-5


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((50, 32)).astype(np.float32)
    corpus = rng.standard_normal((300, 32)).astype(np.float32)
    return queries, corpus


def _reference(queries, corpus, fn: str) -> np.ndarray:
    q, c = np.atleast_2d(queries).astype(np.float64), np.atleast_2d(corpus).astype(np.float64)
    if fn == "cos":
        q, c = q / np.linalg.norm(q, axis=1, keepdims=True), c / np.linalg.norm(c, axis=1, keepdims=True)
    return q @ c.T


def _assert_search_equal(ours, theirs, reference: np.ndarray, expected_len: int) -> None:
    """Same hits in the same order; a differing id is only allowed where it is a float-level tie."""
    assert len(ours) == len(theirs) == len(reference)
    mismatches = 0
    for q, (mine, st) in enumerate(zip(ours, theirs)):
        assert len(mine) == len(st) == expected_len > 0
        for rank, (a, b) in enumerate(zip(mine, st)):
            assert set(a) == {"corpus_id", "score"}
            assert type(a["corpus_id"]) is int and type(a["score"]) is float
            assert abs(a["score"] - b["score"]) < TOL, (q, rank, a, b)
            assert abs(a["score"] - reference[q, a["corpus_id"]]) < TOL
            if a["corpus_id"] != b["corpus_id"]:
                mismatches += 1
                assert abs(reference[q, a["corpus_id"]] - reference[q, b["corpus_id"]]) < TOL
        scores = [hit["score"] for hit in mine]
        assert scores == sorted(scores, reverse=True)
        assert len({hit["corpus_id"] for hit in mine}) == len(mine)
    assert mismatches <= 0.01 * sum(len(m) for m in ours)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"top_k": 1},
        {"top_k": 25, "query_chunk_size": 7, "corpus_chunk_size": 37},
        {"top_k": 400},  # larger than the corpus
        {"top_k": 400, "query_chunk_size": 3, "corpus_chunk_size": 64},
    ],
)
@pytest.mark.parametrize("fn", ["cos", "dot"])
def test_semantic_search_matches_st(data, kwargs, fn):
    queries, corpus = data
    ours_fn, st_fn = (util.cos_sim, st_util.cos_sim) if fn == "cos" else (util.dot_score, st_util.dot_score)
    ours = util.semantic_search(queries, corpus, score_function=ours_fn, **kwargs)
    theirs = st_util.semantic_search(torch.from_numpy(queries), torch.from_numpy(corpus), score_function=st_fn,
                                     **kwargs)
    expected = min(kwargs.get("top_k", 10), len(corpus))
    _assert_search_equal(ours, theirs, _reference(queries, corpus, fn), expected)


def test_semantic_search_input_forms(data):
    queries, corpus = data
    theirs = st_util.semantic_search(torch.from_numpy(queries[3]), torch.from_numpy(corpus), top_k=5)
    reference = _reference(queries[3], corpus, "cos")
    for q, c in [(queries[3], corpus), (queries[3].tolist(), corpus.tolist()), (queries[3:4], list(corpus))]:
        ours = util.semantic_search(q, c, top_k=5)
        assert len(ours) == 1
        _assert_search_equal(ours, theirs, reference, 5)


def test_semantic_search_chunking_does_not_change_results(data):
    queries, corpus = data
    full = util.semantic_search(queries, corpus, top_k=20)
    chunked = util.semantic_search(queries, corpus, top_k=20, query_chunk_size=1, corpus_chunk_size=11)
    assert all(full) and len(full) == len(chunked) == len(queries)
    for a, b in zip(full, chunked):  # BLAS may round a 1-row product differently: compare scores within TOL
        assert [hit["corpus_id"] for hit in a] == [hit["corpus_id"] for hit in b]
        np.testing.assert_allclose([hit["score"] for hit in a], [hit["score"] for hit in b], atol=TOL)


def test_semantic_search_ties_go_to_the_lower_id():
    corpus = np.repeat(np.eye(4, dtype=np.float32), 5, axis=0)  # ids 0-4 identical, 5-9 identical, ...
    ours = util.semantic_search(np.eye(4, dtype=np.float32)[[1]], corpus, top_k=3, corpus_chunk_size=4)
    assert [hit["corpus_id"] for hit in ours[0]] == [5, 6, 7]
    theirs = st_util.semantic_search(torch.eye(4)[[1]], torch.from_numpy(corpus), top_k=3)
    assert [hit["score"] for hit in ours[0]] == pytest.approx([hit["score"] for hit in theirs[0]])


def test_semantic_search_edge_cases(data):
    queries, corpus = data
    assert util.semantic_search(queries[:2], corpus, top_k=0) == [[], []]
    assert util.semantic_search(queries[:2], corpus[:0]) == [[], []]


def _assert_pairs_equal(ours, theirs, reference: np.ndarray) -> None:
    assert len(ours) == len(theirs) > 0
    mismatches = 0
    for a, b in zip(ours, theirs):
        assert type(a[0]) is float and type(a[1]) is int and type(a[2]) is int
        assert a[1] < a[2]
        assert abs(a[0] - b[0]) < TOL and abs(a[0] - reference[a[1], a[2]]) < TOL
        if a[1:] != list(b[1:]):
            mismatches += 1
            assert abs(reference[a[1], a[2]] - reference[b[1], b[2]]) < TOL
    assert mismatches <= 0.01 * len(ours)
    assert [p[0] for p in ours] == sorted((p[0] for p in ours), reverse=True)
    assert len({tuple(p[1:]) for p in ours}) == len(ours)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"top_k": 5},
        {"top_k": 5, "query_chunk_size": 13, "corpus_chunk_size": 29},
        {"top_k": 10, "max_pairs": 100},
        {"top_k": 10, "max_pairs": 100, "query_chunk_size": 17, "corpus_chunk_size": 50},
        {"top_k": 500},  # larger than the corpus
    ],
)
@pytest.mark.parametrize("fn", ["cos", "dot"])
def test_paraphrase_mining_embeddings_matches_st(data, kwargs, fn):
    _, corpus = data
    ours_fn, st_fn = (util.cos_sim, st_util.cos_sim) if fn == "cos" else (util.dot_score, st_util.dot_score)
    ours = util.paraphrase_mining_embeddings(corpus, score_function=ours_fn, **kwargs)
    theirs = st_util.paraphrase_mining_embeddings(torch.from_numpy(corpus), score_function=st_fn, **kwargs)
    _assert_pairs_equal(ours, theirs, _reference(corpus, corpus, fn))
    if "max_pairs" in kwargs:
        assert len(ours) == kwargs["max_pairs"]


class FakeModel:
    """Just enough of a model for paraphrase_mining: encode() returns fixed embeddings."""

    def __init__(self, embeddings: np.ndarray):
        self.embeddings = embeddings
        self.calls: list[dict] = []

    def encode(self, sentences, **kwargs):
        self.calls.append(kwargs)
        assert "convert_to_tensor" not in kwargs
        return self.embeddings[: len(sentences)]


def test_paraphrase_mining_with_model(data):
    _, corpus = data
    model = FakeModel(corpus[:120])
    sentences = [f"sentence {i}" for i in range(120)]
    ours = util.paraphrase_mining(model, sentences, batch_size=8, top_k=7, max_pairs=200, truncate_dim=16,
                                  prompt="query: ")
    assert model.calls == [{"show_progress_bar": False, "batch_size": 8, "truncate_dim": 16, "prompt_name": None,
                            "prompt": "query: "}]
    theirs = st_util.paraphrase_mining_embeddings(torch.from_numpy(corpus[:120]), top_k=7, max_pairs=200)
    _assert_pairs_equal(ours, theirs, _reference(corpus[:120], corpus[:120], "cos"))
    assert len(ours) == 200


def test_paraphrase_mining_edge_cases(data):
    _, corpus = data
    assert util.paraphrase_mining_embeddings(corpus[:0]) == []
    assert util.paraphrase_mining_embeddings(corpus[:1]) == []
    pairs = util.paraphrase_mining_embeddings(corpus[:2].tolist())
    assert len(pairs) == 1 and pairs[0][1:] == [0, 1]


def _clustered(seed: int, sizes: list[int], dim: int = 32, noise: float = 0.33, close_pair: bool = False):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((len(sizes), dim))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    if close_pair:  # make clusters 0 and 1 overlap so candidate communities share members
        centers[1] = centers[0] + 0.55 * centers[1]
        centers[1] /= np.linalg.norm(centers[1])
    points = [c + noise / np.sqrt(dim) * rng.standard_normal((n, dim)) for c, n in zip(centers, sizes)]
    points.append(rng.standard_normal((40, dim)))  # unclustered outliers
    embeddings = np.concatenate(points).astype(np.float32)
    return embeddings[rng.permutation(len(embeddings))]


@pytest.mark.parametrize(
    "sizes, close_pair, threshold, min_size, batch_size",
    [
        ([120, 45, 30, 18, 12, 6], False, 0.75, 10, 1024),  # a cluster above ST's initial sort_max_size of 50
        ([120, 45, 30, 18, 12, 6], False, 0.75, 10, 16),
        ([60, 40, 25, 15], True, 0.7, 10, 64),
        ([35, 22, 9, 5], False, 0.75, 5, 7),
    ],
)
def test_community_detection_matches_st(sizes, close_pair, threshold, min_size, batch_size):
    embeddings = _clustered(len(sizes) + int(close_pair), sizes, close_pair=close_pair)
    cos = _reference(embeddings, embeddings, "cos")
    assert np.abs(cos - threshold).min() > 1e-5  # no pair sits on the threshold, so float noise can't flip one
    ours = util.community_detection(embeddings, threshold=threshold, min_community_size=min_size,
                                    batch_size=batch_size)
    theirs = st_util.community_detection(torch.from_numpy(embeddings), threshold=threshold,
                                         min_community_size=min_size, batch_size=batch_size)
    assert len(ours) >= 3 and all(len(c) >= min_size for c in ours)
    assert all(type(i) is int for c in ours for i in c)
    assert ours == theirs
    members = [i for c in ours for i in c]
    assert len(members) == len(set(members))


def test_community_detection_edge_cases():
    embeddings = _clustered(1, [15, 12])
    assert util.community_detection(embeddings[:0]) == []
    assert util.community_detection(embeddings, min_community_size=len(embeddings) + 1) == []
    assert util.community_detection(embeddings[0], min_community_size=1) == [[0]]
    assert util.community_detection(embeddings.tolist(), min_community_size=12) == util.community_detection(
        embeddings, min_community_size=12
    ) != []


@pytest.mark.parametrize("name", ["cos_sim", "dot_score", "euclidean_sim", "manhattan_sim"])
def test_similarity_matrices_match_st(data, name):
    queries, corpus = data
    ours, theirs = getattr(util, name), getattr(st_util, name)
    for a, b in [(queries, corpus), (queries[0], corpus[:7]), (queries[:3].tolist(), corpus[:4].tolist())]:
        expected = theirs(a if isinstance(a, list) else torch.from_numpy(a),
                          b if isinstance(b, list) else torch.from_numpy(b)).numpy()
        got = np.asarray(ours(a, b))
        assert got.shape == expected.shape and got.size > 0
        np.testing.assert_allclose(got, expected, rtol=TOL, atol=TOL)


@pytest.mark.parametrize(
    "name", ["pairwise_cos_sim", "pairwise_dot_score", "pairwise_euclidean_sim", "pairwise_manhattan_sim"]
)
def test_pairwise_similarities_match_st(data, name):
    queries, corpus = data
    a, b = queries, corpus[: len(queries)]
    expected = getattr(st_util, name)(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    got = np.asarray(getattr(util, name)(a, b))
    assert got.shape == expected.shape == (len(queries),)
    np.testing.assert_allclose(got, expected, rtol=TOL, atol=TOL)


def test_normalize_embeddings_matches_st(data):
    queries, _ = data
    expected = st_util.normalize_embeddings(torch.from_numpy(queries)).numpy()
    np.testing.assert_allclose(util.normalize_embeddings(queries), expected, rtol=TOL, atol=TOL)


def test_util_exports():
    for name in ["semantic_search", "paraphrase_mining", "paraphrase_mining_embeddings", "community_detection"]:
        assert name in util.__all__ and callable(getattr(util, name))
