"""Exported graphs match the torch model on texts the exporter did not check, for every test architecture."""

import numpy as np
import pytest

from st_runtime import CrossEncoder, SentenceTransformer, corpus

BI_ENCODERS = [
    "minilm-real", "bert-mean", "bert-cls-dense", "bert-max", "bert-mean-sqrt", "bert-weightedmean", "bert-prompts",
    "bert-noprompt-pool", "bert-lasttoken", "mpnet-mean", "distilbert-cls", "xlmr-mean", "deberta-mean",
    "t5-mean-dense", "modernbert-mean", "qwen3-lasttoken", "bert-long",
]
# ce-minilm (real MiniLM size, ~50 s) runs with the slow tests; the tiny ones cover the code paths by default.
CROSS_ENCODERS = ["ce-bert", "ce-xlmr", "ce-bert-3labels", pytest.param("ce-minilm", marks=pytest.mark.slow)]
ATOL = 1e-5

# Unseen by the exporter's own check (other seeds), lengths from 1 word to past max_seq_length.
TEXTS = (corpus.queries(20, seed=101) + corpus.passages(10, seed=102)
         + corpus.passages(3, seed=103, min_words=1500, max_words=1600) + ["", "x"])


def _reference(name, model_path):
    from sentence_transformers import SentenceTransformer as TorchST

    return TorchST(str(model_path(name)), device="cpu")


@pytest.mark.parametrize("name", BI_ENCODERS)
def test_bi_encoder_parity(name, export_bundle, model_path, coverage):
    coverage(name, "onnx_exact")
    bundle = export_bundle(name)
    ref = _reference(name, model_path)
    ours = SentenceTransformer(bundle)
    assert ours.get_embedding_dimension() == ref.get_embedding_dimension()
    assert ours.max_seq_length == ref.max_seq_length
    for batch_size in (1, 7, 32):
        diff = np.abs(ref.encode(TEXTS, batch_size=batch_size) - ours.encode(TEXTS, batch_size=batch_size)).max()
        assert diff <= ATOL, f"{name} batch_size={batch_size}: max abs {diff:.3g}"
    for prompt_name, prompt in ours.prompts.items():
        if prompt:
            diff = np.abs(ref.encode(TEXTS, prompt_name=prompt_name) - ours.encode(TEXTS, prompt_name=prompt_name)).max()
            assert diff <= ATOL, f"{name} prompt {prompt_name}: {diff:.3g}"
    diff = np.abs(ref.encode(TEXTS, prompt="Represent this: ") - ours.encode(TEXTS, prompt="Represent this: ")).max()
    assert diff <= ATOL, f"{name} ad-hoc prompt: {diff:.3g}"


@pytest.mark.parametrize("name", ["bert-prompts", "bert-noprompt-pool", "minilm-real"])
def test_encode_arguments_match(name, export_bundle, model_path):
    ref = _reference(name, model_path)
    ours = SentenceTransformer(export_bundle(name))
    for kwargs in ({"normalize_embeddings": True}, {"truncate_dim": 16}, {"truncate_dim": 16, "normalize_embeddings": True}):
        assert np.abs(ref.encode(TEXTS, **kwargs) - ours.encode(TEXTS, **kwargs)).max() <= ATOL, kwargs
    ref_tok = ref.encode(TEXTS[:5], output_value="token_embeddings")
    our_tok = ours.encode(TEXTS[:5], output_value="token_embeddings")
    for r, o in zip(ref_tok, our_tok):
        assert r.shape == o.shape and np.abs(r.numpy() - o).max() <= ATOL


def test_similarity_matches(export_bundle, model_path):
    ref = _reference("bert-prompts", model_path)
    ours = SentenceTransformer(export_bundle("bert-prompts"))
    assert ours.similarity_fn_name == ref.similarity_fn_name == "dot"
    emb = ours.encode(TEXTS[:6])
    assert np.abs(ref.similarity(emb, emb).numpy() - ours.similarity(emb, emb)).max() <= 1e-4


