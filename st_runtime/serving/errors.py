"""Serving errors: typed ``StRuntimeError`` subclasses for the core, and ``ApiError`` for HTTP answers.

Every error a client sees is JSON in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``;
``ApiError`` carries the HTTP status (and extra headers such as ``Retry-After``) with it.
"""

from __future__ import annotations

import json
from typing import Mapping

from ..errors import StRuntimeError

BAD_REQUEST = "invalid_request_error"


class ServingError(StRuntimeError):
    """Base of the errors the serving core raises on purpose."""


class BatcherClosedError(ServingError, RuntimeError):
    """The batcher is shutting down and takes no new work."""


class BatcherInternalError(ServingError, RuntimeError):
    """The batcher's loop failed unexpectedly; the affected requests get a 500."""


class ApiError(ServingError):
    """An error answered as ``{"error": {...}}`` with an HTTP status."""

    def __init__(self, status: int, message: str, code: str, type: str = BAD_REQUEST, param: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param = status, message, code, type, param
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return error_body(self.message, self.code, self.type, self.param)


def error_body(message: str, code: str, type: str = BAD_REQUEST, param: str | None = None) -> bytes:
    """The JSON bytes of an OpenAI-style error."""
    return json.dumps({"error": {"message": message, "type": type, "param": param, "code": code}},
                      ensure_ascii=False).encode("utf-8")


def invalid(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    """A 422: the body is well-formed JSON but a field is missing, of the wrong type, or out of range."""
    return ApiError(422, message, code, param=param)


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for echoing client-supplied names in messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
