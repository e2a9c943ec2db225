"""MultiVectorEncoder serving: the ``multi-vector`` model kind and ``POST /embed_multi_vector``; parsing and
formatting only.

- ``/embed_multi_vector``: ``{inputs: str | [str], task: "query" | "document" | null, prompt_name, truncate, model}``
  -> ``[[[float, ...], ...], ...]``: per input, one vector per scored token, as ``MultiVectorEncoder.encode`` (with
  ``task``: ``encode_query`` / ``encode_document``, their lengths, mask and default prompt) returns them. With
  ``truncate: false`` an input longer than the task's own length (query_length / document_length, else
  max_seq_length) is a 413.
- ``/v1/embeddings`` and ``/embed`` answer a multi-vector model with a 400 that names ``/embed_multi_vector``.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..task_prompts import TASK_PROMPT_NAMES, task_prompt
from .core import Call, RouteSpec, ServingCore, off_loop
from .errors import ApiError, invalid, shown
from .http import json_response, text_or_list
from .registry import ModelKind, Row, ServedModel, register_kind


def _is_multi_vector(model: Any) -> bool:
    from ..multi_vector_encoder import MultiVectorEncoder

    return isinstance(model, MultiVectorEncoder)


def _run_multi_vector(served: ServedModel, key: Any, texts: list, rows: list[Row]) -> list:
    """One merged call: each input's (n_tokens, dim) float32 array. ``key`` is (task, prompt) or a prompt."""
    task, prompt = key if isinstance(key, tuple) else (None, key)
    return served.model.encode(texts, prompt=prompt or "", task=task, batch_size=served.config.max_batch_size,
                               max_batch_tokens=None)


def _multi_vector_info(served: ServedModel) -> dict[str, Any]:
    model = served.model
    return {"dimensions": int(model.get_embedding_dimension()), "similarity_fn_name": model.similarity_fn_name,
            "prompts": sorted(model.prompts)}


MULTI_VECTOR = ModelKind("multi-vector", _is_multi_vector, _run_multi_vector, _multi_vector_info)
register_kind(MULTI_VECTOR)


async def embed_multi_vector(core: ServingCore, call: Call) -> Response:
    body = call.body
    served = core.registry.model_for(body, "multi-vector")
    texts = text_or_list(body.get("inputs"), "inputs")
    task, prompt_name = body.get("task"), body.get("prompt_name")
    if task is not None and task not in TASK_PROMPT_NAMES:
        raise invalid(f"'task' must be 'query', 'document' or null, got {shown(task)}.", "task")
    prompt_name = task_prompt(task, prompt_name, served.model.prompts)  # encode_query / encode_document's default
    texts = core.limit_inputs(texts, "inputs")
    if not core.truncation(body.get("truncate")):  # the task's own length, not max_seq_length
        prompt = served.resolve_prompt(prompt_name)
        await off_loop(sum(map(len, texts)) < 4096, _check_length, served, texts, prompt, task)
    rows, _ = await core.embed(call, served, texts, prompt_name=prompt_name, truncate=True, param="inputs",
                               task=task)
    return json_response([row.tolist() for row in rows])


def _check_length(served: ServedModel, texts: list[str], prompt: str, task: str | None) -> None:
    tokenizer = served.model.tokenizer_for(task)
    if tokenizer.max_seq_length is None:
        return
    _, cut = tokenizer.encode_checked([prompt + t for t in texts] if prompt else texts)
    if any(cut):
        side = f"the {task} length" if task else "max_seq_length"
        raise ApiError(413, f"'inputs[{cut.index(True)}]' is longer than {side} of this model "
                            f"({tokenizer.max_seq_length} tokens). Send \"truncate\": true to cut it, as "
                            "sentence-transformers does, or start the server with --auto-truncate.",
                       "input_too_long", param="inputs")


ROUTES = [RouteSpec("/embed_multi_vector", "embed_multi_vector", embed_multi_vector)]
