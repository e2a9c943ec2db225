"""Torch-free ``CrossEncoder``: predict and rank with sentence-transformers' arguments and results."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from .bundle import Bundle
from .engine import GraphRunner
from .errors import InputValidationError
from .inputs import pair_batch, positive_int
from .loading import AutoPolicy, build_runner
from .manifest import Manifest
from .model_base import RunnerModel
from .sentence_transformer import DEFAULT_BATCH_TOKENS

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


class CrossEncoder(RunnerModel):
    """Score text pairs with an exported cross-encoder bundle (``st-runtime export`` of a CrossEncoder).

    Activations are computed in float64, so strong matches do not all tie at 1.0; ``predict`` returns
    float32 like sentence-transformers, and ``rank`` orders by the float64 scores.
    """

    def __init__(self, model_name_or_path: str | Path, *, variant: str | None = None, device: str | None = None,
                 threads: int | None = None, verify: bool = True, allow_batch_dependent: bool = False,
                 min_retention: float | None = None, min_top10: float | None = None) -> None:
        self.bundle = Bundle.open(model_name_or_path, expected_kind="cross-encoder", verify=verify)
        policy = AutoPolicy(allow_batch_dependent, min_retention, min_top10)  # only variant="auto" reads it
        self.variant, runner = build_runner(self.bundle, variant, device, threads, policy)
        self._init(runner, self.bundle.manifest, device)

    @classmethod
    def from_parts(cls, runner: GraphRunner, manifest: Manifest, device: str | None = None) -> "CrossEncoder":
        self = cls.__new__(cls)
        self.bundle, self.variant = None, manifest.default_variant
        self._init(runner, manifest, device)
        return self

    def _init(self, runner: GraphRunner, manifest: Manifest, device: str | None) -> None:
        self.manifest = manifest
        self._runner = runner
        self._device = device or "cpu"
        self.num_labels = manifest.cross_encoder.num_labels
        self.labels = list(manifest.cross_encoder.labels)
        self.activation_fn_name = manifest.cross_encoder.activation

    max_length = RunnerModel.max_seq_length

    def __repr__(self) -> str:
        return f"CrossEncoder({self._where()!r}, variant={self.variant!r}, num_labels={self.num_labels})"

    def _activation(self, activation_fn: str | Callable | None) -> Callable[[np.ndarray], np.ndarray]:
        if activation_fn is None:
            return ACTIVATIONS[self.activation_fn_name]
        if isinstance(activation_fn, str):
            if activation_fn not in ACTIVATIONS:
                raise InputValidationError(f"Unknown activation {activation_fn!r}; choose one of {sorted(ACTIVATIONS)}.")
            return ACTIVATIONS[activation_fn]
        if callable(activation_fn):
            return activation_fn
        raise InputValidationError(f"activation_fn must be None, a name or a callable, got {activation_fn!r}.")

    def _scores64(self, pairs, batch_size, show_progress_bar, activation_fn, apply_softmax) -> np.ndarray:
        logits = np.zeros((len(pairs), self.num_labels), dtype=np.float32)
        bar = tqdm(total=len(pairs), desc="Batches", unit="pair", disable=not show_progress_bar)
        for indices, _, outputs in self._runner.iter_batches(pairs, batch_size, DEFAULT_BATCH_TOKENS):
            logits[indices] = outputs["logits"]
            bar.update(len(indices))
        bar.close()
        scores = np.asarray(self._activation(activation_fn)(logits.astype(np.float64)), dtype=np.float64)
        if self.num_labels == 1 and scores.ndim > 1:
            scores = scores[:, 0]
        if apply_softmax and scores.ndim > 1:
            scores = _softmax(scores)
        return scores

    def predict(
        self,
        sentences: Any,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: str | Callable | None = None,
        apply_softmax: bool | None = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
    ) -> np.ndarray | float | list:
        """Scores of one pair (a scalar or a 1-D array of labels) or of a list of pairs."""
        if convert_to_tensor:
            raise InputValidationError(
                "convert_to_tensor=True needs torch, which st-runtime does not use; results are numpy arrays."
            )
        batch_size = positive_int("batch_size", batch_size)
        pairs, single = pair_batch(sentences)
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG) and len(pairs) > batch_size
        if not pairs:
            return np.array([], dtype=np.float32)
        scores = self._scores64(pairs, batch_size, show_progress_bar, activation_fn, apply_softmax).astype(np.float32)
        result: Any = scores if convert_to_numpy else list(scores)
        return result[0] if single else result

    def rank(
        self,
        query: str,
        documents: list[str],
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: str | Callable | None = None,
    ) -> list[dict[str, Any]]:
        """Documents sorted by score for ``query``: [{'corpus_id', 'score'(, 'text')}], best first."""
        if self.num_labels != 1:
            raise InputValidationError(
                "CrossEncoder.rank() only works for models with num_labels=1. Use predict() with pairs instead."
            )
        if not isinstance(query, str):
            raise InputValidationError(f"query must be a string, got {type(query).__name__}.")
        if isinstance(documents, str):
            raise InputValidationError("documents must be a list of strings, not one string.")
        pairs, _ = pair_batch([(query, doc) for doc in documents]) if documents else ([], False)
        if not pairs:
            return []
        scores = self._scores64(pairs, positive_int("batch_size", batch_size), bool(show_progress_bar),
                                activation_fn, False)
        results = [{"corpus_id": i, "score": float(s)} for i, s in enumerate(scores)]
        if return_documents:
            for item in results:
                item["text"] = documents[item["corpus_id"]]
        results.sort(key=lambda item: item["score"], reverse=True)
        return results[:top_k]
