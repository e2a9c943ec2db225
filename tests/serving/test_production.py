"""Production behaviour of `st-runtime serve`: API keys, backpressure, readiness and drain, request controls.

Servers bind 127.0.0.1 only; floods are bounded in count and time.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")
psutil = pytest.importorskip("psutil")

from serve_helpers import SlowEncoder, subprocess_server  # noqa: E402

from st_runtime.serving.config import ServeConfig  # noqa: E402

LONG = "word " * 400  # ~400 tokens: over the tiny models' max_seq_length of 128


# ----- API keys ---------------------------------------------------------------------------------------------
def test_api_keys_with_the_openai_client(serve_models, start_server, caplog):
    bi, ce = serve_models
    caplog.set_level(logging.DEBUG)
    keys = ("sk-first-key-123", "sk-second-key-456")
    srv = start_server({"bert": bi, "ce": ce}, ServeConfig(api_keys=keys, access_log=True))
    for key in keys:
        oai = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0)
        got = oai.embeddings.create(model="bert", input=["hello"], encoding_format="float").data[0].embedding
        np.testing.assert_allclose(got, bi.encode("hello"), atol=1e-6, rtol=0)
        assert {m.id for m in oai.models.list()} == {"bert", "ce"}
    # a prefix, a longer key, and no Authorization header at all (the client insists on a key: omit the header)
    for bad, headers in (("sk-first-key-12", None), ("sk-first-key-1234", None),
                         ("unused", {"Authorization": openai.Omit()})):
        wrong = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=bad, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            wrong.embeddings.create(model="bert", input=["hello"], extra_headers=headers)
        assert info.value.status_code == 401 and info.value.body["code"] == "invalid_api_key"
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        for headers in ({}, {"Authorization": "Basic " + keys[0]}, {"Authorization": "Bearer"},
                        {"Authorization": f"bearer {keys[1]}x"}):
            for method, path in (("POST", "/v1/embeddings"), ("POST", "/rerank"), ("POST", "/tokenize"),
                                 ("GET", "/v1/models"), ("GET", "/no/such/route")):
                response = client.request(method, path, json={"input": "x"}, headers=headers)
                assert response.status_code == 401, (path, headers, response.text)
                assert response.json()["error"]["code"] == "invalid_api_key"
                assert response.headers["www-authenticate"] == "Bearer"
        ok = client.post("/rerank", json={"query": "q", "texts": ["a"]}, headers={"Authorization": f"bearer {keys[1]}"})
        assert ok.status_code == 200
        assert client.get("/health").status_code == 200  # open for load balancers
        assert client.get("/metrics").status_code == 200  # open unless --protect-metrics
    logged = caplog.text + repr(srv.core.config) + repr(srv.app)
    assert not any(key in logged for key in keys), "an API key reached a log line or a repr"
    assert '"status": 401' in caplog.text  # the access log did record the refusals


def test_protect_metrics(serve_models, start_server):
    bi, _ = serve_models
    srv = start_server({"bert": bi}, ServeConfig(api_keys=("k",), protect_metrics=True))
    assert httpx.get(f"{srv.url}/metrics").status_code == 401
    assert httpx.get(f"{srv.url}/metrics", headers={"Authorization": "Bearer k"}).status_code == 200
    assert httpx.get(f"{srv.url}/health").status_code == 200


def test_api_key_sources(tmp_path, monkeypatch):
    from st_runtime.cli import build_parser
    from st_runtime.errors import InputValidationError
    from st_runtime.serving.cli import build_config

    keyfile = tmp_path / "keys"
    keyfile.write_text("# team keys\nfile-key-1\n\n  file-key-2  \n")
    monkeypatch.setenv("ST_RUNTIME_API_KEY", "env-key")
    args = build_parser().parse_args(["serve", "b", "--api-key", "cli-a", "--api-key", "cli-b",
                                      "--api-key-file", str(keyfile)])
    config = build_config(args)
    assert config.api_keys == ("cli-a", "cli-b", "file-key-1", "file-key-2", "env-key")
    assert "key" not in repr(config).replace("api_keys", "").replace("queue", "")
    monkeypatch.delenv("ST_RUNTIME_API_KEY")
    assert build_config(build_parser().parse_args(["serve", "b"])).api_keys == ()
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(InputValidationError, match="holds no key"):
        build_config(build_parser().parse_args(["serve", "b", "--api-key-file", str(tmp_path / "empty")]))
    with pytest.raises(InputValidationError, match="Cannot read"):
        build_config(build_parser().parse_args(["serve", "b", "--api-key-file", str(tmp_path / "missing")]))


# ----- backpressure -----------------------------------------------------------------------------------------
def _flood(url: str, n: int, body: dict, timeout: float = 30.0) -> list[tuple[int, float, dict, dict]]:
    """``n`` requests released at once (one thread each); (status, seconds, headers, json) for every one."""
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        with httpx.Client(timeout=timeout) as client:
            barrier.wait(20)
            start = time.perf_counter()
            try:
                response = client.post(f"{url}/v1/embeddings", json=body)
                results[i] = (response.status_code, time.perf_counter() - start, dict(response.headers),
                              response.json())
            except httpx.HTTPError as exc:  # lost or hung: the test fails on it
                results[i] = (type(exc).__name__, time.perf_counter() - start, {}, {})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 30)
    assert not any(t.is_alive() for t in threads), "a request hung"
    return results


def test_flood_at_ten_times_the_limit_gets_200_or_429(serve_models, start_server):
    bi, _ = serve_models
    limit = 4
    delay = 1.5  # each inference call; a 429 must come well before any 200 could
    srv = start_server({"bert": SlowEncoder(bi, delay)},
                       ServeConfig(max_concurrent_requests=limit, request_timeout=20, retry_after=2))
    rss = psutil.Process(os.getpid())
    before = rss.memory_info().rss
    start = time.perf_counter()
    for _ in range(2):  # two waves: the server recovers between them
        results = _flood(srv.url, 10 * limit, {"input": ["a flood of requests"] * 8})
        statuses = [r[0] for r in results]
        assert set(statuses) <= {200, 429}, statuses
        assert 1 <= statuses.count(200) and statuses.count(429) >= 10 * limit - 3 * limit, statuses
        for status, seconds, headers, payload in results:
            if status == 429:
                assert headers["retry-after"] == "2" and payload["error"]["code"] == "overloaded"
                assert seconds < delay, "a 429 must come at once, not after queueing"
            else:
                assert len(payload["data"]) == 8 and seconds >= delay
        refused = sorted(seconds for status, seconds, _, _ in results if status == 429)
        assert refused[len(refused) // 2] < 0.5, refused
    assert time.perf_counter() - start < 40
    assert rss.memory_info().rss - before < 150 * 2**20, "memory grew under the flood"
    # and afterwards it serves normally
    assert httpx.post(f"{srv.url}/v1/embeddings", json={"input": "after"}, timeout=30).status_code == 200
    metrics = httpx.get(f"{srv.url}/metrics").text
    assert 'st_runtime_requests_total{endpoint="embeddings",status="429"}' in metrics


def test_queue_bounded_by_tokens_and_requests(serve_models, start_server):
    bi, _ = serve_models
    slow = SlowEncoder(bi, 0.5)
    for config in (ServeConfig(max_queue_tokens=64, request_timeout=20),
                   ServeConfig(max_queue_requests=1, request_timeout=20)):
        srv = start_server({"bert": slow}, config)
        results = _flood(srv.url, 6, {"input": ["ten words of text to fill the queue with some tokens"] * 2})
        statuses = [r[0] for r in results]
        assert set(statuses) <= {200, 429} and 429 in statuses and 200 in statuses, statuses
        assert all("--max-queue" in r[3]["error"]["message"] for r in results if r[0] == 429)
        srv.stop()


# ----- readiness and drain ----------------------------------------------------------------------------------
def test_health_is_503_until_warm(serve_models, start_server):
    bi, _ = serve_models
    srv = start_server({"bert": SlowEncoder(bi, 2.0)}, ServeConfig(), ready=False)
    first = httpx.get(f"{srv.url}/health")
    assert first.status_code == 503 and first.json()["status"] == "warming_up"
    deadline = time.monotonic() + 20
    while httpx.get(f"{srv.url}/health").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert httpx.get(f"{srv.url}/health").json()["status"] == "ok"
    assert "st_runtime_ready 1" in httpx.get(f"{srv.url}/metrics").text


def test_sigterm_drains_under_load(export_bundle):
    """A real SIGTERM to a subprocess server under load: in-flight requests finish (200), /health turns 503,
    new requests get the documented 503, then the process exits 0. No request is cut, no other 5xx."""
    with subprocess_server(export_bundle("bert-mean"), "--drain-grace", "1.0") as (proc, url, log):
        stop = threading.Event()
        seen: list = []
        health: list = []
        errors: list = []
        body = {"input": ["a sentence to keep the server busy for a while " * 4] * 32}

        def client() -> None:  # a balancer-like client: it stops sending once the server says it is leaving
            with httpx.Client(base_url=url, timeout=30) as c:
                while not stop.is_set():
                    try:
                        response = c.post("/v1/embeddings", json=body)
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))
                        return
                    seen.append((time.monotonic(), response.status_code, response.json()))
                    if response.status_code == 503:
                        return

        def prober() -> None:
            with httpx.Client(base_url=url, timeout=5) as c:
                while not stop.is_set():
                    try:
                        health.append(c.get("/health").status_code)
                    except httpx.HTTPError:
                        return  # the listener closed: the drain is over
                    time.sleep(0.05)

        threads = [threading.Thread(target=client) for _ in range(4)] + [threading.Thread(target=prober)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        assert len(seen) >= 4, "no load reached the server"
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        stop.set()
        for t in threads:
            t.join(30)
        log.seek(0)
        output = log.read().decode()
        assert code == 0, output
        assert not errors, errors  # no request cut
        statuses = {s for _, s, _ in seen}
        assert statuses <= {200, 503}, statuses
        for _, status, payload in seen:
            if status == 503:
                assert payload["error"]["code"] == "shutting_down"
            else:
                assert len(payload["data"]) == 32
        assert any(s == 200 and t > signalled for t, s, _ in seen), "in-flight requests did not finish after SIGTERM"
        assert 503 in health and health[0] == 200, health


# ----- request controls -------------------------------------------------------------------------------------
def test_truncate_per_request_and_auto_truncate(serve_models, start_server):
    bi, ce = serve_models
    srv = start_server({"bert": bi, "ce": ce})
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        refused = c.post("/v1/embeddings", json={"input": ["short", LONG]})
        assert refused.status_code == 413 and refused.json()["error"]["code"] == "input_too_long"
        assert "input[1]" in refused.json()["error"]["message"]
        cut = c.post("/v1/embeddings", json={"input": ["short", LONG], "truncate": True, "encoding_format": "float"})
        np.testing.assert_allclose([d["embedding"] for d in cut.json()["data"]], bi.encode(["short", LONG]),
                                   atol=1e-6, rtol=0)
        tei = c.post("/embed", json={"inputs": LONG, "truncate": True})
        np.testing.assert_allclose(tei.json(), bi.encode([LONG], normalize_embeddings=True), atol=1e-6, rtol=0)
        assert c.post("/embed", json={"inputs": LONG}).status_code == 413
        assert c.post("/rerank", json={"query": "q", "texts": [LONG]}).status_code == 413
        ranked = c.post("/rerank", json={"query": "q", "texts": [LONG, "b"], "truncate": True}).json()
        expected = ce.rank("q", [LONG, "b"])
        np.testing.assert_allclose([r["score"] for r in ranked], [r["score"] for r in expected], atol=1e-6, rtol=0)
        assert c.post("/v1/embeddings", json={"input": "x", "truncate": "yes"}).status_code == 422
    auto = start_server({"bert": bi}, ServeConfig(auto_truncate=True))
    with httpx.Client(base_url=auto.url, timeout=30) as c:
        assert c.post("/v1/embeddings", json={"input": LONG}).status_code == 200
        assert c.post("/v1/embeddings", json={"input": LONG, "truncate": False}).status_code == 413


def test_tokenize_tei_shape(serve_models, start_server):
    bi, _ = serve_models
    srv = start_server({"bert": bi})
    texts = ["Hello world!", "Émoji 🚀 text"]
    got = httpx.post(f"{srv.url}/tokenize", json={"inputs": texts}).json()
    ids = [row[0] for row in bi.tokenizer.encode(texts)]
    assert [[t["id"] for t in row] for row in got] == ids
    first = got[0]
    assert first[0]["special"] and first[0]["start"] is None and first[-1]["special"]
    words = [t for t in first if not t["special"]]
    assert all(texts[0][t["start"]:t["stop"]] == t["text"] for t in words)
    assert "".join(t["text"] for t in words).lower() == "helloworld!"
    bare = httpx.post(f"{srv.url}/tokenize", json={"inputs": texts[0], "add_special_tokens": False}).json()
    assert [t["id"] for t in bare[0]] == [t["id"] for t in words]
    with_prompt = httpx.post(f"{srv.url}/tokenize", json={"inputs": "x", "prompt_name": "query"}).json()
    assert [t["id"] for t in with_prompt[0]] == bi.tokenizer.encode(["query: x"])[0][0]
    assert httpx.post(f"{srv.url}/tokenize", json={"inputs": LONG}).status_code == 413


def test_body_limit_before_parsing_and_chunked(serve_models, start_server):
    bi, _ = serve_models
    srv = start_server({"bert": bi}, ServeConfig(max_body_bytes=1000))
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        big = json.dumps({"input": "x" * 2000}).encode()
        response = c.post("/v1/embeddings", content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"

        def chunks():  # no Content-Length: Transfer-Encoding: chunked
            yield b'{"input": "'
            for _ in range(50):
                yield b"x" * 100
            yield b'"}'

        response = c.post("/v1/embeddings", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
        assert c.post("/v1/embeddings", json={"input": "small"}).status_code == 200


def test_request_id_and_access_log(serve_models, start_server, caplog):
    bi, _ = serve_models
    caplog.set_level(logging.INFO, logger="st_runtime.serving.access")
    srv = start_server({"bert": bi}, ServeConfig(access_log=True))
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        mine = c.post("/v1/embeddings", json={"input": ["a", "b"]}, headers={"X-Request-Id": "trace-42.a:b"})
        assert mine.headers["x-request-id"] == "trace-42.a:b"
        made = c.post("/v1/embeddings", json={"input": []})
        assert len(made.headers["x-request-id"]) == 32 and made.status_code == 422
        hostile = c.get("/health", headers={"X-Request-Id": "evil\tid with spaces" + "x" * 200})
        assert hostile.headers["x-request-id"] != "evil" and " " not in hostile.headers["x-request-id"]
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "st_runtime.serving.access"]
    entry = next(e for e in lines if e["request_id"] == "trace-42.a:b")
    assert entry["status"] == 200 and entry["path"] == "/v1/embeddings" and entry["model"] == "bert"
    assert entry["inputs"] == 2 and entry["tokens"] > 0 and entry["ms"] >= 0 and entry["method"] == "POST"
    assert any(e["request_id"] == made.headers["x-request-id"] and e["status"] == 422 for e in lines)


# ----- adapters -----------------------------------------------------------------------------------------------
class _FakeSparse:
    """A stand-in for a new model family: the bi-encoder's embedding, reported as {index: value} (top 3)."""

    sparse = True

    def __init__(self, model) -> None:
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)


