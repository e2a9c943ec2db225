"""Random arguments thrown at the public API: only StRuntimeError subclasses or valid results may come back
(issue 19). Bounded (a few dozen examples per target, no deadline), so the default suite stays fast."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from st_runtime import CrossEncoder, SentenceTransformer, StRuntimeError, quantize_embeddings, util

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                derandomize=True)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 70), st.floats(allow_nan=True), st.text(max_size=8),
                    st.binary(max_size=4))
junk = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                                                      st.dictionaries(st.text(max_size=3), inner, max_size=2)),
                    max_leaves=6)
texts = st.one_of(st.text(max_size=30), st.lists(st.text(max_size=30), max_size=4))
arrays = st.one_of(
    st.integers(0, 3).flatmap(lambda n: st.integers(1, 5).map(
        lambda d: np.random.default_rng(n * 7 + d).normal(size=(n, d)).astype(np.float32))),
    st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=4),
    junk,
)


@pytest.fixture(scope="module")
def model(export_bundle):
    return SentenceTransformer(export_bundle("bert-prompts"))


@pytest.fixture(scope="module")
def reranker(export_bundle):
    return CrossEncoder(export_bundle("ce-bert"))


def _valid(result) -> bool:
    if isinstance(result, np.ndarray):
        return result.dtype.kind in "fiu" and (result.dtype.kind != "f" or bool(np.isfinite(result).all()))
    if isinstance(result, (list, tuple)):
        return all(_valid(item) for item in result)
    if isinstance(result, dict):
        return all(_valid(v) for v in result.values())
    return isinstance(result, (int, float, str, np.floating, np.integer))


def _call(fn, *args, **kwargs):
    try:
        result = fn(*args, **kwargs)
    except StRuntimeError:
        return
    assert _valid(result), repr(result)[:200]


@FUZZ
@given(inputs=st.one_of(texts, junk), batch_size=st.one_of(st.integers(-1, 5), junk),
       prompt_name=st.one_of(st.sampled_from([None, "query", "document"]), junk),
       prompt=st.one_of(st.none(), st.text(max_size=5), junk), truncate_dim=st.one_of(st.none(), st.integers(-1, 40), junk),
       precision=st.one_of(st.sampled_from(["float32", "int8", "uint8", "binary", "ubinary"]), junk),
       output_value=st.sampled_from(["sentence_embedding", "token_embeddings", None, "logits"]),
       normalize=junk, convert=junk, max_batch_tokens=st.one_of(st.none(), st.integers(-1, 50), junk))
def test_encode_arguments(model, inputs, batch_size, prompt_name, prompt, truncate_dim, precision, output_value,
                          normalize, convert, max_batch_tokens):
    _call(model.encode, inputs, prompt_name=prompt_name, prompt=prompt, batch_size=batch_size,
          truncate_dim=truncate_dim, precision=precision, output_value=output_value, normalize_embeddings=normalize,
          convert_to_numpy=convert, max_batch_tokens=max_batch_tokens)


@FUZZ
@given(name=st.sampled_from(["cos_sim", "dot_score", "euclidean_sim", "manhattan_sim", "pairwise_cos_sim",
                             "pairwise_dot_score", "pairwise_euclidean_sim", "pairwise_manhattan_sim"]),
       a=arrays, b=arrays)
def test_similarity_functions(name, a, b):
    _call(getattr(util, name), a, b)


@FUZZ
@given(q=arrays, c=arrays, top_k=st.one_of(st.integers(-2, 6), junk), chunk=st.one_of(st.integers(-1, 3), junk),
       score_function=st.sampled_from([util.cos_sim, util.dot_score, None, "cos"]))
def test_retrieval_functions(q, c, top_k, chunk, score_function):
    kwargs = {} if score_function is None else {"score_function": score_function}
    _call(util.semantic_search, q, c, top_k=top_k, query_chunk_size=chunk, **kwargs)
    _call(util.paraphrase_mining_embeddings, c, top_k=top_k, max_pairs=chunk, **kwargs)
    _call(util.community_detection, c, threshold=0.5, min_community_size=top_k, batch_size=chunk)
    _call(util.normalize_embeddings, q)


@FUZZ
@given(emb=arrays, precision=st.one_of(st.sampled_from(["float32", "int8", "uint8", "binary", "ubinary"]), junk),
       ranges=st.one_of(st.none(), arrays), calibration=st.one_of(st.none(), arrays))
def test_quantize_embeddings(emb, precision, ranges, calibration):
    _call(quantize_embeddings, emb, precision, ranges=ranges, calibration_embeddings=calibration)


@FUZZ
@given(pairs=st.one_of(st.lists(st.tuples(st.text(max_size=10), st.text(max_size=10)), max_size=3), junk),
       query=st.one_of(st.text(max_size=10), junk), documents=st.one_of(st.lists(st.text(max_size=10), max_size=3), junk),
       top_k=st.one_of(st.none(), st.integers(-2, 4), junk), activation=st.one_of(
           st.sampled_from([None, "sigmoid", "identity", "softmax", "nope"]), junk),
       batch_size=st.one_of(st.integers(-1, 4), junk), prompt=st.one_of(st.none(), st.text(max_size=4), junk))
def test_cross_encoder_arguments(reranker, pairs, query, documents, top_k, activation, batch_size, prompt):
    _call(reranker.predict, pairs, activation_fn=activation, batch_size=batch_size, prompt=prompt)
    _call(reranker.rank, query, documents, top_k=top_k, activation_fn=activation, batch_size=batch_size,
          return_documents=True)


LOAD = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                derandomize=True)


@LOAD
@given(truncate_dim=st.one_of(st.none(), st.integers(-1, 40), junk), prompts=st.one_of(st.none(), junk,
       st.dictionaries(st.text(max_size=3), st.text(max_size=5), max_size=2)),
       default_prompt_name=st.one_of(st.none(), st.sampled_from(["query", "x"]), junk),
       similarity_fn_name=st.one_of(st.none(), st.sampled_from(["cosine", "dot", "nope"]), junk),
       device=st.one_of(st.none(), st.sampled_from(["cpu", "tpu", "cuda:x"]), junk),
       backend=st.one_of(st.sampled_from(["torch", "onnx", "openvino", "tf"]), junk),
       variant=st.one_of(st.none(), st.sampled_from(["onnx", "auto", "nope"]), junk),
       max_seq_length=st.one_of(st.none(), st.integers(-1, 600), junk))
def test_loading_and_settings(export_bundle, truncate_dim, prompts, default_prompt_name, similarity_fn_name, device,
                              backend, variant, max_seq_length):
    try:
        model = SentenceTransformer(export_bundle("bert-prompts"), truncate_dim=truncate_dim, prompts=prompts,
                                    default_prompt_name=default_prompt_name, similarity_fn_name=similarity_fn_name,
                                    device=device, backend=backend, variant=variant)
    except StRuntimeError:
        return
    try:
        model.max_seq_length = max_seq_length
    except StRuntimeError:
        pass
    _call(model.encode, ["a text", "another, longer text"])
    _call(model.similarity, model.encode(["a"]), model.encode(["b"]))


@LOAD
@given(max_length=st.one_of(st.none(), st.integers(-1, 600), junk),
       activation_fn=st.one_of(st.none(), st.sampled_from(["sigmoid", "identity", "nope"]), junk),
       num_labels=st.one_of(st.none(), st.integers(-1, 3), junk),
       prompts=st.one_of(st.none(), junk), default_prompt_name=st.one_of(st.none(), junk))
def test_cross_encoder_loading(export_bundle, max_length, activation_fn, num_labels, prompts, default_prompt_name):
    try:
        model = CrossEncoder(export_bundle("ce-bert"), max_length=max_length, activation_fn=activation_fn,
                             num_labels=num_labels, prompts=prompts, default_prompt_name=default_prompt_name)
    except StRuntimeError:
        return
    _call(model.predict, [("q", "d")])
