"""``embed`` for SparseEncoder and MultiVectorEncoder bundles: their one configuration, their chunk encoding and their
Parquet columns.

- sparse: ``indices: list<int32>`` and ``values: list<float32>`` per row (the non-zero dimensions, in index order);
- multi-vector: ``embedding: list<fixed_size_list<float32, dim>>`` per row (one vector per scored token) and
  ``n_tokens: int32``.

Every chunk runs with one ``EncodeConfig`` built here from the model (prompts, default prompt, max_seq_length,
max_active_dims, task, normalize); the chunk encoder reads only that object.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import EncodeConfig
from ..errors import InputValidationError
from ..task_prompts import TASK_PROMPT_NAMES, task_prompt
from .sinks import text_hash

SPARSE, MULTI_VECTOR = "sparse-encoder", "multi-vector-encoder"


def kind_of(model: Any) -> str:
    """'sparse-encoder', 'multi-vector-encoder' or 'dense' (SentenceTransformer and anything else)."""
    manifest = getattr(model, "manifest", None)
    kind = getattr(manifest, "kind", None)
    return kind if kind in (SPARSE, MULTI_VECTOR) else "dense"


def family_config(model: Any, *, truncate_dim: int | None, normalize: bool, precision: str,
                  max_active_dims: int | None, task: str | None) -> EncodeConfig:
    """The configuration every chunk of a sparse / multi-vector run uses (refuses the dense-only settings)."""
    kind = kind_of(model)
    if precision != "float32":
        raise InputValidationError(f"--precision {precision} quantizes dense embeddings; a {kind} bundle is written "
                                   "in float32. Drop --precision.")
    if truncate_dim is not None:
        raise InputValidationError(f"--truncate-dim applies to dense embeddings, not to a {kind} bundle.")
    if kind == SPARSE and normalize:
        raise InputValidationError("--normalize applies to dense and multi-vector embeddings; sparse embeddings "
                                   "are stored as the model makes them (score them with dot or cosine).")
    if kind == MULTI_VECTOR and max_active_dims is not None:
        raise InputValidationError("--max-active-dims applies to sparse bundles only.")
    if kind == MULTI_VECTOR and task not in (None, *TASK_PROMPT_NAMES):
        raise InputValidationError(f"--task for a multi-vector bundle is 'query' or 'document', got {task!r}.")
    if kind == SPARSE:
        from ..sparse import check_max_active_dims

        check_max_active_dims(max_active_dims)
        if task is not None and model.routes:
            from ..routing import resolve_route

            resolve_route(model._spec.router, task)  # noqa: SLF001  (an unknown route fails before any chunk)
    similarity = model.similarity_fn_name  # sparse: dot / cosine; multi-vector: maxsim / meanmaxsim, as ST reports
    return EncodeConfig(prompts=dict(model.prompts), default_prompt_name=model.default_prompt_name,
                        max_seq_length=model.max_seq_length, normalize=normalize,
                        max_active_dims=max_active_dims if max_active_dims is not None else
                        getattr(model, "max_active_dims", None),
                        task=task, similarity_fn_name=similarity, max_batch_tokens=None)


def _prompt(config: EncodeConfig, prompt_name: str | None) -> str:
    """The prompt text every row gets: ``prompt_name``'s, else the task's (as encode_query / encode_document pick
    it), else the default prompt; '' for none."""
    return config.resolve_prompt(None, task_prompt(config.task, prompt_name, config.prompts)) or ""


def encode_chunk_table(model: Any, start_id: int, texts: list[str], config: EncodeConfig, prompt_name: str | None,
                       batch_size: int):
    """One chunk encoded with ``config`` and laid out as its kind's Arrow table."""
    import pyarrow as pa

    if model.max_seq_length != config.max_seq_length:
        raise InputValidationError(f"The model's max_seq_length changed during the run ({model.max_seq_length} vs "
                                   f"{config.max_seq_length}); set it before embed starts.")
    kind, prompt = kind_of(model), _prompt(config, prompt_name)
    columns: dict[str, Any] = {"id": pa.array(np.arange(start_id, start_id + len(texts), dtype=np.int64)),
                               "text_hash": pa.array([text_hash(t) for t in texts])}
    if kind == SPARSE:
        matrix = model.encode(texts, prompt=prompt, batch_size=batch_size, max_active_dims=config.max_active_dims,
                              task=config.task)
        matrix.sort_indices()
        offsets = pa.array(matrix.indptr.astype(np.int32))
        columns["indices"] = pa.ListArray.from_arrays(offsets, pa.array(matrix.indices.astype(np.int32)))
        columns["values"] = pa.ListArray.from_arrays(offsets, pa.array(matrix.data.astype(np.float32)))
    else:
        rows = model.encode(texts, prompt=prompt, batch_size=batch_size, task=config.task,
                            normalize_embeddings=config.normalize)
        dim = model.get_embedding_dimension()
        lengths = np.array([len(r) for r in rows], dtype=np.int32)
        flat = np.concatenate([r.reshape(-1) for r in rows]).astype(np.float32) if rows else np.zeros(0, np.float32)
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat), dim)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        columns["embedding"] = pa.ListArray.from_arrays(offsets, vectors)
        columns["n_tokens"] = pa.array(lengths)
    return pa.table(columns)
