"""text-embeddings-inference protocol: ``POST /embed``, ``/rerank`` (``texts``), ``/tokenize``; parsing and
formatting only.

- ``/embed``: ``{inputs: str | [str], normalize=true, truncate, dimensions, prompt_name}`` -> ``[[float]]``
- ``/rerank``: ``{query, texts, top_n, return_text, raw_scores, truncate}`` -> ``[{index, score, text?}]``
- ``/tokenize``: ``{inputs, add_special_tokens=true, prompt_name, truncate}`` ->
  ``[[{id, text, special, start, stop}]]`` (offsets into the prompt + text the model sees)
"""

from __future__ import annotations

import asyncio

import numpy as np
from starlette.responses import Response

from .core import INLINE_ROWS, Call, RouteSpec, ServingCore, off_loop, truncate_dims
from .errors import ApiError, invalid
from .http import dumps, json_response, optional, positive_int, required_string, string_list, text_or_list
from .registry import token_details


async def embed(core: ServingCore, call: Call) -> Response:
    body = call.body
    served = core.registry.model_for(body, "embedding")
    texts = text_or_list(body.get("inputs"), "inputs")
    normalize = optional(body, "normalize", bool, True)
    dims = positive_int(body, "dimensions")
    if dims is not None and dims > served.dimension:
        raise invalid(f"'dimensions' is {dims}, larger than the model's {served.dimension}.", "dimensions")
    emb, _ = await core.embed(call, served, texts, prompt_name=body.get("prompt_name"), truncate=body.get("truncate"),
                              param="inputs")
    emb = truncate_dims(served, emb, dims, normalize or None)
    return Response(await off_loop(len(emb) <= INLINE_ROWS, dumps, np.asarray(emb, dtype=np.float32).tolist()),
                    media_type="application/json")


async def rerank(core: ServingCore, call: Call) -> Response:
    body = call.body
    served = core.registry.model_for(body, "rerank")
    query = required_string(body, "query")
    texts = string_list(body.get("texts"), "texts")
    top_n = positive_int(body, "top_n")
    return_text = optional(body, "return_text", bool, False)
    raw = optional(body, "raw_scores", bool, False)
    scores, _ = await core.score(call, served, query, texts, raw=raw, truncate=body.get("truncate"),
                              prompt_name=body.get("prompt_name"), param="texts")
    order = sorted(range(len(texts)), key=lambda i: -scores[i])[:top_n]
    return json_response([{"index": i, "score": float(scores[i]), **({"text": texts[i]} if return_text else {})}
                          for i in order])


async def tokenize(core: ServingCore, call: Call) -> Response:
    body = call.body
    served = core.registry.model_for(body, "embedding")
    texts = core.limit_inputs(text_or_list(body.get("inputs"), "inputs"), "inputs")
    add_special = optional(body, "add_special_tokens", bool, True)
    prompt = served.resolve_prompt(body.get("prompt_name"))
    truncate = core.truncation(body.get("truncate"))
    with core.admission():
        try:
            details = await asyncio.to_thread(token_details, served, texts, prompt, truncate)
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - tokenizer rejections (lone surrogates) are the client's
            from ..errors import StRuntimeError

            if isinstance(exc, StRuntimeError):
                raise invalid(str(exc), "inputs") from None
            raise
    call.log.update(model=served.name, inputs=len(texts))
    return json_response([[{"id": i, "text": t, "special": s, "start": a, "stop": b}
                           for i, t, s, a, b in row if add_special or not s] for row in details])


ROUTES = [
    RouteSpec("/embed", "embed", embed),
    RouteSpec("/rerank", "rerank", rerank),
    RouteSpec("/v1/rerank", "rerank", rerank),
    RouteSpec("/tokenize", "tokenize", tokenize),
]
