"""``ServeConfig``: every server setting (the ``st-runtime serve`` options), validated once, immutable."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputValidationError


@dataclass(frozen=True)
class ServeConfig:
    """Server limits, batching, security and lifecycle settings.

    Batching: ``max_batch_size`` inputs / ``max_batch_tokens`` tokens per merged call, ``batch_wait_ms``.
    Per request: ``max_inputs``, ``max_input_chars`` with ``on_long``, ``auto_truncate`` (inputs over the model's
    max_seq_length are cut, as sentence-transformers does, instead of a 413; a request's ``truncate`` wins),
    ``max_body_bytes`` (413 before any JSON parsing), ``body_timeout`` (408 for a body that does not arrive),
    ``request_timeout`` (504). Backpressure: at most ``max_concurrent_requests`` inference requests at once, per
    model at most ``max_queue_requests`` / ``max_queue_tokens`` waiting or running, and at most
    ``max_buffered_bytes`` of request bodies held at once; beyond, 429 with ``Retry-After: retry_after``. Security: ``api_keys`` (Bearer; never shown in repr), ``protect_metrics``.
    Lifecycle: ``warmup`` (``/health`` is 503 until each model ran once), ``drain_grace`` / ``drain_timeout``
    (seconds after SIGTERM: keep answering ``/health`` 503 for at least the grace, at most the timeout, while
    in-flight requests finish). ``access_log``: one JSON line per request on the ``st_runtime.serving.access`` logger.
    """

    max_batch_size: int = 32
    max_batch_tokens: int | None = 8192
    batch_wait_ms: float = 5.0
    max_inputs: int = 512
    max_input_chars: int | None = None
    on_long: str = "truncate"
    request_timeout: float = 30.0
    auto_truncate: bool = False
    max_body_bytes: int = 4 * 1024 * 1024
    max_buffered_bytes: int = 256 * 1024 * 1024
    body_timeout: float = 10.0
    max_concurrent_requests: int = 512
    max_queue_requests: int | None = None
    max_queue_tokens: int | None = 262144
    retry_after: int = 1
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    protect_metrics: bool = False
    warmup: bool = True
    drain_grace: float = 0.0
    drain_timeout: float | None = None
    access_log: bool = False

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_inputs", "max_body_bytes", "max_buffered_bytes", "max_concurrent_requests",
                     "retry_after"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputValidationError(f"{name} must be a positive integer, got {value!r}.")
        for name in ("max_batch_tokens", "max_input_chars", "max_queue_requests", "max_queue_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InputValidationError(f"{name} must be a positive integer or None, got {value!r}.")
        if self.on_long not in ("truncate", "reject"):
            raise InputValidationError(f"on_long must be 'truncate' or 'reject', got {self.on_long!r}.")
        if self.batch_wait_ms < 0 or self.drain_grace < 0:
            raise InputValidationError("batch_wait_ms and drain_grace must be >= 0.")
        for name in ("request_timeout", "body_timeout"):
            if getattr(self, name) <= 0:
                raise InputValidationError(f"{name} must be > 0, got {getattr(self, name)!r}.")
        if self.drain_timeout is not None and self.drain_timeout <= 0:
            raise InputValidationError(f"drain_timeout must be > 0 or None, got {self.drain_timeout!r}.")
        keys = tuple(self.api_keys)
        if any(not isinstance(k, str) or not k.strip() or k != k.strip() for k in keys):
            raise InputValidationError("Every API key must be a non-empty string without surrounding whitespace.")
        object.__setattr__(self, "api_keys", keys)

    @property
    def queue_requests(self) -> int:
        """Requests per model that may wait or run (``max_queue_requests``, else ``max_concurrent_requests``)."""
        return self.max_queue_requests or self.max_concurrent_requests

    @property
    def drain_seconds(self) -> float:
        """The longest a drain waits for in-flight requests."""
        return self.drain_timeout if self.drain_timeout is not None else self.request_timeout + 5.0
