"""Static-shape buckets: run fixed (batch, length) graphs on batches of any size.

A static-shape variant holds one OpenVINO IR per (batch, length) bucket, as NPUs and other fixed-shape runtimes
need. ``BucketedSession`` sits behind the same narrow backend contract as every session: each batch is padded to
the smallest bucket that fits it (extra rows are empty sequences, extra columns pad tokens with attention_mask 0),
a batch with more rows than any fitting bucket holds is split, and the outputs are cut back to the real rows and
columns. Nothing here imports a backend library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import InputValidationError

_SHAPE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


@dataclass(frozen=True, order=True)
class Bucket:
    """One fixed input shape: ``batch`` rows of ``length`` tokens."""

    batch: int
    length: int

    @property
    def label(self) -> str:
        return f"{self.batch}x{self.length}"

    @property
    def area(self) -> int:
        return self.batch * self.length


def parse_shapes(text: str | Sequence) -> list[Bucket]:
    """'1x64,8x128' (or [[1, 64], [8, 128]], or Buckets) -> sorted, de-duplicated buckets; malformed ones refused."""
    items = text.split(",") if isinstance(text, str) else list(text)
    buckets = set()
    for item in items:
        if isinstance(item, Bucket):
            buckets.add(item)
            continue
        if isinstance(item, str):
            match = _SHAPE.match(item)
            pair = (int(match.group(1)), int(match.group(2))) if match else None
        else:
            pair = tuple(item) if isinstance(item, (list, tuple)) and len(item) == 2 else None
            pair = pair if pair and all(isinstance(v, int) and not isinstance(v, bool) for v in pair) else None
        if not pair or min(pair) < 1:
            raise InputValidationError(
                f"Static shape {item!r} is not BATCHxLENGTH with positive integers; write e.g. "
                "--static-shapes 1x64,8x128,32x256.")
        buckets.add(Bucket(*pair))
    if not buckets:
        raise InputValidationError("--static-shapes needs at least one BATCHxLENGTH bucket, e.g. 1x64,8x128,32x256.")
    return sorted(buckets, key=lambda b: (b.length, b.batch))


def plan(rows: int, length: int, buckets: Sequence[Bucket]) -> list[tuple[slice, Bucket]]:
    """Which bucket runs which rows: the smallest bucket (fewest padded tokens) that fits, splitting the rows into
    chunks of the largest batch a long-enough bucket has when none holds them all.

    ``length`` must not exceed the longest bucket (the runtime truncates texts to it before they get here).
    """
    fitting = [b for b in buckets if b.length >= length]
    if not fitting:
        raise InputValidationError(
            f"A batch {length} tokens wide does not fit the longest static shape "
            f"({max(b.length for b in buckets)} tokens); max_seq_length must not exceed it.")
    widest = max(b.batch for b in fitting)
    out: list[tuple[slice, Bucket]] = []
    start = 0
    while start < rows:
        count = min(widest, rows - start)
        bucket = min((b for b in fitting if b.batch >= count), key=lambda b: (b.area, b.length))
        out.append((slice(start, start + count), bucket))
        start += count
    return out


def pad_feeds(feeds: dict[str, np.ndarray], bucket: Bucket, pad_id: int, left: bool) -> dict[str, np.ndarray]:
    """Token inputs (rank 2) padded to the bucket: new rows are empty sequences, new columns pad tokens with
    attention_mask 0 (on the left for left-padded models). Other inputs (``prompt_length``) are passed as they are."""
    out = {}
    for name, value in feeds.items():
        if value.ndim != 2:
            out[name] = value
            continue
        fill = pad_id if name == "input_ids" else 0
        padded = np.full((bucket.batch, bucket.length), fill, dtype=value.dtype)
        rows, width = value.shape
        cols = slice(bucket.length - width, bucket.length) if left else slice(0, width)
        padded[:rows, cols] = value
        out[name] = padded
    return out


class BucketedSession:
    """A GraphSession over one compiled session per bucket (see the module docstring).

    ``sequence_outputs`` names the outputs with a token axis (axis 1), which are cut back to the batch's width;
    every other output is cut back to the batch's rows only.
    """

    def __init__(self, sessions: dict[Bucket, object], pad_id: int, padding_side: str = "right",
                 sequence_outputs: Sequence[str] = ()) -> None:
        self.sessions = dict(sorted(sessions.items(), key=lambda kv: (kv[0].length, kv[0].batch)))
        self.buckets = list(self.sessions)
        first = next(iter(self.sessions.values()))
        self.input_names = list(first.input_names)
        self.output_names = list(first.output_names)
        self.pad_id = pad_id
        self.left = padding_side == "left"
        self.sequence_outputs = frozenset(sequence_outputs)
        self.max_length = max(b.length for b in self.buckets)
        self.description = f"{first.description} static shapes {','.join(b.label for b in self.buckets)}"

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        rows, width = feeds["input_ids"].shape
        names = list(outputs) if outputs else self.output_names
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for chunk, bucket in plan(rows, width, self.buckets):
            piece = {k: (v[chunk] if v.ndim == 2 else v) for k, v in feeds.items()}
            result = self.sessions[bucket].run(pad_feeds(piece, bucket, self.pad_id, self.left), names)
            count = chunk.stop - chunk.start
            for name in names:
                value = result[name][:count]
                if name in self.sequence_outputs:
                    value = value[:, bucket.length - width:] if self.left else value[:, :width]
                parts[name].append(value)
        return {name: np.concatenate(values) if len(values) > 1 else values[0] for name, values in parts.items()}

    def compiled_input_shapes(self) -> dict[str, list]:
        """Per bucket, the input shapes of its compiled model (for checks that the shapes compiled static)."""
        return {bucket.label: session.compiled_input_shapes() for bucket, session in self.sessions.items()}
