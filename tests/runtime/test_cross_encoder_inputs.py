"""CrossEncoder bad inputs: clear errors, or ST's empty results."""

import numpy as np
import pytest

from st_runtime import CrossEncoder, InputTypeError, InputValidationError


@pytest.fixture(scope="module")
def reranker(export_bundle):
    return CrossEncoder(export_bundle("ce-bert"))


@pytest.mark.parametrize("bad", [["only one"], [("a", "b", "c")], [("a", None)], [("a", 3)], "just a string", None])
def test_pair_that_is_not_two_strings(reranker, bad):
    with pytest.raises(InputTypeError, match="pair"):
        reranker.predict(bad)


def test_empty_list_gives_empty_scores(reranker):
    scores = reranker.predict([])
    assert isinstance(scores, np.ndarray) and scores.shape == (0,)


def test_query_with_no_documents(reranker):
    assert reranker.rank("query", []) == []


def test_rank_needs_strings(reranker):
    with pytest.raises(InputValidationError, match="query must be a string"):
        reranker.rank(None, ["doc"])
    with pytest.raises(InputValidationError, match="list of strings"):
        reranker.rank("q", "one document")


def test_single_pair_gives_scalar_and_sorted_rank(reranker):
    score = reranker.predict(("a query", "a passage"))
    assert np.ndim(score) == 0
    ranked = reranker.rank("a query", ["x", "a passage", "y z"], return_documents=True, top_k=2)
    assert len(ranked) == 2 and ranked[0]["score"] >= ranked[1]["score"] and "text" in ranked[0]


def test_three_label_rank_is_refused(export_bundle):
    with pytest.raises(InputValidationError, match="num_labels=1"):
        CrossEncoder(export_bundle("ce-bert-3labels")).rank("q", ["d"])
