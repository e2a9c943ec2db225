"""`st-runtime serve`: a real uvicorn server in a background thread, hit with the openai client and httpx.

Answers are compared with in-process ``encode`` / ``rank`` on the same loaded models (1e-6).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")

from st_runtime.serving.app import ServeConfig, create_app, parse_model_arg  # noqa: E402

from serve_helpers import ServerThread, SlowEncoder  # noqa: E402

TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread, slowly, at a table in the sun near the old harbour.",
    "The girl is carrying a baby.",
    "",
    "Émoji 🚀 and ünïcödé text.",
    "A monkey is playing drums. " * 10,  # 270 characters: under the 300 the test server cuts at
]
QUERY = "How many people live in Berlin?"
DOCS = ["Berlin has 3.7 million inhabitants.", "Paris is the capital of France.",
        "Berlin is a city.", "Bananas are yellow.", "Population of Berlin: about 3.7 million."]


@pytest.fixture(scope="module")
def models(export_bundle):
    from st_runtime import CrossEncoder, SentenceTransformer

    bi = SentenceTransformer(export_bundle("bert-mean"), prompts={"query": "query: "})
    ce = CrossEncoder(export_bundle("ce-bert"))
    return bi, ce


@pytest.fixture(scope="module")
def server(models):
    bi, ce = models
    config = ServeConfig(max_inputs=64, max_input_chars=300, on_long="truncate", batch_wait_ms=20)
    srv = ServerThread(create_app({"bert": bi, "ce": ce}, config)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def tokens_of(model, texts):
    return sum(len(ids) for ids, _ in model.tokenizer.encode(texts))


# ----- embeddings -------------------------------------------------------------------------------------------
def test_openai_float_and_base64(models, oai, client):
    bi, _ = models
    expected = bi.encode(TEXTS)
    for fmt in ("float", None):  # None: the client asks for base64 and decodes it
        kwargs = {"encoding_format": fmt} if fmt else {}
        result = oai.embeddings.create(model="bert", input=TEXTS, **kwargs)
        got = np.array([item.embedding for item in sorted(result.data, key=lambda d: d.index)], dtype=np.float32)
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
        assert result.model == "bert" and len(result.data) == len(TEXTS)
        assert result.usage.prompt_tokens == result.usage.total_tokens == tokens_of(bi, TEXTS)
    # base64 on the wire: little-endian float32 bytes
    raw = client.post("/v1/embeddings", json={"model": "bert", "input": TEXTS[:2], "encoding_format": "base64"}).json()
    decoded = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in raw["data"]])
    np.testing.assert_allclose(decoded, expected[:2], atol=1e-6, rtol=0)
    # a single string, and no model named (only one embedding model is served)
    single = client.post("/v1/embeddings", json={"input": TEXTS[0]}).json()
    assert single["object"] == "list" and single["data"][0]["object"] == "embedding"
    np.testing.assert_allclose(single["data"][0]["embedding"], expected[0], atol=1e-6, rtol=0)


def test_dimensions_and_prompt_name(models, oai):
    bi, _ = models
    result = oai.embeddings.create(model="bert", input=TEXTS, dimensions=8, encoding_format="float")
    got = np.array([item.embedding for item in result.data], dtype=np.float32)
    assert got.shape == (len(TEXTS), 8)
    # the model normalizes, so the truncated vectors are renormalized (as OpenAI does)
    np.testing.assert_allclose(got, bi.encode(TEXTS, truncate_dim=8, normalize_embeddings=True), atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    result = oai.embeddings.create(model="bert", input=TEXTS, extra_body={"prompt_name": "query"})
    got = np.array([item.embedding for item in result.data], dtype=np.float32)
    np.testing.assert_allclose(got, bi.encode(TEXTS, prompt_name="query"), atol=1e-6, rtol=0)
    assert result.usage.prompt_tokens == tokens_of(bi, ["query: " + t for t in TEXTS])


def test_concurrent_requests_get_their_own_rows(models, server, oai):
    bi, _ = models
    metrics = server.app.state.server.metrics

    def batch_stats() -> tuple[float, float, float]:
        text = metrics.render()
        names = ("st_runtime_batch_requests_count", "st_runtime_batch_requests_sum", "st_runtime_batch_size_sum")
        return tuple(_sample(text, name + '{model="bert"}', 0.0) for name in names)

    before = batch_stats()
    jobs = [[f"request {i} text {j}: " + "word " * (i * 3 + j) for j in range(1 + i % 4)] for i in range(16)]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def call(i: int) -> None:
        try:
            barrier.wait(10)
            result = oai.embeddings.create(model="bert", input=jobs[i])
            results[i] = np.array([d.embedding for d in result.data], dtype=np.float32)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for i, texts in enumerate(jobs):
        np.testing.assert_allclose(results[i], bi.encode(texts), atol=1e-6, rtol=0)
    calls, merged, inputs = (after - b for after, b in zip(batch_stats(), before))
    assert merged == len(jobs) and inputs == sum(len(j) for j in jobs)
    assert calls < len(jobs), "dynamic batching merged no requests"
    print(f"16 requests in {calls:.0f} inference calls")


# ----- rerank and similarity --------------------------------------------------------------------------------
def test_rerank_tei_and_cohere(models, client):
    _, ce = models
    expected = ce.rank(QUERY, DOCS, return_documents=True)
    tei = client.post("/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True})
    assert tei.status_code == 200
    got = tei.json()
    assert [r["index"] for r in got] == [r["corpus_id"] for r in expected]
    np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in expected], atol=1e-6, rtol=0)
    assert [r["text"] for r in got] == [r["text"] for r in expected]
    raw = client.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True, "top_n": 2}).json()
    logits = ce.predict([(QUERY, d) for d in DOCS], activation_fn="identity")
    assert len(raw) == 2 and "text" not in raw[0]
    np.testing.assert_allclose([r["score"] for r in raw], np.sort(logits)[::-1][:2], atol=1e-6, rtol=0)

    cohere = client.post("/v1/rerank", json={"model": "ce", "query": QUERY, "top_n": 3, "return_documents": True,
                                             "documents": [DOCS[0], *({"text": d} for d in DOCS[1:])]}).json()
    assert [r["index"] for r in cohere["results"]] == [r["corpus_id"] for r in expected[:3]]
    np.testing.assert_allclose([r["relevance_score"] for r in cohere["results"]],
                               [r["score"] for r in expected[:3]], atol=1e-6, rtol=0)
    assert cohere["results"][0]["document"] == {"text": expected[0]["text"]}


def test_rerank_with_a_callable_activation(export_bundle):
    """A CrossEncoder loaded with its own activation callable is served with that activation."""
    from st_runtime import CrossEncoder

    halve = lambda logits: logits / 2.0  # noqa: E731
    ce = CrossEncoder(export_bundle("ce-bert"), activation_fn=halve)
    srv = ServerThread(create_app({"ce": ce}, ServeConfig(on_long="truncate"))).start()
    try:
        got = httpx.post(f"{srv.url}/rerank", json={"query": QUERY, "texts": DOCS}, timeout=30)
    finally:
        srv.stop()
    assert got.status_code == 200
    logits = ce.predict([(QUERY, d) for d in DOCS], activation_fn="identity")
    by_index = {r["index"]: r["score"] for r in got.json()}
    np.testing.assert_allclose([by_index[i] for i in range(len(DOCS))], logits / 2.0, atol=1e-6, rtol=0)


def test_similarity(models, client):
    bi, _ = models
    a, b = TEXTS[:3], TEXTS[3:]
    got = client.post("/similarity", json={"model": "bert", "sentences_a": a, "sentences_b": b}).json()
    np.testing.assert_allclose(got["scores"], bi.similarity(bi.encode(a), bi.encode(b)), atol=1e-6, rtol=0)
    assert got["similarity_fn_name"] == "cosine"
    got = client.post("/similarity", json={"source_sentence": a[0], "sentences": b}).json()
    np.testing.assert_allclose(got["scores"], bi.similarity(bi.encode(a[:1]), bi.encode(b))[0], atol=1e-6, rtol=0)
    square = client.post("/similarity", json={"inputs": {"sentences_a": a}}).json()["scores"]
    assert np.asarray(square).shape == (3, 3)


def test_health_and_models(client, oai):
    health = client.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok", "models": {"bert": "embedding",
                                                                                     "ce": "rerank"}}
    listed = {m.id: m for m in oai.models.list()}
    assert set(listed) == {"bert", "ce"} and listed["bert"].object == "model"
    info = client.get("/v1/models/bert").json()
    assert info["dimensions"] == 32 and info["kind"] == "embedding" and info["normalized"] is True
    assert client.get("/v1/models/nope").status_code == 404


# ----- limits and errors ------------------------------------------------------------------------------------
BAD = [
    ("/v1/embeddings", b"{not json", 422, "invalid_json"),
    ("/v1/embeddings", [1, 2], 422, "invalid_body"),
    ("/v1/embeddings", {"model": "bert"}, 422, "missing_field"),
    ("/v1/embeddings", {"model": "bert", "input": 5}, 422, "invalid_type"),
    ("/v1/embeddings", {"model": "bert", "input": []}, 422, "empty_input"),
    ("/v1/embeddings", {"model": "bert", "input": ["ok", None]}, 422, "invalid_type"),
    ("/v1/embeddings", {"model": "bert", "input": [[1, 2, 3]]}, 422, "unsupported_input"),
    ("/v1/embeddings", {"model": "bert", "input": "x", "encoding_format": "int8"}, 422, "invalid_value"),
    ("/v1/embeddings", {"model": "bert", "input": "x", "dimensions": 0}, 422, "invalid_value"),
    ("/v1/embeddings", {"model": "bert", "input": "x", "dimensions": 33}, 422, "invalid_value"),
    ("/v1/embeddings", {"model": "bert", "input": "x", "dimensions": "8"}, 422, "invalid_type"),
    ("/v1/embeddings", {"model": "bert", "input": "x", "prompt_name": "nope"}, 422, "invalid_value"),
    ("/v1/embeddings", {"model": "bert", "input": "\ud800"}, 422, "invalid_value"),
    ("/v1/embeddings", {"model": 3, "input": "x"}, 422, "invalid_type"),
    ("/v1/embeddings", {"model": "nope", "input": "x"}, 404, "model_not_found"),
    ("/v1/embeddings", {"model": "ce", "input": "x"}, 400, "wrong_model_kind"),
    ("/v1/embeddings", {"model": "bert", "input": ["x"] * 65}, 413, "too_many_inputs"),
    ("/rerank", {"texts": ["a"]}, 422, "missing_field"),
    ("/rerank", {"query": "q", "texts": []}, 422, "empty_input"),
    ("/rerank", {"query": "q", "texts": "a"}, 422, "invalid_type"),
    ("/rerank", {"query": "q", "texts": ["a"], "top_n": -1}, 422, "invalid_value"),
    ("/rerank", {"query": "q", "texts": ["a"], "return_text": "yes"}, 422, "invalid_type"),
    ("/rerank", {"model": "bert", "query": "q", "texts": ["a"]}, 400, "wrong_model_kind"),
    ("/similarity", {"model": "bert"}, 422, "missing_field"),
    ("/similarity", {"model": "ce", "sentences_a": ["a"]}, 400, "wrong_model_kind"),
]


@pytest.mark.parametrize("path,body,status,code", BAD, ids=[f"{p}-{c}-{i}" for i, (p, _, _, c) in enumerate(BAD)])
def test_bad_requests(client, path, body, status, code):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"]


def test_unknown_route_and_method(client):
    assert client.get("/v2/nothing").json()["error"]["code"] == "not_found"
    assert client.get("/v1/embeddings").status_code == 405


def test_long_inputs_truncate_and_reject(models, client):
    bi, _ = models
    long_text = "word " * 200  # 1000 characters; this server cuts at 300
    got = client.post("/v1/embeddings", json={"input": [long_text]}).json()["data"][0]["embedding"]
    np.testing.assert_allclose(got, bi.encode(long_text[:300]), atol=1e-6, rtol=0)
    strict = ServerThread(create_app({"bert": bi}, ServeConfig(max_input_chars=300, on_long="reject"))).start()
    try:
        response = httpx.post(f"{strict.url}/v1/embeddings", json={"input": ["short", long_text]}, timeout=30)
        assert response.status_code == 413 and response.json()["error"]["code"] == "input_too_long"
        assert httpx.post(f"{strict.url}/v1/embeddings", json={"input": "x" * 300}, timeout=30).status_code == 200
    finally:
        strict.stop()


def test_timeout_gives_504(models):
    bi, _ = models
    slow = ServerThread(create_app({"bert": SlowEncoder(bi, 0.6)}, ServeConfig(request_timeout=0.2))).start()
    try:
        response = httpx.post(f"{slow.url}/v1/embeddings", json={"input": "x"}, timeout=30)
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "request_timeout"
    finally:
        slow.stop()


def test_graceful_shutdown_finishes_in_flight_requests(models):
    bi, _ = models
    slow = ServerThread(create_app({"bert": SlowEncoder(bi, 0.5)}, ServeConfig(request_timeout=10))).start()
    responses: dict[str, httpx.Response] = {}

    def call(key: str, body: dict) -> None:
        responses[key] = httpx.post(f"{slow.url}/v1/embeddings", json=body, timeout=30)

    # different prompts never share a call: the second request is still queued when shutdown starts
    threads = [threading.Thread(target=call, args=("plain", {"input": TEXTS[:2]})),
               threading.Thread(target=call, args=("query", {"input": TEXTS[:2], "prompt_name": "query"}))]
    for t in threads:
        t.start()
    metrics = slow.app.state.server.metrics
    deadline = time.monotonic() + 10
    while metrics.in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert metrics.in_flight == 2
    slow.stop()  # should_exit: uvicorn stops accepting, waits for in-flight requests, then drains the batcher
    for t in threads:
        t.join(10)
    assert responses["plain"].status_code == 200 and responses["query"].status_code == 200
    got = np.array([d["embedding"] for d in responses["query"].json()["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, bi.encode(TEXTS[:2], prompt_name="query"), atol=1e-6, rtol=0)
    assert slow.app.state.server.closing


# ----- metrics and CLI --------------------------------------------------------------------------------------
def _sample(text: str, name: str, default: float | None = None) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    if default is not None:
        return default
    raise AssertionError(f"{name} not in metrics:\n{text}")


def test_metrics_counts(client):
    before = client.get("/metrics").text
    ok_key = 'st_runtime_requests_total{endpoint="embeddings",status="200"}'
    bad_key = 'st_runtime_requests_total{endpoint="embeddings",status="422"}'
    ok0, bad0 = _sample(before, ok_key, 0.0), _sample(before, bad_key, 0.0)
    client.post("/v1/embeddings", json={"input": "hello"})
    client.post("/v1/embeddings", json={"input": "hello"})
    client.post("/v1/embeddings", json={"input": []})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert _sample(text, ok_key) == ok0 + 2 and _sample(text, bad_key) == bad0 + 1
    assert "# TYPE st_runtime_batch_size histogram" in text
    assert 'st_runtime_batch_size_bucket{model="bert",le="+Inf"}' in text
    assert 'st_runtime_request_duration_seconds_bucket{endpoint="embeddings",le="0.005"}' in text
    assert _sample(text, 'st_runtime_requests_in_flight') == 0
    assert 'st_runtime_queue_depth{model="bert"} 0' in text


def test_cli_parsing_and_lazy_imports(tmp_path):
    from st_runtime.cli import build_parser

    args = build_parser().parse_args(["serve", "a=/x/y", "/models/my-bundle/", "--port", "0", "--on-long", "reject",
                                      "--max-input-chars", "100", "--request-timeout", "2.5"])
    assert args.bundles == ["a=/x/y", "/models/my-bundle/"] and args.on_long == "reject"
    assert args.max_input_chars == 100 and args.request_timeout == 2.5 and args.max_batch_size == 32
    assert parse_model_arg("a=/x/y") == ("a", "/x/y")
    assert parse_model_arg("/models/my-bundle/") == ("my-bundle", "/models/my-bundle/")
    weird = tmp_path / "b=c"
    weird.mkdir()
    assert parse_model_arg(str(weird)) == ("b=c", str(weird))
    code = ("import sys, st_runtime, st_runtime.cli, st_runtime.serving; st_runtime.cli.build_parser(); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'httpx')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
