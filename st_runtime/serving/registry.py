"""The served models: how a bundle is opened, what kind of model it is, and how one merged call runs.

Each model gets a ``ServedModel`` (its settings summary, its ``DynamicBatcher``). What differs between model
families lives in a ``ModelKind``: which models it matches, the ``/v1/models`` fields, and ``run`` (one merged
inference call on already-tokenized rows, in the batcher's worker thread). New families (sparse, multi-vector)
add a ``ModelKind`` with ``register_kind`` and an adapter module with their routes; nothing else changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .batcher import DynamicBatcher
from .config import ServeConfig
from .errors import ApiError, invalid, shown
from .metrics import Metrics

Row = tuple[list[int], list[int]]  # token ids, token type ids (truncated, special tokens included, not padded)


# ----- opening bundles --------------------------------------------------------------------------------------
def parse_model_arg(arg: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` (the name is then the folder's name) -> (name, path)."""
    if "=" in arg and not Path(arg).expanduser().exists():
        name, _, path = arg.partition("=")
        if name and path and "/" not in name:
            return name, path
    path = Path(arg).expanduser()
    return (path.name or path.resolve().name), arg


def load_model(path: str | Path, *, variant: str | None = None, device: str | None = None,
               threads: int | None = None, **auto_policy: Any) -> Any:
    """Open a bundle as the class its manifest names; ``auto_policy`` (``allow_batch_dependent``,
    ``min_retention``, ``min_top10``) constrains ``variant="auto"`` as in the Python API."""
    from ..model_kinds import open_model

    return open_model(path, variant=variant, device=device, threads=threads, **auto_policy)


# The route that serves each model kind whose results the dense endpoints cannot return.
OWN_ROUTE = {"sparse": "/embed_sparse", "multi-vector": "/embed_multi_vector"}


# ----- model kinds ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelKind:
    """What one model family needs from the core.

    ``run(served, key, texts, rows)`` is one merged call: ``texts`` are the inputs as sent (strings or pairs),
    ``rows`` their token rows, ``key`` what they share (the prompt); it returns one result row per input.
    """

    name: str
    matches: Callable[[Any], bool]
    run: Callable[["ServedModel", Any, list, list[Row]], Any]
    info: Callable[["ServedModel"], dict[str, Any]]
    pairs: bool = False  # inputs are (query, document) pairs


def _is_reranker(model: Any) -> bool:
    from ..cross_encoder import CrossEncoder

    return isinstance(model, CrossEncoder) or (hasattr(model, "predict") and not hasattr(model, "encode"))


def engine_config(served: "ServedModel") -> Any:
    """The model's own immutable configuration, handed whole to the engine; its token budget per graph call is the
    model's own (the size of call it runs fastest with) or the server's ``--max-batch-tokens`` when that is smaller.
    Cached while the model's configuration stays the same object."""
    base = served.model.config
    cached = served._engine_config
    if cached is None or cached[0] is not base:
        budgets = [b for b in (served.config.max_batch_tokens, base.max_batch_tokens) if b]
        budget = min(budgets) if budgets else None
        cached = (base, base.replace(max_batch_tokens=budget) if base.max_batch_tokens != budget else base)
        served._engine_config = cached
    return cached[1]


def _run_embedding(served: "ServedModel", prompt: Any, texts: list, rows: list[Row]) -> np.ndarray:
    model, cfg = served.model, served.config
    if hasattr(model, "encode_rows") and hasattr(model, "config"):
        # One tokenization: the engine runs on the rows the server made (prompt already prepended).
        config = engine_config(served)
        chunk = getattr(config, "long_text", "truncate") == "chunk"
        length = model.tokenizer.prompt_length(prompt) if prompt and (chunk or not config.include_prompt) else 0
        head = {"head_length": length if prompt else None} if chunk else {}  # windows repeat the prompt
        return np.asarray(model.encode_rows(rows, config, prompt_length=0 if config.include_prompt else length,
                                            batch_size=cfg.max_batch_size, **head), dtype=np.float32)
    return np.asarray(model.encode(texts, prompt=prompt or None, batch_size=cfg.max_batch_size,
                                   max_batch_tokens=cfg.max_batch_tokens), dtype=np.float32)


def _run_rerank(served: "ServedModel", prompt: Any, pairs: list, rows: list[Row]) -> np.ndarray:
    # Logits, float32; the activation runs in float64 afterwards, exactly as CrossEncoder.rank does.
    model, cfg = served.model, served.config
    if hasattr(model, "logits_rows") and hasattr(model, "config"):
        return np.asarray(model.logits_rows(rows, engine_config(served), batch_size=cfg.max_batch_size),
                          dtype=np.float32)
    kwargs = {"prompt": prompt} if prompt else {}
    return np.asarray(model.predict(pairs, batch_size=cfg.max_batch_size, activation_fn="identity", **kwargs),
                      dtype=np.float32)


