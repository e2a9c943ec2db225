"""Open a bundle as the class its manifest names (SentenceTransformer, CrossEncoder, SparseEncoder,
MultiVectorEncoder); ``embed``, ``evaluate``, ``bench`` and ``serve`` all open models through here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .manifest import MANIFEST_NAME, Manifest

CLASS_MODULES = {"cross-encoder": ("cross_encoder", "CrossEncoder"),
                 "sparse-encoder": ("sparse_encoder", "SparseEncoder"),
                 "multi-vector-encoder": ("multi_vector_encoder", "MultiVectorEncoder")}


def bundle_kind(path: str | Path) -> str | None:
    """The manifest's kind, or None when ``path`` holds no manifest (the SentenceTransformer loader then says why)."""
    root = Path(path).expanduser()
    return Manifest.read(root).kind if (root / MANIFEST_NAME).is_file() else None


def open_model(path: str | Path, *, variant: str | None = None, device: str | None = None,
               threads: int | None = None, **auto_policy: Any) -> Any:
    """The bundle at ``path`` as its own class; ``auto_policy`` (``allow_batch_dependent``, ``min_retention``,
    ``min_top10``) constrains ``variant="auto"`` as in the Python API."""
    import importlib

    module, name = CLASS_MODULES.get(bundle_kind(path), ("sentence_transformer", "SentenceTransformer"))
    cls = getattr(importlib.import_module(f"st_runtime.{module}"), name)
    return cls(Path(path).expanduser(), variant=variant, device=device, threads=threads, **auto_policy)
