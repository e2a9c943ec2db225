"""Results, argument by argument, against the installed sentence-transformers on tiny models: dtype, shape, order,
edge values and the errors raised. Documented differences are asserted as such (README "What differs")."""

from __future__ import annotations

import numpy as np
import pytest

from st_runtime import CrossEncoder, InputValidationError, SentenceTransformer, corpus, util

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
st = pytest.importorskip("sentence_transformers")

TEXTS = corpus.queries(9, seed=301) + corpus.passages(4, seed=302) + ["", corpus.passages(1, seed=303,
                                                                                      min_words=300, max_words=310)[0]]
PAIRS = [(q, p) for q, p in zip(corpus.queries(8, seed=304), TEXTS)]
ATOL = 1e-5


@pytest.fixture(scope="module")
def bi(model_path, export_bundle):
    return (st.SentenceTransformer(str(model_path("bert-prompts")), device="cpu"),
            SentenceTransformer(export_bundle("bert-prompts")))


def _np(value):
    if isinstance(value, torch.Tensor):
        return value.numpy()
    return np.asarray(value)


def _same(theirs, ours, atol=ATOL):
    theirs, ours = _np(theirs), np.asarray(ours)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, (ours.shape, ours.dtype, theirs.shape,
                                                                        theirs.dtype)
    if theirs.dtype.kind == "f":
        assert np.abs(ours - theirs).max(initial=0) <= atol
    else:  # quantized: a float difference of 1e-7 may move a value across one bucket edge, never further
        diff = np.abs(ours.astype(np.int64) - theirs.astype(np.int64))
        assert diff.max(initial=0) <= 1 and (diff > 0).mean() < 0.01


ENCODE_CASES = [
    {}, {"normalize_embeddings": True}, {"truncate_dim": 8}, {"truncate_dim": 8, "normalize_embeddings": True},
    {"prompt_name": "query"}, {"prompt": "Represent this: "}, {"prompt": "x", "prompt_name": "query"},
    {"precision": "int8"}, {"precision": "uint8"}, {"precision": "binary"}, {"precision": "ubinary"},
    {"batch_size": 3}, {"precision": "int8", "truncate_dim": 8},
]


@pytest.mark.parametrize("kwargs", ENCODE_CASES, ids=[",".join(f"{k}={v}" for k, v in c.items()) or "plain"
                                                      for c in ENCODE_CASES])
def test_encode_matches(bi, kwargs):
    theirs, ours = bi
    _same(theirs.encode(TEXTS, **kwargs), ours.encode(TEXTS, **kwargs))
    if kwargs.get("precision") in ("int8", "uint8"):  # no ranges from one embedding: both refuse
        with pytest.raises(ValueError, match="single embedding"):
            theirs.encode(TEXTS[0], **kwargs)
        with pytest.raises(InputValidationError, match="single embedding"):
            ours.encode(TEXTS[0], **kwargs)
        return
    _same(theirs.encode(TEXTS[0], **kwargs), ours.encode(TEXTS[0], **kwargs))


def test_encode_query_document_and_outputs(bi):
    theirs, ours = bi
    _same(theirs.encode_query(TEXTS), ours.encode_query(TEXTS))
    _same(theirs.encode_document(TEXTS), ours.encode_document(TEXTS))
    _same(theirs.encode(inputs=TEXTS[:3]), ours.encode(inputs=TEXTS[:3]))
    tokens_t = theirs.encode(TEXTS[:4], output_value="token_embeddings")
    tokens_o = ours.encode(TEXTS[:4], output_value="token_embeddings")
    for a, b in zip(tokens_t, tokens_o):
        _same(a, b)
    listed_t = theirs.encode(TEXTS[:3], convert_to_numpy=False)
    listed_o = ours.encode(TEXTS[:3], convert_to_numpy=False)
    assert isinstance(listed_o, list) and len(listed_o) == len(listed_t)
    for a, b in zip(listed_t, listed_o):
        _same(a, b)


def test_settings_after_load_match(bi, model_path, export_bundle):
    theirs = st.SentenceTransformer(str(model_path("bert-prompts")), device="cpu", truncate_dim=16,
                                    default_prompt_name="query", similarity_fn_name="cosine")
    ours = SentenceTransformer(export_bundle("bert-prompts"), truncate_dim=16, default_prompt_name="query",
                               similarity_fn_name="cosine")
    theirs.max_seq_length = ours.max_seq_length = 10
    _same(theirs.encode(TEXTS), ours.encode(TEXTS))
    ours.to("cpu")
    _same(theirs.encode(TEXTS), ours.encode(TEXTS, device="cpu"))
    emb_t, emb_o = theirs.encode(TEXTS), ours.encode(TEXTS)
    _same(theirs.similarity(emb_t, emb_t), ours.similarity(emb_o, emb_o))
    _same(theirs.similarity_pairwise(emb_t, emb_t[::-1].copy()), ours.similarity_pairwise(emb_o, emb_o[::-1].copy()))
    assert ours.similarity_fn_name == str(getattr(theirs.similarity_fn_name, "value", theirs.similarity_fn_name))


