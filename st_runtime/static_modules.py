"""Graph-free modules that run in numpy from their weights and a tokenizer (SparseStaticEmbedding)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer

from .errors import IntegrityError
from .manifest import TokenizerSpec


def load_tokenizer(path: Path, spec: TokenizerSpec | None) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` without padding, truncated to ``spec.max_seq_length`` if set."""
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    if spec is not None and spec.max_seq_length:
        tok.enable_truncation(spec.max_seq_length, strategy="longest_first", direction=spec.truncation_side)
    return tok


def load_weights(path: Path, ndim: int) -> np.ndarray:
    weights = np.load(path, allow_pickle=False)
    if weights.ndim != ndim or weights.dtype != np.float32:
        raise IntegrityError(f"{path.name} holds a {weights.dtype} array of shape {weights.shape}, not a float32 "
                             f"{ndim}-D array; re-export the bundle.")
    return weights


class SparseStaticRoute:
    """SparseStaticEmbedding: each token present in the text contributes its static weight (e.g. its IDF)."""

    def __init__(self, tokenizer: Tokenizer, weights: np.ndarray, add_special_tokens: bool = False) -> None:
        self.tokenizer = tokenizer
        self.weights = weights
        self.add_special_tokens = add_special_tokens

    @property
    def dimension(self) -> int:
        return int(self.weights.shape[0])

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=self.add_special_tokens)]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), vocab) float32: weight[token] where the token occurs, 0 elsewhere."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, ids in enumerate(self.token_ids(texts)):
            if ids:
                present = np.unique(np.asarray(ids, dtype=np.int64))
                out[row, present] = self.weights[present]
        return out
