"""Texts (or text pairs) to the numpy arrays a graph takes, with ST's truncation and padding."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
from tokenizers import Tokenizer

from .errors import InputValidationError
from .manifest import TokenizerSpec

_MAX_LENGTH_SENTINEL = 10**8  # HF uses ~1e30 for "no limit"


class TextTokenizer:
    """A ``tokenizers.Tokenizer`` configured exactly as the exported model's Hugging Face tokenizer.

    Truncation is fixed per tokenizer object in the ``tokenizers`` library, so each max length gets its own copy,
    made once and never changed afterwards: views bound to different lengths (``with_max_length``) can be used from
    many threads at once without one call's length leaking into another's.
    """

    def __init__(self, tokenizer: Tokenizer, spec: TokenizerSpec) -> None:
        self._tok = tokenizer
        self.spec = spec
        self._special = frozenset(spec.special_token_ids)
        self._tok.no_truncation()
        self._tok.no_padding()
        self._copies: dict[int | None, Tokenizer] = {None: self._tok}
        self._lock = threading.Lock()
        self.max_seq_length = spec.max_seq_length

    @classmethod
    def from_file(cls, path: Path, spec: TokenizerSpec) -> "TextTokenizer":
        return cls(Tokenizer.from_file(str(path)), spec)

    @property
    def max_seq_length(self) -> int | None:
        return self._max_len

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        self._max_len = self.check_max_length(value)

    def check_max_length(self, value: int | None) -> int | None:
        """``value`` validated against the model's position limit (None or huge: no truncation)."""
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputValidationError(f"max_seq_length must be a positive int or None, got {value!r}.")
        limit = self.spec.model_max_length
        if value is not None and limit is not None and value > limit:
            raise InputValidationError(
                f"max_seq_length={value} exceeds what the model allows ({limit}: its position embeddings, or the "
                "longest bucket of a static-shape variant)."
            )
        return value if value is not None and value < _MAX_LENGTH_SENTINEL else None

    def with_max_length(self, value: int | None) -> "TextTokenizer":
        """A view of this tokenizer that truncates at ``value`` (shares the copies; this one is unchanged)."""
        view = copy.copy(self)
        view._max_len = self.check_max_length(value)
        return view

    def _backend(self) -> Tokenizer:
        length = self._max_len
        tok = self._copies.get(length)
        if tok is None:
            with self._lock:
                tok = self._copies.get(length)
                if tok is None:
                    tok = Tokenizer.from_str(self._tok.to_str())
                    tok.no_padding()
                    tok.enable_truncation(length, strategy="longest_first", direction=self.spec.truncation_side)
                    self._copies[length] = tok
        return tok

    def prompt_length(self, prompt: str) -> int:
        """Tokens the prompt occupies at the start of a text, as ST counts them (trailing special token excluded)."""
        ids = self._backend().encode(prompt).ids
        length = len(ids)
        if ids and ids[-1] in self._special:
            length -= 1
        return length

    def encode(self, batch: Sequence[str] | Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """Token ids and type ids of each text (or pair), truncated but not padded."""
        try:
            encodings = self._backend().encode_batch(list(batch))
        except (TypeError, ValueError, UnicodeError) as exc:
            raise _explain_bad_text(batch, exc) from exc
        return [(e.ids, e.type_ids) for e in encodings]

    def encode_checked(self, batch: Sequence[str] | Sequence[tuple[str, str]]
                       ) -> tuple[list[tuple[list[int], list[int]]], list[bool]]:
        """Like ``encode``, plus for each input whether truncation to max_seq_length cut it (the server's
        ``truncate: false`` check, done on the same single tokenization)."""
        encodings = self.encodings(batch)
        return [(e.ids, e.type_ids) for e in encodings], [bool(e.overflowing) for e in encodings]

    def encodings(self, batch: Sequence[str] | Sequence[tuple[str, str]]) -> list:
        """The ``tokenizers.Encoding`` of each input (ids, offsets, special-token mask, overflow), truncated."""
        try:
            return self._backend().encode_batch(list(batch))
        except (TypeError, ValueError, UnicodeError) as exc:
            raise _explain_bad_text(batch, exc) from exc

    def pad(self, rows: Sequence[tuple[list[int], list[int]]], width: int | None = None) -> dict[str, np.ndarray]:
        """Pad encoded rows to the longest (or to ``width``) into int64 ``input_ids``, ``attention_mask`` and
        ``token_type_ids``."""
        width = max([len(ids) for ids, _ in rows] + [width or 0])
        n = len(rows)
        input_ids = np.full((n, width), self.spec.pad_token_id, dtype=np.int64)
        type_ids = np.zeros((n, width), dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        left = self.spec.padding_side == "left"
        for row, (ids, types) in enumerate(rows):
            length = len(ids)
            cols = slice(width - length, width) if left else slice(0, length)
            input_ids[row, cols] = ids
            type_ids[row, cols] = types
            mask[row, cols] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": type_ids}

    def __call__(self, batch: Sequence[str] | Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
        """Tokenize and pad a batch, as the Hugging Face tokenizer does with padding=True, truncation=True."""
        return self.pad(self.encode(batch))


def _explain_bad_text(batch, exc: Exception) -> Exception:
    for index, item in enumerate(batch):
        for text in item if isinstance(item, tuple) else (item,):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                return InputValidationError(
                    f"Text at index {index} holds a lone surrogate ({err.object[err.start:err.end]!r}) that is not "
                    "valid Unicode; clean it first, e.g. text.encode('utf-8', 'replace').decode('utf-8')."
                )
    return InputValidationError(f"The tokenizer rejected the batch: {exc}")
