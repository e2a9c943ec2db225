"""Torch side of st-runtime: turn a SentenceTransformer / CrossEncoder into a verified bundle.

This package imports torch, transformers and sentence-transformers; the runtime (``st_runtime``) never does.
"""

from .export import export_model

__all__ = ["export_model"]
