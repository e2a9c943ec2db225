"""Embedding quantization (float32 / int8 / uint8 / binary / ubinary) with ST's buckets and bit packing."""

from __future__ import annotations

import logging

import numpy as np

from .errors import InputValidationError

logger = logging.getLogger(__name__)

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise InputValidationError(f"Precision {precision!r} is not supported; choose one of {PRECISIONS}.")
    return precision


def quantize_embeddings(
    embeddings: np.ndarray | list[np.ndarray],
    precision: str,
    ranges: np.ndarray | None = None,
    calibration_embeddings: np.ndarray | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Quantize float embeddings exactly as ``sentence_transformers.quantize_embeddings`` does."""
    check_precision(precision)
    if isinstance(embeddings, list):
        if not embeddings:
            return []
        if isinstance(embeddings[0], np.ndarray) and embeddings[0].ndim == 2:
            if precision.endswith("int8") and ranges is None:
                try:
                    data = np.concatenate(embeddings, 0) if calibration_embeddings is None else calibration_embeddings
                except ValueError as exc:
                    raise InputValidationError(f"The embedding matrices do not share one dimension: {exc}") from exc
                if len(data):
                    ranges = _ranges(_numeric("embeddings", data), precision, calibration_embeddings)
            return [quantize_embeddings(m, precision, ranges, calibration_embeddings) for m in embeddings]
        embeddings = _numeric("embeddings", embeddings)
    embeddings = _numeric("embeddings", embeddings)
    if embeddings.dtype in (np.uint8, np.int8):
        raise InputValidationError("Embeddings to quantize must be float rather than int8 or uint8.")
    if embeddings.ndim not in (1, 2):
        raise InputValidationError(f"Embeddings must have shape (n, dim) or (dim,), got {embeddings.shape}.")
    if precision.endswith("int8") and ranges is not None:
        ranges = _numeric("ranges", ranges)
        if ranges.shape != (2, embeddings.shape[-1]):
            raise InputValidationError(
                f"ranges must have shape (2, {embeddings.shape[-1]}) (per-dimension min and max), got {ranges.shape}."
            )
    if precision.endswith("int8") and ranges is None and calibration_embeddings is not None:
        calibration_embeddings = _numeric("calibration_embeddings", calibration_embeddings)
        if calibration_embeddings.ndim != 2 or len(calibration_embeddings) == 0 or \
                calibration_embeddings.shape[1] != embeddings.shape[-1]:
            raise InputValidationError(
                f"calibration_embeddings must have shape (n >= 1, {embeddings.shape[-1]}), got "
                f"{calibration_embeddings.shape}."
            )
    if embeddings.ndim == 2 and embeddings.shape[0] == 0:
        dim = embeddings.shape[1]
        if precision.endswith("int8"):
            return np.zeros((0, dim), dtype=np.int8 if precision == "int8" else np.uint8)
        if precision.endswith("binary"):
            return np.zeros((0, (dim + 7) // 8), dtype=np.int8 if precision == "binary" else np.uint8)
    if precision == "float32":
        return embeddings.astype(np.float32)
    if precision.endswith("int8"):
        if ranges is None:
            ranges = _ranges(embeddings, precision, calibration_embeddings)
        ranges = np.asarray(ranges).astype(np.float32, copy=False)
        starts = ranges[0, :]
        steps = (ranges[1, :] - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        q_vals = np.clip(np.floor((embeddings - starts) / steps), 0, 255)
        return q_vals.astype(np.uint8) if precision == "uint8" else (q_vals - 128).astype(np.int8)
    if precision == "binary":
        return (np.packbits(embeddings > 0, axis=-1) - 128).astype(np.int8)
    return np.packbits(embeddings > 0, axis=-1)


def _numeric(name: str, value) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError as exc:
        raise InputValidationError(f"{name} must form a regular numeric array: {exc}") from exc
    if array.dtype.kind not in "fiub":
        raise InputValidationError(f"{name} must be numeric, got an array of {array.dtype}.")
    return array


def _ranges(embeddings: np.ndarray, precision: str, calibration: np.ndarray | None) -> np.ndarray:
    if calibration is not None:
        data = np.asarray(calibration)
    else:
        if embeddings.ndim < 2 or embeddings.shape[0] < 2:
            raise InputValidationError(
                f"Cannot compute {precision} buckets from a single embedding. Pass `ranges` or "
                "`calibration_embeddings` from a representative set of embeddings."
            )
        if embeddings.shape[0] < 100:
            logger.warning(
                "Computing %s quantization buckets based on %d embeddings; pass calibration_embeddings for stable buckets.",
                precision, len(embeddings),
            )
        data = embeddings
    return np.vstack((np.min(data, axis=0), np.max(data, axis=0)))
