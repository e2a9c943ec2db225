"""Torch-free ``SentenceTransformer``: same arguments and results as sentence-transformers' encode."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from tqdm import tqdm

from .bundle import Bundle
from .compat import check_extra_kwargs, check_init_arguments, refuse_tensor, variant_for_backend
from .config import DEFAULT_BATCH_TOKENS, EncodeConfig, merge_prompts, variant_batch_tokens
from .engine import GraphRunner
from .errors import InputValidationError
from .inputs import positive_int, text_batch
from .loading import AutoPolicy, build_route_runners, build_runner
from .manifest import MANIFEST_NAME, EmbeddingSpec, Manifest
from .model_base import RunnerModel, Rows
from .routing import resolve_route
from .similarity import PAIRWISE, SIMILARITY
from .task_prompts import task_prompt_name

logger = logging.getLogger(__name__)

OutputValue = Literal["sentence_embedding", "token_embeddings"] | None
_FROM_CONFIG: Any = "from config"  # encode(max_batch_tokens=...) default: the configuration's token budget

__all__ = ["SentenceTransformer", "DEFAULT_BATCH_TOKENS"]


class SentenceTransformer(RunnerModel):
    """Embed texts with an exported bundle, or a Sentence Transformers folder holding its own ONNX/OpenVINO graph.

    ``SentenceTransformer("bundle_dir")`` opens a bundle written by ``st-runtime export``; settings (pooling,
    prompts, similarity, max length) come from its manifest and form ``model.config``, the one immutable
    ``EncodeConfig`` that every path (pool workers, device moves, ``embed``, ``evaluate``, the server) receives.
    ``variant`` picks a graph in the bundle ('auto' chooses the fastest this machine runs among those that passed
    their accuracy gate and are batch-independent unless ``allow_batch_dependent``, with optional floors
    ``min_retention`` on the recorded NDCG@10 retention and ``min_top10`` on top-10 overlap), ``device`` maps to
    execution providers. sentence-transformers' loading arguments that need torch or the Hub are refused by name
    (``st_runtime.compat.REFUSED``).
    """

    def __init__(
        self,
        model_name_or_path: str | Path | None = None,
        *,
        modules: Any = None,
        device: str | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        cache_folder: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        use_auth_token: bool | str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        model_card_data: Any = None,
        backend: str = "torch",
        similarity_fn_name: str | None = None,
        truncate_dim: int | None = None,
        variant: str | None = None,
        threads: int | None = None,
        verify: bool = True,
        file_name: str | None = None,
        allow_batch_dependent: bool = False,
        min_retention: float | None = None,
        min_top10: float | None = None,
    ) -> None:
        from .st_folder import is_st_folder, open_st_folder

        self._route_runners: dict[str, GraphRunner] = {}
        file_name = check_init_arguments(
            "SentenceTransformer", model_name_or_path, modules=modules, cache_folder=cache_folder,
            trust_remote_code=trust_remote_code, revision=revision, token=token, use_auth_token=use_auth_token,
            model_kwargs=model_kwargs, processor_kwargs=processor_kwargs, config_kwargs=config_kwargs,
            model_card_data=model_card_data, file_name=file_name)
        path = Path(model_name_or_path).expanduser()
        if not (path / MANIFEST_NAME).is_file() and is_st_folder(path):
            # A Sentence Transformers folder with ST's own onnx/ or openvino/ graph: pooling runs in numpy.
            self.bundle = None
            chosen = file_name or variant

            def opener(dev: str | None) -> tuple[str, GraphRunner]:
                name, runner, self._st_manifest = open_st_folder(path, chosen, dev, threads, backend=backend)
                return name, runner

            self.variant, runner = opener(device)
            manifest = self._st_manifest
            self._factory = functools.partial(type(self), str(path), file_name=self.variant, backend=backend,
                                              verify=False)
        else:
            bundle = self.bundle = Bundle.open(path, expected_kind="sentence-transformer", verify=verify)
            chosen = variant_for_backend(bundle, variant, backend)

            policy = AutoPolicy(allow_batch_dependent, min_retention, min_top10)  # only variant="auto" reads it

            def opener(dev: str | None) -> tuple[str, GraphRunner]:
                name, runner = build_runner(bundle, chosen, dev, threads, policy)
                self._route_runners = build_route_runners(bundle, name, dev, threads)  # a Router's other routes
                return name, runner

            self.variant, runner = opener(device)
            self._factory = functools.partial(type(self), str(bundle.root), variant=self.variant, verify=False)
        self._opener = opener
        self._init(runner, manifest if self.bundle is None else self.bundle.manifest, device, prompts,
                   default_prompt_name, truncate_dim, similarity_fn_name)

    @classmethod
    def from_parts(cls, runner: GraphRunner, manifest: Manifest, **settings: Any) -> "SentenceTransformer":
        """Build an encoder from an in-memory runner and manifest (no bundle directory needed)."""
        self = cls.__new__(cls)
        self.bundle, self.variant = None, manifest.default_variant
        self._route_runners = dict(settings.pop("route_runners", None) or {})
        self._init(runner, manifest, settings.pop("device", None), **settings)
        return self

    def _init(self, runner, manifest, device, prompts=None, default_prompt_name=None, truncate_dim=None,
              similarity_fn_name=None) -> None:
        spec: EmbeddingSpec = manifest.embedding
        self.manifest = manifest
        self._runner = runner
        self._device = device or "cpu"
        self._spec = spec
        self._router = spec.router
        merged = merge_prompts(spec.prompts, prompts)
        lengths = [r.tokenizer.max_seq_length for r in (runner, *self._route_runners.values())]
        # A Router's max_seq_length is the largest of its routes' (sentence-transformers' Router.max_seq_length);
        # while it stays at that value each route truncates at its own, once set every route uses the new one.
        self._routes_length = max(lengths, key=lambda v: float("inf") if v is None else v)
        config = EncodeConfig(
            prompts=merged,
            default_prompt_name=default_prompt_name if default_prompt_name is not None else spec.default_prompt_name,
            include_prompt=spec.include_prompt,
            max_seq_length=self._routes_length,
            truncate_dim=truncate_dim if truncate_dim is not None else spec.truncate_dim,
            similarity_fn_name=similarity_fn_name if similarity_fn_name is not None else
            (spec.similarity_fn_name or "cosine"),
            max_batch_tokens=variant_batch_tokens(manifest, self.variant),
        )
        self._set_config(config)

    def _set_config(self, config: EncodeConfig) -> None:
        if config.truncate_dim is not None and config.truncate_dim > self._spec.dimension:
            raise InputValidationError(
                f"truncate_dim={config.truncate_dim} is larger than the embedding dimension {self._spec.dimension}."
            )
        if not config.include_prompt and "prompt_length" not in self._runner.input_names:
            raise InputValidationError(
                "include_prompt=False needs a graph exported with prompt-excluding pooling; re-export the model "
                "after model.set_pooling_include_prompt(False)."
            )
        if config.similarity_fn_name not in SIMILARITY:  # 'maxsim' is a MultiVectorEncoder's
            raise InputValidationError(f"Unknown similarity function {config.similarity_fn_name!r}; choose one of "
                                       f"{sorted(SIMILARITY)}.")
        runner = self._runner_for(config)  # an unknown task fails here, naming the routes
        super()._set_config(config)
        if runner is not self._runner or self._router is not None:
            self._tokenizer_view = self._route_tokenizer(runner, config)

    # ----- Router routes ---------------------------------------------------------------------------------------
    @property
    def routes(self) -> list[str]:
        """Route names of a Router model (empty for a single-path model)."""
        return list(self._router.routes) if self._router is not None else []

    def _runner_for(self, config: EncodeConfig) -> GraphRunner:
        """The graph ``config.task`` takes: sentence-transformers' Router resolution; the one graph otherwise."""
        if self._router is None:
            return self._runner
        route = resolve_route(self._router, config.task)
        if route in self._route_runners:
            return self._route_runners[route]
        if self._router.routes[route].variants:
            raise InputValidationError(f"Route {route!r} has its own graph, which this model was not given "
                                       "(from_parts(..., route_runners={...})).")
        return self._runner

    def _route_tokenizer(self, runner: GraphRunner, config: EncodeConfig):
        own = runner.tokenizer
        if config.max_seq_length == self._routes_length:
            return own  # each route at its own max_seq_length, as sentence-transformers' routes are
        return own.with_max_length(config.max_seq_length)

    def _tokenizer_for(self, config: EncodeConfig):
        if config is self._config or self._router is None:
            return super()._tokenizer_for(config)
        return self._route_tokenizer(self._runner_for(config), config)

    def tokenizer_for(self, task: str | None):
        """The tokenizer ``encode(..., task=task)`` uses (a Router route's own; the model's otherwise)."""
        return self._tokenizer_for(self._config.replace(task=task))

    def set_task(self, task: str | None) -> "SentenceTransformer":
        """The route every later call takes when it names no task (a new configuration, so pool workers, ``embed``
        and the server follow it); None: the Router's default. Unknown routes raise. Returns the model."""
        self._set_config(self._config.replace(task=task))
        return self

    # ----- settings with sentence-transformers' names (each change is a new configuration) ----------------------
    @property
    def truncate_dim(self) -> int | None:
        return self._config.truncate_dim

    @truncate_dim.setter
    def truncate_dim(self, value: int | None) -> None:
        self._set_config(self._config.replace(truncate_dim=value))

    @property
    def similarity_fn_name(self) -> str:
        return self._config.similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        self._set_config(self._config.replace(similarity_fn_name=value))

    def set_long_text(self, long_text: str = "chunk", chunk_stride: int | None = None,
                      chunk_pooling: str = "mean") -> "SentenceTransformer":
        """What every later call does with a text past max_seq_length (a new configuration, so pool workers,
        ``embed`` and the server follow it): "chunk" (windows ``chunk_stride`` tokens apart, pooled by
        ``chunk_pooling``) or "truncate". Returns the model."""
        self._set_config(self._config.replace(long_text=long_text, chunk_stride=chunk_stride,
                                              chunk_pooling=chunk_pooling))
        return self

    def get_embedding_dimension(self) -> int:
        """Output dimension, after ``truncate_dim`` if set."""
        dim = self._spec.dimension
        return min(dim, self.truncate_dim) if self.truncate_dim else dim

    get_sentence_embedding_dimension = get_embedding_dimension

    def __repr__(self) -> str:
        return f"SentenceTransformer({self._where()!r}, variant={self.variant!r}, device={self.device!r})"

    # ----- encoding -----------------------------------------------------------------------------------
    def call_config(self, config: EncodeConfig | None = None, *, truncate_dim: int | None = None,
                    normalize_embeddings: bool = False, precision: str = "float32",
                    max_batch_tokens: Any = _FROM_CONFIG, long_text: str | None = None,
                    chunk_stride: int | None = None, chunk_pooling: str | None = None,
                    task: str | None = None) -> EncodeConfig:
        """The configuration one ``encode`` call runs with: ``config`` (default: the model's) plus the call's
        arguments. Call arguments add to the configuration (a truncate_dim, normalizing, a precision other than
        float32); they never undo it."""
        config = config if config is not None else self._config
        if not isinstance(config, EncodeConfig):
            raise InputValidationError(f"config must be an st_runtime.config.EncodeConfig, got {config!r}.")
        changes: dict[str, Any] = {}
        if truncate_dim is not None:
            changes["truncate_dim"] = truncate_dim
        if normalize_embeddings:
            changes["normalize"] = True
        if precision != "float32":
            changes["precision"] = precision
        if max_batch_tokens is not _FROM_CONFIG:
            changes["max_batch_tokens"] = max_batch_tokens
        for name, value in (("long_text", long_text), ("chunk_stride", chunk_stride), ("chunk_pooling", chunk_pooling),
                            ("task", task if self._router is not None else None)):
            if value is not None:
                changes[name] = value
        config = config.replace(**changes) if changes else config
        if config.task is not None and self._router is not None:
            self._runner_for(config)  # an unknown route fails before any work, naming the routes
        if config.truncate_dim is not None and config.truncate_dim > self._spec.dimension:
            raise InputValidationError(
                f"truncate_dim={config.truncate_dim} is larger than the embedding dimension {self._spec.dimension}."
            )
        return config

    def encode(
        self,
        inputs: str | Sequence[str] | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: OutputValue = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | list[str] | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        pool: dict | None = None,
        chunk_size: int | None = None,
        *,
        max_batch_tokens: int | None = _FROM_CONFIG,
        config: EncodeConfig | None = None,
        long_text: str | None = None,
        chunk_stride: int | None = None,
        chunk_pooling: str | None = None,
        **kwargs: Any,
    ) -> np.ndarray | list:
        """Embed one text (1-D result) or a list (2-D result), with sentence-transformers' semantics.

        Results are numpy: ``convert_to_tensor=True`` is refused (st-runtime has no torch), and
        ``convert_to_numpy=False`` gives a list of 1-D arrays. ``device=[...]`` (a list) runs a temporary
        multi-process pool on those devices, as sentence-transformers does. Ours: ``max_batch_tokens`` caps each
        batch at that many padded tokens (default: the configuration's, 4096; None for no cap): results are the
        same, peak memory is bounded. ``config`` runs the call with another ``EncodeConfig`` (``model.config.replace
        (...)``), for instance one with stored int8 ranges. ``long_text="chunk"`` embeds a text past
        max_seq_length whole, as overlapping windows ``chunk_stride`` tokens apart pooled by ``chunk_pooling``
        ('mean', 'weighted' by window tokens, 'max'; see ``st_runtime.long_text``); default: the configuration's
        ("truncate", as sentence-transformers does).
        """
        if "sentences" in kwargs:  # sentence-transformers' old name of ``inputs``
            legacy = kwargs.pop("sentences")
            inputs = legacy if inputs is None else inputs
        task = check_extra_kwargs("encode", kwargs)
        refuse_tensor(convert_to_tensor)
        if output_value not in ("sentence_embedding", "token_embeddings", None):
            raise InputValidationError(
                f"output_value must be 'sentence_embedding', 'token_embeddings' or None, got {output_value!r}."
            )
        batch_size = positive_int("batch_size", batch_size)
        config = self.call_config(config, truncate_dim=truncate_dim, normalize_embeddings=normalize_embeddings,
                                  precision=precision, max_batch_tokens=max_batch_tokens, long_text=long_text,
                                  chunk_stride=chunk_stride, chunk_pooling=chunk_pooling, task=task)
        if config.long_text == "chunk" and output_value != "sentence_embedding":
            raise InputValidationError(
                f"long_text='chunk' pools windows into sentence embeddings; output_value={output_value!r} needs "
                "long_text='truncate'.")
        texts, single = text_batch(inputs)
        prompt = config.resolve_prompt(prompt, prompt_name)
        if isinstance(device, list):
            return self._encode_on_devices(texts, single, device, chunk_size, prompt=prompt, batch_size=batch_size,
                                           output_value=output_value, config=config,
                                           convert_to_numpy=convert_to_numpy)
        if device is not None and device != self._device:
            self.to(device)
        if pool is not None:
            from .multiprocess import encode_with_pool

            parts = encode_with_pool(pool, texts, chunk_size, "encode_texts",
                                     {"config": config, "prompt": prompt, "batch_size": batch_size,
                                      "output_value": output_value, "quantize": False})
            if output_value == "sentence_embedding":
                dim = config.truncate_dim or self._spec.dimension
                results: Any = np.concatenate(parts, 0) if parts else np.zeros((0, dim), np.float32)
                results = config.quantize(results)
            else:
                results = [item for part in parts for item in part]
        else:
            if show_progress_bar is None:
                show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG) and \
                    len(texts) > batch_size
            results = self.encode_texts(texts, config, prompt=prompt, batch_size=batch_size,
                                        output_value=output_value, show_progress_bar=show_progress_bar)
        if output_value == "sentence_embedding" and not convert_to_numpy:
            results = list(results)
        return results[0] if single else results

    def _encode_on_devices(self, texts, single, devices, chunk_size, **call) -> Any:
        if not devices or not all(isinstance(d, str) for d in devices):
            raise InputValidationError(f"device must be a string or a non-empty list of strings, got {devices!r}.")
        pool = self.start_multi_process_pool(target_devices=devices)
        try:
            return self.encode(texts if not single else texts[0], pool=pool, chunk_size=chunk_size, **call)
        finally:
            self.stop_multi_process_pool(pool)

    def encode_texts(self, texts: list[str], config: EncodeConfig, *, prompt: str | None = None,
                     batch_size: int = 32, output_value: OutputValue = "sentence_embedding", quantize: bool = True,
                     show_progress_bar: bool = False) -> Any:
        """Embed checked ``texts`` with ``config`` whole (prompt already resolved): what ``encode`` runs in this
        process and what every pool worker runs on its chunk. ``quantize=False`` returns float32 rows (pools
        quantize once, after joining, so every row shares one set of ranges)."""
        tokenizer = self._tokenizer_for(config)
        full = [prompt + text for text in texts] if prompt else texts
        if output_value == "sentence_embedding" and config.long_text == "chunk":
            rows = tokenizer.with_max_length(None).encode(full)  # windows are cut from the whole text
            return self.encode_tokenized(rows, prompt, config=config, batch_size=batch_size,
                                         show_progress_bar=show_progress_bar, quantize=quantize)
        rows = tokenizer.encode(full)
        if output_value == "sentence_embedding":
            return self.encode_tokenized(rows, prompt, config=config, batch_size=batch_size,
                                         show_progress_bar=show_progress_bar, quantize=quantize)
        prompt_length = tokenizer.prompt_length(prompt) if prompt and not config.include_prompt else 0
        results: list[Any] = [None] * len(rows)
        runner = self._runner_for(config)
        # Left-padded models keep their leading pad rows in token outputs (as sentence-transformers returns them), so
        # how many a text gets depends on its batch: batches of ``batch_size`` as ST makes them, never split further.
        budget = None if tokenizer.spec.padding_side == "left" else config.max_batch_tokens
        for indices, encoded, outputs in runner.iter_rows(rows, batch_size, budget,
                                                          self._extra(prompt_length), None, tokenizer=tokenizer):
            emb = self._finish(outputs["sentence_embedding"], config)
            for row, index in enumerate(indices):
                mask = encoded["attention_mask"][row]
                if output_value == "token_embeddings":
                    last = int(np.nonzero(mask)[0][-1]) if mask.any() else 0
                    results[index] = outputs["token_embeddings"][row, : last + 1]
                else:
                    item = {name: value[row] for name, value in encoded.items() if name in runner.input_names}
                    item["attention_mask"] = mask
                    item["token_embeddings"] = outputs["token_embeddings"][row]
                    item["sentence_embedding"] = emb[row]
                    results[index] = item
        return results

    def encode_tokenized(self, rows: Rows, prompt: str | None = None, *, config: EncodeConfig | None = None,
                         batch_size: int = 32, max_batch_tokens: int | None = _FROM_CONFIG,
                         show_progress_bar: bool = False, quantize: bool = True) -> np.ndarray:
        """Sentence embeddings of rows that are already tokenized: the hook for callers that tokenize once
        (the HTTP server counts tokens, checks lengths and batches requests on the same rows).

        ``rows`` must be ``model.tokenizer.encode([prompt + text for text in texts])`` (the model's tokenizer at
        the configured max_seq_length, with the prompt, if any, already prepended); ``prompt`` is only used to
        exclude the prompt's tokens from pooling when the model has ``include_prompt=False``. ``config`` (default:
        the model's) is applied whole: truncate_dim, normalize, token budget, precision with its ranges.
        Returns an (n, dim) array, float32 unless the precision says otherwise.
        """
        config = self.call_config(config, max_batch_tokens=max_batch_tokens)
        tokenizer = self._tokenizer_for(config)
        head = tokenizer.prompt_length(prompt) if prompt and (not config.include_prompt or
                                                              config.long_text == "chunk") else 0
        return self.encode_rows(rows, config, prompt_length=head if not config.include_prompt else 0,
                                batch_size=batch_size, show_progress_bar=show_progress_bar, quantize=quantize,
                                head_length=head if prompt else None)

    def encode_rows(self, rows: Rows, config: EncodeConfig | None = None, *, prompt_length: int = 0,
                    batch_size: int = 32, show_progress_bar: bool = False, quantize: bool = True,
                    head_length: int | None = None) -> np.ndarray:
        """``encode_tokenized`` with the prompt's token count given directly (``prompt_length``: the tokens to
        exclude from pooling when ``config.include_prompt`` is False, ``model.tokenizer.prompt_length(prompt)``).

        With ``config.long_text == "chunk"``, ``rows`` may be longer than max_seq_length (tokenized without
        truncation); each is cut into windows that repeat its first ``head_length`` tokens (the added tokens and
        the prompt, ``model.tokenizer.prompt_length(prompt)``; None: the added tokens only), and pooled."""
        config = self.call_config(config)
        batch_size = positive_int("batch_size", batch_size)
        tokenizer = self._tokenizer_for(config)
        runner = self._runner_for(config)
        windows = None
        limit = runner.width_limit(tokenizer)
        if config.long_text == "chunk" and limit is not None:
            from .long_text import Windows, added_tokens

            head, tail = added_tokens(runner.tokenizer)
            windows = rows = Windows(rows, limit, head if head_length is None else head_length, tail,
                                     config.chunk_stride)
        dim = self._spec.dimension if windows is not None else config.truncate_dim or self._spec.dimension
        out = np.zeros((len(rows), dim), dtype=np.float32)
        bar = tqdm(total=len(rows), desc="Batches", unit="text") if show_progress_bar and rows else None
        for indices, _, outputs in runner.iter_rows(rows, batch_size, config.max_batch_tokens,
                                                    self._extra(prompt_length), ["sentence_embedding"],
                                                    tokenizer=tokenizer):
            emb = outputs["sentence_embedding"]
            out[indices] = emb if windows is not None else self._finish(emb, config)
            if bar is not None:
                bar.update(len(indices))
        if bar is not None:
            bar.close()
        if windows is not None:  # pooled as the model's own output, then truncate_dim / normalize as usual
            out = self._finish(windows.pool(out, config.chunk_pooling, self._spec.normalized), config)
        return config.quantize(out) if quantize else out

    def _extra(self, prompt_length: int) -> dict[str, np.ndarray] | None:
        if "prompt_length" not in self._runner.input_names:
            return None
        return {"prompt_length": np.array([prompt_length], dtype=np.int64)}

    @staticmethod
    def _finish(embeddings: np.ndarray, config: EncodeConfig) -> np.ndarray:
        from .similarity import normalize_embeddings

        if config.truncate_dim is not None:
            embeddings = embeddings[:, : config.truncate_dim]
        return normalize_embeddings(embeddings) if config.normalize else embeddings

    def encode_query(self, inputs: str | Sequence[str] | None = None, prompt_name: str | None = None,
                     prompt: str | None = None, batch_size: int = 32, show_progress_bar: bool | None = None,
                     output_value: OutputValue = "sentence_embedding", precision: str = "float32",
                     convert_to_numpy: bool = True, convert_to_tensor: bool = False,
                     device: str | list[str] | None = None, normalize_embeddings: bool = False,
                     truncate_dim: int | None = None, pool: dict | None = None, chunk_size: int | None = None,
                     **kwargs: Any):
        """encode() with the model's 'query' prompt when it has one (sentence-transformers >= 5 semantics)."""
        if prompt_name is None and prompt is None:
            prompt_name = task_prompt_name("query", self._config.prompts)
        kwargs.setdefault("task", "query")
        return self.encode(inputs, prompt_name, prompt, batch_size, show_progress_bar, output_value, precision,
                           convert_to_numpy, convert_to_tensor, device, normalize_embeddings, truncate_dim, pool,
                           chunk_size, **kwargs)

    def encode_document(self, inputs: str | Sequence[str] | None = None, prompt_name: str | None = None,
                        prompt: str | None = None, batch_size: int = 32, show_progress_bar: bool | None = None,
                        output_value: OutputValue = "sentence_embedding", precision: str = "float32",
                        convert_to_numpy: bool = True, convert_to_tensor: bool = False,
                        device: str | list[str] | None = None, normalize_embeddings: bool = False,
                        truncate_dim: int | None = None, pool: dict | None = None, chunk_size: int | None = None,
                        **kwargs: Any):
        """encode() with the model's 'document' (or 'passage'/'corpus') prompt when it has one."""
        if prompt_name is None and prompt is None:
            prompt_name = task_prompt_name("document", self._config.prompts)
        kwargs.setdefault("task", "document")
        return self.encode(inputs, prompt_name, prompt, batch_size, show_progress_bar, output_value, precision,
                           convert_to_numpy, convert_to_tensor, device, normalize_embeddings, truncate_dim, pool,
                           chunk_size, **kwargs)

    # ----- similarity ---------------------------------------------------------------------------------
    def similarity(self, embeddings1, embeddings2) -> np.ndarray:
        """Similarity matrix with the model's similarity function (cosine unless the model says otherwise)."""
        return SIMILARITY[self.similarity_fn_name](embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2) -> np.ndarray:
        """Row-by-row similarity of two equal-length embedding sets."""
        return PAIRWISE[self.similarity_fn_name](embeddings1, embeddings2)

    # ----- pools --------------------------------------------------------------------------------------
    def start_multi_process_pool(self, target_devices: list[str] | None = None, processes: int | None = None) -> dict:
        """Start worker processes, each holding its own copy of this model's graph (see ``encode(..., pool=pool)``).

        Workers receive the configuration with every chunk, so settings changed after the pool started apply too.
        """
        from .multiprocess import start_pool

        if self._factory is None:
            raise InputValidationError("A multi-process pool needs a model opened from a folder, not built from parts.")
        return start_pool(self._factory, target_devices=target_devices, processes=processes)

    @staticmethod
    def stop_multi_process_pool(pool: dict) -> None:
        from .multiprocess import stop_pool

        stop_pool(pool)

