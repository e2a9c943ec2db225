"""Models fine-tuned with sentence-transformers' trainers export exactly (fp32 1e-5), prompts and Matryoshka included."""

import shutil

import numpy as np
import pytest

from st_runtime import CrossEncoder, SentenceTransformer, corpus

pytest.importorskip("datasets")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.torch
ATOL = 1e-5
TEXTS = corpus.queries(16, seed=81) + corpus.passages(8, seed=82) + corpus.passages(2, seed=83, min_words=400,
                                                                                   max_words=420)


def _pairs(n: int):
    passages = corpus.passages(n, seed=84)
    queries = [" ".join(p.split()[3:12]) for p in passages]
    return queries, passages


def _args(tmp_path, **kw):
    from sentence_transformers import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=12, per_device_train_batch_size=8, learning_rate=1e-3, seed=0,
        report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, **kw)


def _train(model, loss, dataset, tmp_path, **kw):
    from sentence_transformers import SentenceTransformerTrainer

    SentenceTransformerTrainer(model=model, args=_args(tmp_path, **kw), train_dataset=dataset, loss=loss).train()
    model.eval()
    out = tmp_path / "trained"
    model.save(str(out))
    return out


def _export(path, tmp_path):
    from st_runtime.export.export import export_model

    return export_model(str(path), tmp_path / "bundle")


def _copy_model(name, model_path, tmp_path):
    from sentence_transformers import SentenceTransformer as TorchST

    shutil.copytree(model_path(name), tmp_path / "base")
    return TorchST(str(tmp_path / "base"), device="cpu")


def test_sts_cosine_similarity_loss(model_path, tmp_path):
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    model = _copy_model("bert-mean", model_path, tmp_path)
    q, p = _pairs(64)
    scores = [float(i % 5) / 4 for i in range(64)]
    data = Dataset.from_dict({"sentence1": q, "sentence2": p, "score": scores})
    before = model.encode(TEXTS)
    trained = _train(model, CosineSimilarityLoss(model), data, tmp_path)
    after = model.encode(TEXTS)
    assert np.abs(after - before).max() > 1e-3, "training must have changed the model"
    ours = SentenceTransformer(_export(trained, tmp_path))
    assert np.abs(ours.encode(TEXTS) - after).max() <= ATOL


@pytest.mark.parametrize("include_prompt", [True, False])
def test_training_with_prompts(include_prompt, model_path, tmp_path):
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = _copy_model("bert-mean", model_path, tmp_path)
    model.prompts = {"query": "query: ", "document": "passage: "}
    model.set_pooling_include_prompt(include_prompt)
    q, p = _pairs(64)
    data = Dataset.from_dict({"anchor": q, "positive": p})
    trained = _train(model, MultipleNegativesRankingLoss(model), data, tmp_path,
                     prompts={"anchor": "query: ", "positive": "passage: "})
    ours = SentenceTransformer(_export(trained, tmp_path))
    assert ours.manifest.embedding.include_prompt is include_prompt
    assert np.abs(ours.encode_query(TEXTS) - model.encode_query(TEXTS)).max() <= ATOL
    assert np.abs(ours.encode_document(TEXTS) - model.encode_document(TEXTS)).max() <= ATOL
    assert np.abs(ours.encode(TEXTS) - model.encode(TEXTS)).max() <= ATOL


def test_matryoshka_truncate_dims(model_path, tmp_path):
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    model = _copy_model("bert-mean", model_path, tmp_path)
    q, p = _pairs(64)
    data = Dataset.from_dict({"anchor": q, "positive": p})
    loss = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), matryoshka_dims=[32, 16, 8])
    ours = SentenceTransformer(_export(_train(model, loss, data, tmp_path), tmp_path))
    for dim in (32, 16, 8):
        ref = model.encode(TEXTS, truncate_dim=dim, normalize_embeddings=True)
        got = ours.encode(TEXTS, truncate_dim=dim, normalize_embeddings=True)
        assert got.shape == (len(TEXTS), dim) and np.abs(got - ref).max() <= ATOL


def test_cross_encoder_binary_cross_entropy(model_path, tmp_path):
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder as TorchCE,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    shutil.copytree(model_path("ce-bert"), tmp_path / "base")
    model = TorchCE(str(tmp_path / "base"), device="cpu")
    pairs = corpus.query_passage_pairs(64, seed=85)
    data = Dataset.from_dict({"query": [a for a, _ in pairs], "passage": [b for _, b in pairs],
                              "label": [float(i % 2 == 0) for i in range(64)]})
    args = CrossEncoderTrainingArguments(output_dir=str(tmp_path / "run"), max_steps=12, per_device_train_batch_size=8,
                                         learning_rate=1e-3, seed=0, report_to=[], save_strategy="no",
                                         logging_strategy="no", use_cpu=True)
    CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=BinaryCrossEntropyLoss(model)).train()
    model.eval()
    model.save(str(tmp_path / "trained"))
    ours = CrossEncoder(_export(tmp_path / "trained", tmp_path))
    test_pairs = corpus.query_passage_pairs(20, seed=86)
    assert np.abs(ours.predict(test_pairs) - model.predict(test_pairs)).max() <= ATOL
