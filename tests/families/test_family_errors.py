"""Typed errors of the family classes: wrong kind of bundle, unknown route, max_active_dims out of range."""

import numpy as np
import pytest
import scipy.sparse as sp

from st_runtime import InputValidationError, SentenceTransformer, SparseEncoder, WrongModelKindError
from st_runtime import sparse


def test_wrong_kind_names_the_right_class(export_bundle):
    with pytest.raises(WrongModelKindError, match="st_runtime.SparseEncoder"):
        SentenceTransformer(export_bundle("splade-max", ("openvino",)))
    with pytest.raises(WrongModelKindError, match="st_runtime.SentenceTransformer"):
        SparseEncoder(export_bundle("bert-mean"))


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "8"])
def test_max_active_dims_out_of_range(bad, export_bundle):
    model = SparseEncoder(export_bundle("splade-max", ("openvino",)))
    with pytest.raises(InputValidationError, match="max_active_dims"):
        model.encode(["a text"], max_active_dims=bad)
    with pytest.raises(InputValidationError, match="max_active_dims"):
        model.max_active_dims = bad


def test_unknown_route(export_bundle):
    model = SparseEncoder(export_bundle("splade-router", ("openvino",)))
    with pytest.raises(InputValidationError, match="No route found for task 'passage'.*'query'"):
        model.encode(["a text"], task="passage")
    with pytest.raises(InputValidationError, match="similarity_fn_name"):
        model.similarity_fn_name = "maxsim"


def test_sparse_helpers_without_a_model():
    dense = np.array([[0, 3, -4, 1], [2, 0, 0, 0]], dtype=np.float32)
    assert sparse.keep_top_k(dense, 2).tolist() == [[0, 3, -4, 0], [2, 0, 0, 0]]
    assert sparse.topk_relu(dense, 2).tolist() == [[0, 3, 0, 1], [2, 0, 0, 0]]
    m = sp.csr_array(dense)
    assert sparse.dot_score(m, m).tolist() == [[26, 0], [0, 4]]
    assert sparse.sparsity(m) == {"active_dims": 2.0, "sparsity_ratio": 0.5}
    assert sparse.decode(m, lambda i: f"t{i}", top_k=2) == [[("t1", 3.0), ("t3", 1.0)], [("t0", 2.0)]]
    assert sparse.intersection(m[[0]].reshape(-1), m).toarray().tolist() == [[0, 9, 16, 1], [0, 0, 0, 0]]
    with pytest.raises(InputValidationError, match="top_k"):
        sparse.decode(m, str, top_k=0)
