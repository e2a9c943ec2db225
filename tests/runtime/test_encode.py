"""SentenceTransformer.encode on the real MiniLM bundle: shapes, dtypes, argument checks, batch invariance."""

import numpy as np
import pytest

from st_runtime import InputTypeError, InputValidationError, SentenceTransformer, corpus


@pytest.fixture(scope="module")
def model(minilm_bundle):
    return SentenceTransformer(minilm_bundle)


TEXTS = corpus.queries(6, seed=3) + corpus.passages(3, seed=4) + corpus.passages(1, seed=5, min_words=600, max_words=700)


def test_single_string_gives_1d(model):
    emb = model.encode("hello world")
    assert emb.shape == (384,) and emb.dtype == np.float32


def test_list_gives_2d_float32(model):
    emb = model.encode(TEXTS)
    assert emb.shape == (len(TEXTS), 384) and emb.dtype == np.float32
    assert np.isfinite(emb).all()


def test_empty_list_gives_zero_rows(model):
    emb = model.encode([])
    assert emb.shape == (0, 384) and emb.dtype == np.float32


def test_order_restored_and_batch_invariant(model):
    together = model.encode(TEXTS, batch_size=4)
    alone = np.stack([model.encode(t) for t in TEXTS])
    assert np.abs(together - alone).max() <= 1e-5


def test_token_budget_gives_same_results(model):
    plain = model.encode(TEXTS)
    budget = model.encode(TEXTS, max_batch_tokens=300)
    assert np.abs(plain - budget).max() <= 1e-5


@pytest.mark.parametrize("bad", [None, 3, 2.5, b"bytes", ["nested"]])
def test_non_string_in_batch_is_refused(model, bad):
    with pytest.raises(InputTypeError, match="index 1"):
        model.encode(["fine", bad])


def test_unknown_prompt_name(model):
    with pytest.raises(InputValidationError, match="not found in the configured prompts"):
        model.encode("x", prompt_name="nope")


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_bad_batch_size(model, size):
    with pytest.raises(InputValidationError, match="batch_size"):
        model.encode(["x"], batch_size=size)


def test_convert_to_tensor_is_refused_clearly(model):
    from st_runtime import UnsupportedArgumentError

    with pytest.raises(UnsupportedArgumentError, match="torch"):
        model.encode(["x"], convert_to_tensor=True)


def test_unknown_argument_is_refused(model):
    with pytest.raises(InputValidationError, match="nonsense"):
        model.encode(["x"], nonsense=1)


def test_hard_texts_are_finite(model):
    hard = ["", "   ", "\t\n", "🚀" * 50, "a" * 100_000, "zero\u200bwidth\u0000control", "東京 Привет مرحبا"]
    emb = model.encode(hard)
    assert emb.shape == (len(hard), 384) and np.isfinite(emb).all()


def test_lone_surrogate_is_a_clear_error(model):
    with pytest.raises(InputValidationError, match="surrogate"):
        model.encode(["ok", "bad \ud800 text"])


def test_truncate_dim_and_normalize(model):
    emb = model.encode(TEXTS, truncate_dim=128, normalize_embeddings=True)
    assert emb.shape == (len(TEXTS), 128)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    with pytest.raises(InputValidationError, match="larger than the embedding dimension"):
        model.encode("x", truncate_dim=385)


def test_token_embeddings_drop_padding(model):
    out = model.encode(["short", "a much longer text with many more tokens in it"], output_value="token_embeddings")
    assert isinstance(out, list) and out[0].shape[1] == 384
    assert out[0].shape[0] < out[1].shape[0]


def test_output_value_none_gives_dicts(model):
    out = model.encode(["a", "b c"], output_value=None)
    assert set(out[0]) >= {"sentence_embedding", "token_embeddings", "input_ids", "attention_mask"}


def test_similarity_matrix(model):
    emb = model.encode(["A man is eating food.", "A man is eating pasta.", "A monkey plays drums."])
    scores = model.similarity(emb, emb)
    assert scores.shape == (3, 3)
    assert scores[0, 1] > scores[0, 2]
    assert model.similarity_fn_name == "cosine"


def test_max_seq_length_is_settable(model):
    long_text = TEXTS[-1]
    full = model.encode(long_text)
    model.max_seq_length = 16
    try:
        short = model.encode(long_text)
    finally:
        model.max_seq_length = 256
    assert not np.allclose(full, short)
    with pytest.raises(InputValidationError):
        model.max_seq_length = 0


def test_unknown_precision(model):
    with pytest.raises(InputValidationError, match="Precision"):
        model.encode(["x"], precision="int4")
