"""The ASGI layer in front of every route: request ids, API keys, drain refusals, the structured access log.

- ``X-Request-Id``: a client's id (up to 128 of ``[A-Za-z0-9._:-]``) is kept, otherwise one is made; it is echoed
  on every answer and written in the access log.
- API keys: ``Authorization: Bearer KEY`` compared in constant time (``hmac.compare_digest`` on SHA-256 digests,
  against every configured key) on every path except ``/health`` and, unless ``protect_metrics``, ``/metrics``;
  401 with an OpenAI-style error otherwise. Keys are never logged.
- While draining, new requests (other than ``/health`` and ``/metrics``) get 503 ``shutting_down`` with
  ``Connection: close``; ``requests_in_flight`` counts the rest so the drain knows when they finished.
- Access log (``access_log=True``): one JSON object per request on the ``st_runtime.serving.access`` logger:
  time, request_id, client, method, path, status, ms, and model / inputs / tokens for inference routes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from typing import Any, Iterable

from .core import ServingCore
from .errors import error_body

access_logger = logging.getLogger("st_runtime.serving.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_UNCOUNTED = ("/health", "/metrics")


class ApiKeys:
    """A set of accepted keys, checked in constant time; ``repr`` never shows them."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [hashlib.sha256(k.encode("utf-8")).digest() for k in keys]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys(<{len(self._digests)} key(s)>)"

    def check(self, authorization: bytes | None) -> bool:
        """True when the header is ``Bearer <one of the keys>``."""
        if not authorization:
            return False
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        candidate = hashlib.sha256(token.strip()).digest()
        ok = False
        for digest in self._digests:  # every key compared, whichever matches
            ok |= hmac.compare_digest(candidate, digest)
        return ok


def request_id_from(value: bytes | None) -> str:
    if value:
        text = value.decode("latin-1")
        if _REQUEST_ID.fullmatch(text):
            return text
    return uuid.uuid4().hex


class Gateway:
    """ASGI middleware wrapping the Starlette app (see the module docstring)."""

    def __init__(self, app: Any, core: ServingCore, keys: ApiKeys) -> None:
        self.app = app
        self.core = core
        self.keys = keys
        self.protect_metrics = core.config.protect_metrics
        self.access_log = core.config.access_log

    def _exempt(self, path: str) -> bool:
        return path == "/health" or (path == "/metrics" and not self.protect_metrics)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        rid = request_id_from(headers.get(b"x-request-id"))
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        log: dict[str, Any] = state.setdefault("access", {})
        path = scope.get("path", "")
        status = [500]
        core = self.core

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                extra = [(b"x-request-id", rid.encode("ascii"))]
                if core.draining:
                    extra.append((b"connection", b"close"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        counted = path not in _UNCOUNTED
        if counted:
            core.requests_in_flight += 1
        try:
            if self.keys and not self._exempt(path) and not self.keys.check(headers.get(b"authorization")):
                core.metrics.observe_request("auth", 401, time.perf_counter() - start)
                await _reply(send_with_id, 401, "Incorrect or missing API key: send 'Authorization: Bearer KEY' "
                                                "with a key the server was started with (--api-key).",
                             "invalid_api_key", [(b"www-authenticate", b"Bearer")])
            elif core.draining and counted:
                core.metrics.observe_request("draining", 503, time.perf_counter() - start)
                await _reply(send_with_id, 503, "The server is shutting down; retry on another instance.",
                             "shutting_down", [(b"retry-after", str(core.config.retry_after).encode())],
                             "server_error")
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            if counted:
                core.requests_in_flight -= 1
            if self.access_log:
                client = scope.get("client")
                entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "request_id": rid,
                         "client": client[0] if client else None, "method": scope.get("method"), "path": path[:200],
                         "status": status[0], "ms": round((time.perf_counter() - start) * 1000, 2), **log}
                access_logger.info(json.dumps(entry, ensure_ascii=True))


async def _reply(send, status: int, message: str, code: str, headers: list[tuple[bytes, bytes]],
                 type: str = "invalid_request_error") -> None:
    body = error_body(message, code, type)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
