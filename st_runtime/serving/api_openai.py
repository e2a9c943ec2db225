"""OpenAI protocol: ``POST /v1/embeddings``, ``GET /v1/models`` and ``/v1/models/{id}``; parsing and formatting only.

``input`` is a string or a list of strings (token-id lists are refused), ``encoding_format`` float or base64
(little-endian float32), ``dimensions`` truncates (then renormalizes when the model normalizes); extras
``prompt_name`` and ``truncate`` (TEI's meaning).
"""

from __future__ import annotations

import base64

import numpy as np
from starlette.responses import Response

from .core import INLINE_ROWS, Call, RouteSpec, ServingCore, off_loop, truncate_dims
from .errors import invalid
from .http import dumps, json_response, optional, positive_int, text_or_list


async def embeddings(core: ServingCore, call: Call) -> Response:
    body = call.body
    served = core.registry.model_for(body, "embedding")
    value = body.get("input")
    if isinstance(value, list) and value and all(isinstance(v, (int, list)) and not isinstance(v, bool)
                                                for v in value):
        raise invalid("Token-id inputs are not supported; send strings.", "input", "unsupported_input")
    texts = text_or_list(value, "input")
    fmt = optional(body, "encoding_format", str, "float")
    if fmt not in ("float", "base64"):
        raise invalid(f"'encoding_format' must be 'float' or 'base64', got {fmt[:40]!r}.", "encoding_format")
    dims = positive_int(body, "dimensions")
    if dims is not None and dims > served.dimension:
        raise invalid(f"'dimensions' is {dims}, larger than the model's {served.dimension}.", "dimensions")
    emb, tokens = await core.embed(call, served, texts, prompt_name=body.get("prompt_name"),
                                   truncate=body.get("truncate"))
    payload = await off_loop(len(emb) <= INLINE_ROWS, _payload, served, emb, fmt, dims, tokens)
    return Response(payload, media_type="application/json")


def _payload(served, emb: np.ndarray, fmt: str, dims: int | None, tokens: int) -> bytes:
    emb = np.ascontiguousarray(truncate_dims(served, emb, dims), dtype="<f4")
    if fmt == "base64":
        rows: list = [base64.b64encode(row.tobytes()).decode("ascii") for row in emb]
    else:
        rows = emb.tolist()
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    return dumps({"object": "list", "data": data, "model": served.name,
                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def list_models(core: ServingCore, call: Call) -> Response:
    return json_response({"object": "list", "data": [m.info() for m in core.registry]})


async def get_model(core: ServingCore, call: Call) -> Response:
    return json_response(core.registry.get(call.request.path_params["model"]).info())


ROUTES = [
    RouteSpec("/v1/embeddings", "embeddings", embeddings),
    RouteSpec("/v1/models", "models", list_models, method="GET"),
    RouteSpec("/v1/models/{model:path}", "models", get_model, method="GET"),
]