def test_a_new_family_plugs_in_as_kind_and_adapter(serve_models):
    from types import SimpleNamespace

    from st_runtime.serving import registry
    from st_runtime.serving.app import DEFAULT_ADAPTERS, RouteSpec
    from st_runtime.serving.http import json_response, text_or_list

    bi, _ = serve_models
    seen_rows = []

    def run(served, key, texts, rows):
        seen_rows.append(rows)  # the core hands over token rows: no second tokenization needed
        dense = served.model._model.encode(texts)
        return [{int(i): float(row[i]) for i in np.argsort(-row)[:3]} for row in dense]

    registry.register_kind(registry.ModelKind("toy", lambda m: getattr(m, "sparse", False), run,
                                              lambda served: {"vocab_size": 32}))

    async def embed_sparse(core, call):
        served = core.registry.model_for(call.body, "toy")
        rows, _ = await core.infer(call, served, core.limit_inputs(text_or_list(call.body.get("inputs"), "inputs"),
                                                                   "inputs"), param="inputs")
        return json_response([[{"index": i, "value": v} for i, v in row.items()] for row in rows])

    adapter = SimpleNamespace(ROUTES=[RouteSpec("/embed_toy", "embed_toy", embed_sparse)])
    try:
        from serve_helpers import ServerThread

        from st_runtime.serving.app import create_app

        srv = ServerThread(create_app({"bert": bi, "splade": _FakeSparse(bi)}, ServeConfig(),
                                      adapters=[*DEFAULT_ADAPTERS, adapter])).start()
        try:
            got = httpx.post(f"{srv.url}/embed_toy", json={"inputs": ["a", "b c"]}).json()
            assert len(got) == 2 and len(got[0]) == 3 and {"index", "value"} <= set(got[0][0])
            assert seen_rows[-1] == bi.tokenizer.encode(["a", "b c"])
            kinds = {m["id"]: m["kind"] for m in httpx.get(f"{srv.url}/v1/models").json()["data"]}
            assert kinds == {"bert": "embedding", "splade": "toy"}
            assert httpx.post(f"{srv.url}/v1/embeddings", json={"model": "splade", "input": "x"}).status_code == 400
        finally:
            srv.stop()
    finally:
        registry._KINDS[:] = [k for k in registry._KINDS if k.name != "toy"]