def _embedding_info(served: "ServedModel") -> dict[str, Any]:
    model = served.model
    embedding = getattr(getattr(model, "manifest", None), "embedding", None)
    return {"dimensions": int(model.get_embedding_dimension()), "normalized": bool(getattr(embedding, "normalized",
                                                                                            False)),
            "similarity_fn_name": model.similarity_fn_name, "prompts": sorted(model.prompts)}


def _rerank_info(served: "ServedModel") -> dict[str, Any]:
    return {"num_labels": int(served.model.num_labels)}


EMBEDDING = ModelKind("embedding", lambda m: hasattr(m, "encode") and hasattr(m, "get_embedding_dimension"),
                      _run_embedding, _embedding_info)
RERANK = ModelKind("rerank", _is_reranker, _run_rerank, _rerank_info, pairs=True)
_KINDS: list[ModelKind] = [RERANK, EMBEDDING]


def register_kind(kind: ModelKind) -> None:
    """Add a model family; it is tried before the built-in ones (more specific classes first)."""
    _KINDS[:] = [k for k in _KINDS if k.name != kind.name]
    _KINDS.insert(0, kind)


def kind_of(model: Any) -> ModelKind:
    for kind in _KINDS:
        if kind.matches(model):
            return kind
    from ..errors import InputValidationError

    raise InputValidationError(f"Cannot serve {type(model).__name__}: it is none of {[k.name for k in _KINDS]}.")


# ----- one served model -------------------------------------------------------------------------------------
class ServedModel:
    """A loaded model with its batcher; tokenizes requests once and runs merged calls on the rows."""

    def __init__(self, name: str, model: Any, config: ServeConfig, metrics: Metrics) -> None:
        self.name = name
        self.model = model
        self.config = config
        self.family = kind_of(model)
        self.kind = self.family.name
        self.created = int(time.time())
        self._engine_config: tuple[Any, Any] | None = None
        self.batcher = DynamicBatcher(
            self._run, max_batch_size=config.max_batch_size, max_batch_tokens=config.max_batch_tokens,
            wait_ms=config.batch_wait_ms, name=name,
            on_batch=lambda inputs, jobs, seconds: metrics.observe_batch(name, inputs, jobs, seconds),
        )
        if self.kind == "embedding":
            info = _embedding_info(self)
            self.dimension, self.normalized = info["dimensions"], info["normalized"]
        elif self.kind == "rerank":
            from ..cross_encoder import ACTIVATIONS

            self.num_labels = int(model.num_labels)
            activation = model.activation_fn  # a name from ACTIVATIONS, or the user's own numpy callable
            self.activation = ACTIVATIONS[activation] if isinstance(activation, str) else activation

    def info(self) -> dict[str, Any]:
        item: dict[str, Any] = {"id": self.name, "object": "model", "created": self.created, "owned_by": "st-runtime",
                                "kind": self.kind, "max_seq_length": self.model.max_seq_length}
        item.update(self.family.info(self))
        return item

    def resolve_prompt(self, prompt_name: Any) -> str:
        """The prompt text ``encode(prompt_name=...)`` would use ('' for none), or a 422."""
        prompts = getattr(self.model, "prompts", {})
        if prompt_name is None:
            default = getattr(self.model, "default_prompt_name", None)
            return prompts.get(default, "") if default is not None else ""
        if not isinstance(prompt_name, str):
            raise invalid(f"'prompt_name' must be a string, got {type(prompt_name).__name__}.", "prompt_name",
                          "invalid_type")
        if prompt_name not in prompts:
            raise invalid(f"Unknown prompt_name {shown(prompt_name)}; this model has {sorted(prompts)}.",
                          "prompt_name")
        return prompts[prompt_name]

    def tokenize(self, items: Sequence, prompt: str = "", truncate: bool = True,
                 param: str = "input") -> list[Row]:
        """Token rows of each text (prompt prepended) or pair, as the model sees them; with ``truncate=False`` an
        input longer than max_seq_length is a 413 instead of being cut. Runs in a thread (tokenizers is GIL-free)."""
        tokenizer = self.model.tokenizer
        batch = [_with_prompt(prompt, t) for t in items] if prompt else list(items)
        if getattr(getattr(self.model, "config", None), "long_text", "truncate") == "chunk":
            return tokenizer.with_max_length(None).encode(batch)  # --long-text chunk: the model cuts windows
        if truncate or tokenizer.max_seq_length is None:
            return tokenizer.encode(batch)
        rows, cut = tokenizer.encode_checked(batch)
        if any(cut):
            index = cut.index(True)
            raise ApiError(413, f"'{param}[{index}]' is longer than the model's max_seq_length "
                                f"({tokenizer.max_seq_length} tokens). Send \"truncate\": true to cut it, as "
                                "sentence-transformers does, or start the server with --auto-truncate.",
                           "input_too_long", param=param)
        return rows

    def _run(self, key: Any, items: list) -> Any:
        """One merged call (worker thread): ``items`` are (input, row) pairs from the queued jobs."""
        return self.family.run(self, key, [text for text, _ in items], [row for _, row in items])

    def warm_up(self) -> None:
        """One tiny call, so the first real request does not pay for lazy initialization."""
        item: Any = ("warm up", "warm up") if self.family.pairs else "warm up"
        rows = self.tokenize([item])
        self._run(None, [(item, rows[0])])


