"""Serving a MultiVectorEncoder: POST /embed_multi_vector gives encode's per-token vectors (per task); the dense
endpoints answer a multi-vector model with a 400 naming /embed_multi_vector."""

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from st_runtime import MultiVectorEncoder, SentenceTransformer  # noqa: E402
from st_runtime.serving.app import ServeConfig, create_app  # noqa: E402
from st_runtime.serving.registry import load_model  # noqa: E402

TEXTS = ["what do pandas eat?", "Giant pandas eat bamboo, mostly. They also eat small animals!"]


@pytest.fixture(scope="module")
def multivec(export_bundle):
    return MultiVectorEncoder(export_bundle("multivec-lengths", ("openvino",)))


def _same(reply_rows, expected):
    assert len(reply_rows) == len(expected)
    for got, ref in zip(reply_rows, expected):
        got = np.asarray(got, dtype=np.float32)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-6


def test_embed_multi_vector_matches_encode(multivec, export_bundle):
    assert isinstance(load_model(export_bundle("multivec-lengths", ("openvino",))), MultiVectorEncoder)
    long = " ".join(["bamboo forest"] * 40)  # past query_length 12 and document_length 40
    with TestClient(create_app({"colbert": multivec}, ServeConfig())) as client:
        for task, expected in ((None, multivec.encode(TEXTS + [long])),
                               ("query", multivec.encode_query(TEXTS + [long])),
                               ("document", multivec.encode_document(TEXTS + [long]))):
            reply = client.post("/embed_multi_vector", json={"inputs": TEXTS + [long], "task": task,
                                                                    "truncate": True})
            assert reply.status_code == 200, reply.text
            _same(reply.json(), expected)
        assert len(reply.json()[2]) != len(client.post("/embed_multi_vector", json={
            "inputs": [long], "task": "query", "truncate": True}).json()[0])  # the two sides keep different lengths
        single = client.post("/embed_multi_vector", json={"inputs": TEXTS[0]})
        assert single.status_code == 200 and len(single.json()) == 1
        bad = client.post("/embed_multi_vector", json={"inputs": TEXTS, "task": "passage-ish"})
        assert bad.status_code == 422 and "'task'" in bad.text
        dense = client.post("/v1/embeddings", json={"input": TEXTS})
        assert dense.status_code == 400 and "/embed_multi_vector" in dense.text
        named = client.post("/embed", json={"inputs": TEXTS, "model": "colbert"})
        assert named.status_code == 400 and "multi-vector model" in named.text
        models = client.get("/v1/models").json()["data"]
        assert models[0]["kind"] == "multi-vector" and models[0]["dimensions"] == 16


def test_prompts_follow_the_task(export_bundle):
    model = MultiVectorEncoder(export_bundle("multivec-dense", ("openvino",)))  # [Q] / [D] prompts
    with TestClient(create_app({"colbert": model}, ServeConfig())) as client:
        reply = client.post("/embed_multi_vector", json={"inputs": TEXTS, "task": "query"})
        _same(reply.json(), model.encode_query(TEXTS))
        reply = client.post("/embed_multi_vector", json={"inputs": TEXTS, "task": "document",
                                                         "prompt_name": "query"})
        _same(reply.json(), model.encode_document(TEXTS, prompt_name="query"))


def test_dense_and_multi_vector_side_by_side(multivec, export_bundle):
    dense = SentenceTransformer(export_bundle("bert-mean"))
    with TestClient(create_app({"colbert": multivec, "bert": dense}, ServeConfig())) as client:
        assert client.post("/v1/embeddings", json={"input": TEXTS}).status_code == 200
        assert client.post("/embed_multi_vector", json={"inputs": TEXTS}).status_code == 200
        assert client.post("/embed_multi_vector", json={"inputs": TEXTS, "model": "bert"}).status_code == 400


def test_truncate_false_checks_the_tasks_own_length(multivec):
    """query_length 12, document_length 40, max_seq_length 64: truncate=false refuses what the task would cut."""
    medium = " ".join(["bamboo"] * 20)  # ~22 tokens: past the query length only
    longer = " ".join(["bamboo"] * 50)  # ~52 tokens: past the document length, within max_seq_length
    with TestClient(create_app({"colbert": multivec}, ServeConfig())) as client:
        def post(text, task):
            return client.post("/embed_multi_vector", json={"inputs": [text], "task": task, "truncate": False})

        refused = post(medium, "query")
        assert refused.status_code == 413 and "query length" in refused.text and "12 tokens" in refused.text
        assert post(medium, "document").status_code == 200
        assert post(longer, "document").status_code == 413
        assert post(longer, None).status_code == 200
        _same(post(medium, "document").json(), multivec.encode_document([medium]))
