"""The built-in text's calibration / selection / gate splits share no sentence and no 8-word sequence."""

import itertools

import pytest

from st_runtime import corpus


def _split_texts(split: str) -> list[str]:
    """Every text drawn from a split: its sentences, queries and passages (several seeds), its retrieval task."""
    texts = list(corpus.split_sentences(split))
    for seed in (0, 1001, 1002, 2001, 2002, 3001):
        texts += corpus.queries(50, seed=seed, split=split) + corpus.passages(50, seed=seed, split=split)
        texts += [t for pair in corpus.query_passage_pairs(20, seed=seed, split=split) for t in pair]
    if split != "calibration":
        queries, documents, _ = corpus.retrieval_task(split, 1000, 1000)
        texts += list(queries.values()) + list(documents.values())
    return texts


@pytest.fixture(scope="module")
def texts_by_split():
    return {split: _split_texts(split) for split in corpus.SPLITS}


@pytest.mark.parametrize("a, b", list(itertools.combinations(corpus.SPLITS, 2)))
def test_splits_share_no_sentence_and_no_8_word_sequence(texts_by_split, a, b):
    left, right = texts_by_split[a], texts_by_split[b]
    assert not {t.strip().lower() for t in left} & {t.strip().lower() for t in right}
    grams_left = set().union(*(corpus.word_ngrams(t, 8) for t in left))
    shared = [t for t in right if corpus.word_ngrams(t, 8) & grams_left]
    assert not shared, shared[:3]


def test_splits_are_of_useful_size():
    for split in corpus.SPLITS:
        assert len(corpus.split_sentences(split)) >= 300, split
    for split in ("selection", "gate"):
        queries, documents, qrels = corpus.retrieval_task(split, 250, 400)
        assert len(queries) >= 250 and len(documents) >= 300
        assert all(len(qrels[q]) == 1 and next(iter(qrels[q])) in documents for q in queries)


def test_retrieval_task_pairs_a_summary_with_the_rest_of_its_docstring():
    queries, documents, qrels = corpus.retrieval_task("gate", 5, 10)
    assert len(queries) == 5 and len(documents) == 10
    for qid, query in queries.items():
        doc = documents[next(iter(qrels[qid]))]
        assert 4 <= len(query.split()) <= 30 and len(doc.split()) >= 20
    assert corpus.retrieval_task("gate", 5, 10) == (queries, documents, qrels)  # deterministic


def test_word_ngrams_ignore_case_and_punctuation():
    assert corpus.word_ngrams("A b, c d e f g h i.", 8) == {"a b c d e f g h", "b c d e f g h i"}
    assert corpus.word_ngrams("Too short.", 8) == {"too short"}


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="Unknown split"):
        corpus.split_sentences("train")
    with pytest.raises(ValueError, match="selection"):
        corpus.retrieval_task("calibration")
