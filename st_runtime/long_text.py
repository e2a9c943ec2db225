"""Texts past max_seq_length: cut them (``long_text="truncate"``, sentence-transformers' behaviour and the default) or
embed them whole as overlapping token windows pooled into one embedding per text (``long_text="chunk"``).

A text is tokenized once, without truncation. Its tokens are split into the tokens the tokenizer adds around every
text (``[CLS]`` ... ``[SEP]``, ``<s>`` ... ``</s>``, a decoder's EOS), the prompt's tokens, and the text's own tokens
(the body). A window is the head (added tokens and prompt), a slice of the body at most ``max_seq_length`` minus
head and tail long, and the tail: every window looks like a text the model was trained on. Consecutive windows
start ``chunk_stride`` body tokens apart (default: three quarters of the window), so they share ``window -
stride`` tokens. A window is only (text, start, stop): its token row is assembled from views of the text's one
token array when its batch is padded. Texts that fit are their own single window, unchanged, so they embed exactly
as with truncation.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import InputValidationError

LONG_TEXT_MODES = ("truncate", "chunk")
CHUNK_POOLINGS = ("mean", "weighted", "max")  # weighted: by each window's count of text tokens

Row = tuple[Sequence[int], Sequence[int]]


def check_long_text(mode: Any, stride: Any, pooling: Any) -> tuple[str, int | None, str]:
    """The three settings validated (what EncodeConfig stores)."""
    if mode not in LONG_TEXT_MODES:
        raise InputValidationError(f"long_text must be one of {LONG_TEXT_MODES}, got {mode!r}.")
    if stride is not None and (isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride <= 0):
        raise InputValidationError(
            f"chunk_stride must be a positive number of tokens (the step between window starts) or None, got "
            f"{stride!r}.")
    if pooling not in CHUNK_POOLINGS:
        raise InputValidationError(f"chunk_pooling must be one of {CHUNK_POOLINGS}, got {pooling!r}.")
    return mode, None if stride is None else int(stride), pooling


def added_tokens(tokenizer: Any) -> tuple[int, int]:
    """(head, tail): how many tokens the tokenizer adds before and after every text, read from one probe text."""
    cached = getattr(tokenizer, "_added_tokens", None)
    if cached is None:
        encoding = tokenizer.with_max_length(None).encodings(["a"])[0]
        plain = [i for i, special in enumerate(encoding.special_tokens_mask) if not special]
        n = len(encoding.ids)
        cached = (plain[0], n - plain[-1] - 1) if plain else (n, 0)
        try:
            tokenizer._added_tokens = cached  # views made by with_max_length share the probe through copy
        except AttributeError:
            pass
    return cached


class Windows(Sequence):
    """The token rows of every window of every text, in text order (a text's windows are consecutive).

    ``owner[i]`` is the text window ``i`` belongs to, ``counts[j]`` how many windows text ``j`` has, ``weights[i]``
    how many of the text's own tokens window ``i`` holds. ``rows`` must be untruncated (special tokens included).
    """

    def __init__(self, rows: Sequence[Row], max_length: int, head: int, tail: int, stride: int | None) -> None:
        self._rows = rows
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        owners, starts, stops = [], [], []
        body_width = max_length - head - tail
        if stride is not None and not 0 < stride < body_width:
            raise InputValidationError(
                f"chunk_stride={stride} must be between 1 and {body_width - 1}: a window holds {body_width} text "
                f"tokens (max_seq_length {max_length} minus {head + tail} added and prompt tokens), and consecutive "
                "windows must overlap. Pass a smaller chunk_stride, or raise max_seq_length.")
        self.stride = stride if stride is not None else max(1, body_width * 3 // 4)
        self._head, self._tail = head, tail
        for index, (ids, _) in enumerate(rows):
            n = len(ids)
            if n <= max_length:
                owners.append(index), starts.append(-1), stops.append(n)
                continue
            if body_width < 2:
                raise InputValidationError(
                    f"A window of max_seq_length {max_length} tokens holds no room for text after {head + tail} "
                    "added and prompt tokens; raise max_seq_length or use a shorter prompt.")
            body = n - head - tail  # > body_width, since n > max_length
            steps = -(-(body - body_width) // self.stride)  # the last window ends at the text's end
            first = np.arange(steps + 1, dtype=np.int64) * self.stride
            owners += [index] * len(first)
            starts += first.tolist()
            stops += np.minimum(first + body_width, body).tolist()
        self.owner = np.asarray(owners, dtype=np.int64)
        self._start = np.asarray(starts, dtype=np.int64)
        self._stop = np.asarray(stops, dtype=np.int64)
        self.counts = np.bincount(self.owner, minlength=len(rows)) if len(rows) else np.zeros(0, np.int64)
        whole = self._start < 0
        self.weights = np.where(whole, self._stop - head - tail, self._stop - self._start).clip(min=1)
        self._lengths = np.where(whole, self._stop, self._stop - self._start + head + tail)

    def __len__(self) -> int:
        return len(self.owner)

    def lengths(self) -> list[int]:
        """Token count of each window row (what batching sorts by), without assembling the rows."""
        return self._lengths.tolist()

    def _arrays_of(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        arrays = self._arrays.get(index)
        if arrays is None:
            ids, types = self._rows[index]
            arrays = self._arrays[index] = (np.asarray(ids, dtype=np.int64), np.asarray(types, dtype=np.int64))
        return arrays

    def __getitem__(self, i: int) -> Row:  # type: ignore[override]
        index, start, stop = int(self.owner[i]), int(self._start[i]), int(self._stop[i])
        if start < 0:
            return self._rows[index]
        head, tail = self._head, self._tail
        parts = []
        for array in self._arrays_of(index):
            end = len(array)
            parts.append(np.concatenate((array[:head], array[head + start: head + stop], array[end - tail:])))
        return parts[0], parts[1]

    def pool(self, embeddings: np.ndarray, mode: str, renormalize: bool) -> np.ndarray:
        """One row per text from the window rows of ``embeddings`` (float32); a text of one window keeps its row
        bit for bit, a text of several is pooled (``mode``) and, when the model normalizes, normalized again."""
        if len(embeddings) == len(self._rows):
            return embeddings
        offsets = np.concatenate(([0], np.cumsum(self.counts)[:-1])).astype(np.int64)
        if mode == "max":
            pooled = np.maximum.reduceat(embeddings, offsets, axis=0)
        else:
            weights = self.weights if mode == "weighted" else np.ones(len(self), dtype=np.int64)
            sums = np.add.reduceat(embeddings.astype(np.float64) * weights[:, None], offsets, axis=0)
            pooled = (sums / np.add.reduceat(weights, offsets)[:, None]).astype(np.float32)
        several = self.counts > 1
        out = embeddings[offsets].copy()
        out[several] = pooled[several]
        if renormalize and several.any():
            from .similarity import normalize_embeddings

            out[several] = normalize_embeddings(out[several])
        return out


def add_cli_options(p) -> None:
    """--long-text / --chunk-stride / --chunk-pooling (embed and serve): texts past max_seq_length."""
    p.add_argument("--long-text", choices=LONG_TEXT_MODES, default="truncate",
                   help="texts past max_seq_length: cut them (default, as sentence-transformers does) or embed them "
                        "whole as overlapping token windows pooled into one embedding (costs one model call per window)")
    p.add_argument("--chunk-stride", type=int, default=None, metavar="TOKENS",
                   help="--long-text chunk: tokens between window starts (default: 3/4 of a window)")
    p.add_argument("--chunk-pooling", choices=CHUNK_POOLINGS, default="mean",
                   help="--long-text chunk: how window embeddings become one (weighted: by window tokens)")