@pytest.mark.parametrize("fn", ["dot", "euclidean", "manhattan"])
def test_similarity_functions_of_the_model(bi, fn):
    theirs, ours = bi
    theirs.similarity_fn_name, ours.similarity_fn_name = fn, fn
    emb_t, emb_o = theirs.encode(TEXTS), ours.encode(TEXTS)
    _same(theirs.similarity(emb_t, emb_t), ours.similarity(emb_o, emb_o), atol=1e-4)
    theirs.similarity_fn_name, ours.similarity_fn_name = "dot", "dot"


@pytest.mark.parametrize("kwargs, their_error", [({"batch_size": 0}, ValueError), ({"prompt_name": "nope"}, ValueError),
                                                  ({"precision": "int4"}, ValueError), ({"nonsense": 1}, ValueError)])
def test_encode_errors_match(bi, kwargs, their_error):
    theirs, ours = bi
    with pytest.raises(their_error):
        theirs.encode(TEXTS, **kwargs)
    with pytest.raises(their_error) as info:
        ours.encode(TEXTS, **kwargs)
    assert isinstance(info.value, InputValidationError)


def test_documented_difference_empty_input(bi):
    theirs, ours = bi
    assert _np(theirs.encode([])).shape == (0,)
    assert ours.encode([]).shape == (0, ours.get_embedding_dimension())  # README: (0, dim), not (0,)


# ----- CrossEncoder ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["ce-bert", "ce-bert-3labels"])
def ce(request, model_path, export_bundle):
    return (st.CrossEncoder(str(model_path(request.param)), device="cpu"), CrossEncoder(export_bundle(request.param)))


def test_predict_matches(ce):
    theirs, ours = ce
    _same(theirs.predict(PAIRS), ours.predict(PAIRS))
    _same(theirs.predict(PAIRS[0]), ours.predict(PAIRS[0]))
    _same(theirs.predict(PAIRS, activation_fn=torch.nn.Identity()), ours.predict(PAIRS, activation_fn="identity"))
    _same(theirs.predict(PAIRS, activation_fn=torch.nn.Identity()),
          ours.predict(PAIRS, activation_fn=torch.nn.Identity()))
    _same(theirs.predict(PAIRS, apply_softmax=True), ours.predict(PAIRS, apply_softmax=True))
    _same(theirs.predict(PAIRS, batch_size=3, prompt="Judge: "), ours.predict(PAIRS, batch_size=3, prompt="Judge: "))
    assert isinstance(ours.predict(PAIRS, convert_to_numpy=False), list)
    empty_t, empty_o = _np(theirs.predict([])), ours.predict([])
    assert empty_t.shape == empty_o.shape == (0,) and empty_o.dtype == np.float32  # README: ST gives float64


def test_loading_arguments_match(ce, model_path, export_bundle):
    theirs, ours = ce
    name = "ce-bert" if theirs.num_labels == 1 else "ce-bert-3labels"
    t = st.CrossEncoder(str(model_path(name)), device="cpu", max_length=12, prompts={"j": "Judge: "},
                        default_prompt_name="j", activation_fn=torch.nn.Tanh())
    o = CrossEncoder(export_bundle(name), max_length=12, prompts={"j": "Judge: "}, default_prompt_name="j",
                     activation_fn=torch.nn.Tanh())
    _same(t.predict(PAIRS), o.predict(PAIRS))
    assert o.max_length == o.max_seq_length == 12 and o.num_labels == t.num_labels


def test_rank_matches(ce):
    theirs, ours = ce
    docs = [p for _, p in PAIRS]
    if theirs.num_labels != 1:
        with pytest.raises(ValueError):
            theirs.rank("q", docs)
        with pytest.raises(InputValidationError):
            ours.rank("q", docs)
        return
    for kwargs in ({}, {"top_k": 3}, {"return_documents": True}, {"top_k": 0}, {"top_k": 100},
                   {"prompt": "Judge: "}, {"show_progress_bar": None}):
        want, got = theirs.rank(PAIRS[0][0], docs, **kwargs), ours.rank(PAIRS[0][0], docs, **kwargs)
        assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in want], kwargs
        assert all(set(a) == set(b) and abs(a["score"] - b["score"]) <= ATOL for a, b in zip(got, want))
        assert all(type(a["score"]) is float for a in got)
    assert theirs.rank("q", []) == ours.rank("q", []) == []