# ----- one tokenization -------------------------------------------------------------------------------------
def test_each_request_is_tokenized_once(serve_models, start_server, monkeypatch):
    """The rows that give the token budget, `usage` and the truncate check are the rows the engine runs on."""
    from st_runtime.tokenization import TextTokenizer

    bi, ce = serve_models
    srv = start_server({"bert": bi, "ce": ce})
    calls: list[int] = []
    for name in ("encode", "encodings"):  # encode_checked goes through encodings
        original = getattr(TextTokenizer, name)

        def counting(self, batch, _original=original):
            calls.append(len(batch))
            return _original(self, batch)

        monkeypatch.setattr(TextTokenizer, name, counting)
    texts = ["one text", "another, longer text for the batch", "three"]
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        for path, body, rows in [
            ("/v1/embeddings", {"input": texts, "encoding_format": "float"}, 3),
            ("/v1/embeddings", {"input": texts, "prompt_name": "query", "truncate": True}, 3),
            ("/embed", {"inputs": texts}, 3),
            ("/similarity", {"sentences_a": texts[:1], "sentences_b": texts[1:]}, 3),
            ("/rerank", {"query": "q", "texts": texts}, 3),
            ("/v1/rerank", {"query": "q", "documents": texts, "truncate": True}, 3),
        ]:
            calls.clear()
            response = c.post(path, json=body)
            assert response.status_code == 200, response.text
            assert calls == [rows], (path, calls)
    got = httpx.post(f"{srv.url}/v1/embeddings", json={"input": texts, "prompt_name": "query",
                                                       "encoding_format": "float"}).json()
    np.testing.assert_allclose([d["embedding"] for d in got["data"]], bi.encode(texts, prompt_name="query"),
                               atol=1e-6, rtol=0)
    ranked = httpx.post(f"{srv.url}/rerank", json={"query": "q", "texts": texts}).json()
    np.testing.assert_allclose([r["score"] for r in ranked], [r["score"] for r in ce.rank("q", texts)],
                               atol=1e-6, rtol=0)


