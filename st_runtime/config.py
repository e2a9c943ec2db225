"""The one immutable configuration every encode path receives.

A model owns one ``EncodeConfig`` (bi-encoders) or ``RerankConfig`` (cross-encoders): every setting that changes a
result. The single-process engine, pool workers, device moves, ``embed``, ``evaluate`` and the server all take the
whole object, never a hand-picked subset of its fields; changing any setting (``model.max_seq_length = 16``,
``model.truncate_dim = 64``) makes a new configuration. Both are frozen, hashable-free plain data and pickle cleanly
(pool workers receive them with every chunk).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .errors import InputValidationError
from .long_text import check_long_text
from .quantization import PRECISIONS, quantize_embeddings
from .similarity import resolve_similarity_name

logger = logging.getLogger(__name__)

# Padded tokens per graph call. Measured with ``python -m benchmarks.token_budget`` (README, "Token budget"): on
# all-MiniLM-L6-v2 and the 12-layer base shape, calls of ~1024 tokens ran passages faster than calls of 4096 (the
# attention and FFN buffers of one call stay in cache) and peaked lower; a variant may record its own budget.
DEFAULT_BATCH_TOKENS = 1024
# What size-oriented variants (onnx-int8-wo) record: at the same speed, a lower peak (MiniLM: 148 MB vs 171 MB).
SMALL_BATCH_TOKENS = 512
_LATE_INTERACTION = ("maxsim", "meanmaxsim")


class FrozenDict(dict):
    """A dict that refuses changes (prompts inside a frozen configuration); pickles as a plain mapping."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise InputValidationError(
            "A model's configuration is immutable; set model.prompts = {...} (a new configuration) instead."
        )

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self):
        return FrozenDict, (dict(self),)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


def variant_batch_tokens(manifest: Any, variant: str | None) -> int | None:
    """The token budget a variant runs with by default: its manifest's ``settings.max_batch_tokens`` (size variants
    record a smaller one, for a lower peak memory), else ``DEFAULT_BATCH_TOKENS``."""
    spec = manifest.variants.get(variant) if variant is not None else None
    value = spec.settings.get("max_batch_tokens") if spec is not None else None
    return _optional_positive("max_batch_tokens", value) if value is not None else DEFAULT_BATCH_TOKENS


