"""Serving a SparseEncoder: TEI's POST /embed_sparse gives ST's non-zero dimensions; dense endpoints answer 400."""

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from st_runtime import SentenceTransformer, SparseEncoder  # noqa: E402
from st_runtime.serving.app import ServeConfig, create_app  # noqa: E402
from st_runtime.serving.registry import load_model  # noqa: E402

TEXTS = ["what do pandas eat?", "Giant pandas eat bamboo, mostly."]


@pytest.fixture(scope="module")
def sparse_model(export_bundle):
    return SparseEncoder(export_bundle("splade-max", ("openvino",)))


def test_embed_sparse_matches_encode(sparse_model, export_bundle):
    assert isinstance(load_model(export_bundle("splade-max", ("openvino",))), SparseEncoder)
    with TestClient(create_app({"splade": sparse_model}, ServeConfig())) as client:
        reply = client.post("/embed_sparse", json={"inputs": TEXTS, "prompt_name": "query"})
        assert reply.status_code == 200, reply.text
        expected = sparse_model.encode(TEXTS, prompt_name="query")
        for row, got in enumerate(reply.json()):
            ref = expected[[row]].tocoo()
            assert [e["index"] for e in got] == ref.col.tolist()
            assert np.abs(np.array([e["value"] for e in got]) - ref.data).max() <= 1e-6
        single = client.post("/embed_sparse", json={"inputs": TEXTS[0]})
        assert single.status_code == 200 and len(single.json()) == 1
        dense = client.post("/v1/embeddings", json={"input": TEXTS})
        assert dense.status_code == 400 and "/embed_sparse" in dense.text
        named = client.post("/embed", json={"inputs": TEXTS, "model": "splade"})
        assert named.status_code == 400 and "sparse model" in named.text
        models = client.get("/v1/models").json()["data"]
        assert models[0]["kind"] == "sparse" and models[0]["dimensions"] == 30522


def test_dense_and_sparse_side_by_side(sparse_model, export_bundle):
    dense = SentenceTransformer(export_bundle("bert-mean"))
    with TestClient(create_app({"splade": sparse_model, "bert": dense}, ServeConfig())) as client:
        assert client.post("/v1/embeddings", json={"input": TEXTS}).status_code == 200
        assert client.post("/embed_sparse", json={"inputs": TEXTS}).status_code == 200
        wrong = client.post("/embed_sparse", json={"inputs": TEXTS, "model": "bert"})
        assert wrong.status_code == 400


def test_embed_sparse_task_picks_the_route(export_bundle):
    router = SparseEncoder(export_bundle("splade-router", ("openvino",)))
    with TestClient(create_app({"splade": router}, ServeConfig())) as client:
        for task, expected in (("query", router.encode_query(TEXTS)), ("document", router.encode_document(TEXTS))):
            reply = client.post("/embed_sparse", json={"inputs": TEXTS, "task": task})
            assert reply.status_code == 200, reply.text
            for row, got in enumerate(reply.json()):
                ref = expected[[row]].tocoo()
                assert [e["index"] for e in got] == ref.col.tolist()
                assert np.abs(np.array([e["value"] for e in got]) - ref.data).max() <= 1e-6
        unknown = client.post("/embed_sparse", json={"inputs": TEXTS, "task": "nope"})
        assert unknown.status_code == 422 and "No route found for task 'nope'" in unknown.text
        assert client.post("/embed_sparse", json={"inputs": TEXTS, "task": 3}).status_code == 422
