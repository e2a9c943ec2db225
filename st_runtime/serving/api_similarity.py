"""Similarity protocol: ``POST /similarity``; parsing and formatting only.

``{sentences_a, sentences_b?}`` -> matrix, ``{source_sentence, sentences}`` -> one row (the Hugging Face
inference API shape, also nested under ``inputs``), scored with the model's own similarity function.
"""

from __future__ import annotations

import numpy as np
from starlette.responses import Response

from .core import Call, RouteSpec, ServingCore
from .errors import invalid
from .http import json_response, string_list


async def similarity(core: ServingCore, call: Call) -> Response:
    body = call.body
    if isinstance(body.get("inputs"), dict):  # Hugging Face inference API shape
        body = {**body, **body["inputs"]}
    served = core.registry.model_for(body, "embedding")
    if "source_sentence" in body:
        source = body["source_sentence"]
        if not isinstance(source, str):
            raise invalid("'source_sentence' must be a string.", "source_sentence", "invalid_type")
        texts_a, texts_b, flat = [source], string_list(body.get("sentences"), "sentences"), True
    elif "sentences_a" in body:
        texts_a, flat = string_list(body["sentences_a"], "sentences_a"), False
        texts_b = string_list(body["sentences_b"], "sentences_b") if body.get("sentences_b") is not None else None
    else:
        raise invalid("Send 'sentences_a' (and optionally 'sentences_b'), or 'source_sentence' and 'sentences'.",
                      "sentences_a", "missing_field")
    emb, tokens = await core.embed(call, served, texts_a + (texts_b or []), prompt_name=body.get("prompt_name"),
                                   truncate=body.get("truncate"), param="sentences")
    emb_a = emb[: len(texts_a)]
    emb_b = emb[len(texts_a):] if texts_b is not None else emb_a
    scores = np.asarray(served.model.similarity(emb_a, emb_b), dtype=np.float64)
    return json_response({"object": "similarity", "model": served.name,
                          "similarity_fn_name": served.model.similarity_fn_name,
                          "scores": scores[0].tolist() if flat else scores.tolist(),
                          "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


ROUTES = [RouteSpec("/similarity", "similarity", similarity)]
