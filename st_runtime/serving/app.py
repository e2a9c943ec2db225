"""The HTTP app (Starlette): OpenAI-compatible embeddings, TEI / Cohere-style rerank, similarity, health, metrics.

``create_app({"name": model, ...}, ServeConfig(...))`` takes loaded ``st_runtime.SentenceTransformer`` /
``CrossEncoder`` objects (``load_model`` opens a bundle as the right one). Bi-encoders answer
``POST /v1/embeddings`` and ``POST /similarity``; cross-encoders answer ``POST /rerank`` (also ``/v1/rerank``).
Every model has its own ``DynamicBatcher``: concurrent requests share inference calls, run in a worker thread.

Errors are JSON, OpenAI style: ``{"error": {"message", "type", "code", "param"}}`` with
422 (malformed body: not JSON, missing field, wrong type, empty input list, bad value),
400 (the model cannot do this: embeddings from a reranker, rerank with a multi-label model),
404 (unknown model or route), 413 (more inputs than ``max_inputs``; an input over ``max_input_chars`` with
``on_long="reject"``), 503 (shutting down), 504 (``request_timeout`` passed), 500 (anything else).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import InputTypeError, InputValidationError
from ..similarity import normalize_embeddings
from .batcher import BatcherClosedError, DynamicBatcher
from .metrics import CONTENT_TYPE, Metrics

logger = logging.getLogger("st_runtime.serving")

_BAD_REQUEST = "invalid_request_error"


# ----- configuration ----------------------------------------------------------------------------------------
@dataclass
class ServeConfig:
    """Server limits and batching settings (the ``st-runtime serve`` options)."""

    max_batch_size: int = 32
    max_batch_tokens: int | None = 8192
    batch_wait_ms: float = 5.0
    max_inputs: int = 512
    max_input_chars: int | None = None
    on_long: str = "truncate"
    request_timeout: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_inputs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InputValidationError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")
        for name in ("max_batch_tokens", "max_input_chars"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InputValidationError(f"{name} must be a positive integer or None, got {value!r}.")
        if self.on_long not in ("truncate", "reject"):
            raise InputValidationError(f"on_long must be 'truncate' or 'reject', got {self.on_long!r}.")
        if self.batch_wait_ms < 0:
            raise InputValidationError(f"batch_wait_ms must be >= 0, got {self.batch_wait_ms!r}.")
        if self.request_timeout <= 0:
            raise InputValidationError(f"request_timeout must be > 0, got {self.request_timeout!r}.")


class ApiError(Exception):
    """An error answered as ``{"error": {...}}`` with an HTTP status."""

    def __init__(self, status: int, message: str, code: str, type: str = _BAD_REQUEST, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param = status, message, code, type, param

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, self.code, self.type, self.param)


def error_response(status: int, message: str, code: str, type: str = _BAD_REQUEST,
                   param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": code}},
                        status_code=status)


def _invalid(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    return ApiError(422, message, code, param=param)


# ----- models -----------------------------------------------------------------------------------------------
def parse_model_arg(arg: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (the name is then the folder's name) -> (name, path)."""
    if "=" in arg and not Path(arg).expanduser().exists():
        name, _, path = arg.partition("=")
        if name and path and "/" not in name:
            return name, path
    path = Path(arg).expanduser()
    return (path.name or path.resolve().name), arg


def load_model(path: str | Path, *, variant: str | None = None, device: str | None = None,
               threads: int | None = None) -> Any:
    """Open a bundle as ``CrossEncoder`` or ``SentenceTransformer``, whichever its manifest says."""
    from ..manifest import MANIFEST_NAME, Manifest
    from ..sentence_transformer import SentenceTransformer

    root = Path(path).expanduser()
    if (root / MANIFEST_NAME).is_file() and Manifest.read(root).kind == "cross-encoder":
        from ..cross_encoder import CrossEncoder

        return CrossEncoder(root, variant=variant, device=device, threads=threads)
    return SentenceTransformer(root, variant=variant, device=device, threads=threads)