# ----- util -----------------------------------------------------------------------------------------------------
RNG = np.random.default_rng(5)
ARRAYS = {"float32": RNG.normal(size=(5, 6)).astype(np.float32), "float16": RNG.normal(size=(5, 6)).astype(np.float16),
          "float64": RNG.normal(size=(5, 6)), "int": RNG.integers(-3, 3, size=(5, 6)),
          "1-d": RNG.normal(size=6).astype(np.float32)}
SIMILARITY = ["cos_sim", "dot_score", "euclidean_sim", "manhattan_sim", "pairwise_cos_sim", "pairwise_dot_score",
              "pairwise_euclidean_sim", "pairwise_manhattan_sim", "pairwise_angle_sim", "pytorch_cos_sim"]


@pytest.mark.parametrize("name", SIMILARITY)
@pytest.mark.parametrize("kind", list(ARRAYS))
def test_util_similarity_matches(name, kind):
    a = ARRAYS[kind]
    b = a[::-1].copy()
    if name == "pytorch_cos_sim" and kind in ("int", "float16"):
        pytest.skip("pytorch_cos_sim is ST's deprecated alias; ints/float16 error out in torch there")
    try:
        theirs = getattr(st.util, name)(a, b)
    except RuntimeError:  # torch has no integer norm / cdist: documented difference, ints are scored in float32
        assert kind == "int" and getattr(util, name)(a, b).dtype == np.float32
        return
    except Exception:  # noqa: BLE001 - any other refusal: ours refuses too, with a typed error
        with pytest.raises(InputValidationError):
            getattr(util, name)(a, b)
        return
    ours = getattr(util, name)(a, b)
    if kind == "int":  # torch keeps int64 for plain products; we score ints in float32 (README: What differs)
        assert ours.dtype == np.float32 and np.array_equal(ours, _np(theirs).astype(np.float32))
        return
    _same(theirs, ours, atol=1e-3 if kind == "float16" else 1e-5)


@pytest.mark.parametrize("top_k", [0, 1, 3, 10])
def test_semantic_search_and_mining_match(top_k):
    q, c = RNG.normal(size=(4, 8)).astype(np.float32), RNG.normal(size=(12, 8)).astype(np.float32)
    for score_t, score_o in ((st.util.cos_sim, util.cos_sim), (st.util.dot_score, util.dot_score)):
        want = st.util.semantic_search(torch.from_numpy(q), torch.from_numpy(c), top_k=top_k, score_function=score_t,
                                       corpus_chunk_size=5)
        got = util.semantic_search(q, c, top_k=top_k, score_function=score_o, corpus_chunk_size=5)
        assert [[h["corpus_id"] for h in row] for row in got] == [[h["corpus_id"] for h in row] for row in want]
        assert all(abs(a["score"] - b["score"]) <= ATOL for r1, r2 in zip(got, want) for a, b in zip(r1, r2))
    if top_k:
        want = st.util.paraphrase_mining_embeddings(torch.from_numpy(c), top_k=top_k, max_pairs=20)
        got = util.paraphrase_mining_embeddings(c, top_k=top_k, max_pairs=20)
        assert [p[1:] for p in got] == [p[1:] for p in want]


def test_semantic_search_negative_top_k_raises_like_st():
    a = RNG.normal(size=(3, 4)).astype(np.float32)
    with pytest.raises(RuntimeError):
        st.util.semantic_search(torch.from_numpy(a), torch.from_numpy(a), top_k=-1)
    with pytest.raises(InputValidationError):
        util.semantic_search(a, a, top_k=-1)


def test_community_detection_and_quantize_match():
    base = RNG.normal(size=(4, 8))
    emb = np.concatenate([base[i] + 0.05 * RNG.normal(size=(6, 8)) for i in range(4)]).astype(np.float32)
    want = st.util.community_detection(torch.from_numpy(emb), threshold=0.9, min_community_size=3)
    got = util.community_detection(emb, threshold=0.9, min_community_size=3)
    assert [sorted(c) for c in got] == [sorted(c) for c in want]
    calib = RNG.normal(size=(50, 8)).astype(np.float32)
    for precision in ("int8", "uint8", "binary", "ubinary", "float32"):
        _same(st.util.quantize_embeddings(emb, precision, calibration_embeddings=calib),
              util.quantize_embeddings(emb, precision, calibration_embeddings=calib))
        _same(st.util.quantize_embeddings(emb, precision), util.quantize_embeddings(emb, precision))
