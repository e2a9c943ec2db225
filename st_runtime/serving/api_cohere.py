"""Cohere protocol: ``POST /v1/rerank`` (and ``/rerank``) with ``documents``; parsing and formatting only.

``{query, documents: [str | {text}], top_n, return_documents, model}`` ->
``{id, results: [{index, relevance_score, document?}], meta: {tokens: {input_tokens}}}``.
"""

from __future__ import annotations

import uuid

from starlette.responses import Response

from .core import Call, RouteSpec, ServingCore
from .http import json_response, optional, positive_int, required_string, string_list


def is_cohere(body: dict) -> bool:
    return "documents" in body


async def rerank(core: ServingCore, call: Call) -> Response:
    body = call.body
    served = core.registry.model_for(body, "rerank")
    query = required_string(body, "query")
    documents = string_list(body.get("documents"), "documents", allow_objects=True)
    top_n = positive_int(body, "top_n")
    return_documents = optional(body, "return_documents", bool, False)
    raw = optional(body, "raw_scores", bool, False)
    scores, tokens = await core.score(call, served, query, documents, raw=raw, truncate=body.get("truncate"),
                                      prompt_name=body.get("prompt_name"), param="documents")
    order = sorted(range(len(documents)), key=lambda i: -scores[i])[:top_n]
    results = [{"index": i, "relevance_score": float(scores[i]),
                **({"document": {"text": documents[i]}} if return_documents else {})} for i in order]
    return json_response({"id": str(uuid.uuid4()), "results": results, "meta": {"tokens": {"input_tokens": tokens}}})


ROUTES = [
    RouteSpec("/v1/rerank", "rerank", rerank, accepts=is_cohere),
    RouteSpec("/rerank", "rerank", rerank, accepts=is_cohere),
]