def _optional_positive(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputValidationError(f"{name} must be a positive integer or None, got {value!r}.")
    return int(value)


def _prompts(value: Any) -> FrozenDict:
    if value is None:
        return FrozenDict()
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InputValidationError(f"prompts must be a dict of name -> prompt text (strings), got {value!r}.")
    return FrozenDict(value)


def resolve_prompt(prompts: Mapping[str, str], default_prompt_name: str | None, prompt: str | None,
                   prompt_name: str | None) -> str | None:
    """The prompt text a call uses, with sentence-transformers' precedence: ``prompt`` wins over ``prompt_name``,
    which wins over the default prompt."""
    if prompt is not None and not isinstance(prompt, str):
        raise InputValidationError(f"prompt must be a string or None, got {type(prompt).__name__}.")
    if prompt is None:
        if prompt_name is not None:
            if not isinstance(prompt_name, str) or prompt_name not in prompts:
                raise InputValidationError(
                    f"Prompt name {prompt_name!r} not found in the configured prompts dictionary with keys "
                    f"{list(prompts)!r}. Pass prompts={{...}} when loading, or use prompt='...'."
                )
            return prompts[prompt_name]
        if default_prompt_name is not None:
            return prompts.get(default_prompt_name)
    elif prompt_name is not None:
        logger.warning("Provide either a `prompt` or a `prompt_name`, not both. Ignoring `prompt_name`.")
    return prompt


def merge_prompts(saved: Mapping[str, str], given: Any) -> dict[str, str]:
    """The saved prompts updated with the caller's (checked to be a dict of strings)."""
    merged = dict(saved)
    merged.update(_prompts(given))
    return merged


def _check_default_prompt(prompts: Mapping[str, str], name: str | None) -> None:
    if name is not None and not isinstance(name, str):
        raise InputValidationError(f"default_prompt_name must be a string or None, got {name!r}.")
    if name is not None and name not in prompts:
        raise InputValidationError(
            f"Default prompt name {name!r} not found in the configured prompts dictionary with keys {list(prompts)!r}."
        )


@dataclass(frozen=True)
class EncodeConfig:
    """Every setting that changes a bi-encoder's result.

    ``ranges`` are the int8/uint8 quantization buckets (shape (2, dim): per-dimension min and max, as
    ``quantize_embeddings(..., ranges=...)`` takes them); None means sentence-transformers' default of computing them
    from the embeddings being quantized. ``max_batch_tokens`` caps each batch's padded tokens (None: no cap).
    ``max_active_dims`` (SparseEncoder: keep that many largest dimensions) and ``task`` (a Router route or a
    multi-vector side: 'query', 'document') are read only by the sparse and multi-vector encoders.
    ``long_text`` says what happens to a text past max_seq_length: "truncate" (sentence-transformers' behaviour) or
    "chunk" (overlapping windows ``chunk_stride`` tokens apart, pooled with ``chunk_pooling``; see
    ``st_runtime.long_text``).
    """

    prompts: Mapping[str, str] = field(default_factory=FrozenDict)
    default_prompt_name: str | None = None
    include_prompt: bool = True
    max_seq_length: int | None = None
    truncate_dim: int | None = None
    normalize: bool = False
    precision: str = "float32"
    ranges: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    max_batch_tokens: int | None = DEFAULT_BATCH_TOKENS
    similarity_fn_name: str = "cosine"
    max_active_dims: int | None = None
    task: str | None = None
    long_text: str = "truncate"
    chunk_stride: int | None = None
    chunk_pooling: str = "mean"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        mode, stride, pooling = check_long_text(self.long_text, self.chunk_stride, self.chunk_pooling)
        set_(self, "chunk_stride", stride)
        set_(self, "prompts", _prompts(self.prompts))
        _check_default_prompt(self.prompts, self.default_prompt_name)
        set_(self, "max_seq_length", _optional_positive("max_seq_length", self.max_seq_length))
        set_(self, "max_active_dims", _optional_positive("max_active_dims", self.max_active_dims))
        if self.task is not None and not isinstance(self.task, str):
            raise InputValidationError(f"task must be a route name such as 'query' or 'document', got {self.task!r}.")
        set_(self, "truncate_dim", _optional_positive("truncate_dim", self.truncate_dim))
        set_(self, "max_batch_tokens", _optional_positive("max_batch_tokens", self.max_batch_tokens))
        if self.precision not in PRECISIONS:
            raise InputValidationError(f"Precision {self.precision!r} is not supported; choose one of {PRECISIONS}.")
        if self.similarity_fn_name not in _LATE_INTERACTION:  # MultiVectorEncoder's own names stay as they are
            set_(self, "similarity_fn_name", resolve_similarity_name(self.similarity_fn_name))
        set_(self, "normalize", bool(self.normalize))
        set_(self, "include_prompt", bool(self.include_prompt))
        if self.ranges is not None:
            array = np.asarray(self.ranges, dtype=np.float64)
            if array.ndim != 2 or array.shape[0] != 2 or not np.isfinite(array).all():
                raise InputValidationError(
                    f"ranges must be finite, of shape (2, dim) (per-dimension min and max), got shape {array.shape}."
                )
            set_(self, "ranges", (tuple(map(float, array[0])), tuple(map(float, array[1]))))

    def replace(self, **changes: Any) -> "EncodeConfig":
        """A new configuration with ``changes`` applied (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InputValidationError(f"EncodeConfig has no settings {sorted(unknown)}.")
        return dataclasses.replace(self, **changes)

    def resolve_prompt(self, prompt: str | None = None, prompt_name: str | None = None) -> str | None:
        return resolve_prompt(self.prompts, self.default_prompt_name, prompt, prompt_name)

    def quantize(self, embeddings: np.ndarray) -> np.ndarray:
        """``embeddings`` at this configuration's precision, with its stored ranges when it has them."""
        if self.precision == "float32":
            return np.asarray(embeddings, dtype=np.float32)
        if not len(embeddings):
            return quantize_embeddings(embeddings, self.precision)
        ranges = np.asarray(self.ranges, dtype=np.float32) if self.ranges is not None else None
        if ranges is not None and ranges.shape[1] != embeddings.shape[-1]:
            raise InputValidationError(
                f"The stored quantization ranges are for dimension {ranges.shape[1]}, the embeddings have "
                f"{embeddings.shape[-1]}; compute ranges for this truncate_dim."
            )
        return quantize_embeddings(embeddings, self.precision, ranges=ranges)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored next to ``embed`` outputs, compared on resume)."""
        data = dataclasses.asdict(self)
        data["prompts"] = dict(self.prompts)
        data["ranges"] = [list(r) for r in self.ranges] if self.ranges is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EncodeConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


Activation = str | Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RerankConfig:
    """Every setting that changes a cross-encoder's scores.

    ``activation`` is a name ('sigmoid', 'identity', 'softmax', 'tanh', 'relu') or a numpy callable applied to the
    float64 logits; ``max_length`` truncates each (query, document) pair; prompts are prepended to the query (the
    first text of each pair), as sentence-transformers does.
    """

    num_labels: int = 1
    activation: Activation = "sigmoid"
    max_length: int | None = None
    prompts: Mapping[str, str] = field(default_factory=FrozenDict)
    default_prompt_name: str | None = None
    max_batch_tokens: int | None = DEFAULT_BATCH_TOKENS

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "prompts", _prompts(self.prompts))
        _check_default_prompt(self.prompts, self.default_prompt_name)
        set_(self, "max_length", _optional_positive("max_length", self.max_length))
        set_(self, "max_batch_tokens", _optional_positive("max_batch_tokens", self.max_batch_tokens))
        labels = _optional_positive("num_labels", self.num_labels)
        set_(self, "num_labels", labels)
        if not (callable(self.activation) or isinstance(self.activation, str)):
            raise InputValidationError(f"activation must be a name or a callable, got {self.activation!r}.")

    def replace(self, **changes: Any) -> "RerankConfig":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InputValidationError(f"RerankConfig has no settings {sorted(unknown)}.")
        return dataclasses.replace(self, **changes)

    def resolve_prompt(self, prompt: str | None = None, prompt_name: str | None = None) -> str | None:
        return resolve_prompt(self.prompts, self.default_prompt_name, prompt, prompt_name)
