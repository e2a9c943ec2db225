"""HTTP plumbing shared by every adapter: bounded body reading, strict JSON, field checks, JSON answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .errors import ApiError, error_body, invalid

_JSON_IN_THREAD = 64 * 1024  # bodies above this are parsed off the event loop
_CLOSE = {"Connection": "close"}  # the rest of an unread body is not worth reading


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Compact UTF-8 JSON (NaN refused)."""
    return Response(dumps(payload), status_code=status, media_type="application/json", headers=headers)


def error_response(error: ApiError) -> Response:
    return Response(error.body(), status_code=error.status, media_type="application/json", headers=error.headers)


def plain_error(status: int, message: str, code: str, type: str = "invalid_request_error") -> Response:
    return Response(error_body(message, code, type), status_code=status, media_type="application/json")


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _check_content_type(request: Request) -> None:
    value = request.headers.get("content-type")
    if value is None:
        return  # curl --data-binary without -H, many scripts: accepted as JSON
    mime = value.split(";", 1)[0].strip().lower()
    if mime in ("application/json", "") or mime.endswith("+json"):
        return
    raise ApiError(415, f"The body must be JSON (Content-Type: application/json), got Content-Type {value[:80]!r}.",
                   "unsupported_media_type")


class BodyBudget:
    """Bytes of request bodies held at once across all requests (``max_buffered_bytes``): memory stays bounded however
    many clients send large bodies together. A request reserves its Content-Length up front (or its chunks as they
    arrive) and gives the bytes back when it is answered; beyond the budget, a 429 at once."""

    def __init__(self, limit: int, overloaded: Callable[[str], ApiError]) -> None:
        self.limit, self.held, self._overloaded = limit, 0, overloaded

    def take(self, n: int) -> None:
        if self.held + n > self.limit:
            error = self._overloaded(f"The server holds its maximum of {self.limit} bytes of request bodies "
                                     "(--max-buffered-bytes).")
            error.headers.update(_CLOSE)  # the unread rest of the body is not worth reading
            raise error
        self.held += n

    def give_back(self, n: int) -> None:
        self.held -= n


class _NoBudget:
    def take(self, n: int) -> None:
        pass


async def read_body(request: Request, max_bytes: int, timeout: float, budget: Any = None) -> bytes:
    """The request body, at most ``max_bytes`` (413, checked before reading when Content-Length is sent, and while
    reading a chunked body) and within ``timeout`` seconds (408: a client that trickles its body is cut off).
    ``budget.take(n)`` is called for every byte reserved (the caller gives them back when the request is done)."""
    budget = budget if budget is not None else _NoBudget()
    _check_content_type(request)
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "The Content-Length header is not a number.", "invalid_content_length")
        if int(declared) > max_bytes:
            raise _too_large(int(declared), max_bytes)
        budget.take(int(declared))

    async def collect() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(size, max_bytes, at_least=True)
            if declared is None:
                budget.take(len(chunk))
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        raise ApiError(408, f"The request body did not arrive within {timeout:g} s (--body-timeout).",
                       "body_timeout", headers=_CLOSE) from None
    except ClientDisconnect:
        raise ApiError(400, "The client disconnected before sending the whole body.", "client_disconnect") from None


def _too_large(size: int, limit: int, at_least: bool = False) -> ApiError:
    return ApiError(413, headers=_CLOSE, message=f"The request body has {'more than ' if at_least else ''}{limit if at_least else size} bytes; "
                         f"this server takes at most {limit} (--max-body-bytes).", code="body_too_large")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse(raw: bytes) -> Any:
    return json.loads(raw, parse_constant=_no_constants)


async def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Strict JSON (no NaN/Infinity, valid UTF-8, bounded nesting) that must be an object, else a 422."""
    try:
        body = await asyncio.to_thread(_parse, raw) if len(raw) > _JSON_IN_THREAD else _parse(raw)
    except RecursionError:
        raise invalid("The request body is nested too deeply.", code="invalid_json") from None
    except (ValueError, UnicodeDecodeError):
        raise invalid("The request body is not valid JSON (UTF-8).", code="invalid_json") from None
    if not isinstance(body, dict):
        raise invalid(f"The request body must be a JSON object, got {type(body).__name__}.", code="invalid_body")
    return body


# ----- field checks ------------------------------------------------------------------------------------------
def string_list(value: Any, param: str, *, allow_objects: bool = False) -> list[str]:
    """A non-empty list of strings (Cohere documents may also be {"text": ...} objects), or a 422."""
    if value is None:
        raise invalid(f"'{param}' is required.", param, "missing_field")
    if not isinstance(value, list):
        raise invalid(f"'{param}' must be a list of strings, got {type(value).__name__}.", param, "invalid_type")
    if not value:
        raise invalid(f"'{param}' must not be an empty list.", param, "empty_input")
    texts = []
    for index, item in enumerate(value):
        if allow_objects and isinstance(item, dict) and isinstance(item.get("text"), str):
            item = item["text"]
        if not isinstance(item, str):
            raise invalid(f"'{param}[{index}]' must be a string, got {type(item).__name__}.", param, "invalid_type")
        texts.append(item)
    return texts


def text_or_list(value: Any, param: str) -> list[str]:
    """One string or a non-empty list of strings (OpenAI ``input``, TEI ``inputs``)."""
    if isinstance(value, str):
        return [value]
    return string_list(value, param)


def optional(body: dict, name: str, kind: type, default: Any = None) -> Any:
    """``body[name]`` checked to be ``kind`` (bools are not ints), or ``default`` when absent/null."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise invalid(f"'{name}' must be {kind.__name__}, got {type(value).__name__}.", name, "invalid_type")
    return value


def positive_int(body: dict, name: str) -> int | None:
    value = optional(body, name, int)
    if value is not None and value < 1:
        raise invalid(f"'{name}' must be a positive integer, got {value}.", name)
    return value


def required_string(body: dict, name: str) -> str:
    value = body.get(name)
    if value is None:
        raise invalid(f"'{name}' is required.", name, "missing_field")
    if not isinstance(value, str):
        raise invalid(f"'{name}' must be a string, got {type(value).__name__}.", name, "invalid_type")
    return value
