"""Run a bundle's text-in graph (``--with-tokenizer``): strings in, sentence embeddings (or, for a cross-encoder,
pairs of strings in, scores) out, no Python tokenizer.

The graph itself needs only ``onnxruntime`` + ``onnxruntime_extensions`` (``.text.onnx``) or ``openvino`` +
``openvino_tokenizers`` (``.text.xml``); this wrapper adds the bundle's checksums and a typed error for non-string
input (the graph would fail with an opaque message).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .backends import text_graph_runner
from .bundle import Bundle
from .errors import InputTypeError, InputValidationError
from .inputs import positive_int

__all__ = ["TextGraph"]


class TextGraph:
    """The text-in graph of one variant of a bundle."""

    def __init__(self, bundle: str | Path, variant: str | None = None, *, prompt_name: str | None = None,
                 verify: bool | str = True) -> None:
        """``prompt_name`` picks the graph with that prompt inside (None: the default graph, which has the bundle's
        default prompt inside when it has one)."""
        opened = Bundle.open(bundle, verify="all" if verify is True else verify)
        manifest = opened.manifest
        with_text = [n for n, v in manifest.variants.items() if v.settings.get("text_graph")]
        name = variant or (with_text[0] if with_text else None)
        if name is None or name not in with_text:
            raise InputValidationError(
                f"{opened.root} has no text-in graph{' for variant ' + repr(variant) if variant else ''} "
                f"(variants with one: {with_text or 'none'}). Add one with "
                f"`st-runtime quantize {opened.root} --with-tokenizer {variant or ''}`.")
        self.variant = name
        self.kind = manifest.kind
        self.settings = dict(manifest.variants[name].settings["text_graph"])
        by_name = dict(self.settings.get("prompts") or {})
        if self.settings.get("prompt_name") is not None:
            by_name.setdefault(self.settings["prompt_name"], self.settings)
        prompts = manifest.embedding if manifest.embedding is not None else manifest.sparse
        if not self.settings.get("prompt") and prompts is not None:  # empty prompts: the plain graph
            by_name.update({n: self.settings for n, text in prompts.prompts.items() if not text})
        if prompt_name is not None:
            if prompt_name not in by_name:
                raise InputValidationError(
                    f"Variant {name!r} has no text-in graph for prompt {prompt_name!r} (graphs with a prompt: "
                    f"{sorted(by_name) or 'none'}).")
            self.settings = dict(by_name[prompt_name])
        self.prompt_name = prompt_name if prompt_name is not None else self.settings.get("prompt_name")
        self.path = opened.root / self.settings["file"]
        self._run = text_graph_runner(self.path, self.settings.get("inference_precision", "f32"))

    def _batched(self, columns: list[list[str]], batch_size: int) -> np.ndarray:
        """Run the graph on batches of ``batch_size`` rows taken longest first (as ``encode`` batches, so that texts
        of similar length share a batch and little padding is run), results back in input order."""
        batch_size = positive_int("batch_size", batch_size)
        order = np.argsort([-sum(len(col[i]) for col in columns) for i in range(len(columns[0]))], kind="stable")
        parts = []
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            parts.append(np.asarray(self._run([np.array([col[i] for i in rows], dtype=object) for col in columns]),
                                    dtype=np.float32))
        out = np.concatenate(parts)
        result = np.empty_like(out)
        result[order] = out
        return result

    def encode(self, texts: str | Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(n, dim) float32 embeddings of ``texts`` (one string gives one row of a (1, dim) array); a SparseEncoder's
        graph gives its dense vocabulary-sized activation (``scipy.sparse.csr_array(result)`` makes it sparse)."""
        if self.kind == "cross-encoder":
            raise InputValidationError("This is a cross-encoder's text graph: score (query, document) pairs with "
                                       "predict(pairs).")
        batch = [texts] if isinstance(texts, str) else texts
        if not isinstance(batch, (list, tuple)):
            raise InputTypeError(f"A text-in graph takes a string or a list of strings, not {type(texts).__name__}.")
        for i, text in enumerate(batch):
            if not isinstance(text, str):
                raise InputTypeError(f"Input {i} is {type(text).__name__} ({text!r:.40}), not a string: a text-in "
                                     "graph embeds strings only.")
        if not batch:
            return np.zeros((0, 0), dtype=np.float32)
        return self._batched([list(batch)], batch_size)

    def predict(self, pairs: Sequence[Sequence[str]], batch_size: int = 32) -> np.ndarray:
        """Scores of (query, document) pairs, as ``CrossEncoder.predict`` gives them (activation applied): shape (n,)
        for one label, (n, num_labels) otherwise."""
        if self.kind != "cross-encoder":
            raise InputValidationError("This is a bi-encoder's text graph: embed strings with encode(texts).")
        if isinstance(pairs, tuple) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs):
            pairs = [pairs]
        if not isinstance(pairs, (list, tuple)):
            raise InputTypeError(f"predict takes a list of (query, document) pairs, not {type(pairs).__name__}.")
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(t, str) for t in pair):
                raise InputTypeError(f"Input {i} is {pair!r:.60}, not a pair of strings (query, document).")
        if not pairs:
            return np.zeros((0,), dtype=np.float32)
        scores = self._batched([[q for q, _ in pairs], [d for _, d in pairs]], batch_size)
        return scores[:, 0] if scores.ndim == 2 and scores.shape[1] == 1 else scores

    def __repr__(self) -> str:
        return f"TextGraph({self.path.name!r}, variant={self.variant!r}, prompt_name={self.prompt_name!r})"

