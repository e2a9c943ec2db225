"""`evaluate` for sparse (dot) and multi-vector (MaxSim) retrieval: the metrics of sentence-transformers' own
SparseInformationRetrievalEvaluator / MultiVectorInformationRetrievalEvaluator on the tiny family models."""

import json
import random

import numpy as np
import pytest

from st_runtime import InputValidationError, MultiVectorEncoder, SparseEncoder, corpus
from st_runtime.cli import main
from st_runtime.evaluation import MultiVectorInformationRetrievalEvaluator, SparseInformationRetrievalEvaluator


def ir_data():
    """Passages as corpus; queries are spans of a passage (some with a second relevant one); one without qrels."""
    rng = random.Random(5)
    passages = corpus.passages(30, seed=21, min_words=20, max_words=50)
    docs = {f"d{i:02d}": p for i, p in enumerate(passages)}
    queries, qrels = {}, {}
    for i in range(0, 24, 2):
        words = passages[i].split()
        start = rng.randrange(max(1, len(words) - 8))
        queries[f"q{i}"] = " ".join(words[start : start + rng.randint(3, 8)])
        qrels[f"q{i}"] = {f"d{i:02d}"} | ({f"d{i + 1:02d}"} if i % 6 == 0 else set())
    queries["q-none"] = "a query without relevant documents"
    return queries, docs, qrels


KWARGS = {"corpus_chunk_size": 7, "mrr_at_k": [3, 10], "ndcg_at_k": [5, 10], "accuracy_at_k": [1, 3],
          "precision_recall_at_k": [1, 5], "map_at_k": [10], "name": "dev"}


def assert_same(ours, theirs, atol=0.0):
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert abs(ours[key] - float(value)) <= atol, (key, ours[key], value)


@pytest.mark.parametrize("max_active_dims", [None, 16])
def test_sparse_ir_matches_st(export_bundle, model_path, max_active_dims):
    st = pytest.importorskip("sentence_transformers")
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator as STEval

    queries, docs, qrels = ir_data()
    ref = st.SparseEncoder(str(model_path("splade-max")), device="cpu")
    theirs_eval = STEval(queries, docs, qrels, write_csv=False, max_active_dims=max_active_dims, **KWARGS)
    theirs = theirs_eval(ref)
    ours_eval = SparseInformationRetrievalEvaluator(queries, docs, qrels, write_csv=False,
                                                    max_active_dims=max_active_dims, **KWARGS)
    ours = ours_eval(SparseEncoder(export_bundle("splade-max", ("openvino",))))
    rank_based = {k: v for k, v in theirs.items() if "active_dims" not in k and "sparsity" not in k
                  and "flops" not in k}
    assert_same({k: ours[k] for k in rank_based}, rank_based)  # identical rankings give identical metrics
    assert_same(ours, theirs, atol=1e-4)  # active dims / sparsity / FLOPS are float means
    assert ours_eval.primary_metric == theirs_eval.primary_metric == "dev_dot_ndcg@10"
    assert "dev_query_active_dims" in ours and "dev_avg_flops" in ours


def test_multi_vector_ir_matches_st(export_bundle, model_path):
    st = pytest.importorskip("sentence_transformers")
    from sentence_transformers.multi_vector_encoder.evaluation import (
        MultiVectorInformationRetrievalEvaluator as STEval,
    )

    queries, docs, qrels = ir_data()
    ref = st.MultiVectorEncoder(str(model_path("multivec-dense")), device="cpu")
    theirs_eval = STEval(queries, docs, qrels, write_csv=False, **KWARGS)
    theirs = theirs_eval(ref)
    ours_eval = MultiVectorInformationRetrievalEvaluator(queries, docs, qrels, write_csv=False, **KWARGS)
    ours = ours_eval(MultiVectorEncoder(export_bundle("multivec-dense", ("openvino",))))
    assert_same(ours, theirs)
    assert ours_eval.primary_metric == theirs_eval.primary_metric == "dev_maxsim_ndcg@10"


def test_sparse_ndcg_is_the_dot_product_ranking(export_bundle):
    """Direct computation, no sentence-transformers: rank the corpus by dot product of encode_query /
    encode_document and compute NDCG@10 and MRR@10 by hand."""
    queries, docs, qrels = ir_data()
    model = SparseEncoder(export_bundle("splade-router", ("openvino",)))
    metrics = SparseInformationRetrievalEvaluator(queries, docs, qrels, write_csv=False)(model)
    ids = list(docs)
    q_ids = [q for q in queries if q in qrels]
    scores = (model.encode_query([queries[q] for q in q_ids]) @ model.encode_document(list(docs.values())).T)
    scores = scores.toarray() if hasattr(scores, "toarray") else np.asarray(scores)
    ndcgs, rrs = [], []
    for row, qid in enumerate(q_ids):
        order = sorted(range(len(ids)), key=lambda j: (-scores[row, j], ids[j]))[:10]
        hits = [ids[j] in qrels[qid] for j in order]
        dcg = sum(h / np.log2(i + 2) for i, h in enumerate(hits))
        ndcgs.append(dcg / sum(1 / np.log2(i + 2) for i in range(min(10, len(qrels[qid])))))
        rrs.append(next((1 / (i + 1) for i, h in enumerate(hits) if h), 0.0))
    assert abs(metrics["dot_ndcg@10"] - np.mean(ndcgs)) <= 1e-9
    assert abs(metrics["dot_mrr@10"] - np.mean(rrs)) <= 1e-9


def test_cli_evaluate_families(export_bundle, tmp_path, capsys):
    queries, docs, qrels = ir_data()
    files = [tmp_path / "q.tsv", tmp_path / "c.jsonl", tmp_path / "qrels.tsv"]
    files[0].write_text("".join(f"{k}\t{v}\n" for k, v in queries.items()), encoding="utf-8")
    files[1].write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in docs.items()))
    files[2].write_text("".join(f"{q}\t{c}\t1\n" for q, cids in qrels.items() for c in sorted(cids)))
    sparse = export_bundle("splade-max", ("openvino",))
    assert main(["evaluate", str(sparse), "--ir", *map(str, files), "--variants", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "sparse-encoder IR" in out and "dot_ndcg@10" in out and "query_active_dims" in out
    multi = export_bundle("multivec-dense", ("openvino",))
    assert main(["evaluate", str(multi), "--ir", *map(str, files), "--variants", "onnx", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["primary_metric"] == "maxsim_ndcg@10" and 0 <= result["results"]["onnx"]["maxsim_ndcg@10"] <= 1
    assert main(["evaluate", str(multi), "--sts", str(files[0])]) == 2
    assert "--ir" in capsys.readouterr().err
    with pytest.raises(InputValidationError, match="max_active_dims"):
        SparseInformationRetrievalEvaluator(queries, docs, qrels, truncate_dim=8)
