"""Hostile clients (127.0.0.1 only, bounded in count and time): every answer is a 4xx JSON error or a valid
result, the server never crashes, and it serves a well-formed request afterwards."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from st_runtime.serving.config import ServeConfig  # noqa: E402

POST_ROUTES = ("/v1/embeddings", "/embed", "/rerank", "/v1/rerank", "/similarity", "/tokenize")


@pytest.fixture(scope="module")
def hostile(export_bundle):
    from serve_helpers import ServerThread

    from st_runtime import CrossEncoder, SentenceTransformer
    from st_runtime.serving.app import create_app

    models = {"bert": SentenceTransformer(export_bundle("bert-mean")), "ce": CrossEncoder(export_bundle("ce-bert"))}
    config = ServeConfig(max_body_bytes=256 * 1024, body_timeout=1.0, max_inputs=32, request_timeout=10)
    srv = ServerThread(create_app(models, config)).start()
    with httpx.Client(base_url=srv.url, timeout=15) as client:
        yield srv, client, models["bert"]
    srv.stop()


def assert_json_4xx_or_ok(response) -> None:
    assert response.status_code == 200 or 400 <= response.status_code < 500, (response.status_code, response.text)
    payload = response.json()  # always JSON
    if response.status_code != 200:
        error = payload["error"]
        assert isinstance(error["message"], str) and error["message"] and isinstance(error["code"], str)


def assert_still_serving(client, bert) -> None:
    got = client.post("/v1/embeddings", json={"input": ["still here"], "encoding_format": "float"})
    assert got.status_code == 200
    np.testing.assert_allclose(got.json()["data"][0]["embedding"], bert.encode("still here"), atol=1e-6, rtol=0)


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except socket.timeout:
            pass
    return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


BAD_BODIES = [
    ("huge", b'{"input": "' + b"x" * (1024 * 1024) + b'"}', 413, "body_too_large"),
    ("deeply nested", b'{"input": ' + b"[" * 150_000 + b"]" * 150_000 + b"}", 413, "body_too_large"),
    ("nested under the limit", b'{"input": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 422, "invalid_json"),
    ("nested objects", b'{"a":' * 20_000 + b"1" + b"}" * 20_000, 422, "invalid_json"),
    ("invalid utf-8", b'{"input": "\xff\xfe\xc3\x28"}', 422, "invalid_json"),
    ("utf-16", '{"input": "x"}'.encode("utf-16"), 200, None),  # valid JSON in UTF-16 (RFC 8259 readers accept it)
    ("NaN", b'{"input": "x", "dimensions": NaN}', 422, "invalid_json"),
    ("Infinity", b'{"input": "x", "dimensions": -Infinity}', 422, "invalid_json"),
    ("huge integer", b'{"input": "x", "dimensions": 1' + b"0" * 5000 + b"}", 422, "invalid_json"),
    ("empty", b"", 422, "invalid_json"),
    ("null", b"null", 422, "invalid_body"),
    ("a string", b'"input"', 422, "invalid_body"),
    ("number input", b'{"input": 12}', 422, "invalid_type"),
    ("float in list", b'{"input": ["a", 1.5]}', 422, "invalid_type"),
    ("bool input", b'{"input": [true]}', 422, "invalid_type"),
    ("object input", b'{"input": {"text": "a"}}', 422, "invalid_type"),
    ("number model", b'{"model": 5, "input": "a"}', 422, "invalid_type"),
    ("list model", b'{"model": ["bert"], "input": "a"}', 422, "invalid_type"),
    ("bool dimensions", b'{"input": "a", "dimensions": true}', 422, "invalid_type"),
    ("lone surrogate", b'{"input": "\\ud800"}', 422, "invalid_value"),
    ("nul character", b'{"input": "a\\u0000b"}', 200, None),
    ("too many inputs", json.dumps({"input": ["a"] * 33}).encode(), 413, "too_many_inputs"),
]


@pytest.mark.parametrize("name,body,status,code", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_hostile_bodies(hostile, name, body, status, code):
    srv, client, bert = hostile
    response = client.post("/v1/embeddings", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text[:300]
    assert_json_4xx_or_ok(response)
    if code:
        assert response.json()["error"]["code"] == code
    assert_still_serving(client, bert)


@pytest.mark.parametrize("path,body", [
    ("/rerank", {"query": 3, "texts": ["a"]}), ("/rerank", {"query": "q", "texts": [1, 2]}),
    ("/v1/rerank", {"query": "q", "documents": [{"text": 5}]}), ("/v1/rerank", {"query": "q", "documents": 7}),
    ("/similarity", {"sentences_a": "a"}), ("/similarity", {"source_sentence": 1, "sentences": ["a"]}),
    ("/embed", {"inputs": 0.5}), ("/embed", {"inputs": ["a"], "normalize": "no"}),
    ("/tokenize", {"inputs": [None]}), ("/tokenize", {"inputs": "a", "add_special_tokens": 1}),
])
def test_numbers_where_strings_belong(hostile, path, body):
    srv, client, bert = hostile
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert_json_4xx_or_ok(response)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml", "image/png"])
def test_wrong_content_type(hostile, content_type):
    srv, client, bert = hostile
    response = client.post("/v1/embeddings", content=b'{"input": "x"}', headers={"content-type": content_type})
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
    # a charset parameter on JSON and a missing Content-Type are fine
    ok = client.post("/v1/embeddings", content=b'{"input": "x"}',
                     headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200
    assert status_of(raw_request(srv.port, b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n"
                                           b"Connection: close\r\n\r\n{\"input\": \"x\"}")) == 200


@pytest.mark.parametrize("name", ["../../etc/passwd", "bert/../ce", "/bert", "bert\x00", "%2e%2e%2fce", "x" * 5000,
                                  "C:\\Windows\\system32", "bert ", "BERT"])
def test_model_names_with_path_characters(hostile, name):
    srv, client, bert = hostile
    response = client.post("/v1/embeddings", json={"model": name, "input": "x"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
    assert len(response.json()["error"]["message"]) < 300  # the name is not echoed at length
    got = client.get(f"/v1/models/{name.replace(chr(0), '')}")  # httpx resolves "bert/../ce" to "ce" itself
    assert got.status_code == 404 or (got.status_code == 200 and got.json()["id"] in ("bert", "ce")), got.text


def test_raw_path_traversal(hostile):
    srv, _, _ = hostile
    for path in (b"/v1/models/../../../etc/passwd", b"/v1/models/%2e%2e/%2e%2e/etc/passwd", b"/../../etc/passwd"):
        raw = raw_request(srv.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(raw) == 404, raw[:300]
        json.loads(raw.partition(b"\r\n\r\n")[2])


def test_slow_client_is_timed_out_without_holding_a_worker(hostile):
    srv, client, bert = hostile
    body = b'{"input": "' + b"y" * 100 + b'"}'
    result: dict = {}

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            start = time.monotonic()
            try:
                for byte in body:  # one byte every 50 ms: 5.7 s for the whole body, the limit is 1 s
                    sock.sendall(bytes([byte]))
                    if select.select([sock], [], [], 0.05)[0] or time.monotonic() - start > 4:
                        break  # the server answered
            except OSError:
                pass  # the server answered and closed
            sock.settimeout(5)
            data = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    data += chunk
            result["raw"], result["seconds"] = data, time.monotonic() - start

    threads = [threading.Thread(target=trickle) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    start = time.monotonic()
    assert_still_serving(client, bert)  # not blocked by four trickling clients
    assert time.monotonic() - start < 0.9
    for t in threads:
        t.join(20)
    assert status_of(result["raw"]) == 408, result["raw"][:300]
    assert json.loads(result["raw"].partition(b"\r\n\r\n")[2])["error"]["code"] == "body_timeout"
    assert result["seconds"] < 3
    assert srv.core.metrics.in_flight == 0
    assert_still_serving(client, bert)


JSON_LEAF = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=20)
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=6)
FIELDS = ["input", "inputs", "model", "query", "texts", "documents", "top_n", "dimensions", "encoding_format",
          "prompt_name", "truncate", "normalize", "sentences_a", "sentences_b", "source_sentence", "sentences",
          "return_text", "return_documents", "raw_scores", "add_special_tokens"]
BODIES = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUE | st.lists(st.text(max_size=30), min_size=1, max_size=3),
                         max_size=6)


def test_fuzz_random_json_bodies(hostile):
    srv, client, bert = hostile
    seen: dict[int, int] = {}

    @settings(max_examples=1000, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(path=st.sampled_from(POST_ROUTES), body=BODIES)
    def check(path, body):
        response = client.post(path, json=body)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert_json_4xx_or_ok(response)

    start = time.monotonic()
    check()
    assert sum(seen.values()) == 1000 and time.monotonic() - start < 120
    assert 200 in seen and 422 in seen, seen
    assert_still_serving(client, bert)
    assert srv.core.metrics.request_count("embeddings", 500) == 0
