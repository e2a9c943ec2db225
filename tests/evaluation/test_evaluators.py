"""st_runtime.evaluation against sentence-transformers' own evaluators on the same models and data."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import subprocess
import sys

import numpy as np
import pytest

from st_runtime import corpus
from st_runtime.evaluation import (
    CrossEncoderRerankingEvaluator,
    EmbeddingSimilarityEvaluator,
    InformationRetrievalEvaluator,
)
from st_runtime.evaluation.information_retrieval import top_k_per_row
from st_runtime.evaluation.metrics import average_precision, ndcg, pearson, rankdata, spearman


# ----- data: real text from st_runtime.corpus ---------------------------------------------------------
def sts_data(n: int = 48):
    """Pairs of (sentence, span of itself / neighbour / random sentence); gold = word Jaccard (ties included)."""
    rng = random.Random(7)
    sents = [s for s in corpus.sentences() if 8 <= len(s.split()) <= 40]
    s1, s2, gold = [], [], []
    for i in range(n):
        a = sents[rng.randrange(len(sents))]
        if i % 3 == 0:
            words = a.split()
            b = " ".join(words[: rng.randint(4, len(words))])
        elif i % 3 == 1:
            b = sents[(sents.index(a) + 1) % len(sents)]
        else:
            b = sents[rng.randrange(len(sents))]
        wa, wb = set(a.lower().split()), set(b.lower().split())
        s1.append(a)
        s2.append(b)
        gold.append(round(len(wa & wb) / len(wa | wb), 1))
    return s1, s2, gold


def ir_data():
    """Corpus of passages (two of them duplicated as distractors, so scores tie); queries are spans of a
    passage, some with a second relevant passage; one query without qrels (ST skips it)."""
    rng = random.Random(3)
    passages = corpus.passages(40, seed=11, min_words=30, max_words=60)
    docs = {f"d{i:02d}": p for i, p in enumerate(passages)}
    docs["dup-a"], docs["dup-b"] = passages[5], passages[5]
    queries, qrels = {}, {}
    for i in range(0, 36, 2):
        words = passages[i].split()
        start = rng.randrange(max(1, len(words) - 10))
        queries[f"q{i}"] = " ".join(words[start : start + rng.randint(4, 9)])
        qrels[f"q{i}"] = {f"d{i:02d}"} | ({f"d{i + 1:02d}"} if i % 6 == 0 else set())
    queries["q-dup"] = passages[5]  # d05, dup-a and dup-b tie for first place
    qrels["q-dup"] = {"dup-b", "d07"}
    queries["q-orphan"] = "a query nobody judged"
    return queries, docs, qrels


def rerank_samples(with_documents: bool):
    rng = random.Random(5)
    passages = corpus.passages(30, seed=21, min_words=20, max_words=50)
    samples = []
    for i in range(0, 24, 3):
        words = passages[i].split()
        query = " ".join(words[2 : 2 + rng.randint(4, 8)])
        negatives = rng.sample([p for j, p in enumerate(passages) if j != i], 5)
        if with_documents:
            docs = negatives[:2] + [passages[i]] + negatives[2:]
            if i == 9:
                docs = negatives  # positive missing from the first-stage list
            samples.append({"query": query, "positive": [passages[i]], "documents": docs})
        else:
            samples.append({"query": query, "positive": [passages[i]], "negative": negatives})
    return samples


def assert_same(ours: dict, theirs: dict, exact: bool, tol: float = 1e-6) -> None:
    assert list(ours) == list(theirs)
    for key in theirs:
        assert isinstance(ours[key], float), key
        if exact:
            assert ours[key] == pytest.approx(theirs[key], abs=1e-12), key
        else:
            assert abs(ours[key] - theirs[key]) <= tol, (key, ours[key], theirs[key])


# ----- metrics without models ---------------------------------------------------------------------------
def test_metrics_match_scipy_and_sklearn():
    stats = pytest.importorskip("scipy.stats")
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for t in range(200):
        n = int(rng.integers(2, 25))
        x = rng.integers(0, 4, n).astype(float) if t % 2 else rng.normal(size=n)
        y = (rng.integers(0, 3, n) if t % 3 == 0 else rng.normal(size=n)).astype(np.float32)
        if np.ptp(x) and np.ptp(y):
            assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
            assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
        assert np.array_equal(rankdata(y), stats.rankdata(y))
        relevant = rng.integers(0, 2, n)
        relevant[0] = 1
        assert average_precision(relevant, y) == pytest.approx(skm.average_precision_score(relevant, y), abs=1e-12)
        for k in (1, 3, 10):
            assert ndcg(relevant, y, k) == pytest.approx(skm.ndcg_score([relevant], [y], k=k), abs=1e-12)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_top_k_ties_break_by_corpus_id_order():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1]], dtype=np.float32)
    ranks = np.array([4, 0, 3, 1, 2])  # corpus-id order: column 3 before 2 before 0
    assert sorted(top_k_per_row(scores, 3, ranks)[0].tolist()) == [1, 2, 3]
    assert sorted(top_k_per_row(scores, 5, ranks)[0].tolist()) == [0, 1, 2, 3, 4]


def test_no_heavy_imports():
    code = ("import sys, st_runtime.evaluation, st_runtime.evaluation.cli; "
            "bad = [m for m in ('torch', 'scipy', 'sklearn', 'sentence_transformers') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_arguments_are_clear():
    from st_runtime.errors import InputValidationError

    with pytest.raises(InputValidationError, match="same length"):
        EmbeddingSimilarityEvaluator(["a", "b"], ["c"], [1.0, 0.0])
    with pytest.raises(InputValidationError, match="relevant documents"):
        InformationRetrievalEvaluator({"q": "x"}, {"d": "y"}, {})
    with pytest.raises(InputValidationError, match="exactly one"):
        CrossEncoderRerankingEvaluator([{"query": "q", "positive": ["p"]}])


# ----- parity with sentence-transformers on real MiniLM -------------------------------------------------
HAS_ST = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("sentence_transformers") is not None
needs_st = pytest.mark.skipif(not HAS_ST, reason="needs torch and sentence-transformers for the reference")


@pytest.fixture(scope="module")
def ours(minilm_bundle):
    from st_runtime import SentenceTransformer

    return SentenceTransformer(minilm_bundle)


@needs_st
@pytest.mark.parametrize("kwargs", [{}, {"name": "sts-dev", "similarity_fn_names": ["cosine", "euclidean",
                                                                                     "manhattan", "dot"]},
                                    {"main_similarity": "dot", "truncate_dim": 128}, {"precision": "int8"},
                                    {"precision": "binary", "similarity_fn_names": ["cosine", "manhattan"]}])
def test_embedding_similarity_matches_st(ours, minilm_reference, kwargs):
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator as STEval

    s1, s2, gold = sts_data()
    theirs_eval = STEval(s1, s2, gold, write_csv=False, **kwargs)
    ours_eval = EmbeddingSimilarityEvaluator(s1, s2, gold, write_csv=False, **kwargs)
    theirs = theirs_eval(minilm_reference)
    # Our evaluator on the torch model's own embeddings: the evaluator logic alone. Only the float32
    # rounding of the pairwise similarities differs (numpy vs torch summation order, ~1 ulp).
    assert_same(ours_eval(minilm_reference), theirs, exact=False, tol=1e-7)
    # On the bundle: fp32 embeddings agree to ~2e-7, so correlations to 1e-6. Quantized precisions round
    # that difference into a few int8 buckets / sign bits (6 of 36864 int8 values move by one step here),
    # which moves the correlations by a few 1e-6.
    assert_same(ours_eval(ours), theirs, exact=False, tol=1e-4 if "precision" in kwargs else 1e-6)
    assert ours_eval.primary_metric == theirs_eval.primary_metric


@needs_st
@pytest.mark.parametrize("kwargs", [{}, {"name": "dev", "corpus_chunk_size": 7, "mrr_at_k": [3, 10],
                                         "ndcg_at_k": [5, 10], "map_at_k": [10, 100], "truncate_dim": 256},
                                    # small k: q-dup's three equal scores tie at the cut inside one chunk
                                    # (chunk 50000) or across chunks (chunk 20), resolved by corpus id
                                    *({"mrr_at_k": [2], "ndcg_at_k": [2], "accuracy_at_k": [1, 2],
                                       "precision_recall_at_k": [1, 2], "map_at_k": [2], "corpus_chunk_size": c}
                                      for c in (50000, 20))])
def test_information_retrieval_matches_st(ours, minilm_reference, kwargs):
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator as STEval

    queries, docs, qrels = ir_data()
    theirs_eval = STEval(queries, docs, qrels, write_csv=False, **kwargs)
    ours_eval = InformationRetrievalEvaluator(queries, docs, qrels, write_csv=False, **kwargs)
    theirs = theirs_eval(minilm_reference)
    assert_same(ours_eval(ours), theirs, exact=True)  # rank-based: identical ranks give identical metrics
    assert ours_eval.primary_metric == theirs_eval.primary_metric
    if not kwargs:
        at = {"accuracy": (1, 3, 5, 10), "precision": (1, 3, 5, 10), "recall": (1, 3, 5, 10), "ndcg": (10,),
              "mrr": (10,), "map": (100,)}
        assert list(theirs) == [f"cosine_{metric}@{k}" for metric, ks in at.items() for k in ks]
    assert 0 < theirs[theirs_eval.primary_metric] < 1


@needs_st
def test_information_retrieval_several_score_functions(ours, minilm_reference):
    from sentence_transformers import util as st_util
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator as STEval

    from st_runtime import util

    queries, docs, qrels = ir_data()
    theirs_eval = STEval(queries, docs, qrels, write_csv=False, main_score_function="dot",
                         score_functions={"cosine": st_util.cos_sim, "dot": st_util.dot_score,
                                          "manhattan": st_util.manhattan_sim})
    ours_eval = InformationRetrievalEvaluator(queries, docs, qrels, write_csv=False, main_score_function="dot",
                                              score_functions={"cosine": util.cos_sim, "dot": util.dot_score,
                                                               "manhattan": util.manhattan_sim})
    assert_same(ours_eval(ours), theirs_eval(minilm_reference), exact=True)
    assert ours_eval.primary_metric == theirs_eval.primary_metric == "dot_ndcg@10"


# ----- cross-encoder reranking -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ce_pair(export_bundle, model_path):
    from sentence_transformers import CrossEncoder as STCrossEncoder

    from st_runtime import CrossEncoder

    return CrossEncoder(export_bundle("ce-bert")), STCrossEncoder(str(model_path("ce-bert")), device="cpu")


@needs_st
@pytest.mark.parametrize("with_documents,kwargs", [(False, {}), (True, {"name": "rr", "at_k": 3}),
                                                   (True, {"always_rerank_positives": False})])
def test_reranking_matches_st(ce_pair, with_documents, kwargs):
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator as STEval

    ours_model, theirs_model = ce_pair
    samples = rerank_samples(with_documents)
    theirs_eval = STEval(samples, write_csv=False, **kwargs)
    ours_eval = CrossEncoderRerankingEvaluator(samples, write_csv=False, **kwargs)
    theirs = theirs_eval(theirs_model)
    assert_same(ours_eval(ours_model), theirs, exact=False)
    assert ours_eval.primary_metric == theirs_eval.primary_metric
    assert any(k.endswith("base_map") for k in theirs) == with_documents


# ----- command line ------------------------------------------------------------------------------------
def test_cli_evaluate_sts(minilm_bundle, ours, tmp_path, capsys):
    from st_runtime.cli import main

    s1, s2, gold = sts_data(24)
    path = tmp_path / "sts.tsv"
    rows = ["sentence1\tsentence2\tscore"] + [f"{a}\t{b}\t{g * 5}" for a, b, g in zip(s1, s2, gold)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert main(["evaluate", str(minilm_bundle), "--sts", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    expected = EmbeddingSimilarityEvaluator(s1, s2, gold, write_csv=False)(ours)
    assert list(shown["results"]) == ["onnx"] and shown["primary_metric"] == "spearman_cosine"
    assert shown["results"]["onnx"] == pytest.approx(expected, abs=1e-12)

    assert main(["evaluate", str(minilm_bundle), "--sts", str(path), "--variants", "onnx"]) == 0
    table = capsys.readouterr().out
    assert "spearman_cosine" in table and f"{expected['spearman_cosine']:.4f}" in table


def test_cli_evaluate_ir_and_rerank(minilm_bundle, export_bundle, tmp_path, capsys):
    from st_runtime.cli import main

    queries, docs, qrels = ir_data()
    (tmp_path / "q.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in queries.items()), encoding="utf-8")
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in docs.items()))
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{c}\t1\n" for q, cids in qrels.items() for c in sorted(cids)))
    assert main(["evaluate", str(minilm_bundle), "--ir", str(tmp_path / "q.tsv"), str(tmp_path / "c.jsonl"),
                 str(tmp_path / "qrels.tsv")]) == 0
    table = capsys.readouterr().out
    assert "cosine_ndcg@10" in table and "cosine_mrr@10" in table and "onnx" in table

    path = tmp_path / "rerank.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in rerank_samples(False)), encoding="utf-8")
    assert main(["evaluate", str(export_bundle("ce-bert")), "--rerank", str(path)]) == 0
    assert "ndcg@10" in capsys.readouterr().out
    assert main(["evaluate", str(minilm_bundle), "--rerank", str(path)]) == 2  # wrong kind: clear error
    assert "cross-encoder" in capsys.readouterr().err
