"""MultiVectorEncoder bundles give the same per-token embeddings (after Dense, MultiVectorMask and Normalize) and
the same MaxSim scores as sentence-transformers 6, in ONNX Runtime and OpenVINO."""

import numpy as np
import pytest

from st_runtime import InputValidationError, MultiVectorEncoder, WrongModelKindError, corpus

MULTI = ["multivec-dense", "multivec-lengths"]
ATOL = 1e-5
TEXTS = (corpus.queries(10, seed=401) + corpus.passages(6, seed=402)
         + corpus.passages(2, seed=403, min_words=300, max_words=320) + ["", "x", "Hello, world! Is it?"])


def _torch(model_path, name):
    from sentence_transformers import MultiVectorEncoder as TorchMV

    return TorchMV(str(model_path(name)), device="cpu")


def assert_same_tokens(ref, ours, what):
    assert len(ref) == len(ours), what
    for i, (r, o) in enumerate(zip(ref, ours)):
        r = r.float().numpy()
        assert o.dtype == np.float32 and r.shape == o.shape, f"{what} text {i}: {r.shape} vs {o.shape}"
        if r.size:
            assert np.abs(r - o).max() <= ATOL, f"{what} text {i}"


@pytest.mark.parametrize("variant", ["onnx", "openvino"])
@pytest.mark.parametrize("name", MULTI)
def test_multi_vector_parity(name, variant, export_bundle, model_path):
    pytest.importorskip("openvino")
    ref = _torch(model_path, name)
    ours = MultiVectorEncoder(export_bundle(name, ("openvino",)), variant=variant)
    assert ours.get_embedding_dimension() == ref.get_embedding_dimension()
    assert ours.similarity_fn_name == ref.similarity_fn_name == "maxsim"
    for batch_size in (1, 7, 32):
        assert_same_tokens(ref.encode(TEXTS, batch_size=batch_size), ours.encode(TEXTS, batch_size=batch_size),
                           f"{name}/{variant} batch_size={batch_size}")
    q_ref, q = ref.encode_query(TEXTS), ours.encode_query(TEXTS)
    d_ref, d = ref.encode_document(TEXTS), ours.encode_document(TEXTS)
    assert_same_tokens(q_ref, q, f"{name} encode_query")
    assert_same_tokens(d_ref, d, f"{name} encode_document")
    assert_same_tokens(ref.encode(TEXTS, normalize_embeddings=True), ours.encode(TEXTS, normalize_embeddings=True),
                       f"{name} normalize_embeddings")
    assert_same_tokens(ref.encode(TEXTS, prompt="Represent: "), ours.encode(TEXTS, prompt="Represent: "), "prompt")
    nonempty = [i for i in range(len(TEXTS)) if len(d[i]) and len(q[i])]
    qs, ds = [q[i] for i in nonempty[:8]], [d[i] for i in nonempty]
    scores = ours.similarity(qs, ds)
    assert scores.shape == (len(qs), len(ds))
    assert np.abs(ref.similarity(qs, ds).numpy() - scores).max() <= 1e-4
    assert np.abs(ref.similarity_pairwise(qs, ds[:8]).numpy() - ours.similarity_pairwise(qs, ds[:8])).max() <= 1e-4
    ours.similarity_fn_name = ref.similarity_fn_name = "meanmaxsim"
    assert np.abs(ref.similarity(qs, ds).numpy() - ours.similarity(qs, ds)).max() <= 1e-5


def test_mask_and_lengths(export_bundle, model_path):
    """The punctuation skiplist drops document tokens only; query_length / document_length truncate per task."""
    skip = MultiVectorEncoder(export_bundle("multivec-dense", ("openvino",)))
    text = "Hello, world! Is it?"
    assert len(skip.encode_query(text)) - len(skip.encode_document(text)) == 3  # ',', '!', '?' (prompts differ by 0)
    lengths = MultiVectorEncoder(export_bundle("multivec-lengths", ("openvino",)))
    long = corpus.passages(1, seed=404, min_words=300, max_words=310)[0]
    assert len(lengths.encode_query(long)) == 12 and len(lengths.encode_document(long)) == 40
    assert len(lengths.encode(long)) == lengths.max_seq_length


def test_multi_vector_errors(export_bundle):
    bundle = export_bundle("multivec-lengths", ("openvino",))
    from st_runtime import SentenceTransformer, SparseEncoder

    with pytest.raises(WrongModelKindError, match="st_runtime.MultiVectorEncoder"):
        SparseEncoder(bundle)
    with pytest.raises(WrongModelKindError, match="st_runtime.MultiVectorEncoder"):
        SentenceTransformer(bundle)
    model = MultiVectorEncoder(bundle)
    with pytest.raises(InputValidationError, match="maxsim"):
        model.similarity_fn_name = "cosine"
    with pytest.raises(InputValidationError, match="task"):
        model.encode("x", task="passage")
