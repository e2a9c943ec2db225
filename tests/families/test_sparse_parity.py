"""SparseEncoder bundles (SPLADE max/sum, inference-free Router, CSR) equal sentence-transformers 6 on unseen text,
in ONNX Runtime and OpenVINO, at batch sizes 1/7/32, past max_seq_length, with prompts and max_active_dims."""

import numpy as np
import pytest
import scipy.sparse as sp

from st_runtime import SparseEncoder, corpus

SPARSE = ["splade-max", "splade-sum", "splade-router", "csr-mean"]
ATOL = 1e-5
TEXTS = (corpus.queries(12, seed=201) + corpus.passages(6, seed=202)
         + corpus.passages(2, seed=203, min_words=400, max_words=450) + ["", "x"])


@pytest.fixture(scope="module")
def reference(model_path):
    from sentence_transformers import SparseEncoder as TorchSparse

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = TorchSparse(str(model_path(name)), device="cpu")
        return cache[name]

    return get


def _bundle(export_bundle, name):
    pytest.importorskip("openvino")
    return export_bundle(name, ("openvino",))


def _dense(t):
    return t.to_dense().float().numpy()


def assert_same(ref, ours, what):
    """Values within 1e-5 and exactly the same active dimensions, row by row."""
    ours = ours.toarray() if sp.issparse(ours) else np.asarray(ours)
    ref = _dense(ref) if hasattr(ref, "to_dense") else np.asarray(ref)
    assert ref.shape == ours.shape, what
    diff = np.abs(ref.astype(np.float64) - ours).max()
    assert diff <= ATOL, f"{what}: max abs {diff:.3g}"
    assert np.array_equal(ref != 0, ours != 0), f"{what}: active dimensions differ"


@pytest.mark.parametrize("variant", ["onnx", "openvino"])
@pytest.mark.parametrize("name", SPARSE)
def test_sparse_parity(name, variant, export_bundle, reference):
    ref = reference(name)
    ours = SparseEncoder(_bundle(export_bundle, name), variant=variant)
    ref.encode("x")  # SpladePooling learns its dimension on its first call: before it, ST reports the hidden size
    assert ours.get_embedding_dimension() == ref.get_embedding_dimension()
    assert ours.max_seq_length == ref.max_seq_length
    assert ours.max_active_dims == ref.max_active_dims
    assert ours.similarity_fn_name == ref.similarity_fn_name == "dot"
    for batch_size in (1, 7, 32):
        got = ours.encode(TEXTS, batch_size=batch_size)
        assert isinstance(got, sp.csr_array) and got.dtype == np.float32
        assert_same(ref.encode(TEXTS, batch_size=batch_size), got, f"{name}/{variant} batch_size={batch_size}")
    assert_same(ref.encode_query(TEXTS), ours.encode_query(TEXTS), f"{name} encode_query")
    assert_same(ref.encode_document(TEXTS), ours.encode_document(TEXTS), f"{name} encode_document")
    assert_same(ref.encode(TEXTS, prompt="Represent this: "), ours.encode(TEXTS, prompt="Represent this: "),
                f"{name} ad-hoc prompt")
    for k in (1, 5, 40):
        assert_same(ref.encode(TEXTS, max_active_dims=k), ours.encode(TEXTS, max_active_dims=k),
                    f"{name} max_active_dims={k}")
        assert ours.sparsity(ours.encode(TEXTS, max_active_dims=k))["active_dims"] <= k


@pytest.mark.parametrize("name", ["splade-max", "splade-router"])
def test_prompts_and_routes(name, export_bundle, reference):
    ref = reference(name)
    ours = SparseEncoder(_bundle(export_bundle, name))
    for prompt_name, prompt in ours.prompts.items():
        assert_same(ref.encode(TEXTS, prompt_name=prompt_name), ours.encode(TEXTS, prompt_name=prompt_name),
                    f"{name} prompt {prompt_name}")
    for task in ("query", "document"):
        assert_same(ref.encode(TEXTS, task=task), ours.encode(TEXTS, task=task), f"{name} task={task}")


def test_router_routes_differ(export_bundle):
    """Inference-free SPLADE: queries weigh only their own tokens, documents go through the MLM graph."""
    ours = SparseEncoder(_bundle(export_bundle, "splade-router"))
    assert ours.routes == ["query", "document"]
    query = ours.encode_query("hello world")
    assert query.nnz == len(ours.decode(query)) <= 4
    assert ours.encode_document("hello world").nnz > 50


def test_results_shapes_and_scoring(export_bundle, reference):
    ref = reference("splade-max")
    ours = SparseEncoder(_bundle(export_bundle, "splade-max"))
    single = ours.encode(TEXTS[0])
    assert single.ndim == 1 and single.shape == (30522,)
    assert_same(ref.encode(TEXTS[0]), single, "single text")
    dense = ours.encode(TEXTS, convert_to_sparse_tensor=False)
    assert isinstance(dense, np.ndarray) and dense.shape == (len(TEXTS), 30522)
    rows = ours.encode(TEXTS[:3], convert_to_tensor=False)
    assert len(rows) == 3 and all(r.ndim == 1 for r in rows)
    assert ours.encode([]).shape == (0, 30522)

    q, d = ours.encode_query(TEXTS[:4]), ours.encode_document(TEXTS[4:10])
    tq, td = ref.encode_query(TEXTS[:4]), ref.encode_document(TEXTS[4:10])
    assert np.abs(ref.similarity(tq, td).numpy() - ours.similarity(q, d)).max() <= 1e-4
    pairwise = ref.similarity_pairwise(tq, ref.encode_document(TEXTS[4:8])).numpy()
    assert np.abs(pairwise - ours.similarity_pairwise(q, d[:4])).max() <= 1e-4
    assert ours.similarity(rows, rows).shape == (3, 3)
    ours.similarity_fn_name = "cosine"
    ref.similarity_fn_name = "cosine"
    try:
        assert np.abs(ref.similarity(tq, td).numpy() - ours.similarity(q, d)).max() <= 1e-5
    finally:
        ref.similarity_fn_name = "dot"
    stats, ref_stats = ours.sparsity(d), ref.sparsity(td)
    assert stats["active_dims"] == pytest.approx(ref_stats["active_dims"])
    assert stats["sparsity_ratio"] == pytest.approx(ref_stats["sparsity_ratio"])
    assert [t for t, _ in ours.decode(d[0], top_k=8)] == [t for t, _ in ref.decode(td[0], top_k=8)]
    decoded = ours.decode(d, top_k=3)
    assert len(decoded) == 6 and all(len(row) <= 3 for row in decoded)
    shared, ref_shared = ours.intersection(q[0], d), ref.intersection(tq[0], td)
    assert shared.shape == (6, 30522)
    assert_same(ref_shared, shared, "intersection")
    assert ours.intersection(q[0], d[0]).ndim == 1