def _is_reranker(model: Any) -> bool:
    from ..cross_encoder import CrossEncoder

    return isinstance(model, CrossEncoder) or (hasattr(model, "predict") and not hasattr(model, "encode"))


class ServedModel:
    """A loaded model with its batcher; knows how to count tokens and run one merged call."""

    def __init__(self, name: str, model: Any, config: ServeConfig, metrics: Metrics) -> None:
        self.name = name
        self.model = model
        self.config = config
        self.kind = "rerank" if _is_reranker(model) else "embedding"
        self.created = int(time.time())
        self.batcher = DynamicBatcher(
            self._run, max_batch_size=config.max_batch_size, max_batch_tokens=config.max_batch_tokens,
            wait_ms=config.batch_wait_ms, name=name,
            on_batch=lambda inputs, jobs, seconds: metrics.observe_batch(name, inputs, jobs, seconds),
        )
        if self.kind == "embedding":
            self.dimension = int(model.get_embedding_dimension())
            embedding = getattr(getattr(model, "manifest", None), "embedding", None)
            self.normalized = bool(getattr(embedding, "normalized", False))
        else:
            from ..cross_encoder import ACTIVATIONS

            self.num_labels = int(model.num_labels)
            self.activation = ACTIVATIONS[model.activation_fn_name]

    def info(self) -> dict[str, Any]:
        item: dict[str, Any] = {"id": self.name, "object": "model", "created": self.created, "owned_by": "st-runtime",
                                "kind": self.kind, "max_seq_length": self.model.max_seq_length}
        if self.kind == "embedding":
            item.update(dimensions=self.dimension, normalized=self.normalized,
                        similarity_fn_name=self.model.similarity_fn_name, prompts=sorted(self.model.prompts))
        else:
            item.update(num_labels=self.num_labels)
        return item

    def resolve_prompt(self, prompt_name: Any) -> str:
        """The prompt text ``encode(prompt_name=...)`` would use ('' for none), or a 422."""
        prompts = self.model.prompts
        if prompt_name is None:
            default = self.model.default_prompt_name
            return prompts.get(default, "") if default is not None else ""
        if not isinstance(prompt_name, str):
            raise _invalid(f"'prompt_name' must be a string, got {type(prompt_name).__name__}.", "prompt_name",
                           "invalid_type")
        if prompt_name not in prompts:
            raise _invalid(f"Unknown prompt_name {prompt_name!r}; this model has {sorted(prompts)}.", "prompt_name")
        return prompts[prompt_name]

    def count_tokens(self, items: list) -> list[int]:
        """Tokens of each text (or pair) as the model sees them (truncated, special tokens included)."""
        return [len(ids) for ids, _ in self.model.tokenizer.encode(items)]

    def _run(self, key: Any, items: list) -> np.ndarray:
        """One merged inference call (in the batcher's worker thread)."""
        cfg = self.config
        if self.kind == "embedding":
            return np.asarray(self.model.encode(items, prompt=key, batch_size=cfg.max_batch_size,
                                                max_batch_tokens=cfg.max_batch_tokens), dtype=np.float32)
        # Logits, float32; the activation runs in float64 afterwards, exactly as CrossEncoder.rank does.
        return np.asarray(self.model.predict(items, batch_size=cfg.max_batch_size, activation_fn="identity"),
                          dtype=np.float32)


