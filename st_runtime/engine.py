"""Tokenize -> run graph: length-sorted batches fed with exactly the inputs the graph declares."""

from __future__ import annotations

import collections
import math
from typing import Iterator, Sequence

import numpy as np

from .backends import GraphSession
from .errors import IntegrityError
from .tokenization import TextTokenizer


PAD_MULTIPLE = 8  # what GraphRunner.pad_to takes for OpenVINO-friendly shapes (off by default, see there)


def padded_width(longest: int, multiple: int | None, limit: int | None = None) -> int:
    """``longest`` rounded up to ``multiple`` (None: unchanged), never past ``limit`` unless ``longest`` already is."""
    if not multiple or longest <= 0:
        return longest
    width = math.ceil(longest / multiple) * multiple
    return max(longest, min(width, limit)) if limit else width


def plan_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None,
                 pad_multiple: int | None = None) -> list[np.ndarray]:
    """Index batches over inputs sorted longest first.

    Each batch holds at most ``batch_size`` inputs and, with ``max_tokens``, at most that many padded tokens
    (rows x longest row, rounded up to ``pad_multiple``). An input longer than the budget still gets a batch of
    its own, so this always ends.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        stop = min(start + batch_size, len(order))
        if max_tokens:
            longest = max(1, padded_width(int(lengths[order[start]]), pad_multiple))
            stop = min(stop, start + max(1, max_tokens // longest))
        batches.append(order[start:stop])
        start = stop
    return batches


class GraphRunner:
    """Joins a tokenizer and a backend session; knows which inputs the graph wants.

    Batches are padded to their longest row. ``pad_to(8)`` pads right-padded batches to a multiple of 8 tokens
    instead (pad positions are masked and come after every real token, so results stay within the backend's own
    batch-to-batch rounding): a backend then sees few distinct shapes. It is off by default because measured on
    all-MiniLM-L6-v2 (AMD EPYC Zen 3) it cost 15-25% of query throughput (5-15 word queries gain up to 7 tokens)
    for 40 MB less OpenVINO memory. Left-padded models (decoders) are never padded further: more left padding
    would move their real tokens to other positions.
    """

    def __init__(self, tokenizer: TextTokenizer, session: GraphSession) -> None:
        self.tokenizer = tokenizer
        self.session = session
        self.input_names = list(session.input_names)
        self.pad_multiple: int | None = None

    def pad_to(self, multiple: int | None) -> bool:
        """Pad batches to a multiple of ``multiple`` tokens (None: to the longest row); False for left-padded models,
        which keep padding to the longest row."""
        self.pad_multiple = multiple if multiple and self.tokenizer.spec.padding_side == "right" else None
        return self.pad_multiple is not None

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

    def width_limit(self, tokenizer: TextTokenizer | None = None) -> int | None:
        """The widest a padded batch may get: max_seq_length, else the model's position limit."""
        tokenizer = tokenizer or self.tokenizer
        return tokenizer.max_seq_length or tokenizer.spec.model_max_length

    def iter_batches(
        self, items: Sequence, batch_size: int, max_tokens: int | None = None, extra: dict[str, np.ndarray] | None = None,
        outputs: Sequence[str] | None = None,
    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """Yield (indices, padded inputs, graph outputs) per batch, longest inputs first (see ``iter_rows``)."""
        yield from self.iter_rows(self.tokenizer.encode(items), batch_size, max_tokens, extra, outputs)

    def iter_rows(
        self, rows: Sequence[tuple[list[int], list[int]]], batch_size: int, max_tokens: int | None = None,
        extra: dict[str, np.ndarray] | None = None, outputs: Sequence[str] | None = None,
        tokenizer: TextTokenizer | None = None,
    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """(indices, padded inputs, graph outputs) per batch of already-tokenized rows, longest first.

        ``outputs`` names the graph outputs to fetch (None: all of them); the backend skips the others.
        ``tokenizer`` (default: the runner's) pads the rows and bounds their padded width.
        """
        tokenizer = tokenizer or self.tokenizer
        limit = self.width_limit(tokenizer)
        lengths = rows.lengths() if hasattr(rows, "lengths") else [len(ids) for ids, _ in rows]  # long_text.Windows
        plan = plan_batches(lengths, batch_size, max_tokens, self.pad_multiple)

        def padded() -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
            for indices in plan:
                batch = [rows[i] for i in indices]
                width = padded_width(max(len(ids) for ids, _ in batch), self.pad_multiple, limit)
                yield indices, tokenizer.pad(batch, width=width)

        run_many = getattr(self.session, "run_many", None)
        if run_many is None or len(plan) < 2:
            for indices, encoded in padded():
                yield indices, encoded, self.session.run(self.feeds(encoded, extra), outputs)
            return
        # Several batches: the backend may keep more than one in flight (OpenVINO streams); results stay in order.
        staged: collections.deque = collections.deque()

        def feeds() -> Iterator[dict[str, np.ndarray]]:
            for indices, encoded in padded():
                staged.append((indices, encoded))
                yield self.feeds(encoded, extra)

        for result in run_many(feeds(), outputs):
            indices, encoded = staged.popleft()
            yield indices, encoded, result
