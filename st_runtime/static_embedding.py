"""StaticEmbedding (model2vec-style embedding bag) in numpy: no graph, the weights come straight from safetensors.

A bundle of such a model is an ordinary sentence-transformer bundle whose variant has ``format="static-embedding"``;
this module is the "session" that variant opens, so ``st_runtime.SentenceTransformer`` runs it unchanged: the mean of
the token rows of each text (tokenized without special tokens, as sentence-transformers does), then Normalize when
the model has it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import IntegrityError

FORMAT = "static-embedding"
WEIGHT_KEY = "embedding.weight"


class StaticEmbeddingSession:
    """A GraphSession over an embedding table: input_ids + attention_mask -> mean of the rows (float64 sums)."""

    input_names = ["input_ids", "attention_mask"]
    output_names = ["sentence_embedding", "token_embeddings"]

    def __init__(self, path: Path, settings: dict | None = None) -> None:
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
        if WEIGHT_KEY not in tensors:
            raise IntegrityError(f"{Path(path).name} has no {WEIGHT_KEY!r} tensor (it has {sorted(tensors)}); "
                                 "re-export the bundle with `st-runtime export`.")
        weights = tensors[WEIGHT_KEY]
        if weights.ndim != 2:
            raise IntegrityError(f"{WEIGHT_KEY} in {Path(path).name} has shape {weights.shape}, not (vocab, dim).")
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.normalize = bool((settings or {}).get("normalize", False))
        self.description = f"numpy embedding bag {self.weights.shape[0]}x{self.weights.shape[1]}"

    def run(self, feeds: dict[str, np.ndarray], outputs=None) -> dict[str, np.ndarray]:
        ids, mask = feeds["input_ids"], feeds["attention_mask"]
        if ids.size and (ids.min() < 0 or ids.max() >= self.weights.shape[0]):
            raise IntegrityError("A token id is outside the embedding table: the tokenizer does not match the weights.")
        tokens = self.weights[ids]  # (batch, length, dim)
        keep = mask.astype(np.float64)[..., None]
        counts = keep.sum(axis=1)
        sums = (tokens * keep).sum(axis=1)
        pooled = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        if self.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return {"sentence_embedding": pooled.astype(np.float32), "token_embeddings": tokens}
