"""Torch-free ``MultiVectorEncoder`` (late interaction, ColBERT-style): one (n_tokens, dim) float32 array per input,
the tokens kept by sentence-transformers' MultiVectorMask, scored with MaxSim / MeanMaxSim."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .bundle import Bundle
from .config import DEFAULT_BATCH_TOKENS
from .engine import plan_batches
from .errors import InputValidationError
from .inputs import positive_int, text_batch
from .loading import AutoPolicy, build_runner
from .manifest import MULTI_VECTOR_SIMILARITY_FNS, MultiVectorSpec
from .similarity import checked_similarity_fn_name
from .task_prompts import TaskEncoding, prompt_settings

logger = logging.getLogger(__name__)


def _as_list(embeddings: Any) -> list[np.ndarray]:
    if isinstance(embeddings, np.ndarray):
        if embeddings.ndim == 2:
            return [embeddings]
        if embeddings.ndim == 3:
            return list(embeddings)
        raise InputValidationError(f"Expected (n_tokens, dim) arrays, got shape {embeddings.shape}.")
    items = [np.asarray(e, dtype=np.float32) for e in embeddings]
    if any(item.ndim != 2 for item in items):
        raise InputValidationError("Each multi-vector embedding must be a (n_tokens, dim) array.")
    return items


def maxsim(queries: Any, documents: Any, length_normalize: bool = False) -> np.ndarray:
    """Score matrix (len(queries), len(documents)): sum over query tokens of the best document-token dot product."""
    qs, ds = _as_list(queries), _as_list(documents)
    out = np.zeros((len(qs), len(ds)), dtype=np.float32)
    if not qs or not ds:
        return out
    lengths = np.array([len(d) for d in ds])
    floor = np.finfo(np.float32).min
    stacked = np.concatenate([d for d in ds if len(d)], axis=0) if lengths.any() else None
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for i, q in enumerate(qs):
        if stacked is None or not len(q):
            continue
        sims = q.astype(np.float32) @ stacked.T  # (q_tokens, all doc tokens)
        best = np.full((len(q), len(ds)), floor, dtype=np.float32)
        nonempty = lengths > 0
        best[:, nonempty] = np.maximum.reduceat(sims, starts[nonempty], axis=1)
        scores = best.sum(axis=0, dtype=np.float64)
        out[i] = scores / len(q) if length_normalize else scores
    return out


def maxsim_pairwise(queries: Any, documents: Any, length_normalize: bool = False) -> np.ndarray:
    qs, ds = _as_list(queries), _as_list(documents)
    if len(qs) != len(ds):
        raise InputValidationError(f"similarity_pairwise needs as many queries as documents ({len(qs)} vs {len(ds)}).")
    return np.array([maxsim([q], [d], length_normalize)[0, 0] for q, d in zip(qs, ds)], dtype=np.float32)


class MultiVectorEncoder(TaskEncoding):
    """Per-token embeddings from a bundle written by ``st-runtime export`` of a sentence-transformers
    MultiVectorEncoder; ``encode_query`` / ``encode_document`` apply the model's per-task lengths and mask."""

    def __init__(self, model_name_or_path: str | Path, *, variant: str | None = None, device: str | None = None,
                 threads: int | None = None, prompts: dict[str, str] | None = None,
                 default_prompt_name: str | None = None, similarity_fn_name: str | None = None,
                 verify: bool = True, allow_batch_dependent: bool = False, min_retention: float | None = None,
                 min_top10: float | None = None) -> None:
        self._threads = threads
        self.bundle = Bundle.open(model_name_or_path, expected_kind="multi-vector-encoder", verify=verify)
        policy = AutoPolicy(allow_batch_dependent, min_retention, min_top10)  # only variant="auto" reads it
        self.variant, self._runner = build_runner(self.bundle, variant, device, threads, policy)
        self._device = device or "cpu"
        self.manifest = self.bundle.manifest
        spec: MultiVectorSpec = self.manifest.multi_vector
        self._spec = spec
        self.prompts, self.default_prompt_name = prompt_settings(spec.prompts, spec.default_prompt_name, prompts,
                                                                 default_prompt_name)
        self.similarity_fn_name = similarity_fn_name or spec.similarity_fn_name
        self._skip = np.asarray(spec.skiplist_ids, dtype=np.int64)
        self._keep = np.asarray(spec.keep_only_token_ids, dtype=np.int64) if spec.keep_only_token_ids else None

    @property
    def similarity_fn_name(self) -> str:
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        self._similarity_fn_name = checked_similarity_fn_name(value, MULTI_VECTOR_SIMILARITY_FNS,
                                                              "MultiVectorEncoder")

    @property
    def tokenizer(self):
        return self._runner.tokenizer

    @property
    def max_seq_length(self) -> int | None:
        return self._runner.tokenizer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        self._runner.tokenizer.max_seq_length = value

    @property
    def device(self) -> str:
        return self._device

    def get_embedding_dimension(self) -> int:
        return self._spec.dimension

    def __repr__(self) -> str:
        return f"MultiVectorEncoder({str(self.bundle.root)!r}, variant={self.variant!r}, device={self.device!r})"

    def tokenizer_for(self, task: str | None):
        """The ``TextTokenizer`` ``encode(..., task=task)`` uses: truncating at the task's length."""
        return self._runner.tokenizer.with_max_length(self._length_for(task))

    def _length_for(self, task: str | None) -> int | None:
        if task == "query" and self._spec.query_length is not None:
            return self._spec.query_length
        if task == "document" and self._spec.document_length is not None:
            return self._spec.document_length
        return self.max_seq_length

    def _scoring_mask(self, ids: np.ndarray, mask: np.ndarray, task: str | None) -> np.ndarray:
        """MultiVectorMask.forward: real tokens, minus skiplisted ids on skiplist tasks, allowlist off queries."""
        keep = mask.astype(bool)
        if (task or "document") in self._spec.skiplist_tasks and self._skip.size:
            keep &= ~np.isin(ids, self._skip)
        if task != "query" and self._keep is not None:
            keep &= np.isin(ids, self._keep)
        return keep

    def encode(self, inputs: str | Sequence[str], prompt_name: str | None = None, prompt: str | None = None,
               batch_size: int = 32, show_progress_bar: bool | None = None,
               output_value: str | None = "token_embeddings", convert_to_numpy: bool = True,
               normalize_embeddings: bool = False, task: str | None = None,
               max_batch_tokens: int | None = DEFAULT_BATCH_TOKENS, **kwargs: Any) -> list[np.ndarray] | np.ndarray:
        """One (n_scored_tokens, dim) float32 array per input (a single array for one string)."""
        kwargs.pop("device", None)
        if kwargs:
            raise InputValidationError(f"encode() got arguments this runtime does not use: {sorted(kwargs)}.")
        if output_value != "token_embeddings":
            raise InputValidationError("st_runtime.MultiVectorEncoder returns output_value='token_embeddings' only.")
        if task not in (None, "query", "document"):
            raise InputValidationError(f"task must be 'query', 'document' or None, got {task!r}.")
        batch_size = positive_int("batch_size", batch_size)
        texts, single = text_batch(inputs)
        prompt = self._resolve_prompt(prompt, prompt_name)
        if prompt:
            texts = [prompt + text for text in texts]
        tokenizer = self.tokenizer_for(task)
        rows = tokenizer.encode(texts)
        out: list[Any] = [None] * len(texts)
        for indices in plan_batches([len(ids) for ids, _ in rows], batch_size, max_batch_tokens):
            encoded = tokenizer.pad([rows[i] for i in indices])
            tokens = self._runner.session.run(self._runner.feeds(encoded))["token_embeddings"]
            keep = self._scoring_mask(encoded["input_ids"], encoded["attention_mask"], task)
            for row, index in enumerate(indices):
                emb = np.ascontiguousarray(tokens[row][keep[row]], dtype=np.float32)
                if normalize_embeddings:
                    emb = emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
                out[index] = emb
        return out[0] if single else out


    def similarity(self, embeddings1, embeddings2) -> np.ndarray:
        """MaxSim (or MeanMaxSim) matrix between query and document multi-vector embeddings."""
        return maxsim(embeddings1, embeddings2, length_normalize=self.similarity_fn_name == "meanmaxsim")

    def similarity_pairwise(self, embeddings1, embeddings2) -> np.ndarray:
        return maxsim_pairwise(embeddings1, embeddings2, length_normalize=self.similarity_fn_name == "meanmaxsim")
