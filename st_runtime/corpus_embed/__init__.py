"""Corpus-scale embedding: files in, Parquet or .npy out, streamed in chunks, resumable; locally or on Ray Data."""

from .local import embed_file
from .sources import read_chunks

__all__ = ["embed_file", "read_chunks"]