def _with_prompt(prompt: str, item: Any) -> Any:
    """The prompt before a text, or before the first text of a pair (as sentence-transformers' CrossEncoder does)."""
    return (prompt + item[0], item[1]) if isinstance(item, tuple) else prompt + item


class ModelRegistry:
    """Name -> ServedModel, with the lookup rules every adapter uses."""

    def __init__(self, models: Mapping[str, Any], config: ServeConfig, metrics: Metrics) -> None:
        from ..errors import InputValidationError

        if not models:
            raise InputValidationError("Serve at least one model.")
        self.models = {name: ServedModel(name, model, config, metrics) for name, model in models.items()}

    def __iter__(self):
        return iter(self.models.values())

    def get(self, name: Any) -> ServedModel:
        if not isinstance(name, str) or name not in self.models:
            raise ApiError(404, f"The model {shown(name)} does not exist; served models: {sorted(self.models)}.",
                           "model_not_found", param="model")
        return self.models[name]

    def model_for(self, body: dict, kind: str) -> ServedModel:
        """The model named by ``body['model']`` (or the only one of ``kind``), checked to be of ``kind``."""
        name = body.get("model")
        of_kind = [m for m in self.models.values() if m.kind == kind]
        what = {"embedding": "embedding", "rerank": "reranker (cross-encoder)"}.get(kind, kind)
        if name is None:
            if len(of_kind) == 1:
                return of_kind[0]
            others = [m for m in self.models.values() if m.kind in OWN_ROUTE]
            if not of_kind and kind == "embedding" and others:
                names = [m.name for m in others]
                kinds = " / ".join(dict.fromkeys(f"{m.kind} models" for m in others))
                routes = " or ".join(dict.fromkeys(f"POST {OWN_ROUTE[m.kind]}" for m in others))
                raise ApiError(400, f"No dense embedding model is served here: {names} are {kinds}, whose "
                                    f"embeddings this endpoint cannot return. Use {routes}.",
                               "wrong_model_kind", param="model")
            if not of_kind:
                raise ApiError(404, f"No {what} model is served here.", "model_not_found", param="model")
            raise invalid(f"'model' is required: this server has several {what} models "
                          f"({', '.join(m.name for m in of_kind)}).", "model", "missing_field")
        if not isinstance(name, str):
            raise invalid(f"'model' must be a string, got {type(name).__name__}.", "model", "invalid_type")
        served = self.get(name)
        if served.kind != kind:
            hint = f" {served.kind.capitalize()} models answer POST {OWN_ROUTE[served.kind]}." \
                if served.kind in OWN_ROUTE else ""
            raise ApiError(400, f"The model {name!r} is a {served.kind} model, not an {what} model;{hint} "
                                f"{what} models here: {[m.name for m in of_kind]}.", "wrong_model_kind", param="model")
        return served


def token_details(served: ServedModel, texts: Sequence[str], prompt: str = "", truncate: bool = True,
                  param: str = "inputs") -> list[list[tuple[int, str, bool, int | None, int | None]]]:
    """(id, text, special, start, stop) of every token of each text, as the model sees it (``POST /tokenize``)."""
    served.tokenize(texts, prompt, truncate, param)  # the same over-length check
    full = [prompt + t for t in texts]
    out = []
    for text, enc in zip(full, served.model.tokenizer.encodings(full)):
        tokens = []
        for token_id, mask, (start, stop) in zip(enc.ids, enc.special_tokens_mask, enc.offsets):
            special = bool(mask)
            tokens.append((int(token_id), "" if special else text[start:stop], special,
                           None if special else int(start), None if special else int(stop)))
        out.append(tokens)
    return out