def test_batcher_raises_typed_errors():
    import asyncio

    from st_runtime.errors import InputValidationError, StRuntimeError
    from st_runtime.serving.batcher import DynamicBatcher
    from st_runtime.serving.errors import BatcherClosedError

    with pytest.raises(InputValidationError):
        DynamicBatcher(lambda key, items: items, max_batch_size=0)

    async def closed() -> None:
        batcher = DynamicBatcher(lambda key, items: np.zeros((len(items), 1)))
        with pytest.raises(BatcherClosedError):  # not started
            await batcher.submit(["a"])
        await batcher.start()
        assert (await batcher.submit(["a", "b"])).shape == (2, 1)
        await batcher.close()
        with pytest.raises(StRuntimeError):
            await batcher.submit(["a"])

    asyncio.run(closed())


def test_request_bodies_held_at_once_are_bounded(serve_models, start_server):
    """Slow clients holding large bodies cannot make the server buffer more than --max-buffered-bytes."""
    import socket

    bi, _ = serve_models
    srv = start_server({"bert": bi}, ServeConfig(max_body_bytes=2000, max_buffered_bytes=3000, body_timeout=1.5))
    socks = []
    for _ in range(2):  # two clients announce 1,400 bytes each and send nothing more
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1400\r\n\r\n{")
        socks.append(sock)
    time.sleep(0.3)
    assert srv.core.body_budget.held == 2800
    body = json.dumps({"input": "x" * 1000}).encode()
    start = time.monotonic()
    refused = httpx.post(f"{srv.url}/v1/embeddings", content=body, headers={"content-type": "application/json"})
    assert refused.status_code == 429 and "--max-buffered-bytes" in refused.json()["error"]["message"]
    assert time.monotonic() - start < 1.0 and refused.headers["retry-after"] == "1"
    assert httpx.post(f"{srv.url}/v1/embeddings", json={"input": "tiny"}).status_code == 200  # fits beside them
    for sock in socks:  # the slow bodies time out (408) and give their bytes back
        sock.settimeout(5)
        assert b" 408 " in sock.recv(65536).split(b"\r\n", 1)[0] + b" "
        sock.close()
    assert srv.core.body_budget.held == 0
    assert httpx.post(f"{srv.url}/v1/embeddings", content=body,
                      headers={"content-type": "application/json"}).status_code == 200


def test_graph_calls_keep_the_models_own_token_budget(serve_models):
    """The server's --max-batch-tokens bounds a merged call; each graph call stays within the model's own budget
    too (the smaller of the two), so serving runs the call size the model runs in-process."""
    from st_runtime.serving.metrics import Metrics
    from st_runtime.serving.registry import ServedModel, engine_config

    model = serve_models[0]
    own = model.config.max_batch_tokens
    for server_budget, expected in ((8192, own), (own // 2, own // 2), (None, own)):
        served = ServedModel("m", model, ServeConfig(max_batch_tokens=server_budget), Metrics())
        assert engine_config(served).max_batch_tokens == expected
    model._set_config(model.config.replace(max_batch_tokens=None))  # no cap of its own: the server's applies
    try:
        assert engine_config(ServedModel("m", model, ServeConfig(), Metrics())).max_batch_tokens == 8192
    finally:
        model._set_config(model.config.replace(max_batch_tokens=own))
