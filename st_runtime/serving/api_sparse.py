"""SparseEncoder serving: the ``sparse`` model kind and TEI's ``POST /embed_sparse``; parsing and formatting only.

- ``/embed_sparse``: ``{inputs: str | [str], truncate, prompt_name, task, model}`` -> ``[[{index, value}]]`` per
  input, the non-zero dimensions in index order (as text-embeddings-inference answers); ``task`` ('query',
  'document' or a route name) picks a Router model's route and the task's prompt, as ``encode_query`` does.
- ``/v1/embeddings`` and ``/embed`` answer a sparse model with a 400 that names ``/embed_sparse``.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..task_prompts import task_prompt
from .core import Call, RouteSpec, ServingCore
from .errors import invalid, shown
from .http import json_response, text_or_list
from .registry import ModelKind, Row, ServedModel, register_kind


def _is_sparse(model: Any) -> bool:
    from ..sparse_encoder import SparseEncoder

    return isinstance(model, SparseEncoder)


def _run_sparse(served: ServedModel, key: Any, texts: list, rows: list[Row]) -> list:
    """One merged call: (indices int32, values float32) of each input's non-zero dimensions. ``key`` is a prompt,
    or (task, prompt) when the request named a task (a Router's route)."""
    task, prompt = key if isinstance(key, tuple) else (None, key)
    matrix = served.model.encode(texts, prompt=prompt or "", task=task, batch_size=served.config.max_batch_size,
                                 max_batch_tokens=None)
    return [(matrix.indices[start:stop], matrix.data[start:stop])
            for start, stop in zip(matrix.indptr[:-1], matrix.indptr[1:])]


def _sparse_info(served: ServedModel) -> dict[str, Any]:
    model = served.model
    return {"dimensions": int(model.get_embedding_dimension()), "similarity_fn_name": model.similarity_fn_name,
            "max_active_dims": model.max_active_dims, "prompts": sorted(model.prompts), "routes": model.routes}


SPARSE = ModelKind("sparse", _is_sparse, _run_sparse, _sparse_info)
register_kind(SPARSE)


async def embed_sparse(core: ServingCore, call: Call) -> Response:
    body = call.body
    served = core.registry.model_for(body, "sparse")
    texts = text_or_list(body.get("inputs"), "inputs")
    task, prompt_name = body.get("task"), body.get("prompt_name")
    if task is not None and not isinstance(task, str):
        raise invalid(f"'task' must be a string (e.g. 'query', 'document') or null, got {shown(task)}.", "task")
    prompt_name = task_prompt(task, prompt_name, served.model.prompts)  # encode_query / encode_document's default
    rows, _ = await core.embed(call, served, texts, prompt_name=prompt_name, truncate=body.get("truncate"),
                               param="inputs", task=task)
    return json_response([[{"index": int(i), "value": float(v)} for i, v in zip(indices, values)]
                          for indices, values in rows])


ROUTES = [RouteSpec("/embed_sparse", "embed_sparse", embed_sparse)]
