"""Write embedding chunks as Parquet parts, then join them into one Parquet or .npy file (streamed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def text_hash(text: str) -> str:
    """sha256 of the UTF-8 text, hex (16 chars): lets users check rows against their source."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def chunk_table(start_id: int, texts: list[str], embeddings: np.ndarray):
    """Arrow table with id, text_hash and embedding (fixed-size list of the embedding dtype)."""
    import pyarrow as pa

    n, dim = embeddings.shape
    flat = pa.array(np.ascontiguousarray(embeddings).reshape(-1))
    return pa.table({
        "id": pa.array(np.arange(start_id, start_id + n, dtype=np.int64)),
        "text_hash": pa.array([text_hash(t) for t in texts]),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
    })


def write_part(path: Path, table) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_suffix(".tmp")
    pq.write_table(table, str(tmp))
    tmp.rename(path)


def join_parts(parts: list[Path], output: Path, metadata: dict[str, str] | None = None) -> None:
    """Join part files into ``output`` (.parquet or .npy) via a temporary name, renamed at the end.

    ``metadata`` goes into the Parquet schema metadata (the configuration the rows were made with)."""
    import pyarrow.parquet as pq

    tmp = output.with_name(f".{output.name}.tmp")
    if output.suffix == ".npy":
        rows = sum(pq.ParquetFile(str(p)).metadata.num_rows for p in parts)
        first = pq.read_table(str(parts[0])).column("embedding")
        dim = first.type.list_size
        dtype = first.type.value_type.to_pandas_dtype()
        array = np.lib.format.open_memmap(str(tmp), mode="w+", dtype=dtype, shape=(rows, dim))
        offset = 0
        for part in parts:
            column = pq.read_table(str(part), columns=["embedding"]).column("embedding").combine_chunks()
            values = column.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
            array[offset : offset + len(values)] = values
            offset += len(values)
        array.flush()
        del array
        tmp.replace(output)
        return
    writer = None
    try:
        for part in parts:
            table = pq.read_table(str(part))
            if metadata:
                table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
            if writer is None:
                writer = pq.ParquetWriter(str(tmp), table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(output)
