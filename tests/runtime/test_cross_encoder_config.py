"""CrossEncoder arguments sentence-transformers has (issue 19): prompts, max_length / activation_fn / num_labels at
load, pool / chunk_size, rank(show_progress_bar=None); all carried by one RerankConfig."""

import logging

import numpy as np
import pytest

from st_runtime import CrossEncoder, InputValidationError, UnsupportedArgumentError, corpus

PAIRS = list(zip(corpus.queries(20, seed=81), corpus.passages(19, seed=82) + [corpus.passages(
    1, seed=83, min_words=300, max_words=320)[0]]))


@pytest.fixture(scope="module")
def bundle(export_bundle):
    return export_bundle("ce-bert")


def test_prompts_are_prepended_to_the_query(bundle):
    model = CrossEncoder(bundle, prompts={"judge": "Judge relevance: "})
    with_prompt = model.predict(PAIRS, prompt_name="judge")
    by_hand = model.predict([("Judge relevance: " + q, d) for q, d in PAIRS])
    assert np.array_equal(with_prompt, by_hand)
    assert np.array_equal(model.predict(PAIRS, prompt="Judge relevance: "), by_hand)
    default = CrossEncoder(bundle, prompts={"judge": "Judge relevance: "}, default_prompt_name="judge")
    assert np.array_equal(default.predict(PAIRS), by_hand)
    ranked = default.rank(PAIRS[0][0], [d for _, d in PAIRS])
    assert {r["corpus_id"]: r["score"] for r in ranked}[0] == pytest.approx(float(by_hand[0]), abs=1e-6)
    with pytest.raises(InputValidationError, match="not found"):
        model.predict(PAIRS, prompt_name="nope")


def test_max_length_activation_and_num_labels_at_load(bundle):
    plain = CrossEncoder(bundle)
    short = CrossEncoder(bundle, max_length=12)
    assert short.max_length == short.max_seq_length == 12
    later = CrossEncoder(bundle)
    later.max_length = 12
    assert np.array_equal(short.predict(PAIRS), later.predict(PAIRS))
    assert not np.allclose(short.predict(PAIRS), plain.predict(PAIRS))
    logits = CrossEncoder(bundle, activation_fn="identity")
    assert np.abs(1 / (1 + np.exp(-logits.predict(PAIRS).astype(np.float64))) - plain.predict(PAIRS)).max() <= 1e-6
    assert CrossEncoder(bundle, num_labels=1).num_labels == 1
    with pytest.raises(UnsupportedArgumentError, match="num_labels"):
        CrossEncoder(bundle, num_labels=3)


def test_pool_and_chunk_size(bundle):
    model = CrossEncoder(bundle, max_length=16)
    pool = model.start_multi_process_pool(processes=1)
    try:
        assert np.abs(model.predict(PAIRS, pool=pool, chunk_size=3) - model.predict(PAIRS)).max() <= 1e-6
        ranked = model.rank(PAIRS[0][0], [d for _, d in PAIRS], pool=pool, chunk_size=4)
        assert ranked == model.rank(PAIRS[0][0], [d for _, d in PAIRS])
    finally:
        model.stop_multi_process_pool(pool)


def test_rank_progress_bar_none_follows_the_logger(bundle, capsys):
    """Before: rank(show_progress_bar=None) became False; sentence-transformers shows it at INFO/DEBUG."""
    model = CrossEncoder(bundle)
    log = logging.getLogger("st_runtime.cross_encoder")
    old = log.level
    log.setLevel(logging.INFO)
    try:
        model.rank("q", ["a", "b"], show_progress_bar=None)
    finally:
        log.setLevel(old)
    assert "Batches" in capsys.readouterr().err
    model.rank("q", ["a", "b"], show_progress_bar=None)
    assert "Batches" not in capsys.readouterr().err


def test_predict_tokenized_is_the_tokenize_once_hook(bundle):
    model = CrossEncoder(bundle, max_length=16)
    rows = model.tokenizer.encode(PAIRS)
    assert np.array_equal(model.predict_tokenized(rows), model.predict(PAIRS))
    assert np.array_equal(model.predict_tokenized(rows, activation_fn="identity"),
                          model.predict(PAIRS, activation_fn="identity"))
