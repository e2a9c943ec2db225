"""Read texts from .txt (one per line), .jsonl or .parquet in chunks, without loading the whole file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from ..errors import InputValidationError


def input_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".txt", ".text", ".tsv"):
        return "text"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    raise InputValidationError(f"Cannot read {path.name}: use a .txt (one text per line), .jsonl or .parquet file.")


def _pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise InputValidationError("Parquet needs pyarrow: pip install 'st-runtime[embed]'") from exc
    return pq


def read_chunks(path: str | Path, chunk_size: int, column: str = "text") -> Iterator[list[str]]:
    """Yield lists of at most ``chunk_size`` texts, in file order."""
    path = Path(path)
    if not path.is_file():
        raise InputValidationError(f"Input file {str(path)!r} does not exist.")
    fmt = input_format(path)
    if fmt == "parquet":
        pq = _pyarrow()
        parquet = pq.ParquetFile(str(path))
        if column not in parquet.schema_arrow.names:
            raise InputValidationError(f"{path.name} has no column {column!r}; columns: {parquet.schema_arrow.names}. "
                                       "Pass --column NAME.")
        for batch in parquet.iter_batches(batch_size=chunk_size, columns=[column]):
            yield [str(t) if t is not None else "" for t in batch.column(0).to_pylist()]
        return
    chunk: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if fmt == "text":
                text = line.rstrip("\n").rstrip("\r")
            else:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputValidationError(f"{path.name} line {number} is not JSON: {exc}") from exc
                if not isinstance(record, dict) or not isinstance(record.get(column), str):
                    raise InputValidationError(f"{path.name} line {number} has no string field {column!r}; "
                                               "pass --column NAME.")
                text = record[column]
            chunk.append(text)
            if len(chunk) == chunk_size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk
