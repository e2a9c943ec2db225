"""The serving core: models, admission (concurrency and queue bounds), one tokenization per request, batching,
readiness and drain. Adapters (``api_*.py``) only parse a protocol's body and format its answer around it.

A request's life: the adapter parses the body and calls ``embed`` / ``score`` / ``tokenize``. The core takes an
admission slot (429 at once when ``max_concurrent_requests`` are being served), tokenizes the inputs once in a
thread (413 for an over-long input unless truncation is on), checks the model's queue bounds by requests and
tokens (429), hands the token rows to the model's ``DynamicBatcher``, and returns the result rows, all within
``request_timeout`` (504).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator, Mapping, Sequence

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from ..errors import InputTypeError, InputValidationError
from ..similarity import normalize_embeddings
from .config import ServeConfig
from .errors import ApiError, BatcherClosedError
from .metrics import Metrics
from .registry import ModelRegistry, Row, ServedModel

logger = logging.getLogger("st_runtime.serving")

# Work this small runs on the event loop: a thread hop costs more than it saves (concurrency-1 latency).
INLINE_CHARS = 2048
INLINE_ROWS = 16


async def off_loop(small: bool, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` inline when ``small``, else in a worker thread (so big jobs never stall the event loop)."""
    return fn(*args) if small else await asyncio.to_thread(fn, *args)


def _chars(items: Sequence) -> int:
    return sum(len(t) if isinstance(t, str) else sum(len(p) for p in t) for t in items)


@dataclass
class Call:
    """One HTTP request as adapters see it: the parsed body, its id, and fields for the access log."""

    request: Request
    body: dict[str, Any]
    request_id: str
    log: dict[str, Any] = field(default_factory=dict)


Handler = Callable[["ServingCore", Call], Awaitable[Response]]


@dataclass(frozen=True)
class RouteSpec:
    """A route an adapter contributes. Several specs may share a path: the first whose ``accepts(body)`` is true
    answers (Cohere's rerank claims bodies with ``documents``, TEI's takes the rest). ``json_body=False`` routes
    (GETs) get an empty body."""

    path: str
    endpoint: str  # the metrics label
    handler: Handler
    method: str = "POST"
    accepts: Callable[[dict], bool] | None = None

    @property
    def json_body(self) -> bool:
        return self.method == "POST"


