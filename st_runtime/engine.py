"""Tokenize -> run graph: length-sorted batches fed with exactly the inputs the graph declares."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from .backends import GraphSession
from .errors import IntegrityError
from .tokenization import TextTokenizer


def plan_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Index batches over inputs sorted longest first.

    Each batch holds at most ``batch_size`` inputs and, with ``max_tokens``, at most that many padded tokens
    (rows x longest row). An input longer than the budget still gets a batch of its own, so this always ends.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        stop = min(start + batch_size, len(order))
        if max_tokens:
            longest = max(1, int(lengths[order[start]]))
            stop = min(stop, start + max(1, max_tokens // longest))
        batches.append(order[start:stop])
        start = stop
    return batches


class GraphRunner:
    """Joins a tokenizer and a backend session; knows which inputs the graph wants."""

    def __init__(self, tokenizer: TextTokenizer, session: GraphSession) -> None:
        self.tokenizer = tokenizer
        self.session = session
        self.input_names = list(session.input_names)

    def feeds(self, encoded: dict[str, np.ndarray], extra: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Exactly the graph's declared inputs; token_type_ids synthesized as zeros only if the graph needs them."""
        feeds: dict[str, np.ndarray] = {}
        for name in self.input_names:
            if extra and name in extra:
                feeds[name] = extra[name]
            elif name in encoded:
                feeds[name] = encoded[name]
            elif name == "token_type_ids":
                feeds[name] = np.zeros_like(encoded["input_ids"])
            else:
                raise IntegrityError(
                    f"The graph declares an input {name!r} that st-runtime cannot produce; re-export the bundle."
                )
        return feeds

    def iter_batches(
        self, items: Sequence, batch_size: int, max_tokens: int | None = None, extra: dict[str, np.ndarray] | None = None
    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """Yield (indices, padded inputs, graph outputs) per batch, longest inputs first."""
        rows = self.tokenizer.encode(items)
        for indices in plan_batches([len(ids) for ids, _ in rows], batch_size, max_tokens):
            encoded = self.tokenizer.pad([rows[i] for i in indices])
            yield indices, encoded, self.session.run(self.feeds(encoded, extra))
