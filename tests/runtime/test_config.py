"""One immutable configuration handed whole to every path (issue 19): pools, device moves, rows, util edge cases."""

import pickle

import numpy as np
import pytest

from st_runtime import EncodeConfig, InputValidationError, SentenceTransformer, corpus, util

TEXTS = corpus.queries(30, seed=91) + corpus.passages(6, seed=92) + [corpus.passages(1, seed=93, min_words=400,
                                                                                      max_words=420)[0]]


@pytest.fixture(scope="module")
def bundle(export_bundle):
    return export_bundle("bert-mean")


def _model(bundle):
    return SentenceTransformer(bundle, truncate_dim=16, prompts={"q": "query: "}, default_prompt_name="q",
                               similarity_fn_name="dot")


def test_config_is_immutable_and_each_setting_makes_a_new_one(bundle):
    model = _model(bundle)
    first = model.config
    with pytest.raises(Exception):
        first.truncate_dim = 8
    with pytest.raises(InputValidationError):
        first.prompts["x"] = "y"
    model.max_seq_length = 16
    assert model.config is not first and first.max_seq_length != 16 and model.config.max_seq_length == 16
    assert model.tokenizer.max_seq_length == 16
    assert pickle.loads(pickle.dumps(model.config)) == model.config


def test_pool_keeps_every_load_time_setting(bundle):
    """Before: workers reopened the bundle with only bundle/variant/device/threads (truncate_dim=64 gave 384-d)."""
    model = _model(bundle)
    model.max_seq_length = 12
    single = model.encode(TEXTS)
    assert single.shape == (len(TEXTS), 16)
    pool = model.start_multi_process_pool(processes=1)
    try:
        pooled = model.encode(TEXTS, pool=pool, chunk_size=7)
        assert pooled.shape == single.shape and np.abs(pooled - single).max() <= 1e-6
        # settings changed after the pool started reach the workers too: the configuration travels with each chunk
        model.truncate_dim = 8
        model.max_seq_length = 32
        again = model.encode(TEXTS, pool=pool, chunk_size=7)
        assert np.abs(again - model.encode(TEXTS)).max() <= 1e-6 and again.shape[1] == 8
        int8 = model.encode(TEXTS, pool=pool, chunk_size=5, precision="int8")
        assert np.array_equal(int8, model.encode(TEXTS, precision="int8")), "one set of ranges for all chunks"
    finally:
        model.stop_multi_process_pool(pool)
    assert model.similarity_fn_name == "dot" and model.prompts["q"] == "query: "


def test_device_move_keeps_max_seq_length(bundle):
    """Before: to() / encode(device=...) rebuilt the runner and reset max_seq_length to the manifest's value."""
    model = _model(bundle)
    model.max_seq_length = 16
    before = model.encode(TEXTS)
    model.to("cpu")
    assert model.max_seq_length == 16 and model.truncate_dim == 16
    assert np.array_equal(model.encode(TEXTS), before)
    model._device = "elsewhere"  # force encode(device="cpu") to take the move path
    assert np.array_equal(model.encode(TEXTS, device="cpu"), before)


def test_encode_takes_inputs_by_keyword(bundle):
    """sentence-transformers 6 names encode's first argument ``inputs``; the old ``sentences`` still works."""
    model = SentenceTransformer(bundle)
    positional = model.encode(TEXTS[:3])
    assert np.array_equal(model.encode(inputs=TEXTS[:3]), positional)
    assert np.array_equal(model.encode(sentences=TEXTS[:3]), positional)
    assert np.array_equal(model.encode_query(inputs=TEXTS[:3]), positional)


def test_encode_tokenized_is_the_tokenize_once_hook(bundle):
    model = _model(bundle)
    prompt = model.config.resolve_prompt()
    rows = model.tokenizer.encode([prompt + t for t in TEXTS])
    assert np.array_equal(model.encode_tokenized(rows, prompt), model.encode(TEXTS))
    config = model.config.replace(normalize=True, truncate_dim=None)
    assert np.abs(model.encode_tokenized(rows, prompt, config=config) - model.encode(TEXTS, normalize_embeddings=True,
                                                                  truncate_dim=32)).max() <= 1e-6


def test_config_argument_and_stored_ranges(bundle):
    model = SentenceTransformer(bundle)
    floats = model.encode(TEXTS)
    ranges = np.vstack((floats.min(0), floats.max(0)))
    config = model.config.replace(precision="int8", ranges=ranges)
    assert np.array_equal(model.encode(TEXTS[:1], config=config)[0],
                          util.quantize_embeddings(floats, "int8", ranges=ranges)[0])
    with pytest.raises(InputValidationError, match="ranges"):
        EncodeConfig(ranges=[[0.0, 1.0]])


def test_util_upcasts_float16_like_sentence_transformers_6():
    a = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float16)
    for fn in (util.cos_sim, util.dot_score, util.euclidean_sim, util.manhattan_sim, util.pairwise_cos_sim,
               util.pairwise_dot_score, util.pairwise_euclidean_sim, util.pairwise_manhattan_sim):
        assert fn(a, a).dtype == np.float32, fn.__name__
    assert util.normalize_embeddings(a).dtype == np.float16
    assert util.cos_sim(a.astype(np.float64), a).dtype == np.float64


def test_semantic_search_refuses_a_negative_top_k():
    a = np.eye(3, dtype=np.float32)
    with pytest.raises(InputValidationError, match="top_k"):
        util.semantic_search(a, a, top_k=-1)
    assert util.semantic_search(a, a, top_k=0) == [[], [], []]


def test_encode_rows_takes_the_prompt_length(export_bundle):
    model = SentenceTransformer(export_bundle("bert-noprompt-pool"))
    prompt = "query: "
    rows = model.tokenizer.encode([prompt + t for t in TEXTS])
    length = model.tokenizer.prompt_length(prompt)
    assert np.array_equal(model.encode_rows(rows, prompt_length=length), model.encode(TEXTS, prompt=prompt))
    assert np.array_equal(model.encode_tokenized(rows, prompt), model.encode(TEXTS, prompt=prompt))
