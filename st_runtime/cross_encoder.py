"""Torch-free ``CrossEncoder``: predict and rank with sentence-transformers' arguments and results."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from .bundle import Bundle
from .compat import check_extra_kwargs, check_init_arguments, refuse, refuse_tensor, variant_for_backend
from .config import RerankConfig, merge_prompts, variant_batch_tokens
from .engine import GraphRunner
from .errors import InputValidationError
from .inputs import pair_batch, positive_int
from .loading import AutoPolicy, build_runner
from .manifest import MANIFEST_NAME, Manifest
from .model_base import RunnerModel

logger = logging.getLogger(__name__)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": _sigmoid,
    "identity": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "softmax": _softmax,
}
# torch activation modules sentence-transformers users pass (torch.nn.Sigmoid() ...), recognised by class name
_TORCH_MODULES = {"Sigmoid": "sigmoid", "Identity": "identity", "Tanh": "tanh", "ReLU": "relu", "Softmax": "softmax"}


def activation_of(activation_fn: Any) -> str | Callable[[np.ndarray], np.ndarray]:
    """A name from ``ACTIVATIONS`` or a numpy callable, from what a caller passed (a name, a callable, or one of
    torch's activation modules, recognised without importing torch)."""
    if isinstance(activation_fn, str):
        if activation_fn not in ACTIVATIONS:
            raise InputValidationError(f"Unknown activation {activation_fn!r}; choose one of {sorted(ACTIVATIONS)}.")
        return activation_fn
    kind = type(activation_fn)
    if kind.__module__.startswith("torch.") and kind.__name__ in _TORCH_MODULES:
        return _TORCH_MODULES[kind.__name__]
    if callable(activation_fn):
        return activation_fn
    raise InputValidationError(f"activation_fn must be None, a name or a callable, got {activation_fn!r}.")


class CrossEncoder(RunnerModel):
    """Score text pairs with an exported cross-encoder bundle, or a Sentence Transformers cross-encoder folder that
    holds its own ONNX/OpenVINO graph (``backend="onnx"`` output).

    Settings form ``model.config``, one immutable ``RerankConfig`` (num_labels, activation, max_length, prompts).
    Activations are computed in float64, so strong matches do not all tie at 1.0; ``predict`` returns float32
    like sentence-transformers, and ``rank`` orders by the float64 scores.
    """

    _length_field = "max_length"

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
        model_kwargs: dict | None = None,
        processor_kwargs: dict | None = None,
        config_kwargs: dict | None = None,
        model_card_data: Any = None,
        backend: str = "torch",
        num_labels: int | None = None,
        max_length: int | None = None,
        activation_fn: Any = None,
        keep_in_fp32_modules: list[str] | None = None,
        variant: str | None = None,
        threads: int | None = None,
        verify: bool = True,
        file_name: str | None = None,
        allow_batch_dependent: bool = False,
        min_retention: float | None = None,
        min_top10: float | None = None,
    ) -> None:
        from .st_folder import is_st_folder, open_st_cross_encoder_folder

        file_name = check_init_arguments(
            "CrossEncoder", model_name_or_path, modules=modules, cache_folder=cache_folder,
            trust_remote_code=trust_remote_code, revision=revision, token=token, model_kwargs=model_kwargs,
            processor_kwargs=processor_kwargs, config_kwargs=config_kwargs, model_card_data=model_card_data,
            keep_in_fp32_modules=keep_in_fp32_modules or None, file_name=file_name)
        path = Path(model_name_or_path).expanduser()
        if not (path / MANIFEST_NAME).is_file() and is_st_folder(path):
            self.bundle = None
            chosen = file_name or variant

            def opener(dev: str | None) -> tuple[str, GraphRunner]:
                name, runner, self._st_manifest = open_st_cross_encoder_folder(path, chosen, dev, threads,
                                                                               backend=backend)
                return name, runner

            self.variant, runner = opener(device)
            manifest = self._st_manifest
            self._factory = functools.partial(type(self), str(path), file_name=self.variant, verify=False)
        else:
            bundle = self.bundle = Bundle.open(path, expected_kind="cross-encoder", verify=verify)
            chosen = variant_for_backend(bundle, variant, backend)
            policy = AutoPolicy(allow_batch_dependent, min_retention, min_top10)  # only variant="auto" reads it

            def opener(dev: str | None) -> tuple[str, GraphRunner]:
                return build_runner(bundle, chosen, dev, threads, policy)

            self.variant, runner = opener(device)
            manifest = bundle.manifest
            self._factory = functools.partial(type(self), str(bundle.root), variant=self.variant, verify=False)
        self._opener = opener
        self._init(runner, manifest, device, prompts=prompts, default_prompt_name=default_prompt_name,
                   num_labels=num_labels, max_length=max_length, activation_fn=activation_fn)

    @classmethod
    def from_parts(cls, runner: GraphRunner, manifest: Manifest, device: str | None = None,
                   **settings: Any) -> "CrossEncoder":
        self = cls.__new__(cls)
        self.bundle, self.variant = None, manifest.default_variant
        self._init(runner, manifest, device, **settings)
        return self

    def _init(self, runner: GraphRunner, manifest: Manifest, device: str | None, *, prompts=None,
              default_prompt_name=None, num_labels=None, max_length=None, activation_fn=None) -> None:
        spec = manifest.cross_encoder
        self.manifest = manifest
        self._runner = runner
        self._device = device or "cpu"
        if num_labels is not None and num_labels != spec.num_labels:
            refuse(f"num_labels={num_labels!r} (the exported head has {spec.num_labels})", "__init__.num_labels")
        saved_prompts = merge_prompts(spec.prompts or manifest.source.get("prompts") or {}, prompts)
        self.labels = list(spec.labels)
        config = RerankConfig(
            num_labels=spec.num_labels,
            activation=activation_of(activation_fn) if activation_fn is not None else spec.activation,
            max_length=runner.tokenizer.check_max_length(max_length) if max_length is not None
            else runner.tokenizer.max_seq_length,
            prompts=saved_prompts,
            default_prompt_name=default_prompt_name if default_prompt_name is not None
            else (spec.default_prompt_name or manifest.source.get("default_prompt_name")),
            max_batch_tokens=variant_batch_tokens(manifest, self.variant),
        )
        self._set_config(config)

    # ----- settings with sentence-transformers' names -----------------------------------------------------------
    @property
    def num_labels(self) -> int:
        return self._config.num_labels

    @property
    def activation_fn(self) -> str | Callable:
        return self._config.activation

    @activation_fn.setter
    def activation_fn(self, value: Any) -> None:
        self._set_config(self._config.replace(activation=activation_of(value)))

    @property
    def activation_fn_name(self) -> str:
        activation = self._config.activation
        return activation if isinstance(activation, str) else getattr(activation, "__name__", repr(activation))

    max_length = RunnerModel.max_seq_length

    def __repr__(self) -> str:
        return f"CrossEncoder({self._where()!r}, variant={self.variant!r}, num_labels={self.num_labels})"

    # ----- scoring ----------------------------------------------------------------------------------------------
    def logits(self, pairs: list[tuple[str, str]], config: RerankConfig | None = None, *, prompt: str | None = None,
               batch_size: int = 32, show_progress_bar: bool = False) -> np.ndarray:
        """Raw float32 logits (n, num_labels) of checked ``pairs`` with ``config`` whole (prompt already resolved,
        prepended to the first text of each pair as sentence-transformers does): what ``predict`` runs in this
        process and what every pool worker runs on its chunk."""
        config = config if config is not None else self._config
        if prompt:
            pairs = [(prompt + a, b) for a, b in pairs]
        return self._logits_of_rows(self._tokenizer_for(config).encode(pairs), config, batch_size, show_progress_bar)

    def predict_tokenized(self, rows: list[tuple[list[int], list[int]]], *, config: RerankConfig | None = None,
                          batch_size: int = 32, activation_fn: Any = None, apply_softmax: bool | None = False
                          ) -> np.ndarray:
        """Scores (float32; ``activation_fn='identity'`` for logits) of pairs that are already tokenized: the hook
        for callers that tokenize once (the HTTP server). ``rows`` must be ``model.tokenizer.encode(pairs)`` (the
        configured max_length, any prompt already prepended to each query); ``config`` defaults to the model's."""
        config = config if config is not None else self._config
        logits = self._logits_of_rows(rows, config, positive_int("batch_size", batch_size), False)
        return self._activate(logits, config, activation_fn, apply_softmax).astype(np.float32)

    def logits_rows(self, rows: list[tuple[list[int], list[int]]], config: RerankConfig | None = None, *,
                    batch_size: int = 32) -> np.ndarray:
        """Raw float32 logits (n, num_labels) of already-tokenized pairs (``model.tokenizer.encode(pairs)``, any
        prompt prepended to each query), with ``config`` (default: the model's) whole."""
        config = config if config is not None else self._config
        if not isinstance(config, RerankConfig):
            raise InputValidationError(f"config must be an st_runtime.config.RerankConfig, got {config!r}.")
        return self._logits_of_rows(rows, config, positive_int("batch_size", batch_size), False)

    def _logits_of_rows(self, rows, config: RerankConfig, batch_size: int, show_progress_bar: bool) -> np.ndarray:
        tokenizer = self._tokenizer_for(config)
        logits = np.zeros((len(rows), config.num_labels), dtype=np.float32)
        bar = tqdm(total=len(rows), desc="Batches", unit="pair", disable=not show_progress_bar)
        for indices, _, outputs in self._row_batches(rows, tokenizer, batch_size, config.max_batch_tokens):
            logits[indices] = np.asarray(outputs["logits"]).reshape(len(indices), -1)
            bar.update(len(indices))
        bar.close()
        return logits

    def _scores64(self, pairs, *, prompt, batch_size, show_progress_bar, activation_fn, apply_softmax, device, pool,
                  chunk_size) -> np.ndarray:
        config = self._config
        if isinstance(device, list):
            temporary = self.start_multi_process_pool(target_devices=device)
            try:
                return self._scores64(pairs, prompt=prompt, batch_size=batch_size, show_progress_bar=False,
                                      activation_fn=activation_fn, apply_softmax=apply_softmax, device=None,
                                      pool=temporary, chunk_size=chunk_size)
            finally:
                self.stop_multi_process_pool(temporary)
        if device is not None and device != self._device:
            self.to(device)
        if pool is not None:
            from .multiprocess import encode_with_pool

            parts = encode_with_pool(pool, pairs, chunk_size, "logits",
                                     {"config": config, "prompt": prompt, "batch_size": batch_size})
            logits = np.concatenate(parts, 0) if parts else np.zeros((0, config.num_labels), np.float32)
        else:
            logits = self.logits(pairs, config, prompt=prompt, batch_size=batch_size,
                                 show_progress_bar=show_progress_bar)
        return self._activate(logits, config, activation_fn, apply_softmax)

    @staticmethod
    def _activate(logits: np.ndarray, config: RerankConfig, activation_fn: Any, apply_softmax: Any) -> np.ndarray:
        activation = activation_of(activation_fn) if activation_fn is not None else config.activation
        activation = ACTIVATIONS[activation] if isinstance(activation, str) else activation
        scores = np.asarray(activation(logits.astype(np.float64)), dtype=np.float64)
        if config.num_labels == 1 and scores.ndim > 1:
            scores = scores[:, 0]
        if apply_softmax and scores.ndim > 1:
            scores = _softmax(scores)
        return scores

    def _progress(self, show_progress_bar: bool | None) -> bool:
        if show_progress_bar is None:  # sentence-transformers: shown when its logger is at INFO or DEBUG
            return logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
        return bool(show_progress_bar)

    def predict(
        self,
        inputs: Any = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Any = None,
        apply_softmax: bool | None = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | list[str] | None = None,
        pool: dict | None = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> np.ndarray | float | list:
        """Scores of one pair (a scalar or a 1-D array of labels) or of a list of pairs."""
        if "sentences" in kwargs:  # sentence-transformers' old name of ``inputs``
            legacy = kwargs.pop("sentences")
            inputs = legacy if inputs is None else inputs
        if "activation_fct" in kwargs:
            legacy = kwargs.pop("activation_fct")
            activation_fn = legacy if activation_fn is None else activation_fn
        kwargs.pop("num_workers", None)  # deprecated no-op in sentence-transformers too
        check_extra_kwargs("predict", kwargs)
        refuse_tensor(convert_to_tensor)
        batch_size = positive_int("batch_size", batch_size)
        pairs, single = pair_batch(inputs)
        prompt = self._config.resolve_prompt(prompt, prompt_name)
        if not pairs:
            return np.array([], dtype=np.float32)
        scores = self._scores64(pairs, prompt=prompt, batch_size=batch_size,
                                show_progress_bar=self._progress(show_progress_bar), activation_fn=activation_fn,
                                apply_softmax=apply_softmax, device=device, pool=pool,
                                chunk_size=chunk_size).astype(np.float32)
        result: Any = scores if convert_to_numpy else list(scores)
        return result[0] if single else result

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        return_documents: bool = False,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Any = None,
        device: str | list[str] | None = None,
        pool: dict | None = None,
        chunk_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """Documents sorted by score for ``query``: [{'corpus_id', 'score'(, 'text')}], best first."""
        if self.num_labels != 1:
            raise InputValidationError(
                "CrossEncoder.rank() only works for models with num_labels=1. Use predict() with pairs instead."
            )
        if not isinstance(query, str):
            raise InputValidationError(f"query must be a string, got {type(query).__name__}.")
        if isinstance(documents, str) or not isinstance(documents, Sequence):
            raise InputValidationError("documents must be a list of strings, not one string.")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)):
            raise InputValidationError(f"top_k must be an integer or None, got {top_k!r}.")
        batch_size = positive_int("batch_size", batch_size)
        prompt = self._config.resolve_prompt(prompt, prompt_name)
        pairs, _ = pair_batch([(query, doc) for doc in documents]) if documents else ([], False)
        if not pairs:
            return []
        scores = self._scores64(pairs, prompt=prompt, batch_size=batch_size,
                                show_progress_bar=self._progress(show_progress_bar), activation_fn=activation_fn,
                                apply_softmax=False, device=device, pool=pool, chunk_size=chunk_size)
        results = [{"corpus_id": i, "score": float(s)} for i, s in enumerate(scores)]
        if return_documents:
            for item in results:
                item["text"] = documents[item["corpus_id"]]
        results.sort(key=lambda item: item["score"], reverse=True)
        return results[:top_k]

    # ----- pools --------------------------------------------------------------------------------------
    def start_multi_process_pool(self, target_devices: list[str] | None = None, processes: int | None = None) -> dict:
        """Start worker processes, each holding its own copy of the graph (see ``predict(..., pool=pool)``)."""
        from .multiprocess import start_pool

        if self._factory is None:
            raise InputValidationError("A multi-process pool needs a model opened from a folder, not built from parts.")
        return start_pool(self._factory, target_devices=target_devices, processes=processes)

    @staticmethod
    def stop_multi_process_pool(pool: dict) -> None:
        from .multiprocess import stop_pool

        stop_pool(pool)