class ServingCore:
    """Holds the models, settings, metrics and lifecycle state; runs inference for the adapters."""

    def __init__(self, models: Mapping[str, Any], config: ServeConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.registry = ModelRegistry(models, config, metrics)
        self.models = self.registry.models
        self.ready = False  # warmed up
        self.draining = False  # SIGTERM seen: /health 503, new work refused, in-flight work finishes
        self.closing = False  # lifespan shutdown reached
        self.active = 0  # inference requests holding an admission slot
        self.requests_in_flight = 0  # every request but /health and /metrics (the drain waits for these)
        from .http import BodyBudget

        self.body_budget = BodyBudget(config.max_buffered_bytes, self.overloaded)
        metrics.queue_depth = lambda: {m.name: m.batcher.queued for m in self.registry}
        metrics.queue_tokens = lambda: {m.name: m.batcher.pending_tokens for m in self.registry}
        metrics.ready = lambda: self.health()[0] == 200

    # ----- lifecycle --------------------------------------------------------------------------------------
    async def start(self) -> None:
        for served in self.registry:
            await served.batcher.start()

    async def warm_up(self) -> None:
        """Run each model once on its worker thread; ``/health`` turns ready afterwards."""
        try:
            if self.config.warmup:
                for served in self.registry:
                    start = time.perf_counter()
                    await served.batcher.run_in_worker(served.warm_up)
                    logger.info("warmed up %s in %.0f ms", served.name, (time.perf_counter() - start) * 1000)
        except Exception:  # noqa: BLE001 - a failed warm-up leaves the server not ready, visibly
            logger.exception("warm-up failed; /health stays 503")
            return
        self.ready = True

    def start_drain(self) -> None:
        if not self.draining:
            logger.info("draining: /health answers 503, %d request(s) in flight", self.requests_in_flight)
        self.draining = True

    async def close(self) -> None:
        """Lifespan shutdown: refuse new jobs, finish the queued ones."""
        self.closing = True
        self.draining = True
        await asyncio.gather(*(served.batcher.close() for served in self.registry))

    def health(self) -> tuple[int, str]:
        if self.closing or self.draining:
            return 503, "draining"
        if not self.ready:
            return 503, "warming_up"
        return 200, "ok"

    # ----- limits -----------------------------------------------------------------------------------------
    def overloaded(self, message: str) -> ApiError:
        return ApiError(429, message + " Retry later.", "overloaded", "rate_limit_error",
                        headers={"Retry-After": str(self.config.retry_after)})

    @contextlib.contextmanager
    def admission(self) -> Iterator[None]:
        """An admission slot, or a 429 at once when ``max_concurrent_requests`` are being served."""
        if self.draining:
            raise ApiError(503, "The server is shutting down.", "shutting_down", "server_error",
                           headers={"Retry-After": str(self.config.retry_after), "Connection": "close"})
        if self.active >= self.config.max_concurrent_requests:
            raise self.overloaded(f"The server is serving its maximum of {self.config.max_concurrent_requests} "
                                  "requests (--max-concurrent-requests).")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1

    def check_queue(self, served: ServedModel, tokens: int) -> None:
        """429 when the model's queue is full by requests or by tokens (a lone request always fits)."""
        batcher, cfg = served.batcher, self.config
        if batcher.pending_jobs >= cfg.queue_requests:
            raise self.overloaded(f"The queue of model {served.name!r} holds its maximum of {cfg.queue_requests} "
                                  "requests (--max-queue-requests).")
        if cfg.max_queue_tokens is not None and batcher.pending_jobs and \
                batcher.pending_tokens + tokens > cfg.max_queue_tokens:
            raise self.overloaded(f"The queue of model {served.name!r} would exceed {cfg.max_queue_tokens} tokens "
                                  "(--max-queue-tokens).")

    def limit_inputs(self, texts: list[str], param: str, count: bool = True) -> list[str]:
        """Apply ``max_inputs`` (413) and ``max_input_chars`` (truncate, or 413 with on_long='reject')."""
        cfg = self.config
        if count and len(texts) > cfg.max_inputs:
            raise ApiError(413, f"'{param}' has {len(texts)} inputs; this server takes at most {cfg.max_inputs} "
                                "per request (--max-inputs).", "too_many_inputs", param=param)
        limit = cfg.max_input_chars
        if limit is None:
            return texts
        if cfg.on_long == "reject":
            for index, text in enumerate(texts):
                if len(text) > limit:
                    raise ApiError(413, f"'{param}[{index}]' has {len(text)} characters; the limit is {limit} "
                                        "(--max-input-chars, --on-long reject).", "input_too_long", param=param)
            return texts
        return [text[:limit] for text in texts]

    def truncation(self, value: Any) -> bool:
        """A request's ``truncate`` field (bool or absent: --auto-truncate decides)."""
        if value is None:
            return self.config.auto_truncate
        if not isinstance(value, bool):
            raise ApiError(422, f"'truncate' must be a boolean, got {type(value).__name__}.", "invalid_type",
                           param="truncate")
        return value

    # ----- inference --------------------------------------------------------------------------------------
    async def tokenize(self, served: ServedModel, items: Sequence, prompt: str = "", truncate: bool = True,
                       param: str = "input") -> list[Row]:
        try:
            small = _chars(items) + len(prompt) * len(items) <= INLINE_CHARS
            return await off_loop(small, served.tokenize, items, prompt, truncate, param)
        except (InputValidationError, InputTypeError) as exc:
            raise ApiError(422, str(exc), "invalid_value", param=param) from None

    async def infer(self, call: Call, served: ServedModel, items: Sequence, *, prompt: str = "",
                    truncate: bool = True, param: str = "input", key: Any = None) -> tuple[Any, int]:
        """Result rows for ``items`` (texts or pairs) and their token count: admission, one tokenization, queue
        bounds, batching, all within the request timeout. ``key`` (default: the prompt) is what merged jobs share
        and what the model kind's ``run`` receives."""
        with self.admission():
            try:
                return await asyncio.wait_for(self._infer(call, served, items, prompt, truncate, param, key),
                                              self.config.request_timeout)
            except asyncio.TimeoutError:
                raise ApiError(504, f"The request did not finish within {self.config.request_timeout:g} s "
                                    "(--request-timeout).", "request_timeout", "timeout_error") from None
            except BatcherClosedError:
                raise ApiError(503, "The server is shutting down.", "shutting_down", "server_error") from None
            except (InputValidationError, InputTypeError) as exc:
                raise ApiError(422, str(exc), "invalid_value", param=param) from None

    async def _infer(self, call, served, items, prompt, truncate, param, key=None) -> tuple[Any, int]:
        call.log["model"] = served.name
        with served.batcher.arriving():
            rows = await self.tokenize(served, items, prompt, truncate, param)
        tokens = sum(len(ids) for ids, _ in rows)
        self.check_queue(served, tokens)
        result = await served.batcher.submit(list(zip(items, rows)), tokens, key if key is not None else prompt or None)
        self.metrics.count_inputs(served.name, len(items), tokens)
        call.log.update(inputs=len(items), tokens=tokens)
        return result, tokens

    async def embed(self, call: Call, served: ServedModel, texts: list[str], *, prompt_name: Any = None,
                    truncate: Any = None, param: str = "input", task: str | None = None) -> tuple[np.ndarray, int]:
        """Embeddings (float32, the model's own normalization) of ``texts`` and their token count; ``task`` (a
        multi-vector side or a Router route) makes the batch key (task, prompt)."""
        texts = self.limit_inputs(texts, param)
        prompt = served.resolve_prompt(prompt_name)
        key = (task, prompt) if task is not None else None
        return await self.infer(call, served, texts, prompt=prompt, truncate=self.truncation(truncate), param=param,
                                key=key)

    async def score(self, call: Call, served: ServedModel, query: str, documents: list[str], *, raw: bool = False,
                    truncate: Any = None, prompt_name: Any = None, param: str = "texts") -> tuple[np.ndarray, int]:
        """Float64 relevance scores of (query, document) pairs (logits when ``raw``) and their token count."""
        if served.num_labels != 1:
            raise ApiError(400, f"The model {served.name!r} has {served.num_labels} labels; rerank needs a "
                                "cross-encoder with one score.", "not_a_reranker", param="model")
        documents = self.limit_inputs(documents, param)
        query = self.limit_inputs([query], "query", count=False)[0]
        prompt = served.resolve_prompt(prompt_name)  # a cross-encoder's prompt goes before the query
        logits, tokens = await self.infer(call, served, [(query, d) for d in documents], prompt=prompt,
                                          truncate=self.truncation(truncate), param=param)
        logits = np.asarray(logits, dtype=np.float64)
        scores = logits if raw else served.activation(logits)
        return np.asarray(scores, dtype=np.float64).reshape(len(documents), -1)[:, 0], tokens


def truncate_dims(served: ServedModel, emb: np.ndarray, dims: int | None, normalize: bool | None = None) -> np.ndarray:
    """Matryoshka truncation to ``dims``, renormalized when the model normalizes (as OpenAI does) or when asked."""
    if dims is not None and dims < emb.shape[1]:
        emb = emb[:, :dims]
        if normalize is None and served.normalized:
            emb = normalize_embeddings(emb)
    if normalize:
        emb = normalize_embeddings(emb)
    return emb
