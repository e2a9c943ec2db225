"""Torch-free ``SparseEncoder``: SPLADE, inference-free SPLADE (Router) and CSR bundles, with sentence-transformers'
arguments; results are ``scipy.sparse.csr_array`` rows in input order (dense numpy on request)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from . import sparse
from .bundle import Bundle
from .errors import InputValidationError
from .inputs import positive_int, text_batch
from .loading import AutoPolicy, build_route_runners, build_runner
from .manifest import SPARSE_SIMILARITY_FNS, Manifest, SparseSpec
from .routing import resolve_route
from .sparse import sp  # scipy.sparse, imported on first use (the sparse extra)
from .similarity import checked_similarity_fn_name
from .static_modules import SparseStaticRoute, load_tokenizer, load_weights
from .task_prompts import TaskEncoding, prompt_settings

logger = logging.getLogger(__name__)

# SPLADE graphs hold (batch x length x vocabulary) logits: the token budget keeps that buffer near 256 MB.
_LOGIT_BUFFER_FLOATS = 1 << 26
# sentence-transformers' other names for the sparse similarities, and the hint for a name of another model class.
_SIMILARITY_ALIASES = {"dot_product": "dot", "dot_score": "dot", "cos_sim": "cosine"}
_SIMILARITY_HINTS = {"maxsim": " Use st_runtime.MultiVectorEncoder for MaxSim scoring."}


class SparseEncoder(TaskEncoding):
    """Sparse embeddings from a bundle written by ``st-runtime export`` of a sentence-transformers SparseEncoder.

    ``encode`` returns a ``scipy.sparse.csr_array`` of shape (n, dimension) (1-D for one text); pass
    ``convert_to_sparse_tensor=False`` for dense float32 numpy. ``max_active_dims`` keeps the largest entries of
    each embedding, as sentence-transformers does, per call or for the model.
    """

    def __init__(
        self,
        model_name_or_path: str | Path,
        *,
        variant: str | None = None,
        device: str | None = None,
        threads: int | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        max_active_dims: int | None = None,
        similarity_fn_name: str | None = None,
        verify: bool = True,
        allow_batch_dependent: bool = False,
        min_retention: float | None = None,
        min_top10: float | None = None,
    ) -> None:
        sparse.scipy_sparse()  # results are scipy CSR: a missing sparse extra fails here, before any loading
        self._threads = threads
        self.bundle = Bundle.open(model_name_or_path, expected_kind="sparse-encoder", verify=verify)
        policy = AutoPolicy(allow_batch_dependent, min_retention, min_top10)  # only variant="auto" reads it
        self.variant, runner = build_runner(self.bundle, variant, device, threads, policy)
        self._route_runners = build_route_runners(self.bundle, self.variant, device, threads)
        self._init(runner, self.bundle.manifest, device, prompts, default_prompt_name, max_active_dims,
                   similarity_fn_name)

    def _init(self, runner, manifest: Manifest, device, prompts, default_prompt_name, max_active_dims,
              similarity_fn_name) -> None:
        spec: SparseSpec = manifest.sparse
        self.manifest, self._spec, self._runner = manifest, spec, runner
        self._device = device or "cpu"
        self.prompts, self.default_prompt_name = prompt_settings(spec.prompts, spec.default_prompt_name, prompts,
                                                                 default_prompt_name)
        chosen = max_active_dims if max_active_dims is not None else spec.max_active_dims
        self.max_active_dims = sparse.check_max_active_dims(chosen)
        self.similarity_fn_name = similarity_fn_name or spec.similarity_fn_name
        self._static_routes: dict[str, SparseStaticRoute] = {}
        router = spec.router
        for name, route in (router.routes.items() if router else ()):
            if route.type == "sparse-static":
                tokenizer = load_tokenizer(self.bundle.path_of(route.tokenizer_file), route.tokenizer)
                weights = load_weights(self.bundle.path_of(route.weights_file), ndim=1)
                self._static_routes[name] = SparseStaticRoute(tokenizer, weights, route.add_special_tokens)

    # ----- settings with sentence-transformers' names -------------------------------------------------
    @property
    def similarity_fn_name(self) -> str:
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        self._similarity_fn_name = checked_similarity_fn_name(value, SPARSE_SIMILARITY_FNS, "SparseEncoder",
                                                              _SIMILARITY_ALIASES, _SIMILARITY_HINTS)

    @property
    def max_active_dims(self) -> int | None:
        return self._max_active_dims

    @max_active_dims.setter
    def max_active_dims(self, value: int | None) -> None:
        self._max_active_dims = sparse.check_max_active_dims(value)

    @property
    def tokenizer(self):
        """The main graph route's ``TextTokenizer`` (wraps a ``tokenizers.Tokenizer``)."""
        return self._runner.tokenizer

    def _graph_runner(self, route: str | None):
        """The runner of a transformer route: its own graph, or the bundle's main graph."""
        return self._route_runners.get(route, self._runner) if route is not None else self._runner

    def tokenizer_for(self, task: str | None):
        """The ``TextTokenizer`` of the transformer route ``task`` takes (None for a SparseStaticEmbedding route)."""
        route = resolve_route(self._spec.router, task) if self._spec.router else None
        return None if route in self._static_routes else self._graph_runner(route).tokenizer

    @property
    def device(self) -> str:
        return self._device

    def get_max_seq_length(self) -> int | None:
        return self.max_seq_length

    def _where(self) -> str:
        return str(self.bundle.root)

    @property
    def max_seq_length(self) -> int | None:
        """Like sentence-transformers' Router: the largest limit over the routes."""
        limits = [r.tokenizer.max_seq_length for r in (self._runner, *self._route_runners.values())]
        limits += [route.tokenizer.truncation["max_length"] for route in self._static_routes.values()
                   if route.tokenizer.truncation]
        limits = [v for v in limits if v]
        return max(limits) if limits else None

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        for runner in (self._runner, *self._route_runners.values()):  # every transformer route, as ST's Router
            runner.tokenizer.max_seq_length = value

    def get_embedding_dimension(self) -> int:
        return self._spec.dimension

    get_sentence_embedding_dimension = get_embedding_dimension

    @property
    def routes(self) -> list[str]:
        """Route names of a Router model (empty for a single-path model)."""
        return list(self._spec.router.routes) if self._spec.router else []

    def __repr__(self) -> str:
        return f"SparseEncoder({self._where()!r}, variant={self.variant!r}, device={self.device!r})"

    # ----- encoding -----------------------------------------------------------------------------------
    def encode(
        self,
        inputs: str | list[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_tensor: bool = True,
        convert_to_sparse_tensor: bool = True,
        save_to_cpu: bool = False,
        device: str | None = None,
        max_active_dims: int | None = None,
        pool: dict | None = None,
        chunk_size: int | None = None,
        task: str | None = None,
        max_batch_tokens: int | None = None,
        **kwargs: Any,
    ) -> sp.csr_array | np.ndarray | list:
        """Sparse embeddings of one text (1-D) or a list (n, dimension), in input order.

        ``task`` picks a Router model's route ('query', 'document'); ``max_active_dims`` overrides the model's.
        ``max_batch_tokens`` caps padded tokens per batch (default: sized from the vocabulary so the graph's logit
        buffer stays near 256 MB); results do not depend on it.
        """
        kwargs.pop("sentences", None)
        if kwargs:
            raise InputValidationError(f"encode() got arguments this runtime does not use: {sorted(kwargs)}.")
        if pool is not None or chunk_size is not None:
            raise InputValidationError("Multi-process pools are not supported by st_runtime.SparseEncoder yet; "
                                       "encode in one process (ONNX Runtime already uses every core).")
        batch_size = positive_int("batch_size", batch_size)
        k = sparse.check_max_active_dims(max_active_dims)
        k = k if k is not None else self.max_active_dims
        if device is not None and device != self._device:
            self.to(device)
        texts, single = text_batch(inputs)
        prompt = self._resolve_prompt(prompt, prompt_name)
        if prompt:
            texts = [prompt + text for text in texts]
        route = resolve_route(self._spec.router, task) if self._spec.router else None
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG) and len(texts) > batch_size
        if route in self._static_routes:
            rows = [sp.csr_array(sparse.keep_top_k(self._static_routes[route].encode(texts), k))] if texts else []
            matrix = sparse.rows_to_csr(rows, self._spec.dimension)
        else:
            matrix = self._run_graph(self._graph_runner(route), texts, batch_size, max_batch_tokens, k,
                                     show_progress_bar)
        return self._format(matrix, single, convert_to_tensor, convert_to_sparse_tensor)

    def _run_graph(self, runner, texts, batch_size, max_batch_tokens, k, progress) -> sp.csr_array:
        if max_batch_tokens is None:
            per_token = self._spec.dimension if self._spec.pooling_strategy else 1024
            max_batch_tokens = max(64, _LOGIT_BUFFER_FLOATS // max(1, per_token))
        parts: list[sp.csr_array] = []
        order: list[np.ndarray] = []
        bar = tqdm(total=len(texts), desc="Batches", unit="text") if progress else None
        for indices, _, outputs in runner.iter_batches(texts, batch_size, max_batch_tokens):
            emb = outputs["sentence_embedding"]
            if self._spec.topk_relu is not None:
                emb = sparse.topk_relu(emb, k if k is not None else self._spec.topk_relu)
            parts.append(sp.csr_array(sparse.keep_top_k(emb, k)))
            order.append(indices)
            if bar is not None:
                bar.update(len(indices))
        if bar is not None:
            bar.close()
        if not parts:
            return sp.csr_array((0, self._spec.dimension), dtype=np.float32)
        stacked = sp.csr_array(sp.vstack(parts, format="csr"))
        inverse = np.argsort(np.concatenate(order), kind="stable")
        return sp.csr_array(stacked[inverse])

    @staticmethod
    def _format(matrix: sp.csr_array, single: bool, convert_to_tensor: bool, convert_to_sparse_tensor: bool):
        matrix.sort_indices()
        if not convert_to_sparse_tensor:
            dense = matrix.toarray()
            if single:
                return dense[0]
            return dense if convert_to_tensor else list(dense)
        if single:
            return sp.csr_array(matrix[[0]].reshape(-1))
        if not convert_to_tensor:
            return [sp.csr_array(matrix[[i]].reshape(-1)) for i in range(matrix.shape[0])]
        return matrix


    # ----- scoring and inspection ---------------------------------------------------------------------
    def similarity(self, embeddings1, embeddings2) -> np.ndarray:
        """Score matrix (len(embeddings1), len(embeddings2)) with the model's similarity (dot by default)."""
        return sparse.SIMILARITY[self.similarity_fn_name](embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2) -> np.ndarray:
        """Row-by-row scores of two equal-length embedding sets."""
        return sparse.PAIRWISE[self.similarity_fn_name](embeddings1, embeddings2)

    @staticmethod
    def sparsity(embeddings) -> dict[str, float]:
        """{'active_dims': mean non-zeros per embedding, 'sparsity_ratio': mean fraction of zeros}."""
        return sparse.sparsity(embeddings)

    @staticmethod
    def intersection(embeddings_1, embeddings_2) -> sp.csr_array:
        """Entries active in both (element-wise product, positive part), shaped like ``embeddings_2``."""
        return sparse.intersection(embeddings_1, embeddings_2)

    def decode(self, embeddings, top_k: int | None = None):
        """(token, weight) pairs by descending weight; a list per embedding for 2-D input."""
        tokenizer = self._runner.tokenizer._tok  # noqa: SLF001  (the graph route's vocabulary)
        return sparse.decode(embeddings, tokenizer.id_to_token, top_k)

    def to(self, device: str) -> "SparseEncoder":
        """Re-open the graph on another device ('cpu', 'cuda', 'cuda:1')."""
        _, self._runner = build_runner(self.bundle, self.variant, device, self._threads)
        self._route_runners = build_route_runners(self.bundle, self.variant, device, self._threads)
        self._device = device
        return self
