"""The HTTP app: the serving core, the protocol adapters' routes, health, metrics, and the gateway in front.

``create_app({"name": model, ...}, ServeConfig(...))`` takes loaded ``st_runtime.SentenceTransformer`` /
``CrossEncoder`` objects (``load_model`` opens a bundle as the right one). Routes come from the adapters:
``api_openai`` (``/v1/embeddings``, ``/v1/models``), ``api_tei`` (``/embed``, ``/rerank``, ``/tokenize``),
``api_cohere`` (``/v1/rerank`` / ``/rerank`` with ``documents``), ``api_similarity`` (``/similarity``); pass
``adapters=[..., my_module]`` (any object with a ``ROUTES`` list of ``RouteSpec``) to add a family's routes.

Errors are JSON, OpenAI style: ``{"error": {"message", "type", "code", "param"}}`` with
400 (the model cannot do this), 401 (API key), 404 (unknown model or route), 405, 408 (body too slow),
413 (body, inputs or an input too large), 415 (not JSON), 422 (malformed body), 429 (overloaded, with
``Retry-After``), 503 (warming up on ``/health``, or draining), 504 (``request_timeout``), 500 (anything else).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from contextlib import asynccontextmanager
from typing import Any, Iterable, Mapping, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import api_cohere, api_multi_vector, api_openai, api_similarity, api_sparse, api_tei
from .config import ServeConfig
from .core import Call, RouteSpec, ServingCore
from .errors import ApiError
from .gateway import ApiKeys, Gateway
from .http import BodyBudget, error_response, json_response, parse_json_object, plain_error, read_body
from .metrics import CONTENT_TYPE, Metrics
from .registry import load_model, parse_model_arg

__all__ = ["create_app", "ServeConfig", "load_model", "parse_model_arg", "DEFAULT_ADAPTERS", "RouteSpec"]

logger = logging.getLogger("st_runtime.serving")

# Order matters where paths are shared: Cohere claims /rerank bodies with "documents" before TEI takes the rest.
DEFAULT_ADAPTERS = (api_openai, api_cohere, api_tei, api_similarity, api_sparse, api_multi_vector)


class _Held:
    """The body bytes one request reserved from the server's budget, given back once it is answered."""

    def __init__(self, budget: BodyBudget) -> None:
        self.budget, self.bytes = budget, 0

    def take(self, n: int) -> None:
        self.budget.take(n)
        self.bytes += n

    def release(self) -> None:
        self.budget.give_back(self.bytes)
        self.bytes = 0


def _endpoint(core: ServingCore, specs: Sequence[RouteSpec]):
    """One Starlette endpoint for the specs sharing a path: read and parse the body, pick the spec, map errors."""
    name, json_body = specs[0].endpoint, specs[0].json_body
    cfg = core.config

    async def handle(request: Request) -> Response:
        start = time.perf_counter()
        core.metrics.in_flight += 1
        state = request.scope.setdefault("state", {})
        call = Call(request, {}, state.get("request_id", ""), state.setdefault("access", {}))
        held = _Held(core.body_budget)
        try:
            if json_body:
                raw = await read_body(request, cfg.max_body_bytes, cfg.body_timeout, held)
                call.body = await parse_json_object(raw)
            spec = next((s for s in specs if s.accepts is None or s.accepts(call.body)), specs[-1])
            response = await spec.handler(core, call)
        except ApiError as exc:
            response = error_response(exc)
            if exc.status >= 500:
                logger.warning("request %s: %s %s", call.request_id, exc.status, exc.message)
        except Exception:  # noqa: BLE001
            logger.exception("request %s: unhandled error in %s", call.request_id, name)
            response = plain_error(500, "Internal server error.", "internal_error", "server_error")
        finally:
            core.metrics.in_flight -= 1
            held.release()
        core.metrics.observe_request(name, response.status_code, time.perf_counter() - start)
        return response

    return handle


def create_app(models: Mapping[str, Any], config: ServeConfig | None = None, metrics: Metrics | None = None,
               adapters: Iterable[Any] = DEFAULT_ADAPTERS) -> Any:
    """The ASGI app serving ``models`` ({name: SentenceTransformer or CrossEncoder}); ``app.state.server`` is the
    ``ServingCore``."""
    config = config or ServeConfig()
    core = ServingCore(models, config, metrics or Metrics())

    by_path: dict[tuple[str, str], list[RouteSpec]] = defaultdict(list)
    for adapter in adapters:
        for spec in adapter.ROUTES:
            by_path[(spec.path, spec.method)].append(spec)
    routes = [Route(path, _endpoint(core, specs), methods=[method]) for (path, method), specs in by_path.items()]

    async def health(request: Request) -> Response:
        status, word = core.health()
        core.metrics.observe_request("health", status, 0.0)
        return json_response({"status": word, "models": {m.name: m.kind for m in core.registry}}, status=status)

    async def metrics_text(request: Request) -> Response:
        return Response(core.metrics.render(), media_type=CONTENT_TYPE)

    routes += [Route("/health", health, methods=["GET"]), Route("/metrics", metrics_text, methods=["GET"])]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
        core.metrics.observe_request("other", status, 0.0)
        return plain_error(status, f"{request.method} {request.url.path[:200]}: {getattr(exc, 'detail', '')}", code)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await core.start()
        warm = asyncio.get_running_loop().create_task(core.warm_up(), name="st-runtime-warm-up")
        try:
            yield
        finally:
            # uvicorn gets here after in-flight requests finished; drain whatever is still queued.
            if not warm.done():
                warm.cancel()
            await core.close()

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.state.server = core
    gateway = Gateway(app, core, ApiKeys(config.api_keys))
    gateway.state = app.state  # tests and callers reach the core as app.state.server
    return gateway