# ----- request parsing --------------------------------------------------------------------------------------
async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _invalid("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise _invalid(f"The request body must be a JSON object, got {type(body).__name__}.", code="invalid_body")
    return body


def _string_list(value: Any, param: str, *, allow_objects: bool = False) -> list[str]:
    """A non-empty list of strings (Cohere documents may also be {"text": ...} objects), or a 422."""
    if value is None:
        raise _invalid(f"'{param}' is required.", param, "missing_field")
    if not isinstance(value, list):
        raise _invalid(f"'{param}' must be a list of strings, got {type(value).__name__}.", param, "invalid_type")
    if not value:
        raise _invalid(f"'{param}' must not be an empty list.", param, "empty_input")
    texts = []
    for index, item in enumerate(value):
        if allow_objects and isinstance(item, dict) and isinstance(item.get("text"), str):
            item = item["text"]
        if not isinstance(item, str):
            raise _invalid(f"'{param}[{index}]' must be a string, got {type(item).__name__}.", param, "invalid_type")
        texts.append(item)
    return texts


def _optional(body: dict, name: str, kind: type, default: Any = None) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _invalid(f"'{name}' must be {kind.__name__}, got {type(value).__name__}.", name, "invalid_type")
    return value


def _positive_int(body: dict, name: str) -> int | None:
    value = _optional(body, name, int)
    if value is not None and value < 1:
        raise _invalid(f"'{name}' must be a positive integer, got {value}.", name)
    return value


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


# ----- the app ----------------------------------------------------------------------------------------------
class _Server:
    """Holds the models, settings and metrics; its methods are the endpoints."""

    def __init__(self, models: Mapping[str, Any], config: ServeConfig, metrics: Metrics) -> None:
        if not models:
            raise InputValidationError("Serve at least one model.")
        self.config = config
        self.metrics = metrics
        self.models = {name: ServedModel(name, model, config, metrics) for name, model in models.items()}
        self.closing = False
        metrics.queue_depth = lambda: {name: m.batcher.queued for name, m in self.models.items()}

    # ----- helpers ------------------------------------------------------------------------------------------
    def model_for(self, body: dict, kind: str) -> ServedModel:
        name = body.get("model")
        of_kind = [m for m in self.models.values() if m.kind == kind]
        what = "embedding" if kind == "embedding" else "reranker (cross-encoder)"
        if name is None:
            if len(of_kind) == 1:
                return of_kind[0]
            if not of_kind:
                raise ApiError(404, f"No {what} model is served here.", "model_not_found", param="model")
            raise _invalid(f"'model' is required: this server has several {what} models "
                           f"({', '.join(m.name for m in of_kind)}).", "model", "missing_field")
        if not isinstance(name, str):
            raise _invalid(f"'model' must be a string, got {type(name).__name__}.", "model", "invalid_type")
        served = self.models.get(name)
        if served is None:
            raise ApiError(404, f"The model {name!r} does not exist; served models: {sorted(self.models)}.",
                           "model_not_found", param="model")
        if served.kind != kind:
            raise ApiError(400, f"The model {name!r} is a {served.kind} model, not an {what} model; "
                                f"{what} models here: {[m.name for m in of_kind]}.", "wrong_model_kind", param="model")
        return served

    def limit(self, texts: list[str], param: str, count: bool = True) -> list[str]:
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

    async def timed(self, work: Awaitable) -> Any:
        """Await ``work`` within the request timeout, mapping failures to API errors."""
        try:
            return await asyncio.wait_for(work, self.config.request_timeout)
        except asyncio.TimeoutError:
            raise ApiError(504, f"The request did not finish within {self.config.request_timeout:g} s "
                                "(--request-timeout).", "request_timeout", "timeout_error") from None
        except BatcherClosedError:
            raise ApiError(503, "The server is shutting down.", "shutting_down", "server_error") from None
        except (InputValidationError, InputTypeError) as exc:
            raise _invalid(str(exc)) from None

    async def run(self, served: ServedModel, items: list, key: Any = None) -> tuple[np.ndarray, int]:
        """Count tokens (thread pool), then queue ``items`` on the model's batcher; returns (rows, tokens)."""
        with served.batcher.arriving():
            lengths = await asyncio.to_thread(served.count_tokens, [key + t for t in items] if key else items)
        tokens = int(sum(lengths))
        rows = await served.batcher.submit(items, tokens, key)
        self.metrics.count_inputs(served.name, len(items), tokens)
        return rows, tokens

    # ----- endpoints ----------------------------------------------------------------------------------------
    async def embeddings(self, request: Request) -> Response:
        body = await _json_body(request)
        served = self.model_for(body, "embedding")
        value = body.get("input")
        if isinstance(value, str):
            texts = [value]
        else:
            if isinstance(value, list) and value and all(isinstance(v, (int, list)) and not isinstance(v, bool)
                                                        for v in value):
                raise _invalid("Token-id inputs are not supported; send strings.", "input", "unsupported_input")
            texts = _string_list(value, "input")
        texts = self.limit(texts, "input")
        fmt = _optional(body, "encoding_format", str, "float")
        if fmt not in ("float", "base64"):
            raise _invalid(f"'encoding_format' must be 'float' or 'base64', got {fmt!r}.", "encoding_format")
        dims = _positive_int(body, "dimensions")
        if dims is not None and dims > served.dimension:
            raise _invalid(f"'dimensions' is {dims}, larger than the model's {served.dimension}.", "dimensions")
        prompt = served.resolve_prompt(body.get("prompt_name"))
        embeddings, tokens = await self.timed(self.run(served, texts, prompt))
        payload = await asyncio.to_thread(self._embedding_payload, served, embeddings, fmt, dims, tokens)
        return Response(payload, media_type="application/json")

    @staticmethod
    def _embedding_payload(served: ServedModel, emb: np.ndarray, fmt: str, dims: int | None, tokens: int) -> bytes:
        if dims is not None and dims < emb.shape[1]:
            emb = emb[:, :dims]  # Matryoshka truncation, then renormalize as OpenAI does (if the model normalizes)
            if served.normalized:
                emb = normalize_embeddings(emb)
        emb = np.ascontiguousarray(emb, dtype="<f4")
        if fmt == "base64":
            rows: list = [base64.b64encode(row.tobytes()).decode("ascii") for row in emb]
        else:
            rows = emb.tolist()
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
        return _dumps({"object": "list", "data": data, "model": served.name,
                       "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def rerank(self, request: Request) -> Response:
        body = await _json_body(request)
        cohere = "documents" in body
        served = self.model_for(body, "rerank")
        query = body.get("query")
        if query is None:
            raise _invalid("'query' is required.", "query", "missing_field")
        if not isinstance(query, str):
            raise _invalid(f"'query' must be a string, got {type(query).__name__}.", "query", "invalid_type")
        field = "documents" if cohere else "texts"
        documents = _string_list(body.get(field), field, allow_objects=cohere)
        top_n = _positive_int(body, "top_n")
        return_text = _optional(body, "return_documents" if cohere else "return_text", bool, False)
        raw_scores = _optional(body, "raw_scores", bool, False)
        if served.num_labels != 1:
            raise ApiError(400, f"The model {served.name!r} has {served.num_labels} labels; rerank needs a "
                                "cross-encoder with one score.", "not_a_reranker", param="model")
        texts = self.limit(documents, field)
        query = self.limit([query], "query", count=False)[0]
        logits, tokens = await self.timed(self.run(served, [(query, text) for text in texts]))
        scores = logits.astype(np.float64) if raw_scores else served.activation(logits.astype(np.float64))
        order = sorted(range(len(texts)), key=lambda i: -scores[i])[:top_n]
        if cohere:
            results = [{"index": i, "relevance_score": float(scores[i]),
                        **({"document": {"text": documents[i]}} if return_text else {})} for i in order]
            return JSONResponse({"id": str(uuid.uuid4()), "results": results,
                                 "meta": {"tokens": {"input_tokens": tokens}}})
        return JSONResponse([{"index": i, "score": float(scores[i]), **({"text": documents[i]} if return_text else {})}
                             for i in order])

    async def similarity(self, request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body.get("inputs"), dict):  # Hugging Face inference API shape
            body = {**body, **body["inputs"]}
        served = self.model_for(body, "embedding")
        if "source_sentence" in body:
            source = body["source_sentence"]
            if not isinstance(source, str):
                raise _invalid("'source_sentence' must be a string.", "source_sentence", "invalid_type")
            texts_a, texts_b, flat = [source], _string_list(body.get("sentences"), "sentences"), True
        elif "sentences_a" in body:
            texts_a, flat = _string_list(body["sentences_a"], "sentences_a"), False
            texts_b = _string_list(body["sentences_b"], "sentences_b") if body.get("sentences_b") is not None else None
        else:
            raise _invalid("Send 'sentences_a' (and optionally 'sentences_b'), or 'source_sentence' and 'sentences'.",
                           "sentences_a", "missing_field")
        everything = self.limit(texts_a + (texts_b or []), "sentences")
        prompt = served.resolve_prompt(body.get("prompt_name"))
        emb, tokens = await self.timed(self.run(served, everything, prompt))
        emb_a = emb[: len(texts_a)]
        emb_b = emb[len(texts_a):] if texts_b is not None else emb_a
        scores = np.asarray(served.model.similarity(emb_a, emb_b), dtype=np.float64)
        return JSONResponse({"object": "similarity", "model": served.name,
                             "similarity_fn_name": served.model.similarity_fn_name,
                             "scores": scores[0].tolist() if flat else scores.tolist(),
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def health(self, request: Request) -> Response:
        status = "shutting_down" if self.closing else "ok"
        return JSONResponse({"status": status, "models": {m.name: m.kind for m in self.models.values()}},
                            status_code=503 if self.closing else 200)

    async def list_models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [m.info() for m in self.models.values()]})

    async def get_model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name not in self.models:
            raise ApiError(404, f"The model {name!r} does not exist; served models: {sorted(self.models)}.",
                           "model_not_found", param="model")
        return JSONResponse(self.models[name].info())

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    # ----- plumbing -----------------------------------------------------------------------------------------
    def endpoint(self, name: str, handler: Callable[[Request], Awaitable[Response]]):
        """Wrap a handler: API errors become JSON, and every answer is counted and timed."""

        async def wrapped(request: Request) -> Response:
            start = time.perf_counter()
            self.metrics.in_flight += 1
            try:
                response = await handler(request)
            except ApiError as exc:
                response = exc.response()
            except Exception:  # noqa: BLE001
                logger.exception("unhandled error in %s", name)
                response = error_response(500, "Internal server error.", "internal_error", "server_error")
            finally:
                self.metrics.in_flight -= 1
            self.metrics.observe_request(name, response.status_code, time.perf_counter() - start)
            return response

        return wrapped

    @asynccontextmanager
    async def lifespan(self, app: Starlette):
        for served in self.models.values():
            await served.batcher.start()
        try:
            yield
        finally:
            # uvicorn gets here after in-flight requests finished; drain whatever is still queued.
            self.closing = True
            await asyncio.gather(*(served.batcher.close() for served in self.models.values()))

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
        self.metrics.observe_request("other", status, 0.0)
        return error_response(status, f"{request.method} {request.url.path}: {getattr(exc, 'detail', '')}", code)


def create_app(models: Mapping[str, Any], config: ServeConfig | None = None,
               metrics: Metrics | None = None) -> Starlette:
    """The Starlette app serving ``models`` ({name: SentenceTransformer or CrossEncoder})."""
    server = _Server(models, config or ServeConfig(), metrics or Metrics())
    routes = [
        Route("/v1/embeddings", server.endpoint("embeddings", server.embeddings), methods=["POST"]),
        Route("/rerank", server.endpoint("rerank", server.rerank), methods=["POST"]),
        Route("/v1/rerank", server.endpoint("rerank", server.rerank), methods=["POST"]),
        Route("/similarity", server.endpoint("similarity", server.similarity), methods=["POST"]),
        Route("/health", server.endpoint("health", server.health), methods=["GET"]),
        Route("/v1/models", server.endpoint("models", server.list_models), methods=["GET"]),
        Route("/v1/models/{model:path}", server.endpoint("models", server.get_model), methods=["GET"]),
        Route("/metrics", server.metrics_text, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=server.lifespan, exception_handlers={HTTPException: server.http_error})
    app.state.server = server
    return app