@pytest.mark.parametrize("name", CROSS_ENCODERS)
def test_cross_encoder_parity(name, export_bundle, model_path, coverage):
    coverage(name, "onnx_exact")
    from sentence_transformers import CrossEncoder as TorchCE

    pairs = corpus.query_passage_pairs(24, seed=9) + [("short", corpus.passages(1, seed=8, min_words=900,
                                                                                max_words=950)[0])]
    ref = TorchCE(str(model_path(name)), device="cpu")
    ours = CrossEncoder(export_bundle(name))
    assert ours.num_labels == ref.num_labels
    ref_scores, our_scores = ref.predict(pairs), ours.predict(pairs)
    assert our_scores.dtype == np.float32 and our_scores.shape == ref_scores.shape
    assert np.abs(ref_scores - our_scores).max() <= ATOL
    single = ours.predict(pairs[0])
    assert np.abs(np.asarray(single) - ref.predict(pairs[0])).max() <= ATOL
    if ours.num_labels == 1:
        query, docs = pairs[0][0], [p[1] for p in pairs]
        ref_rank, our_rank = ref.rank(query, docs, top_k=5), ours.rank(query, docs, top_k=5)
        assert [r["corpus_id"] for r in ref_rank] == [r["corpus_id"] for r in our_rank]
    else:
        soft = ours.predict(pairs, apply_softmax=True)
        assert np.allclose(soft.sum(axis=1), 1.0, atol=1e-5)
        assert np.abs(ref.predict(pairs, apply_softmax=True) - soft).max() <= ATOL


# By default one right-padded encoder and the left-padded decoder; every other architecture with -m slow.
ARCHITECTURES = ["bert-mean", "qwen3-lasttoken", *(pytest.param(name, marks=pytest.mark.slow) for name in (
    "mpnet-mean", "distilbert-cls", "xlmr-mean", "deberta-mean", "t5-mean-dense", "modernbert-mean", "bert-long"))]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_openvino_runs_every_architecture(name, export_bundle, model_path, coverage):
    """Each architecture also converts to OpenVINO IR and stays exact, or the bundle says it cannot."""
    coverage(name, "openvino_exact")
    pytest.importorskip("openvino")
    bundle = export_bundle(name, ("openvino",))
    ours = SentenceTransformer(bundle, variant="openvino") if "openvino" in SentenceTransformer(
        bundle).manifest.variants else None
    if ours is None:
        refused = SentenceTransformer(bundle).manifest.parity["refused_variants"]["openvino"]
        pytest.fail(f"{name}: OpenVINO refused by its gate: {refused}")
    ref = _reference(name, model_path)
    assert np.abs(ref.encode(TEXTS) - ours.encode(TEXTS)).max() <= ATOL


@pytest.mark.parametrize("name", ["minilm-real", "bert-noprompt-pool"])
@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_precision_matches_except_at_bucket_edges(name, precision, export_bundle, model_path):
    """Quantized outputs equal ST's except where the float value sits within 1e-5 of a bucket edge."""
    ref_model = _reference(name, model_path)
    ours = SentenceTransformer(export_bundle(name))
    kwargs = {"precision": precision, "truncate_dim": 16, "normalize_embeddings": True}
    if "query" in ours.prompts:
        kwargs["prompt_name"] = "query"
    ref, got = ref_model.encode(TEXTS, **kwargs), ours.encode(TEXTS, **kwargs)
    assert ref.dtype == got.dtype and ref.shape == got.shape
    floats = ours.encode(TEXTS, **{**kwargs, "precision": "float32"})
    if precision.endswith("binary"):
        near_edge = np.abs(floats) < 1e-5
        differ = np.unpackbits(ref.view(np.uint8), axis=1) != np.unpackbits(got.view(np.uint8), axis=1)
        assert not (differ & ~near_edge[:, : differ.shape[1]]).any()
    else:
        lo, hi = floats.min(0), floats.max(0)
        steps = (hi - lo) / 255
        position = (floats - lo) / np.where(steps == 0, 1, steps)
        near_edge = np.abs(position - np.round(position)) * steps < 1e-5
        differ = ref != got
        assert not (differ & ~near_edge).any()
        assert np.abs(ref.astype(int) - got.astype(int)).max() <= 1
    assert differ.mean() <= 0.01, f"{differ.sum()} of {differ.size} values differ"
